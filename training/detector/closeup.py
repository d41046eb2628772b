"""Close-ups: does the detector find a face that fills much of the picture? (`eval-detector --closeup`)

face_mask_853's faces are small; a person in front of a webcam or a portrait is large. This
check takes mask_web's held-out photos (`training.detector.scenes.web_heldout`: 30 % of the
people, never used by a detector fine-tune), mostly tight crops of one face, and letterboxes each
into a 640x480 frame (a webcam's): scaled so its height is 240-460 px (less where its width would
not fit) and placed on a plain two-colour gradient with faint noise. Size, place and colours come
from a generator seeded by the file's name, so every run and machine builds the same frames; a
tight crop then shows a face >= 80 px.

Most of these photos have no face box, so "found" is judged against the pasted photo:

- a detection lying mostly (>= INSIDE_SHARE of its area) outside the pasted photo is a stray box
  ("boxes outside": the background holds no face);
- a photo's face is **found** when a detection lying mostly inside it has a shorter side of at
  least FOUND_SIDE (30 %) of the pasted photo's short side: a tight crop's face spans 60-100 % of
  it, so this accepts loose or tight boxes but not a box on an ear, a logo or a far-away face;
- "only smaller boxes": photos with boxes inside but none that large: a box on part of the face (a
  mask, an eye) or a right box on a person who is small in a wider shot (about half of them, by eye,
  in the stock detector's masked misses), so "found" is a lower bound and found + only smaller an
  upper bound of the faces found;
- "no box": photos without any box inside, clear misses;
- "several boxes": photos with more than one box inside (a stray box on a single-face photo, or
  the rare photo of several people).
"""
from __future__ import annotations

import hashlib
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np
from tqdm import tqdm

from core.config import DetectorConfig
from core.files import IMAGE_EXTENSIONS
from core.imageio import ImageReadError, load_image
from core.mtcnn import MTCNN
from training.detector.evaluate import Detect, EvalSetting, eval_settings, mtcnn_detect
from training.detector.scenes import web_heldout

log = logging.getLogger(__name__)

#: The frame a photo is letterboxed into (height, width): a webcam's.
FRAME_SHAPE = (480, 640)
#: Height of the pasted photo, px (uniform in this range, capped so the width fits).
PHOTO_HEIGHT = (240, 460)
#: A detection is in the photo when at least this share of its area lies inside the pasted photo.
INSIDE_SHARE = 0.5
#: A box in the photo finds its face when its shorter side is at least this share of the photo's short side.
FOUND_SIDE = 0.3
STATES = ("with_mask", "without_mask")
_SALT = "mask_web-closeup-frame-v1"


@dataclass(frozen=True)
class CloseupPhoto:
    path: Path
    state: str  # mask_web's folder: with_mask or without_mask

    @property
    def key(self) -> str:
        """What seeds the frame: the folder and file name (not the machine's path)."""
        return f"{self.state}/{self.path.name}"


@dataclass(frozen=True, eq=False)
class Frame:
    """A letterboxed photo: the 640x480 BGR image and where the photo lies in it (x1, y1, x2, y2)."""

    image: np.ndarray
    rect: tuple[int, int, int, int]


def _seed(key: str) -> int:
    return int.from_bytes(hashlib.sha1(f"{_SALT}:{key}".encode()).digest()[:8], "big")


def closeup_photos(data_dir: Path, limit: int = 0) -> list[CloseupPhoto]:
    """mask_web's held-out photos per state, sorted by name; limit > 0 keeps a stable sample of at
    most that many per state (the ones whose seed is lowest), in name order."""
    photos: list[CloseupPhoto] = []
    for state in STATES:
        folder = Path(data_dir) / "mask_web" / state
        if not folder.is_dir():
            raise FileNotFoundError(f"{folder}: no such folder (mask_web/{state} is needed for --closeup)")
        held = [CloseupPhoto(p, state) for p in sorted(folder.iterdir())
                if p.suffix.lower() in IMAGE_EXTENSIONS and web_heldout(p)]
        if limit > 0 and len(held) > limit:
            keep = {c.path for c in sorted(held, key=lambda c: _seed(c.key))[:limit]}
            held = [c for c in held if c.path in keep]
        photos.extend(held)
    return photos


