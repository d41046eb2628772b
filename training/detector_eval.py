"""How many labelled faces a face detector finds: `mask-train eval-detector`.

The truth is face_mask_853's boxes (real scenes, several people, mask worn / worn wrongly / not
worn). A detection finds a labelled face when their IoU is >= MATCH_IOU; each face and each
detection is used once (greedy, highest IoU first). Recall is counted per mask state and per
size band of the labelled box's width; the criterion the shipped detector is held to counts faces
>= CRITERION_MIN_PX wide (smaller ones are below the app's default minimum face size). Detections
that match no labelled face are counted too: they become "people" the app would judge.

The held-out part (`heldout_split`) is chosen by a stable hash of the near-duplicate group (or the
photo, when it has no group), so near copies never straddle it and the same photos are held out
on every machine. Everything a detector fine-tune uses from face_mask_853 comes from the rest.
"""
from __future__ import annotations

import csv
import hashlib
import json
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
from core.labels import Mask
from core.mtcnn import MTCNN
from core.tracker import associate, iou_matrix
from training.datasets import read_boxes
from training.synth.pipeline import MANIFEST_NAME, SETTINGS_NAME, detect_face

log = logging.getLogger(__name__)

MATCH_IOU = 0.4
CRITERION_MIN_PX = 40
#: Size bands of the labelled box's width, px: [low, high).
SIZE_BANDS: tuple[tuple[float, float], ...] = ((0, 20), (20, 40), (40, 80), (80, math.inf))
#: Chance of a near-duplicate group (or lone photo) being held out. The hash puts 214 of 668 groups
#: (216 of 678 photos, 12 of the 33 wrongly worn masks >= 40 px) there: enough to measure the rare state.
HOLDOUT_FRACTION = 0.28
_HASH_SALT = "face_mask_853-detector-heldout-v1"
SPLITS = ("heldout", "train", "all")
#: Fraction of UTKFace chips (by file name hash) that a detector fine-tune never trains on: the
#: synthetic-face check's (`synth_check`).
UTK_HOLDOUT = 0.1
_UTK_SALT = "utkface-detector-heldout-v1"
#: face_mask_853's label names, in core's Mask order (wear, incorrect, not_wear).
STATE_NAMES = {Mask.WEAR: "with_mask", Mask.INCORRECT: "mask_weared_incorrect", Mask.NOT_WEAR: "without_mask"}


@dataclass(frozen=True, eq=False)
class Scene:
    """One photo and its labelled faces (compared by identity: it holds arrays)."""

    path: Path
    group: str  # near-duplicate group ("group<N>") or the photo's relative path
    boxes: np.ndarray  # (N, 4) float32 x1, y1, x2, y2
    states: tuple[Mask, ...]


def boxes_table(data_dir: Path) -> Path:
    return Path(data_dir) / "face_mask_853" / "boxes.csv"


