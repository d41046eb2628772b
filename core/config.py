"""Runtime configuration in one place: where the models live and the detector's knobs."""
from __future__ import annotations

import logging
import os
import sys
from dataclasses import dataclass, field
from pathlib import Path


def assets_dir() -> Path:
    """The shipped models and icons: in a frozen bundle, next to the packages in a checkout (or an
    editable install), or where a wheel put them (<prefix>/share/mask-checker/assets, see
    pyproject.toml's data-files; pip --user's prefix too)."""
    override = os.environ.get("MASK_CHECKER_ASSETS")
    if override:
        return Path(override)
    frozen_root = getattr(sys, "_MEIPASS", None)
    if frozen_root:
        return Path(frozen_root) / "assets"
    checkout = Path(__file__).resolve().parent.parent / "assets"
    if checkout.is_dir():
        return checkout
    import site

    for prefix in (sys.prefix, site.getuserbase()):
        installed = Path(prefix) / "share" / "mask-checker" / "assets"
        if installed.is_dir():
            return installed
    return checkout  # not found anywhere: errors name the checkout's path


def models_dir() -> Path:
    return assets_dir() / "models"


def default_detector_dir() -> Path:
    return models_dir() / "mtcnn"


def default_classifier_path() -> Path:
    return models_dir() / "classifier.onnx"


def shipped_classifier() -> Path | None:
    """The shipped classifier, or None (with a warning) when none ships: then faces are found but
    not classified. The one place that rule lives (batch, the window, the Python API)."""
    path = default_classifier_path()
    if path.exists():
        return path
    logging.getLogger(__name__).warning("no shipped classifier at %s: faces are found but not classified", path)
    return None


@dataclass(frozen=True)
class DetectorConfig:
    """MTCNN settings.

    min_face_size: smallest face (px) looked for; it sets how deep the image pyramid goes, so it
    is the biggest lever on speed. thresholds: score a candidate must pass at P-Net, R-Net, O-Net.
    scale_factor: ratio between pyramid levels.

    The defaults were chosen by `mask-train eval-detector` on all 678 face_mask_853 scenes
    (shipped detector; table in assets/models/MODEL_CARD.md, Detector). min_face_size 40 finds
    the most faces >= 40 px: 30 or 20 look deeper, add boxes that match no face (88 -> 118 / 177)
    and lose some larger faces among them. Thresholds 0.6/0.7/0.7 (facenet-pytorch's): every
    looser choice tried finds a few more masked faces (0.5/0.6/0.7: 512 vs 501 of 590) for
    27-59 % more boxes that match no face, each of which the app would judge and may alarm on;
    0.5/0.6/0.7 is the option to pick when a missed person costs more than a false alarm.
    """

    min_face_size: int = 40
    thresholds: tuple[float, float, float] = (0.6, 0.7, 0.7)
    scale_factor: float = 0.709

    def __post_init__(self) -> None:
        if self.min_face_size < 12:
            raise ValueError("min_face_size must be at least 12 px (P-Net's window)")
        if len(self.thresholds) != 3 or not all(0.0 <= t <= 1.0 for t in self.thresholds):
            raise ValueError("thresholds must be three numbers in [0, 1]")
        if not 0.1 <= self.scale_factor < 1.0:
            raise ValueError("scale_factor must be in [0.1, 1)")


@dataclass(frozen=True)
class AnalyzerConfig:
    """Everything FaceAnalyzer needs to be built."""

    detector: DetectorConfig = field(default_factory=DetectorConfig)
    detector_dir: Path = field(default_factory=default_detector_dir)
    classifier_path: Path | None = field(default_factory=default_classifier_path)


@dataclass(frozen=True)
class LiveConfig:
    """Knobs of the live (video) pipeline, core/live.py: where it saves work between frames.

    detect_every: a full-frame detection every k frames (also at start and whenever a tracked
    face is not re-found); in between each tracked face is re-found by O-Net on its predicted
    box, and where O-Net misses, by the whole cascade in a region around it. region_scale: that
    region's side, as a multiple of the face's side (faces move less than half their size
    between two frames at camera rate). region_face_px: the region is scaled so the face is
    about this big (a little over O-Net's 48 px input): its pyramid is a few tiny levels
    whatever the face's size. classify_every: each track is re-classified every n frames
    (new tracks at once), all due faces in one batch. smoothing: weight of a new classification
    in the exponential moving average of each track's probabilities (1 = no smoothing).
    min_iou / max_centroid_shift: a detection continues a track when their boxes overlap by
    this IoU, or else when its centre moved less than this many box sides. max_missed: frames a
    track survives unseen (a blink of the detector, someone passing behind another) before its
    id is retired.

    idle_skip: with no face tracked, a full search runs only when the picture changed since the
    last one (or every idle_detect_every frames anyway): an empty scene from a still camera then
    costs a thumbnail comparison per frame instead of the whole cascade, and a person walking in
    changes the picture, so they are searched for at once. False searches every such frame (the
    pipeline before idle_skip: the bench's baseline). The picture changed when more than
    motion_share of a 80x60 grey thumbnail moved by more than motion_level grey levels (camera
    noise averages out in the thumbnail; a 40 px face is 25 of its 4800 pixels).
    """

    detect_every: int = 10
    region_scale: float = 2.0
    region_face_px: int = 64
    classify_every: int = 5
    smoothing: float = 0.4
    min_iou: float = 0.3
    max_centroid_shift: float = 0.5
    max_missed: int = 15
    idle_skip: bool = True
    idle_detect_every: int = 15
    motion_level: float = 10.0
    motion_share: float = 0.003

    def __post_init__(self) -> None:
        if self.idle_detect_every < 1 or self.motion_level <= 0 or not 0.0 <= self.motion_share < 1.0:
            raise ValueError("idle_detect_every must be at least 1, motion_level above 0 and motion_share in [0, 1)")
        if self.detect_every < 1 or self.classify_every < 1:
            raise ValueError("detect_every and classify_every must be at least 1 frame")
        if self.region_scale < 1.2:
            raise ValueError("region_scale must be at least 1.2 (the region must hold the face and its motion)")
        if self.region_face_px < 24:
            raise ValueError("region_face_px must be at least 24 px")
        if not 0.0 < self.smoothing <= 1.0:
            raise ValueError("smoothing must be in (0, 1]")
        if not 0.0 < self.min_iou < 1.0 or self.max_centroid_shift < 0.0 or self.max_missed < 0:
            raise ValueError("min_iou must be in (0, 1), max_centroid_shift and max_missed at least 0")
