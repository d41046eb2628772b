"""`synthesize`: masks rendered on unmasked faces (UTKFace chips), written as JPEGs with a manifest.

Per face: pad the tight chip with blurred mirrored context (MTCNN needs some context to find a
chip-filling face, and the classifier's crop reaches past the chip), detect, keep the largest
face, then write the padded image once per placement. The padded image is the output, so the
detector's box on the bare face is valid, as is, for every output of that face (the manifest's
x1..y1 columns: downstream crops need not re-detect a masked face).

Determinism: each face's choices come from a generator seeded by (seed, face index) and each
output's from (seed, face index, placement), so the same seed gives byte-identical files and
manifest whatever the worker count, order or --limit. Resumable: outputs already listed in the
folder's manifest (and present) are kept, provided seed and settings match (synth.json).
"""
from __future__ import annotations

import csv
import json
import logging
import time
from collections import Counter
from collections.abc import Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np
from tqdm import tqdm

from core.atomic import atomic_open
from core.imageio import ImageReadError, load_image
from core.labels import LABEL_NAMES
from core.mtcnn import MTCNN, Detection
from training.detector.reference import reference_detector
from training.synth.geometry import FaceFrame, Placement
from training.synth.render import render_mask
from training.synth.source import SourceFace, SynthError, read_source
from training.synth.styles import STYLES, sample_style

log = logging.getLogger(__name__)

#: Bump when the rendering changes, so a resumed run never mixes old and new pictures.
SYNTH_VERSION = 2  # 2: four more styles (black masks, bold prints)
MANIFEST_NAME = "manifest.csv"
SETTINGS_NAME = "synth.json"
IMAGES_DIR = "images"
COLUMNS = ("path", "person_id", "mask", "gender", "age", "source", "style", "placement", "x1", "y1", "x2", "y2")
SOURCE_TAG = "synth:utkface"
JPEG_QUALITY = 92
#: Border added on every side, as a fraction of the chip's longer side: a 200 px chip becomes
#: 340 px, enough for MTCNN and, for most chips, for prepare's cached crop (1.4 × 1.25 × the box).
PAD_FRACTION = 0.35
MIN_FACE = 40

@dataclass
class SynthSummary:
    """What a run did. The per_* counts are over the manifest rows of this run (new and reused)."""

    faces: int = 0  # source faces looked at
    detected: int = 0
    skipped_no_face: int = 0
    skipped_unreadable: int = 0
    skipped_bad_landmarks: int = 0
    written: int = 0
    reused: int = 0
    per_mask: Counter = field(default_factory=Counter)
    per_placement: Counter = field(default_factory=Counter)
    per_style: Counter = field(default_factory=Counter)
    interrupted: bool = False
    seconds: float = 0.0
    manifest: Path | None = None

    @property
    def faces_per_second(self) -> float:
        return self.faces / self.seconds if self.seconds > 0 else 0.0


@dataclass
class _FaceResult:
    index: int
    status: str  # "ok", "no_face", "unreadable", "bad_landmarks"
    rows: list[dict[str, str]] = field(default_factory=list)
    written: int = 0
    reused: int = 0


# ------------------------------------------------------------------------------------ per face


def pad_context(image: np.ndarray, fraction: float = PAD_FRACTION) -> tuple[np.ndarray, int]:
    """The image with a border `fraction` × its longer side wide, and that width in pixels.

    The border mirrors the picture and fades into a blur of it: context with the colours of the
    scene but without the mirrored eyes and mouths a plain reflection shows. The original
    pixels are kept exactly.
    """
    h, w = image.shape[:2]
    pad = int(round(fraction * max(h, w)))
    if pad == 0:
        return image.copy(), 0
    padded = cv2.copyMakeBorder(image, pad, pad, pad, pad, cv2.BORDER_REFLECT_101)
    blurred = cv2.GaussianBlur(padded, (0, 0), max(1.0, pad / 5.0))
    ys, xs = np.arange(h + 2 * pad), np.arange(w + 2 * pad)
    dy = np.maximum(np.maximum(pad - ys, ys - (pad + h - 1)), 0)
    dx = np.maximum(np.maximum(pad - xs, xs - (pad + w - 1)), 0)
    weight = np.clip(np.maximum(dy[:, None], dx[None, :]) / (0.4 * pad), 0.0, 1.0)[..., None]
    out = padded.astype(np.float32) * (1.0 - weight) + blurred.astype(np.float32) * weight
    return np.clip(np.rint(out), 0, 255).astype(np.uint8), pad