def background(key: str, shape: tuple[int, int] = FRAME_SHAPE) -> np.ndarray:
    """A plain frame: a vertical gradient between two colours with faint noise (no faces, no texture)."""
    rng = np.random.default_rng(_seed(key) ^ 0x5EED)
    top, bottom = rng.integers(30, 226, size=(2, 3)).astype(np.float32)
    t = np.linspace(0.0, 1.0, shape[0], dtype=np.float32)[:, None, None]
    frame = (1 - t) * top + t * bottom + rng.normal(0.0, 2.0, size=(shape[0], shape[1], 3)).astype(np.float32)
    return np.clip(np.broadcast_to(frame, (shape[0], shape[1], 3)), 0, 255).astype(np.uint8)


def letterbox(image: np.ndarray, key: str, shape: tuple[int, int] = FRAME_SHAPE) -> Frame:
    """`image` scaled and pasted into `background(key)` at a place fixed by `key`."""
    rng = np.random.default_rng(_seed(key))
    height, width = image.shape[:2]
    target = rng.uniform(*PHOTO_HEIGHT)
    scale = min(target / height, shape[1] / width, shape[0] / height)
    new_w, new_h = max(1, round(width * scale)), max(1, round(height * scale))
    resized = cv2.resize(image, (new_w, new_h), interpolation=cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR)
    x = int(rng.integers(0, shape[1] - new_w + 1))
    y = int(rng.integers(0, shape[0] - new_h + 1))
    frame = background(key, shape)
    frame[y:y + new_h, x:x + new_w] = resized
    return Frame(frame, (x, y, x + new_w, y + new_h))


@dataclass(frozen=True)
class Verdict:
    """What the detections on one frame mean for its photo."""

    found: bool
    outside: int  # boxes mostly outside the pasted photo
    inside: int  # boxes mostly inside it (of any size)


def judge(boxes: np.ndarray, rect: tuple[int, int, int, int]) -> Verdict:
    """Apply the rules of the module docstring to one frame's detections (K, 4)."""
    boxes = np.asarray(boxes, dtype=np.float32).reshape(-1, 4)
    x1, y1, x2, y2 = rect
    w = np.clip(boxes[:, 2] - boxes[:, 0], 0, None)
    h = np.clip(boxes[:, 3] - boxes[:, 1], 0, None)
    iw = np.clip(np.minimum(boxes[:, 2], x2) - np.maximum(boxes[:, 0], x1), 0, None)
    ih = np.clip(np.minimum(boxes[:, 3], y2) - np.maximum(boxes[:, 1], y1), 0, None)
    inside = iw * ih >= INSIDE_SHARE * np.maximum(w * h, 1e-6)
    big = np.minimum(w, h) >= FOUND_SIDE * min(x2 - x1, y2 - y1)
    return Verdict(bool(np.any(inside & big)), int(np.sum(~inside)), int(np.sum(inside)))


@dataclass
class CloseupCounts:
    """One mask state's photos at one detector setting."""

    photos: int = 0
    found: int = 0
    smaller_only: int = 0  # boxes inside, none large enough
    outside: int = 0  # boxes mostly outside the photo
    several: int = 0  # photos with more than one box inside
    detections: int = 0

    @property
    def no_box(self) -> int:
        """Photos without any box inside."""
        return self.photos - self.found - self.smaller_only

    def add(self, verdict: Verdict) -> None:
        self.photos += 1
        self.found += verdict.found
        self.smaller_only += verdict.inside > 0 and not verdict.found
        self.outside += verdict.outside
        self.several += verdict.inside > 1
        self.detections += verdict.inside + verdict.outside


@dataclass
class CloseupReport:
    """One detector at one setting over the close-up frames."""

    name: str
    states: dict[str, CloseupCounts] = field(default_factory=lambda: {s: CloseupCounts() for s in STATES})
    unreadable: int = 0


def score_closeups(detectors: Sequence[tuple[str, Detect]], photos: Sequence[CloseupPhoto],
                   progress: bool = True) -> list[CloseupReport]:
    """Every (name, detect) on every photo's frame; each frame is built once and shared by all."""
    reports = [CloseupReport(name) for name, _ in detectors]
    for photo in tqdm(photos, desc="close-ups", unit="img", disable=not progress, leave=False):
        try:
            image = load_image(photo.path).image
        except ImageReadError as exc:
            log.warning("%s: %s (skipped)", photo.path, exc)
            for report in reports:
                report.unreadable += 1
            continue
        frame = letterbox(image, photo.key)
        for report, (_, detect) in zip(reports, detectors):
            report.states[photo.state].add(judge(detect(frame.image), frame.rect))
    return reports


