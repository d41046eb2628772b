"""The crop cache on disk: what `prepare` writes and every later step reads.

    <cache>/prepare.json      crop geometry and detector settings (a cache holds one geometry)
    <cache>/detections.jsonl  journal, one line per photo (or known box) done, appended as prepare goes
    <cache>/manifest.csv      labelled rows joined with their crops (rewritten atomically)
    <cache>/problems.csv      what the dataset readers reported, with file and line
    <cache>/prepare.log       prepare's log
    <cache>/crops/xx/*.png    two crops per face, lossless (a cached crop is what crop_face gave):
                              NAME.png the context crop for training, NAME.input.png the runtime crop
    <cache>/folds.csv         person -> fold, or "test" for the held-out test split (`split`)

The journal is keyed by source path (+ "#x1,y1,x2,y2" for a known box) + mtime + size, so a rerun
skips photos and boxes already done and redoes any that changed; labels are always re-read from
the datasets, never from the cache.
"""
from __future__ import annotations

import csv
import hashlib
import json
import logging
from dataclasses import asdict, dataclass
from pathlib import Path

import cv2
import numpy as np

from core.atomic import atomic_open
from core.crop import CropSpec
from core.labels import HEADS, LABEL_NAMES
from training.config import ConfigError
from training.data.records import ManifestRow
from training.data.utkface import RACE_NAMES, parse_race, race_of_person

log = logging.getLogger(__name__)

CACHE_FORMAT = 1
#: folds.csv's fold of a person in the held-out test split (written "test"): never trained or validated on.
TEST_FOLD = -1
TEST_NAME = "test"


@dataclass(frozen=True)
class CropGeometry:
    """Two crops per face, both by core.crop.crop_face from the detector's box:

    - the runtime crop, crop_margin at input_size, exactly what the app feeds the classifier:
      validation, evaluation and the export parity check use it;
    - the context crop, cache_margin at cache_size: the same pixel scale with a rim of `rim` px
      around the runtime crop, so training's random crops can zoom out and shift. Its centre
      input_size square covers the runtime crop (equal up to resampling, a few grey levels).
    """

    input_size: int
    crop_margin: float
    cache_size: int
    cache_margin: float
    #: (size, margin) of a narrower crop nested in the runtime crop (prepare --inner-crop; core.crop.crop_face inner)
    inner_crop: tuple[int, float] | None = None

    @classmethod
    def from_context(cls, input_size: int, crop_margin: float, context: float,
                     inner_crop: tuple[int, float] | None = None) -> CropGeometry:
        rim = round(input_size * (context - 1.0) / 2.0)
        cache_size = input_size + 2 * rim
        # Same pixels per face: the square side grows with the crop size.
        cache_margin = ((1.0 + 2.0 * crop_margin) * cache_size / input_size - 1.0) / 2.0
        return cls(input_size, crop_margin, cache_size, round(cache_margin, 6), inner_crop)

    @classmethod
    def from_json(cls, data: dict) -> CropGeometry:
        inner = data.get("inner_crop")
        return cls(int(data["input_size"]), float(data["crop_margin"]), int(data["cache_size"]), float(data["cache_margin"]),
                   None if inner is None else (int(inner[0]), float(inner[1])))

    @property
    def crop_spec(self) -> CropSpec:
        """The runtime crop's spec: what a classifier file scored on this cache must take."""
        return CropSpec(self.input_size, self.crop_margin, self.inner_crop)

    def runtime_crop(self, image: np.ndarray, box) -> np.ndarray:
        """The crop the app feeds a classifier cut as this cache is (core.crop.crop_face)."""
        return self.crop_spec.cut(image, box)

    @property
    def rim(self) -> int:
        return (self.cache_size - self.input_size) // 2

    def centre(self, cached: np.ndarray) -> np.ndarray:
        """The runtime crop's square inside a context crop."""
        r, s = self.rim, self.input_size
        return np.ascontiguousarray(cached[r : r + s, r : r + s])


@dataclass(frozen=True)
class CacheInfo:
    geometry: CropGeometry
    min_face: int
    thresholds: tuple[float, float, float]
    no_face: str
    format: int = CACHE_FORMAT
    min_box: int = 10  # known boxes with a shorter side are skipped

    def to_json(self) -> dict:
        data = asdict(self)
        if self.geometry.inner_crop is None:  # caches without one read as before
            del data["geometry"]["inner_crop"]
        return data

    @classmethod
    def from_json(cls, data: dict) -> CacheInfo:
        return cls(
            CropGeometry.from_json(data["geometry"]), int(data["min_face"]), tuple(data["thresholds"]), data["no_face"],  # type: ignore[arg-type]
            int(data["format"]), int(data.get("min_box", 10)),
        )


