"""`prepare`: find the face in every labelled photo once and cache its crop.

Detection is the slow part of reading a photo (bench/train_cache.py), and it gives the same box
every epoch, so it is done once here with core's MTCNN and core's crop, exactly as the app
does it; training then reads small PNGs. Decoding runs in a thread pool ahead of detection
(core.batch.analyze_files, the batch command's own loop).

Policy, counted in the summary:
- several faces: the largest; among faces at least 80 % as large as it, the one nearest the
  image centre (the labelled person is the subject of the photo);
- no face: with no_face="pad" the photo is padded by 30 % of its longer side (border pixels
  repeated) and searched again, because MTCNN misses faces that fill the whole frame (tight face
  chips); if there is still none, or with no_face="skip", the photo is skipped and counted.

Rows with a known box (the boxes layout, a csv with x1..y2, `mask-train synth`'s manifest) are
not detected: the photo is decoded once, however many boxes it has, and each box is cropped with
the same two crop_face calls. Each box is its own journal entry (key "<path>#x1,y1,x2,y2"), so a
rerun skips the boxes already done; boxes with a side under min_box px are skipped and counted
("box too small"). Rows without a box are handled exactly as above.
"""
from __future__ import annotations

import csv
import json
import logging
import os
import time
from collections import Counter
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import cv2
import numpy as np
from tqdm import tqdm

from core.analyzer import FaceAnalyzer
from core.atomic import atomic_open, atomic_path
from core.batch import BatchOptions, ImageResult, analyze_files
from core.config import AnalyzerConfig, DetectorConfig
from core.crop import crop_face
from core.files import FileEntry, has_undecodable_name, path_text
from core.imageio import ImageReadError, load_image
from core.mtcnn import MTCNN
from training.config import ConfigError, PrepareConfig
from training.data.cache import Cache, CacheInfo, CropGeometry, Detected, runtime_name
from training.data.readers import read_dataset
from training.data.records import ManifestRow, Problem, ReadResult
from training.logfile import log_to_file

log = logging.getLogger(__name__)

PAD_FRACTION = 0.3
SIMILAR_SIZE = 0.8
MANIFEST_EVERY_S = 30.0


@dataclass(frozen=True)
class FoundFace:
    box: np.ndarray  # x1, y1, x2, y2 in the original image
    score: float
    faces: int  # how many the detector found
    how: str  # "detected" or "padded"


def choose_face(boxes: Sequence[np.ndarray], width: int, height: int) -> int:
    """Index of the photo's subject: the largest face, or among faces nearly as large, the most central."""
    areas = np.array([max(0.0, b[2] - b[0]) * max(0.0, b[3] - b[1]) for b in boxes])
    centre = np.array([width / 2.0, height / 2.0])
    candidates = np.flatnonzero(areas >= SIMILAR_SIZE * areas.max())
    distances = [np.linalg.norm((np.asarray(boxes[i][:2]) + np.asarray(boxes[i][2:4])) / 2.0 - centre) for i in candidates]
    return int(candidates[int(np.argmin(distances))])


def find_face(
    image: np.ndarray, detector: MTCNN, no_face: str, first_pass: list[tuple[np.ndarray, float]] | None = None
) -> FoundFace | None:
    """The subject's face by the policy above; `first_pass` saves detecting again when the
    caller already has the detector's (box, score) pairs for `image`."""
    height, width = image.shape[:2]
    found = first_pass if first_pass is not None else [(d.box, d.score) for d in detector.detect(image)]
    how = "detected"
    if not found and no_face == "pad":
        pad = int(round(PAD_FRACTION * max(height, width)))
        padded = cv2.copyMakeBorder(image, pad, pad, pad, pad, cv2.BORDER_REPLICATE)
        found = [(d.box - np.float32(pad), d.score) for d in detector.detect(padded)]
        how = "padded"
    if not found:
        return None
    best = choose_face([box for box, _ in found], width, height)
    return FoundFace(np.asarray(found[best][0], dtype=np.float32), float(found[best][1]), len(found), how)