def _hash_fraction(salt: str, name: str) -> float:
    """A number in [0, 1) fixed by the name: stable across runs and machines (sha1, not Python's salted hash)."""
    digest = hashlib.sha1(f"{salt}:{name}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


def is_heldout(group: str) -> bool:
    return _hash_fraction(_HASH_SALT, group) < HOLDOUT_FRACTION


def utk_heldout(name: str) -> bool:
    return _hash_fraction(_UTK_SALT, name) < UTK_HOLDOUT


def load_scenes(table: Path, split: str = "all") -> list[Scene]:
    """face_mask_853's photos with their boxes, for one split ("heldout", "train" or "all"),
    sorted by path. Rows the reader rejects are logged and left out."""
    if split not in SPLITS:
        raise ValueError(f"split must be one of {', '.join(SPLITS)}, not {split!r}")
    result = read_boxes(Path(table))
    for problem in result.problems:
        log.warning("%s", problem)
    if not result.rows:
        raise ValueError(f"{table}: no usable face boxes")
    by_path: dict[Path, list] = {}
    for row in result.rows:
        by_path.setdefault(row.path, []).append(row)
    scenes = []
    for path in sorted(by_path):
        rows = by_path[path]
        group = rows[0].person_id.split("/", 1)[1]
        if split != "all" and is_heldout(group) != (split == "heldout"):
            continue
        boxes = np.array([r.box for r in rows], dtype=np.float32).reshape(-1, 4)
        scenes.append(Scene(path, group, boxes, tuple(r.mask for r in rows)))
    return scenes


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


def mtcnn_detect(detector: MTCNN) -> Detect:
    return lambda image: np.array([d.box for d in detector.detect(image)], dtype=np.float32).reshape(-1, 4)


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


def write_reports(reports: Sequence[DetectorReport], out: Path, title: str, extra: str = "") -> list[Path]:
    """out.md (or out.csv): write both the markdown table (then `extra` markdown) and the CSV beside
    each other, atomically."""
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
    return [md, table]


# ---------------------------------------------------------------------------------- the command


@dataclass(frozen=True)
class EvalSetting:
    detector_dir: Path
    min_face: int
    thresholds: tuple[float, float, float]

    def name(self, label: str) -> str:
        t = "/".join(f"{v:g}" for v in self.thresholds)
        return f"{label} (min {self.min_face}, {t})"


def evaluate_detectors(data_dir: Path, detector_dirs: Sequence[Path], split: str = "heldout",
                       min_faces: Sequence[int] = (DetectorConfig.min_face_size,),
                       thresholds: Sequence[tuple[float, float, float]] = (DetectorConfig.thresholds,),
                       labels: Sequence[str] | None = None, progress: bool = True) -> list[DetectorReport]:
    """Every detector folder × minimum face size × thresholds, on the same decoded photos."""
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
    reports = []
    for label, directory in zip(labels, detector_dirs, strict=True):
        base = MTCNN(directory)
        for min_face in min_faces:
            for t in thresholds:
                setting = EvalSetting(Path(directory), int(min_face), tuple(float(v) for v in t))
                detector = base.with_config(DetectorConfig(min_face_size=setting.min_face, thresholds=setting.thresholds))
                report = score_scenes(setting.name(label), mtcnn_detect(detector), ready, progress, images)
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


# ---------------------------------------------------------------------------------- synthetic faces


def bare_landmarks(detector: MTCNN, chip: Path, pad_fraction: float, box: np.ndarray) -> np.ndarray | None:
    """The five landmarks synth drew the mask from: stock MTCNN on the padded bare chip (the same
    call synth made); None when the face found is not the manifest's."""
    try:
        image = load_image(chip).image
    except ImageReadError:
        return None
    _, found = detect_face(detector, image, pad_fraction)
    if found is None or iou_matrix(found.box[None], box[None])[0, 0] < 0.9:
        return None
    return found.landmarks


def synth_pad_fraction(synth_dir: Path) -> float:
    """The context padding `mask-train synth` detected its faces with (its settings file)."""
    return float(json.loads((Path(synth_dir) / SETTINGS_NAME).read_text(encoding="utf-8"))["pad_fraction"])


def synth_rows(synth_dir: Path, heldout: bool) -> list[dict[str, str]]:
    """`mask-train synth`'s manifest rows whose UTKFace chip is held out (heldout=True) or not."""
    with open(Path(synth_dir) / MANIFEST_NAME, newline="", encoding="utf-8") as handle:
        return [r for r in csv.DictReader(handle) if utk_heldout(r["person_id"]) == heldout]


@dataclass
class SynthCheck:
    """A detector on held-out synthetic faces, per placement (none, correct, nose_out, chin_out):
    faces found (IoU >= 0.5 with the bare face's box) and the mean landmark error of those found,
    as a fraction of the eye distance, against stock MTCNN's landmarks on the bare chip."""

    name: str
    found: dict[str, int] = field(default_factory=dict)
    total: dict[str, int] = field(default_factory=dict)
    error: dict[str, float] = field(default_factory=dict)


def synth_check(detector_dirs: list[Path], labels: list[str], data: Path, synth_dir: Path, limit: int = 400,
                min_face: int = 40, progress: bool = True) -> list[SynthCheck]:
    """Score detectors on synth rows whose UTKFace chip is held out (utk_heldout): never trained on."""
    synth_dir = Path(synth_dir)
    utk_dir = Path(data) / "utkface" / "images"
    pad = synth_pad_fraction(synth_dir)
    rows = synth_rows(synth_dir, heldout=True)[:limit]
    stock = MTCNN(config=DetectorConfig(min_face_size=40))
    detectors = [MTCNN(d, DetectorConfig(min_face_size=min_face)) for d in detector_dirs]
    checks = [SynthCheck(label) for label in labels]
    errors: list[dict[str, list[float]]] = [{} for _ in checks]
    for row in tqdm(rows, desc="synth check", unit="face", disable=not progress):
        box = np.array([float(row[k]) for k in ("x1", "y1", "x2", "y2")], np.float32)
        truth = bare_landmarks(stock, utk_dir / row["person_id"], pad, box)
        if truth is None:
            continue
        image = load_image(synth_dir / row["path"]).image
        eyes = float(np.linalg.norm(truth[0] - truth[1]))
        for detector, check, err in zip(detectors, checks, errors):
            place = row["placement"]
            check.total[place] = check.total.get(place, 0) + 1
            found = detector.detect(image)
            if not found:
                continue
            overlap = iou_matrix(box[None], np.array([d.box for d in found]))[0]
            best = int(np.argmax(overlap))
            if overlap[best] >= 0.5:
                check.found[place] = check.found.get(place, 0) + 1
                err.setdefault(place, []).append(float(np.linalg.norm(found[best].landmarks - truth, axis=1).mean()) / eyes)
    for check, err in zip(checks, errors):
        check.error = {k: float(np.mean(v)) for k, v in err.items()}
    return checks


def synth_check_table(checks: list[SynthCheck]) -> str:
    places = sorted({p for c in checks for p in c.total})
    intro = ("Per placement: faces found (IoU ≥ 0.5 with the bare face's box), and the mean landmark error of "
             "those found, in eye distances, against stock MTCNN's landmarks on the bare chip.\n")
    lines = ["## Held-out synthetic faces\n", intro,
             "| detector | " + " | ".join(f"{p}: found, landmark error" for p in places) + " |", "|---" * (len(places) + 1) + "|"]
    for c in checks:
        cells = [f"{c.found.get(p, 0)}/{c.total.get(p, 0)}, {c.error.get(p, float('nan')):.3f}" for p in places]
        lines.append(f"| {c.name} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"