@dataclass(frozen=True)
class Detected:
    """One journal line: what prepare did with one photo, or with one known box of a photo."""

    key: str
    mtime_ns: int
    size: int
    status: str  # ok, no_face, error, box_too_small
    message: str = ""
    crop: str = ""  # context crop, relative to the cache; the runtime crop is runtime_name(crop)
    box: tuple[float, float, float, float] | None = None
    det_score: float = 0.0
    faces: int = 0
    how: str = ""  # detected, padded (found after padding the border), box (known box, no detection)


def runtime_name(context_crop: str) -> str:
    """The runtime crop's file beside a context crop's."""
    return context_crop.removesuffix(".png") + ".input.png"


def read_png(path: Path) -> np.ndarray:
    try:  # imdecode of the bytes: imread cannot open non-ASCII paths everywhere
        image = cv2.imdecode(np.fromfile(path, dtype=np.uint8), cv2.IMREAD_COLOR)
    except (OSError, cv2.error):
        image = None
    if image is None:
        raise OSError(f"cannot read cached crop {path}")
    return image


@dataclass(frozen=True)
class CachedFace:
    """A labelled row with its cached crops."""

    row: ManifestRow
    crop: Path  # context crop

    @property
    def runtime_crop(self) -> Path:
        return Path(runtime_name(str(self.crop)))

    def load(self) -> np.ndarray:
        """The context crop (training)."""
        return read_png(self.crop)

    def load_runtime(self) -> np.ndarray:
        """The runtime crop (validation, evaluation, export): what the app would feed the model."""
        return read_png(self.runtime_crop)


MANIFEST_COLUMNS = [
    "path", "person_id", "source", "mask", "gender", "age", "age_group",
    "status", "message", "crop", "x1", "y1", "x2", "y2", "det_score", "faces", "how", "race",
]


def _label_name(head: str, value: int | None) -> str:
    return "" if value is None else LABEL_NAMES[head][int(value)]


def _parse_label(head: str, text: str):
    return None if text == "" else HEADS[head](LABEL_NAMES[head].index(text))


def manifest_row(record: dict[str, str]) -> ManifestRow:
    """One manifest record back into the reader's row (the known box only where the crop was cut from it).
    A manifest written before the race column gets the race from a UTKFace-named person id, as
    the readers now do."""
    race = parse_race(record["race"]) if record.get("race") else race_of_person(record["person_id"])
    return ManifestRow(
        Path(record["path"]), record["person_id"],
        _parse_label("mask", record["mask"]), _parse_label("gender", record["gender"]),
        float(record["age"]) if record["age"] else None, _parse_label("age", record["age_group"]),
        record["source"],
        tuple(float(record[c]) for c in ("x1", "y1", "x2", "y2")) if record.get("how") == "box" else None,  # type: ignore[arg-type]
        race,
    )