@dataclass
class PrepareSummary:
    rows: int = 0
    images: int = 0  # distinct photos
    boxes: int = 0  # known boxes among the entries (cropped without detection)
    reused: int = 0
    processed: int = 0
    status: Counter[str] = field(default_factory=Counter)  # ok, no_face, error, box_too_small (all entries)
    how: Counter[str] = field(default_factory=Counter)  # detected, padded, box
    multi_face: int = 0
    reader_errors: int = 0
    reader_warnings: int = 0
    interrupted: bool = False

    def describe(self) -> str:
        return (
            f"{self.rows} labelled rows, {self.images} photos with {self.boxes} known boxes "
            f"({self.reused} entries already cached, {self.processed} done now"
            f"{', interrupted' if self.interrupted else ''}); faces: {self.status['ok']} "
            f"({self.how['box']} from known boxes, {self.how['padded']} found after padding, "
            f"{self.multi_face} photos with several faces: largest/central kept), "
            f"no face: {self.status['no_face']} skipped, box too small: {self.status['box_too_small']} skipped, "
            f"unreadable: {self.status['error']}; "
            f"dataset problems: {self.reader_errors} errors, {self.reader_warnings} warnings"
        )


def _stat(path: Path) -> tuple[int, int] | str:
    try:
        st = os.stat(path)
    except OSError as exc:
        return (exc.strerror or str(exc)).lower()
    return st.st_mtime_ns, st.st_size