def evaluate_closeups(data_dir: Path, detector_dirs: Sequence[Path], labels: Sequence[str],
                      min_faces: Sequence[int] = (DetectorConfig.min_face_size,),
                      thresholds: Sequence[tuple[float, float, float]] = (DetectorConfig.thresholds,),
                      min_face_fractions: Sequence[float] = (0.0,), min_face_floor: int = DetectorConfig.min_face_floor,
                      limit: int = 0, progress: bool = True,
                      photos: Sequence[CloseupPhoto] | None = None) -> list[CloseupReport]:
    """Every detector folder × setting of `eval_settings` (the scene table's, in its order) on the
    close-up frames (of `photos`, default `closeup_photos(data_dir, limit)`)."""
    bases = [MTCNN(directory) for directory in detector_dirs]
    photos = closeup_photos(data_dir, limit) if photos is None else photos
    log.info("close-ups: %s", ", ".join(f"{sum(p.state == s for p in photos)} {s}" for s in STATES))
    grid = eval_settings(detector_dirs, min_faces, thresholds, min_face_fractions, min_face_floor)
    detectors: list[tuple[str, Detect]] = []
    for label, settings, base in zip(labels, grid, bases, strict=True):
        for setting in settings:
            detectors.append((setting.name(label), _detect(base, setting)))
    reports = score_closeups(detectors, photos, progress)
    for r in reports:
        log.info("%s close-ups: masked %s, bare %s found; %d boxes outside", r.name,
                 *(_pct(r.states[s].found, r.states[s].photos) for s in STATES), sum(c.outside for c in r.states.values()))
    return reports


def _detect(base: MTCNN, setting: EvalSetting) -> Detect:
    return mtcnn_detect(base.with_config(setting.config()), setting.per_photo)


# ---------------------------------------------------------------------------------- report


def _pct(hit: int, total: int) -> str:
    return f"{hit}/{total} ({100 * hit / total:.1f} %)" if total else "–"


_SHORT = {"with_mask": "masked", "without_mask": "bare"}


def closeup_table(reports: Sequence[CloseupReport]) -> str:
    """Markdown: the rule, then one row per detector setting."""
    if not reports:
        return ""
    head = [f"{_SHORT[s]} {c}" for s in STATES
            for c in ("found", "only smaller boxes", "no box", "boxes outside", "several boxes")]
    lines = [
        "## Close-ups (mask_web held out, letterboxed into 640x480)\n",
        f"Held-out mask_web photos (30 % of the people, `web_heldout`), each scaled to {PHOTO_HEIGHT[0]}-"
        f"{PHOTO_HEIGHT[1]} px high on a plain background (training/detector/closeup.py). Found: a box lying at least "
        f"{INSIDE_SHARE:.0%} inside the photo whose shorter side is ≥ {FOUND_SIDE:.0%} of the photo's short side. "
        "Only smaller boxes: boxes inside, none that large (part of a face, or a person small in a wider shot: "
        "found is a lower bound, found + only smaller an upper one). No box: nothing inside. Boxes outside: boxes "
        "lying mostly on the background. Several boxes: photos with more than one box inside (most show one face).\n",
        "| detector | " + " | ".join(head) + " |",
        "|---" * (len(head) + 1) + "|",
    ]
    for r in reports:
        cells = []
        for s in STATES:
            c = r.states[s]
            cells += [_pct(c.found, c.photos), str(c.smaller_only), str(c.no_box), str(c.outside), str(c.several)]
        lines.append(f"| {r.name} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def closeup_csv_rows(reports: Sequence[CloseupReport]) -> list[dict[str, object]]:
    """Rows in eval-detector's CSV layout (detector, state, band, found, labelled, recall); band "closeup"."""
    rows: list[dict[str, object]] = []
    for r in reports:
        for state in STATES:
            c = r.states[state]
            rows.append({"detector": r.name, "state": state, "band": "closeup", "found": c.found, "labelled": c.photos,
                         "recall": f"{c.found / c.photos:.4f}" if c.photos else ""})
            rows.append({"detector": r.name, "state": "closeup_only_smaller_boxes", "band": state,
                         "found": c.smaller_only, "labelled": c.photos, "recall": ""})
            rows.append({"detector": r.name, "state": "closeup_no_box", "band": state, "found": c.no_box,
                         "labelled": c.photos, "recall": ""})
            rows.append({"detector": r.name, "state": "closeup_boxes_outside", "band": state, "found": c.outside,
                         "labelled": c.detections, "recall": ""})
            rows.append({"detector": r.name, "state": "closeup_several_boxes", "band": state, "found": c.several,
                         "labelled": c.photos, "recall": ""})
    return rows
