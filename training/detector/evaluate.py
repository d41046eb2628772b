"""How many labelled faces a face detector finds: `mask-train eval-detector`.

The truth is face_mask_853's boxes (real scenes, several people, mask worn / worn wrongly / not
worn). A detection finds a labelled face when their IoU is >= MATCH_IOU; each face and each
detection is used once (greedy, highest IoU first). Recall is counted per mask state and per
size band of the labelled box's width; the criterion the shipped detector is held to counts faces
>= CRITERION_MIN_PX wide (smaller ones are below the app's default minimum face size). Detections
that match no labelled face are counted too: they become "people" the app would judge.

The held-out part is training.detector.scenes's; held-out synthetic faces are scored by
training.detector.synth_check.
"""
from __future__ import annotations

import csv
import logging
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from tqdm import tqdm

from core.atomic import atomic_open
from core.config import DetectorConfig
from core.imageio import ImageReadError, load_image
from core.mtcnn import MTCNN
from core.tracker import associate, iou_matrix
from training.detector.scenes import STATE_NAMES, Scene, boxes_table, load_scenes

log = logging.getLogger(__name__)

MATCH_IOU = 0.4
CRITERION_MIN_PX = 40
#: Size bands of the labelled box's width, px: [low, high).
SIZE_BANDS: tuple[tuple[float, float], ...] = ((0, 20), (20, 40), (40, 80), (80, math.inf))
# ---------------------------------------------------------------------------------- matching


def match_pairs(truth: np.ndarray, found: np.ndarray, min_iou: float = MATCH_IOU) -> list[tuple[int, int, float]]:
    """Greedy one-to-one matching, highest IoU first (the tracker's, without its centre-distance
    pass): (truth index, detection index, IoU) pairs."""
    pairs = associate(truth, found, min_iou, max_centroid_shift=0.0)
    if not pairs:
        return []
    overlap = iou_matrix(truth, found)
    return [(t, d, float(overlap[t, d])) for t, d in pairs]


def match(truth: np.ndarray, found: np.ndarray, min_iou: float = MATCH_IOU) -> tuple[np.ndarray, np.ndarray]:
    """(truth found?, detection matched?) masks of `match_pairs`."""
    truth_hit = np.zeros(len(np.reshape(truth, (-1, 4))), dtype=bool)
    found_hit = np.zeros(len(np.reshape(found, (-1, 4))), dtype=bool)
    for t, d, _ in match_pairs(truth, found, min_iou):
        truth_hit[t] = found_hit[d] = True
    return truth_hit, found_hit


# ---------------------------------------------------------------------------------- counting


def band_name(band: tuple[float, float]) -> str:
    low, high = band
    return f">={low:g}" if math.isinf(high) else f"<{high:g}" if low == 0 else f"{low:g}-{high:g}"


@dataclass
class DetectorReport:
    """One detector at one setting over a set of scenes: faces found / labelled per (state, band)."""

    name: str
    images: int = 0
    unreadable: int = 0
    detections: int = 0
    unmatched: int = 0  # detections matching no labelled face
    iou_sum: float = 0.0  # over matched pairs: how well the boxes' style fits the labels'
    found: dict[tuple[str, str], int] = field(default_factory=dict)
    total: dict[tuple[str, str], int] = field(default_factory=dict)

    def add(self, state: str, band: str, hit: bool) -> None:
        self.total[state, band] = self.total.get((state, band), 0) + 1
        self.found[state, band] = self.found.get((state, band), 0) + int(hit)

    def counts(self, states: Sequence[str] | None = None, bands: Sequence[str] | None = None) -> tuple[int, int]:
        """(found, labelled) summed over the given states and bands (None: all)."""
        keys = [k for k in self.total if (states is None or k[0] in states) and (bands is None or k[1] in bands)]
        return sum(self.found[k] for k in keys), sum(self.total[k] for k in keys)

    def recall(self, states: Sequence[str] | None = None, bands: Sequence[str] | None = None) -> float:
        hit, total = self.counts(states, bands)
        return hit / total if total else float("nan")

    @property
    def mean_iou(self) -> float:
        hit = sum(self.found.values())
        return self.iou_sum / hit if hit else float("nan")

    def criterion(self, state: str) -> tuple[int, int]:
        """(found, labelled) faces of a state at least CRITERION_MIN_PX wide."""
        return self.counts([state], CRITERION_BANDS)


CRITERION_BANDS = tuple(band_name(b) for b in SIZE_BANDS if b[0] >= CRITERION_MIN_PX)


def size_band(width: float) -> str:
    for band in SIZE_BANDS:
        if band[0] <= width < band[1]:
            return band_name(band)
    raise ValueError(f"width {width} is in no band")


Detect = Callable[[np.ndarray], np.ndarray]  # BGR image -> (K, 4) boxes