def _write_problems(cache: Cache, problems: list[Problem]) -> None:
    with atomic_open(cache.problems_path, "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["level", "file", "line", "message"])
        for p in problems:
            writer.writerow([p.level, p.file, "" if p.line is None else p.line, p.message])


def read_all(config: PrepareConfig) -> ReadResult:
    result = ReadResult()
    for spec in config.data:
        result.extend(read_dataset(spec, config.class_map))
    return result


def write_png(path: Path, crop: np.ndarray) -> None:
    """A crop as PNG, written atomically (parents made)."""
    ok, data = cv2.imencode(".png", crop)
    if not ok:
        raise OSError(f"cannot encode {path}")
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp:
        tmp.write_bytes(data.tobytes())


def _end_torn_line(journal: Path) -> None:
    """A run killed mid-write leaves a partial last line: start the next record on a fresh one."""
    if journal.exists() and journal.stat().st_size:
        with open(journal, "rb+") as handle:
            handle.seek(-1, os.SEEK_END)
            if handle.read(1) != b"\n":
                handle.write(b"\n")


def _crop_one(
    cache: Cache, geometry: CropGeometry, detector: MTCNN, no_face: str, key: str, stat: tuple[int, int],
    result: ImageResult, image: np.ndarray | None,
) -> Detected:
    """Apply the face policy to one decoded photo and write its two crops."""
    mtime, size = stat
    if image is None or result.error is not None:
        return Detected(key, mtime, size, "error", message=result.error or "unreadable")
    found = find_face(image, detector, no_face, [(f.box, f.det_score) for f in result.faces])
    if found is None:
        return Detected(key, mtime, size, "no_face")
    crop = cache.crop_name(key, mtime, size)
    write_png(cache.root / runtime_name(crop), geometry.runtime_crop(image, found.box))
    write_png(cache.root / crop, crop_face(image, found.box, geometry.cache_margin, geometry.cache_size))
    box = tuple(float(v) for v in found.box)
    return Detected(key, mtime, size, "ok", result.warning or "", crop, box, found.score, found.faces, found.how)  # type: ignore[arg-type]


def box_key(path: str, box: Sequence[float]) -> str:
    """Journal key of a known box in the photo at (absolute) `path`."""
    return f"{path}#{box[0]:.1f},{box[1]:.1f},{box[2]:.1f},{box[3]:.1f}"


def row_key(row: ManifestRow) -> str:
    """Journal key of a row whose path is absolute: the photo, or the photo and its known box."""
    return str(row.path) if row.box is None else box_key(str(row.path), row.box)


def _crop_boxes(
    cache: Cache, geometry: CropGeometry, min_box: int, path: str, boxes: list[tuple[str, tuple[float, float, float, float]]],
    stat: tuple[int, int],
) -> list[Detected]:
    """Decode one photo once and crop each of its known boxes (no detection)."""
    mtime, size = stat
    done: list[Detected] = []
    todo = []
    for key, box in boxes:
        side = min(box[2] - box[0], box[3] - box[1])
        if side < min_box:
            done.append(Detected(key, mtime, size, "box_too_small", f"box side {side:.1f} px < {min_box}", box=tuple(box), how="box"))  # type: ignore[arg-type]
        else:
            todo.append((key, box))
    if not todo:
        return done
    try:
        loaded = load_image(Path(path))
    except ImageReadError as exc:
        return done + [Detected(key, mtime, size, "error", exc.reason, box=tuple(box), how="box") for key, box in todo]  # type: ignore[arg-type]
    for key, box in todo:
        crop = cache.crop_name(key, mtime, size)
        array = np.asarray(box, dtype=np.float64)
        write_png(cache.root / runtime_name(crop), geometry.runtime_crop(loaded.image, array))
        write_png(cache.root / crop, crop_face(loaded.image, array, geometry.cache_margin, geometry.cache_size))
        done.append(Detected(key, mtime, size, "ok", loaded.warning or "", crop, tuple(float(v) for v in box), 0.0, 1, "box"))  # type: ignore[arg-type]
    return done


def prepare(
    config: PrepareConfig,
    progress: bool = True,
    should_stop: Callable[[], bool] | None = None,
) -> PrepareSummary:
    """Read the datasets, detect and crop what the cache lacks, write manifest.csv and problems.csv."""
    geometry = CropGeometry.from_context(config.input_size, config.crop_margin, config.context, config.inner_crop)
    info = CacheInfo(geometry, config.min_face, config.thresholds, config.no_face, min_box=config.min_box)
    cache = Cache(config.cache)
    cache.claim(info)
    with log_to_file(cache.log_path):
        log.info("prepare %s into %s: %s", ", ".join(config.data), cache.root, geometry)
        return _prepare(config, cache, info, progress, should_stop)


def _prepare(config: PrepareConfig, cache: Cache, info: CacheInfo, progress: bool, should_stop: Callable[[], bool] | None) -> PrepareSummary:
    read = read_all(config)
    summary = PrepareSummary(rows=len(read.rows), reader_errors=len(read.errors), reader_warnings=len(read.warnings))
    _write_problems(cache, read.problems)
    reported = len(read.problems)
    for problem in read.problems[:20]:
        log.log(logging.ERROR if problem.level == "error" else logging.WARNING, "%s", problem)
    if len(read.problems) > 20:
        log.warning("... and %d more problems, all in %s", len(read.problems) - 20, cache.problems_path)
    if config.strict and read.errors:
        raise ConfigError(f"{len(read.errors)} dataset errors (see {cache.problems_path}); not preparing (strict)")

    # One entry per photo (or known box), whichever datasets list it.
    stats: dict[str, tuple[int, int]] = {}  # entry key -> the photo's (mtime, size)
    photo_stats: dict[str, tuple[int, int] | str] = {}
    boxes_of: dict[str, tuple[str, tuple[float, float, float, float]]] = {}  # box entry key -> (photo, box)
    rows: list[tuple[ManifestRow, str]] = []
    owner: dict[str, str] = {}
    for row in read.rows:
        path = os.path.abspath(row.path)
        if has_undecodable_name(path):  # the manifest, a UTF-8 file, could not name it
            read.problems.append(Problem(path_text(path), None, "the file name is not valid UTF-8: rename the file to use it"))
            summary.reader_errors += 1
            continue
        row = replace(row, path=Path(path))  # the manifest names photos unambiguously
        key = row_key(row)
        if owner.setdefault(key, row.person_id) != row.person_id:
            read.problems.append(Problem(key, None, f"listed for two people ({owner[key]}, {row.person_id}): it may land in two folds", "warning"))
            summary.reader_warnings += 1
        if key not in stats:
            if path not in photo_stats:
                photo_stats[path] = _stat(row.path)
                if isinstance(photo_stats[path], str):
                    read.problems.append(Problem(path, None, photo_stats[path]))  # type: ignore[arg-type]
                    summary.reader_errors += 1
            stat = photo_stats[path]
            if isinstance(stat, str):
                continue
            stats[key] = stat
            if row.box is not None:
                boxes_of[key] = (path, row.box)
        rows.append((row, key))
    summary.images = len({p for p, s in photo_stats.items() if not isinstance(s, str)})
    summary.boxes = len(boxes_of)

    journal = cache.read_journal()
    todo = [key for key, (mtime, size) in stats.items() if not cache.is_current(journal.get(key), mtime, size)]
    summary.reused = len(stats) - len(todo)
    box_todo: dict[str, list[tuple[str, tuple[float, float, float, float]]]] = {}
    for key in todo:
        if key in boxes_of:
            photo, box = boxes_of[key]
            box_todo.setdefault(photo, []).append((key, box))
    detect_todo = [key for key in todo if key not in boxes_of]
    log.info(
        "%d entries (%d photos, %d known boxes), %d already in the cache, %d to do (%d boxes in %d photos, %d photos to detect)",
        len(stats), summary.images, summary.boxes, summary.reused, len(todo), len(todo) - len(detect_todo), len(box_todo), len(detect_todo),
    )

    def write_manifest() -> None:
        current = {k: journal[k] for k in stats if k in journal and cache.is_current(journal[k], *stats[k])}
        cache.write_manifest([(row, current.get(key)) for row, key in rows])

    last_write = time.monotonic()
    bar = tqdm(total=len(todo), desc="prepare", unit="img", disable=not progress or not todo)
    results = None
    pool = None
    try:
        _end_torn_line(cache.journal_path)
        with open(cache.journal_path, "a", encoding="utf-8") as journal_file:

            def record(done: Detected) -> bool:
                """Journal one entry; True when the run should stop."""
                nonlocal last_write
                journal[done.key] = done
                journal_file.write(json.dumps(asdict(done)) + "\n")
                journal_file.flush()
                summary.processed += 1
                bar.update(1)
                if time.monotonic() - last_write > MANIFEST_EVERY_S:
                    write_manifest()
                    last_write = time.monotonic()
                if should_stop is not None and should_stop():
                    summary.interrupted = summary.processed < len(todo)
                    return True
                return False

            stop = False
            if box_todo:  # known boxes: decode in threads, no detector
                pool = ThreadPoolExecutor(max_workers=config.worker_threads, thread_name_prefix="boxes")
                jobs = pool.map(
                    lambda item: _crop_boxes(cache, info.geometry, config.min_box, item[0], item[1], photo_stats[item[0]]),  # type: ignore[arg-type]
                    list(box_todo.items()),
                )
                for entries in jobs:
                    for done in entries:
                        stop = record(done) or stop
                    if stop:
                        break
            if detect_todo and not stop:
                detector_config = DetectorConfig(min_face_size=config.min_face, thresholds=config.thresholds)
                analyzer = FaceAnalyzer(AnalyzerConfig(detector=detector_config, classifier_path=None))
                results = analyze_files((FileEntry(Path(k)) for k in detect_todo), analyzer, BatchOptions(decode_workers=config.worker_threads))
                for result, image in results:
                    key = str(result.path)
                    if record(_crop_one(cache, info.geometry, analyzer.detector, config.no_face, key, stats[key], result, image)):
                        break
    except KeyboardInterrupt:
        summary.interrupted = True
        log.warning("interrupted: the %d entries done are kept; run prepare again to go on", summary.processed)
    finally:
        if pool is not None:
            pool.shutdown(wait=True, cancel_futures=True)
        if results is not None:
            results.close()
        bar.close()
        write_manifest()
        if len(read.problems) != reported:  # photos that vanished or are listed twice
            _write_problems(cache, read.problems)

    for key in stats:
        entry = journal.get(key)
        if entry is not None and cache.is_current(entry, *stats[key]):
            summary.status[entry.status] += 1
            if entry.status == "ok":
                summary.how[entry.how] += 1
                summary.multi_face += entry.how != "box" and entry.faces > 1
    log.info("%s", summary.describe())
    return summary