class Cache:
    """Paths and files of one cache folder."""

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)
        self.info_path = self.root / "prepare.json"
        self.journal_path = self.root / "detections.jsonl"
        self.manifest_path = self.root / "manifest.csv"
        self.problems_path = self.root / "problems.csv"
        self.log_path = self.root / "prepare.log"
        self.folds_path = self.root / "folds.csv"

    # ---------------------------------------------------------------- settings

    def geometry_for(self, spec: CropSpec, model_name: str) -> CropGeometry:
        """This cache's geometry, or a ConfigError when its faces are cut otherwise than the model
        `model_name` takes them (scoring it there would judge it on crops it never sees)."""
        geometry = self.read_info().geometry
        if geometry.crop_spec != spec:
            raise ConfigError(f"{model_name} takes {spec} crops but {self.root} holds {geometry.crop_spec}: give a cache "
                              "cut as the file takes them (mask-train prepare --input-size, --crop-margin, --inner-crop)")
        return geometry

    def read_info(self) -> CacheInfo:
        try:
            return CacheInfo.from_json(json.loads(self.info_path.read_text(encoding="utf-8")))
        except FileNotFoundError:
            raise ConfigError(f"{self.root} is not a prepared cache (no prepare.json): run `mask-train prepare` first") from None
        except (ValueError, KeyError, TypeError) as exc:
            raise ConfigError(f"{self.info_path} is malformed: {exc}") from exc

    def claim(self, info: CacheInfo) -> None:
        """Record the settings of a new cache, or check an existing one was made with the same."""
        if self.info_path.exists():
            old = self.read_info()
            if old != info:
                raise ConfigError(
                    f"cache {self.root} was prepared with other settings ({old}); "
                    f"use another --cache or delete that folder"
                )
            return
        self.root.mkdir(parents=True, exist_ok=True)
        with atomic_open(self.info_path, "w", encoding="utf-8") as handle:
            json.dump(info.to_json(), handle, indent=1)

    # ---------------------------------------------------------------- journal

    def crop_name(self, key: str, mtime_ns: int, size: int) -> str:
        digest = hashlib.sha1(f"{key}|{mtime_ns}|{size}".encode()).hexdigest()[:20]
        return f"crops/{digest[:2]}/{digest}.png"

    def read_journal(self) -> dict[str, Detected]:
        """Journal entries by key, the last line for a key winning; a torn last line is ignored."""
        done: dict[str, Detected] = {}
        if not self.journal_path.exists():
            return done
        with open(self.journal_path, encoding="utf-8") as handle:
            for number, line in enumerate(handle, 1):
                try:
                    data = json.loads(line)
                    if data.get("box") is not None:
                        data["box"] = tuple(data["box"])
                    entry = Detected(**data)
                except (ValueError, TypeError):
                    log.warning("%s:%d: unreadable journal line ignored (interrupted write?)", self.journal_path, number)
                    continue
                done[entry.key] = entry
        return done

    def is_current(self, entry: Detected | None, mtime_ns: int, size: int) -> bool:
        if entry is None or entry.mtime_ns != mtime_ns or entry.size != size:
            return False
        if entry.status != "ok":
            return True
        return (self.root / entry.crop).is_file() and (self.root / runtime_name(entry.crop)).is_file()

    # ---------------------------------------------------------------- manifest

    def write_manifest(self, rows: list[tuple[ManifestRow, Detected | None]]) -> None:
        with atomic_open(self.manifest_path, "w", newline="", encoding="utf-8") as handle:
            writer = csv.DictWriter(handle, fieldnames=MANIFEST_COLUMNS)
            writer.writeheader()
            for row, done in rows:
                record = {
                    "path": str(row.path), "person_id": row.person_id, "source": row.source,
                    "mask": _label_name("mask", row.mask), "gender": _label_name("gender", row.gender),
                    "age": "" if row.age is None else f"{row.age:g}", "age_group": _label_name("age", row.age_group),
                    "race": "" if row.race is None else RACE_NAMES[row.race],
                }
                if done is not None:
                    record.update(status=done.status, message=done.message, crop=done.crop, det_score=round(done.det_score, 4), faces=done.faces, how=done.how)
                    if done.box is not None:
                        record.update(zip(("x1", "y1", "x2", "y2"), (repr(float(v)) for v in done.box)))
                else:
                    record.update(status="pending")
                if row.box is not None and (done is None or done.box is None):
                    record.update(zip(("x1", "y1", "x2", "y2"), (repr(float(v)) for v in row.box)))
                writer.writerow(record)

    def read_records(self) -> list[dict[str, str]]:
        """The manifest's rows as written (every status), for tools that report on the cache."""
        if not self.manifest_path.exists():
            raise ConfigError(f"{self.root} has no manifest.csv: run `mask-train prepare` first")
        with open(self.manifest_path, newline="", encoding="utf-8") as handle:
            return list(csv.DictReader(handle))

    def read_faces(self) -> list[CachedFace]:
        """The manifest's rows that have a crop (status ok)."""
        return [CachedFace(manifest_row(r), self.root / r["crop"]) for r in self.read_records() if r["status"] == "ok"]

    # ---------------------------------------------------------------- folds

    def read_folds(self) -> dict[str, int]:
        """person id -> fold; TEST_FOLD for the held-out test split ("test" in the file)."""
        if not self.folds_path.exists():
            raise ConfigError(f"{self.root} has no folds.csv: run `mask-train split` first")
        with open(self.folds_path, newline="", encoding="utf-8") as handle:
            return {r["person_id"]: TEST_FOLD if r["fold"] == TEST_NAME else int(r["fold"]) for r in csv.DictReader(handle)}