def score_scenes(name: str, detect: Detect, scenes: Sequence[Scene], progress: bool = True,
                 images: dict[Path, np.ndarray] | None = None) -> DetectorReport:
    """Run `detect` on every scene and count. `images` may hold already decoded photos by path."""
    report = DetectorReport(name)
    for scene in tqdm(scenes, desc=name, unit="img", disable=not progress, leave=False):
        image = images.get(scene.path) if images is not None else None
        if image is None:
            try:
                image = load_image(scene.path).image
            except ImageReadError as exc:
                log.warning("%s: %s (skipped)", scene.path, exc)
                report.unreadable += 1
                continue
        found = np.asarray(detect(image), dtype=np.float32).reshape(-1, 4)
        pairs = match_pairs(scene.boxes, found)
        truth_hit = np.zeros(len(scene.boxes), dtype=bool)
        truth_hit[[t for t, _, _ in pairs]] = True
        report.images += 1
        report.detections += len(found)
        report.unmatched += len(found) - len(pairs)
        report.iou_sum += sum(iou for _, _, iou in pairs)
        for box, state, hit in zip(scene.boxes, scene.states, truth_hit):
            report.add(STATE_NAMES[state], size_band(float(box[2] - box[0])), bool(hit))
    return report


def mtcnn_detect(detector: MTCNN, photo: bool = False) -> Detect:
    """`detect` as boxes; photo=True searches as the batch path does (`MTCNN.detect_photo`: the
    minimum face follows the photo's size), else with the fixed minimum face as live video does."""
    run = detector.detect_photo if photo else detector.detect
    return lambda image: np.array([d.box for d in run(image)], dtype=np.float32).reshape(-1, 4)


# ---------------------------------------------------------------------------------- report


STATES = tuple(STATE_NAMES.values())
BANDS = tuple(band_name(b) for b in SIZE_BANDS)
_SHORT = {"with_mask": "masked", "mask_weared_incorrect": "wrongly worn", "without_mask": "bare"}


def _pct(hit: int, total: int) -> str:
    return f"{hit}/{total} ({100 * hit / total:.1f} %)" if total else "–"