def largest_face(detections: Sequence[Detection], region: Sequence[float] | None = None) -> Detection | None:
    """The face with the largest box, counting only the part of it inside `region` (x1, y1, x2, y2)
    when given: the mirrored border can hold mirrored half-faces, never the chip's own face."""
    if not detections:
        return None

    def area(d: Detection) -> float:
        x1, y1, x2, y2 = (float(v) for v in d.box[:4])
        if region is not None:
            x1, y1 = max(x1, region[0]), max(y1, region[1])
            x2, y2 = min(x2, region[2]), min(y2, region[3])
        return max(0.0, x2 - x1) * max(0.0, y2 - y1)

    return max(detections, key=area)


def face_rng(seed: int, index: int) -> np.random.Generator:
    """The generator of a face's own choices (style, which wrong placement)."""
    return np.random.default_rng([seed, 0, index])


def output_rng(seed: int, index: int, placement: Placement) -> np.random.Generator:
    """The generator of one output's jitter, grain and noise."""
    return np.random.default_rng([seed, 2, index, placement.code])


def plan_face(index: int, per_face: int, seed: int, under_nose: float = 0.0) -> tuple[list[Placement], str, np.random.Generator]:
    """The placements to write for a face, its style name, and its generator (for the style's details).

    per_face 3: correct, one wrong placement, bare. per_face 1: one of the three outcomes, so
    that every run of 3 consecutive faces holds each once (a balanced mix whatever --limit).
    under_nose: the share of wrong placements drawn just under the nose tip instead (from a
    generator of its own, so with 0 every other choice is what it was before the option).
    """
    rng = face_rng(seed, index)
    wrong = Placement.NOSE_OUT if rng.random() < 0.5 else Placement.CHIN_OUT
    if under_nose > 0 and np.random.default_rng([seed, 4, index]).random() < under_nose:  # 3 is the sheet's
        wrong = Placement.UNDER_NOSE
    style = STYLES[int(rng.integers(len(STYLES)))]
    outcomes = [Placement.CORRECT, wrong, Placement.NONE]
    if per_face == 3:
        return outcomes, style, rng
    order = np.random.default_rng([seed, 1, index // 3]).permutation(3)
    return [outcomes[int(order[index % 3])]], style, rng


def output_name(face: SourceFace, placement: Placement) -> str:
    return f"{IMAGES_DIR}/{face.stem}_{placement.value}.jpg"


def _fmt_number(value: float | None) -> str:
    return "" if value is None else f"{value:g}"


def _box_row(box: np.ndarray, width: int, height: int) -> dict[str, str]:
    x1, x2 = np.clip([box[0], box[2]], 0, width)
    y1, y2 = np.clip([box[1], box[3]], 0, height)
    return {"x1": f"{x1:.1f}", "y1": f"{y1:.1f}", "x2": f"{x2:.1f}", "y2": f"{y2:.1f}"}


def _encode_jpeg(image: np.ndarray) -> bytes:
    ok, data = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY])
    if not ok:
        raise RuntimeError("JPEG encoding failed")
    return data.tobytes()


@dataclass(frozen=True)
class _Job:
    out_dir: Path
    detector: MTCNN
    per_face: int
    seed: int
    pad_fraction: float
    source_tag: str
    reusable: dict[str, dict[str, str]]
    under_nose: float = 0.0


def detect_face(detector: MTCNN, image: np.ndarray, pad_fraction: float) -> tuple[np.ndarray, Detection | None]:
    """The padded picture and its largest face within the original picture (None if there is none)."""
    padded, pad = pad_context(image, pad_fraction)
    h, w = image.shape[:2]
    return padded, largest_face(detector.detect(padded), (pad, pad, pad + w, pad + h))


