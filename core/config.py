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


#: Faces per classifier run: a crowded frame or photo is classified this many faces at a time.
#: Memory during a run grows with the faces in it (one run of the shipped ensemble on 32 faces
#: took ~1.1 GB more) while the time per face does not fall beyond a few (bench/session_memory.py).
CLASSIFIER_BATCH = 4


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

    min_face_fraction 0.1 (photos only), from the same tool (`--min-face-fraction`): on all 678
    scenes (<= 400 px, many faces 20-40 px) it finds 849 of the 1,111 faces 20-40 px wide instead
    of 647, keeps every face >= 40 px that min face 40 finds (502/590 masked), for 151 boxes that
    match no face instead of 88 (0.125: 788 and 131); searching only deeper (min face 20) finds
    854 but loses 9 masked faces >= 40 px and draws 177.
    """

    min_face_size: int = 40
    thresholds: tuple[float, float, float] = (0.6, 0.7, 0.7)
    scale_factor: float = 0.709
    #: Photos only (`FaceAnalyzer.analyze`: batch, the window's batch tab), never live video: a
    #: photo is also searched for faces down to this fraction of its short side, kept within
    #: [min_face_floor, min_face_size] (`photo_min_face`; `MTCNN.detect_photo` adds the smaller
    #: faces to the min_face_size pass). 0: min_face_size in every photo.
    min_face_fraction: float = 0.1
    min_face_floor: int = 20

    def __post_init__(self) -> None:
        if self.min_face_size < 12:
            raise ValueError("min_face_size must be at least 12 px (P-Net's window)")
        if not 0.0 <= self.min_face_fraction < 1.0 or self.min_face_floor < 12:
            raise ValueError("min_face_fraction must be in [0, 1) and min_face_floor at least 12 px")
        if len(self.thresholds) != 3 or not all(0.0 <= t <= 1.0 for t in self.thresholds):
            raise ValueError("thresholds must be three numbers in [0, 1]")
        if not 0.1 <= self.scale_factor < 1.0:
            raise ValueError("scale_factor must be in [0.1, 1)")

    def photo_min_face(self, height: int, width: int) -> int:
        """The smallest face (px) looked for in a photo of this size: min_face_fraction of its short
        side within [min_face_floor, min_face_size] (never above min_face_size: a photo whose short
        side is at least min_face_size / min_face_fraction, 400 px by default, is searched as a
        video frame is); min_face_size when the fraction is 0."""
        if self.min_face_fraction <= 0.0:
            return self.min_face_size
        wanted = max(float(self.min_face_floor), self.min_face_fraction * min(height, width))
        return max(12, int(round(min(float(self.min_face_size), wanted))))


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

    detector_thresholds: the P-, R- and O-Net thresholds of every live search (full, region and
    O-Net re-finds), in place of the detector's own (DetectorConfig.thresholds, which photos and
    batch keep); None searches with the detector's. Live may be looser than a photo: a box is
    shown only once its track is confirmed (seen in 3 frames), which drops most one-frame
    flickers. Chosen by bench/live_thresholds.py (stock detector, min face 40; 676 frames of
    held-out photos, 60 faces: masked, wrongly and bare close-ups, groups, small faces, and
    street scenes with nobody):

    | thresholds | face-frames found | masked | wrongly | bare | persons | stray tracks | stray frames |
    |---|---|---|---|---|---|---|---|
    | 0.6/0.7/0.7 (photo) | 78 % | 72 % | 87 % | 88 % | 54/60 | 5 | 68 |
    | **0.5/0.7/0.7** | 79 % | 74 % | 87 % | 88 % | 54/60 | 4 | 69 |
    | 0.4/0.7/0.7 | 80 % | 74 % | 86 % | 90 % | 53/60 | 6 | 78 |
    | 0.5/0.6/0.7 | 81 % | 76 % | 85 % | 89 % | 55/60 | 5 | 79 |
    | 0.5/0.5/0.6 | 81 % | 76 % | 84 % | 89 % | 55/60 | 8 | 146 |
    | 0.4/0.5/0.5 | 81 % | 77 % | 87 % | 89 % | 55/60 | 11 | 187 |
    | 0.4/0.4/0.5 | 81 % | 78 % | 83 % | 89 % | 56/60 | 14 | 167 |
    | 0.3/0.4/0.4 | 83 % | 79 % | 87 % | 90 % | 55/60 | 17 | 305 |

    Rule: the loosest set whose stray confirmed tracks are no more than the photo thresholds'
    and stray track-frames at most 25 % above theirs, and which keeps tracks on a zooming
    camera's faces (tests/test_live_zoom_pan.py): 0.5/0.7/0.7 (masked mask_web close-ups 59 ->
    64 % of frames, strays 5 -> 4 tracks, 68 -> 69 frames). 0.5/0.6/0.7 finds a little more
    (69 %) within the stray bound, but a looser R-Net lets the cascade box a large masked face
    by parts as the camera zooms, and 3 % of tracked boxes leave their face (bound 2 %); looser
    still (R 0.5, O 0.6) finds no more and doubles the stray frames. The app's Settings dialog
    edits these apart from the photo thresholds (app/settings.py `live_thresholds`).
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
    detector_thresholds: tuple[float, float, float] | None = (0.5, 0.7, 0.7)

    def __post_init__(self) -> None:
        if self.detector_thresholds is not None and (
            len(self.detector_thresholds) != 3 or not all(0.0 <= t <= 1.0 for t in self.detector_thresholds)
        ):
            raise ValueError("detector_thresholds must be None or three numbers in [0, 1]")
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