def markdown_table(reports: Sequence[DetectorReport]) -> str:
    """One row per detector setting: the >= 40 px criterion per state, recall per size band, and
    detections matching nothing."""
    head = ([f"{_SHORT[s]} ≥{CRITERION_MIN_PX} px" for s in STATES] + [f"all {b} px" for b in BANDS]
            + ["unmatched boxes", "detections", "mean IoU (matched)"])
    lines = ["| detector | " + " | ".join(head) + " |", "|---" * (len(head) + 1) + "|"]
    for r in reports:
        cells = [_pct(*r.criterion(s)) for s in STATES] + [_pct(*r.counts(bands=[b])) for b in BANDS]
        cells += [str(r.unmatched), str(r.detections), f"{r.mean_iou:.3f}"]
        lines.append(f"| {r.name} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def csv_rows(reports: Sequence[DetectorReport]) -> list[dict[str, object]]:
    rows: list[dict[str, object]] = []
    for r in reports:
        for state in STATES:
            for band in BANDS:
                hit, total = r.counts([state], [band])
                rows.append({"detector": r.name, "state": state, "band": band, "found": hit, "labelled": total,
                             "recall": f"{hit / total:.4f}" if total else ""})
        rows.append({"detector": r.name, "state": "unmatched_detections", "band": "", "found": r.unmatched,
                     "labelled": r.detections, "recall": ""})
        rows.append({"detector": r.name, "state": "mean_iou_matched", "band": "", "found": "", "labelled": "",
                     "recall": f"{r.mean_iou:.4f}"})
    return rows


def write_reports(reports: Sequence[DetectorReport], out: Path, title: str, extra: str = "",
                  extra_rows: Sequence[dict[str, object]] = ()) -> list[Path]:
    """out.md (or out.csv): write both the markdown table (then `extra` markdown) and the CSV (then
    `extra_rows`, in the same columns) beside each other, atomically."""
    out = Path(out)
    md, table = out.with_suffix(".md"), out.with_suffix(".csv")
    md.parent.mkdir(parents=True, exist_ok=True)
    with atomic_open(md, "w", encoding="utf-8") as handle:
        handle.write(f"# {title}\n\nMatch: IoU ≥ {MATCH_IOU} (greedy, one-to-one). Recall = labelled faces "
                     f"found / labelled; columns ≥{CRITERION_MIN_PX} px count faces at least that wide.\n\n")
        handle.write(markdown_table(reports))
        if extra:
            handle.write("\n" + extra)
    with atomic_open(table, "w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=["detector", "state", "band", "found", "labelled", "recall"],
                                lineterminator="\n")
        writer.writeheader()
        writer.writerows(csv_rows(reports))
        writer.writerows(extra_rows)
    return [md, table]


# ---------------------------------------------------------------------------------- the command


@dataclass(frozen=True)
class EvalSetting:
    """One detector at one setting. min_face_fraction > 0: searched as the batch path searches a
    photo (`MTCNN.detect_photo`: min_face, plus smaller faces down to `photo_min_face`); 0: with the
    fixed min_face, as live video."""

    detector_dir: Path
    min_face: int
    thresholds: tuple[float, float, float]
    min_face_fraction: float = 0.0
    min_face_floor: int = DetectorConfig.min_face_floor

    def name(self, label: str) -> str:
        t = "/".join(f"{v:g}" for v in self.thresholds)
        if self.min_face_fraction > 0:
            return f"{label} (min {self.min_face}, photo {self.min_face_fraction:g}×short side ≥ {self.min_face_floor}, {t})"
        return f"{label} (min {self.min_face}, {t})"

    def config(self) -> DetectorConfig:
        return DetectorConfig(min_face_size=self.min_face, thresholds=self.thresholds,
                              min_face_fraction=self.min_face_fraction, min_face_floor=self.min_face_floor)

    @property
    def per_photo(self) -> bool:
        return self.min_face_fraction > 0


def eval_settings(detector_dirs: Sequence[Path], min_faces: Sequence[int],
                  thresholds: Sequence[tuple[float, float, float]], min_face_fractions: Sequence[float] = (0.0,),
                  min_face_floor: int = DetectorConfig.min_face_floor) -> list[list[EvalSetting]]:
    """Per detector folder, every min face × fraction (0: fixed) × thresholds, in report order."""
    return [[EvalSetting(Path(d), int(m), tuple(float(v) for v in t), float(f), int(min_face_floor))
             for m in min_faces for f in min_face_fractions for t in thresholds] for d in detector_dirs]


def evaluate_detectors(data_dir: Path, detector_dirs: Sequence[Path], split: str = "heldout",
                       min_faces: Sequence[int] = (DetectorConfig.min_face_size,),
                       thresholds: Sequence[tuple[float, float, float]] = (DetectorConfig.thresholds,),
                       labels: Sequence[str] | None = None, progress: bool = True,
                       min_face_fractions: Sequence[float] = (0.0,),
                       min_face_floor: int = DetectorConfig.min_face_floor) -> list[DetectorReport]:
    """Every detector folder × minimum face size × per-photo fraction (0: fixed) × thresholds, on
    the same decoded photos."""
    bases = [MTCNN(directory) for directory in detector_dirs]  # a broken detector fails before any work
    scenes = load_scenes(boxes_table(data_dir), split)
    faces = sum(len(s.states) for s in scenes)
    log.info("%s split: %d photos, %d labelled faces", split, len(scenes), faces)
    images: dict[Path, np.ndarray] = {}
    for scene in scenes:
        try:
            images[scene.path] = load_image(scene.path).image
        except ImageReadError as exc:
            log.warning("%s: %s (skipped)", scene.path, exc)
    ready = [s for s in scenes if s.path in images]
    labels = list(labels) if labels else [Path(d).name if Path(d).name != "mtcnn" else str(d) for d in detector_dirs]
    grid = eval_settings(detector_dirs, min_faces, thresholds, min_face_fractions, min_face_floor)
    reports = []
    for label, settings, base in zip(labels, grid, bases, strict=True):
        for setting in settings:
            detector = base.with_config(setting.config())
            report = score_scenes(setting.name(label), mtcnn_detect(detector, setting.per_photo), ready, progress, images)
            report.unreadable = len(scenes) - len(ready)
            log.info("%s: masked %s, wrongly worn %s, bare %s (>=%d px); unmatched %d", report.name,
                     _pct(*report.criterion("with_mask")), _pct(*report.criterion("mask_weared_incorrect")),
                     _pct(*report.criterion("without_mask")), CRITERION_MIN_PX, report.unmatched)
            reports.append(report)
    return reports


def split_summary(data_dir: Path) -> str:
    """Photos, groups and faces (all and >= 40 px) per mask state on each side of the split."""
    lines = ["| part | photos | groups | " + " | ".join(f"{_SHORT[s]} (≥{CRITERION_MIN_PX} px)" for s in STATES) + " |",
             "|---" * (3 + len(STATES)) + "|"]
    for split in ("train", "heldout"):
        scenes = load_scenes(boxes_table(data_dir), split)
        cells = []
        for state in STATES:
            widths = [b[2] - b[0] for s in scenes for b, m in zip(s.boxes, s.states) if STATE_NAMES[m] == state]
            cells.append(f"{len(widths)} ({sum(w >= CRITERION_MIN_PX for w in widths)})")
        lines.append(f"| {split} | {len(scenes)} | {len({s.group for s in scenes})} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"




