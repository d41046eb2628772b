"""The numbers of `mask-train eda`: the labelled rows as the readers (or a cache) give them, summarised."""
from __future__ import annotations

import statistics
from collections import Counter, defaultdict
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import numpy as np
from tqdm import tqdm

from core.labels import HEADS as CORE_HEADS
from core.labels import LABEL_NAMES, class_names
from training.config import ConfigError, EdaConfig
from training.data.cache import Cache, manifest_row, runtime_name
from training.data.readers import read_dataset
from training.data.records import ManifestRow

HEADS = tuple(CORE_HEADS)


UNKNOWN = "unknown"


STATUSES = ("ok", "no_face", "error", "box_too_small", "pending")


HOWS = ("detected", "padded", "box")


@dataclass(frozen=True)
class Photo:
    """One labelled row, labels as core's names (None: unknown)."""

    path: Path
    person: str
    source: str
    mask: str | None
    gender: str | None
    age: float | None  # years, when known
    age_group: str | None
    box: tuple[float, float, float, float] | None = None  # a known face box (cropped, not detected)
    crop: Path | None = None  # the cached runtime crop, when the cache has one

    def label(self, head: str) -> str | None:
        return {"mask": self.mask, "gender": self.gender, "age": self.age_group}[head]

    @property
    def class_name(self) -> str | None:
        if self.mask is None or self.gender is None or self.age_group is None:
            return None
        return f"{self.mask}/{self.gender}/{self.age_group}"


@dataclass
class EdaSummary:
    """The report's numbers (also written to eda.json)."""

    report: Path
    photos: int = 0
    people: int = 0
    sources: dict[str, dict[str, int]] = field(default_factory=dict)  # source -> photos, people
    heads: dict[str, dict[str, int]] = field(default_factory=dict)  # head -> label (or unknown) -> photos
    classes: dict[str, int] = field(default_factory=dict)  # the 18 classes -> fully labelled photos
    gender_age: dict[str, dict[str, int]] = field(default_factory=dict)  # gender -> age group -> photos
    ages: dict[str, float] = field(default_factory=dict)  # n, min, median, max (photos with years)
    photos_per_person: dict[int, int] = field(default_factory=dict)  # photos -> how many people have that many
    sizes: dict[str, object] = field(default_factory=dict)  # read, unreadable, median w/h, most common
    detection: dict[str, dict[str, int]] = field(default_factory=dict)  # source -> status/how -> rows (with a cache)
    reader_problems: int = 0

    def to_json(self) -> dict:
        data = asdict(self)
        data["report"] = str(self.report)
        return data


def _from_row(row: ManifestRow, age_boundary: int) -> Photo:
    def name(head: str, value) -> str | None:
        return None if value is None else LABEL_NAMES[head][int(value)]

    return Photo(row.path, row.person_id, row.source, name("mask", row.mask), name("gender", row.gender), row.age,
                 name("age", row.age_label(age_boundary)), row.box)


def _row_key(path: str, box: Sequence[float] | None) -> tuple:
    return (path, None if box is None else tuple(float(v) for v in box))


def read_photos(config: EdaConfig) -> tuple[list[Photo], list[dict[str, str]], int]:
    """(photos, the cache's manifest records or [], reader problems)."""
    records = Cache(config.cache).read_records() if config.cache is not None else []
    problems = 0
    if config.data:
        photos = []
        for spec in config.data:
            result = read_dataset(spec, config.class_map)
            problems += len(result.problems)
            photos.extend(_from_row(row, config.age_boundary) for row in result.rows)
    else:
        photos = [_from_row(manifest_row(r), config.age_boundary) for r in records]
    if records:  # the face crop the classifier sees, for the sample grids; matched by path and known box
        crops = {_row_key(r["path"], manifest_row(r).box): Path(r["crop"]) for r in records if r["status"] == "ok"}
        photos = [replace(p, crop=_crop_path(config.cache, crops.get(_row_key(str(p.path), p.box)))) for p in photos]
    if not photos:
        raise ConfigError("eda: the datasets hold no labelled photo")
    return photos, records, problems


def _crop_path(cache: Path | None, crop: Path | None) -> Path | None:
    return None if cache is None or crop is None else cache / runtime_name(str(crop))


def summarise(photos: list[Photo], records: list[dict[str, str]], report: Path) -> EdaSummary:
    summary = EdaSummary(report=report, photos=len(photos), people=len({(p.source, p.person) for p in photos}))
    by_source: dict[str, list[Photo]] = defaultdict(list)
    for p in photos:
        by_source[p.source].append(p)
    summary.sources = {s: {"photos": len(ps), "people": len({p.person for p in ps})} for s, ps in sorted(by_source.items())}
    for head in HEADS:
        counts = Counter(p.label(head) or UNKNOWN for p in photos)
        summary.heads[head] = {label: counts.get(label, 0) for label in (*LABEL_NAMES[head], UNKNOWN)}
    classes = Counter(p.class_name for p in photos if p.class_name)
    summary.classes = {name: classes.get(name, 0) for name in class_names()}
    pairs = Counter((p.gender, p.age_group) for p in photos if p.gender and p.age_group)
    summary.gender_age = {g: {a: pairs.get((g, a), 0) for a in LABEL_NAMES["age"]} for g in LABEL_NAMES["gender"]}
    years = [p.age for p in photos if p.age is not None]
    if years:
        summary.ages = {"n": len(years), "min": min(years), "median": statistics.median(years), "max": max(years)}
    per_person = Counter((p.source, p.person) for p in photos)
    summary.photos_per_person = dict(sorted(Counter(per_person.values()).items()))
    detection: dict[str, Counter] = defaultdict(Counter)
    for r in records:
        detection[r["source"]][r["status"]] += 1
        if r["status"] == "ok" and r.get("how"):
            detection[r["source"]][r["how"]] += 1
    summary.detection = {s: {k: c.get(k, 0) for k in (*STATUSES, *HOWS)} for s, c in sorted(detection.items())}
    return summary


def read_sizes(photos: list[Photo], limit: int, seed: int) -> tuple[list[tuple[int, int]], int]:
    """Pixel sizes (width, height) of up to `limit` distinct photos (0: all), from their headers."""
    from PIL import Image

    paths = sorted({p.path for p in photos})
    if limit and len(paths) > limit:
        chosen = np.random.default_rng(seed).choice(len(paths), limit, replace=False)
        paths = [paths[i] for i in sorted(chosen)]
    sizes, unreadable = [], 0
    for path in tqdm(paths, desc="photo sizes", unit="photo", leave=False, disable=len(paths) < 200):
        try:
            with Image.open(path) as image:
                sizes.append(image.size)
        except (OSError, ValueError, Image.DecompressionBombError):
            unreadable += 1
    return sizes, unreadable