def _process(face: SourceFace, job: _Job) -> _FaceResult:
    placements, style_name, rng = plan_face(face.index, job.per_face, job.seed, job.under_nose)
    names = [output_name(face, p) for p in placements]
    result = _FaceResult(face.index, "ok")
    if all(name in job.reusable for name in names):
        result.rows = [job.reusable[name] for name in names]
        result.reused = len(names)
        return result
    try:
        image = load_image(face.path).image
    except ImageReadError as exc:
        log.warning("%s: %s", face.path, exc.reason)
        result.status = "unreadable"
        return result
    padded, found = detect_face(job.detector, image, job.pad_fraction)
    if found is None:
        log.debug("%s: no face found", face.path)
        result.status = "no_face"
        return result
    try:
        FaceFrame.from_detection(found.landmarks, found.box)
    except ValueError as exc:
        log.debug("%s: %s", face.path, exc)
        result.status = "bad_landmarks"
        return result
    style = sample_style(style_name, rng)
    height, width = padded.shape[:2]
    for placement, name in zip(placements, names):
        if name in job.reusable:
            result.rows.append(job.reusable[name])
            result.reused += 1
            continue
        rendered = render_mask(padded, found.landmarks, found.box, style, placement, output_rng(job.seed, face.index, placement))
        with atomic_open(job.out_dir / name, "wb") as handle:
            handle.write(_encode_jpeg(rendered))
        result.written += 1
        result.rows.append({
            "path": name, "person_id": face.person_id, "mask": str(int(placement.mask_label)),
            "gender": "" if face.gender is None else str(face.gender), "age": _fmt_number(face.age),
            "source": job.source_tag, "style": "none" if placement is Placement.NONE else style.name,
            "placement": placement.value, **_box_row(found.box, width, height),
        })
    return result


# ------------------------------------------------------------------------------------ the run


def _settings(per_face: int, seed: int, pad_fraction: float, source_tag: str, under_nose: float = 0.0) -> dict[str, object]:
    settings = {"version": SYNTH_VERSION, "per_face": per_face, "seed": seed, "pad_fraction": pad_fraction, "source": source_tag}
    if under_nose > 0:  # only when used: folders written before the option stay reusable
        settings["under_nose"] = under_nose
    return settings


def _reusable(out_dir: Path, settings: dict[str, object]) -> dict[str, dict[str, str]]:
    """Rows of an earlier run in out_dir whose files still exist, if that run had the same settings."""
    manifest, saved = out_dir / MANIFEST_NAME, out_dir / SETTINGS_NAME
    if not manifest.is_file():
        return {}
    try:
        previous = json.loads(saved.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        previous = None
    if previous != settings:
        raise SynthError(f"{out_dir} holds a synth run with other settings ({previous}, now {settings}); "
                         "choose another --out folder or empty this one")
    with open(manifest, newline="", encoding="utf-8") as handle:
        rows = [row for row in csv.DictReader(handle) if (out_dir / row["path"]).is_file()]
    return {row["path"]: {c: row.get(c, "") for c in COLUMNS} for row in rows}


def _carried_over(faces: Sequence[SourceFace], job: _Job, results: dict[int, _FaceResult]) -> dict[int, _FaceResult]:
    """After an interrupt, the earlier run's rows of faces this run did not reach (so the
    manifest never loses finished work); they are not counted in the summary."""
    carried: dict[int, _FaceResult] = {}
    for face in faces:
        if face.index in results:
            continue
        names = [output_name(face, p) for p in plan_face(face.index, job.per_face, job.seed, job.under_nose)[0]]
        if all(name in job.reusable for name in names):
            carried[face.index] = _FaceResult(face.index, "ok", [job.reusable[name] for name in names])
    return carried


def _write_manifest(out_dir: Path, results: dict[int, _FaceResult]) -> Path:
    path = out_dir / MANIFEST_NAME
    with atomic_open(path, "w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=COLUMNS, lineterminator="\n")
        writer.writeheader()
        for index in sorted(results):
            writer.writerows(results[index].rows)
    return path


def synthesize(source: str | Path | Sequence[SourceFace], out_dir: str | Path, per_face: int = 1, seed: int = 0,
               limit: int | None = None, workers: int = 1, *, detector: MTCNN | None = None,
               pad_fraction: float = PAD_FRACTION, min_face: int = MIN_FACE, source_tag: str = SOURCE_TAG,
               under_nose: float = 0.0, progress: bool = True) -> SynthSummary:
    """Render masks on the faces of `source` (see `read_source`) into out_dir/images/ and write
    out_dir/manifest.csv (one row per image; columns COLUMNS). Ctrl-C stops early and still
    writes the manifest of what was done (summary.interrupted)."""
    if per_face not in (1, 3):
        raise SynthError("per_face must be 1 or 3")
    if seed < 0:
        raise SynthError("seed must be >= 0")
    if limit is not None and limit < 0:
        raise SynthError("limit must be >= 0")
    if not 0.0 <= under_nose <= 1.0:
        raise SynthError("under_nose must be within [0, 1]")
    faces = list(source) if not isinstance(source, (str, Path)) else read_source(source)
    faces = faces[:limit] if limit is not None else faces
    out_dir = Path(out_dir)
    settings = _settings(per_face, seed, pad_fraction, source_tag, under_nose)
    job = _Job(out_dir, detector or reference_detector(min_face=min_face), per_face, seed,
               pad_fraction, source_tag, _reusable(out_dir, settings), under_nose)
    (out_dir / IMAGES_DIR).mkdir(parents=True, exist_ok=True)
    with atomic_open(out_dir / SETTINGS_NAME, "w", encoding="utf-8") as handle:
        json.dump(settings, handle, indent=2)

    summary = SynthSummary()
    results: dict[int, _FaceResult] = {}
    started = time.perf_counter()
    bar = tqdm(total=len(faces), unit="face", desc="synth", disable=not progress)
    try:
        if workers <= 1:
            for face in faces:
                results[face.index] = _process(face, job)
                bar.update()
        else:
            _run_threads(faces, job, workers, results, bar)
    except KeyboardInterrupt:
        summary.interrupted = True
        log.warning("interrupted: writing the manifest of the %d faces done", len(results))
    finally:
        bar.close()
    summary.manifest = _write_manifest(out_dir, {**_carried_over(faces, job, results), **results})
    summary.seconds = time.perf_counter() - started
    _count(summary, results.values())
    log.info("synth: %d faces (%d no face, %d unreadable, %d odd landmarks), %d images written, %d kept, "
             "in %.1f s (%.1f faces/s); %s", summary.faces, summary.skipped_no_face, summary.skipped_unreadable,
             summary.skipped_bad_landmarks, summary.written, summary.reused, summary.seconds,
             summary.faces_per_second, dict(summary.per_placement))
    return summary


def _run_threads(faces: Sequence[SourceFace], job: _Job, workers: int, results: dict[int, _FaceResult], bar: tqdm) -> None:
    """Faces on a thread pool (onnxruntime, OpenCV and numpy release the GIL), at most
    2 × workers in flight so an interrupt stops soon."""
    pending: set[Future] = set()
    queue = iter(faces)
    with ThreadPoolExecutor(max_workers=workers) as pool:
        try:
            while True:
                while len(pending) < 2 * workers:
                    face = next(queue, None)
                    if face is None:
                        break
                    pending.add(pool.submit(_process, face, job))
                if not pending:
                    return
                done, pending = wait(pending, return_when=FIRST_COMPLETED)
                for future in done:
                    result = future.result()
                    results[result.index] = result
                    bar.update()
        except KeyboardInterrupt:
            for future in pending:
                future.cancel()
            for future in pending:
                if not future.cancelled():
                    result = future.result()
                    results[result.index] = result
            raise


def _count(summary: SynthSummary, results) -> None:
    for result in results:
        summary.faces += 1
        summary.written += result.written
        summary.reused += result.reused
        if result.status == "no_face":
            summary.skipped_no_face += 1
        elif result.status == "unreadable":
            summary.skipped_unreadable += 1
        elif result.status == "bad_landmarks":
            summary.skipped_bad_landmarks += 1
        else:
            summary.detected += 1
        for row in result.rows:
            summary.per_mask[LABEL_NAMES["mask"][int(row["mask"])]] += 1
            summary.per_placement[row["placement"]] += 1
            summary.per_style[row["style"]] += 1
