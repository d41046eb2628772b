"""MTCNN face detection on numpy, OpenCV and onnxruntime (no torch).

A port of facenet-pytorch 2.5.3's `detect_face.py`, step for step, so the app finds the same
faces as the reference (tests/test_mtcnn_parity.py holds it to that). The three networks are
onnxruntime sessions (exported by `mask-train export-detector`); everything between them is
plain functions over arrays. Conventions kept from the reference on purpose, because they move
boxes by a pixel: stage-1 regression uses width x2-x1 but later regressions use x2-x1+1; NMS
is torchvision's (continuous areas, IoU) except the last one, which counts pixels (+1) and
divides by the smaller area ("Min").

For video, `MTCNN.refine` (O-Net alone on known boxes) and `MTCNN.detect_in_region` (the cascade
on a small, scaled region) re-find faces a tracker already knows (core/live.py); they share the
stages above but leave `detect`, the full search held to the reference, as it was.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Literal

import cv2
import numpy as np

from core.config import DetectorConfig, default_detector_dir
from core.ort import create_session

if TYPE_CHECKING:
    from onnxruntime import InferenceSession

log = logging.getLogger(__name__)

PNET_CELL = 12  # P-Net's window, px
PNET_STRIDE = 2  # P-Net's output stride, px
RNET_SIZE = 24
ONET_SIZE = 48
NMS_PNET_SCALE = 0.5  # within one pyramid level
NMS_PNET_ALL = 0.7  # across pyramid levels
NMS_RNET = 0.7
NMS_ONET = 0.7  # "Min" overlap, pixel-inclusive
#: A photo's deeper pass (`MTCNN.detect_photo`) adds a box only when at most this share of it (of the
#: smaller box's area) overlaps a box of the min_face_size pass: one inside a face already found is a
#: part of that face (an eye, a mask), which O-Net's "min" NMS would otherwise let replace the face.
PHOTO_SMALL_OVERLAP = 0.3

# Box arrays below are (K, 5+) float32: x1, y1, x2, y2, score, [extra columns].


@dataclass(frozen=True, eq=False)
class Detection:
    """One face, in pixels of the input image (equal by identity: it holds arrays)."""

    box: np.ndarray  # (4,) float32 x1, y1, x2, y2
    score: float
    landmarks: np.ndarray  # (5, 2) float32 x, y: left eye, right eye, nose, mouth left, mouth right


class DetectorLoadError(RuntimeError):
    """The detector's model files are missing or unusable; the message says which."""


#: Per stage: the side of the zero image each network is tried on at load, and the shapes of
#: its outputs for it, in the order the code reads them (P-Net on 24 px: a 7×7 map).
STAGE_PROBES: dict[str, tuple[int, tuple[tuple[int, ...], ...]]] = {
    "pnet": (24, ((1, 4, 7, 7), (1, 2, 7, 7))),
    "rnet": (RNET_SIZE, ((1, 4), (1, 2))),
    "onet": (ONET_SIZE, ((1, 4), (1, 10), (1, 2))),
}


def check_stage(session: InferenceSession, stage: str, name: str) -> None:
    """Refuse a network that is not `stage` (say P-Net copied over O-Net): one inference on a
    zero image must give the stage's outputs, shaped as expected, with face probabilities."""
    side, expected = STAGE_PROBES[stage]
    hint = "(regenerate with `mask-train export-detector`)"
    try:
        outputs = session.run(None, {"image": np.zeros((1, 3, side, side), np.float32)})
    except Exception as exc:  # onnxruntime raises its own exception types
        raise DetectorLoadError(f"{name} is not an MTCNN {stage}: a test inference failed: {exc} {hint}") from exc
    shapes = tuple(tuple(o.shape) for o in outputs)
    if shapes != expected:
        raise DetectorLoadError(
            f"{name} is not an MTCNN {stage}: on a {side}×{side} image it gives outputs shaped "
            f"{list(shapes)}, expected {list(expected)} {hint}"
        )
    prob = np.asarray(outputs[-1], dtype=np.float64)
    if not (np.isfinite(prob).all() and np.allclose(prob.sum(axis=1), 1.0, atol=1e-3)):
        raise DetectorLoadError(f"{name} is not an MTCNN {stage}: its last output is not face/no-face probabilities {hint}")


# --------------------------------------------------------------------------- preprocessing

_TO_RGB = {2: cv2.COLOR_GRAY2RGB, 3: cv2.COLOR_BGR2RGB, 4: cv2.COLOR_BGRA2RGB}


def to_network_image(image_bgr: np.ndarray) -> np.ndarray:
    """H×W×3 float32 RGB scaled as the nets were trained: (x - 127.5) / 128.

    Takes BGR uint8 as OpenCV gives it (grey and BGRA are converted too): the nets want RGB.

    Normalising once, before any resizing, is exact (area resizing is linear) and saves doing
    it per pyramid level and per crop.
    """
    if image_bgr.ndim == 3 and image_bgr.shape[2] == 1:
        image_bgr = image_bgr[:, :, 0]
    channels = 2 if image_bgr.ndim == 2 else image_bgr.shape[2] if image_bgr.ndim == 3 else 0
    if channels not in _TO_RGB:
        raise ValueError(f"expected an H×W×3 BGR image, got shape {image_bgr.shape}")
    if image_bgr.dtype != np.uint8:
        raise ValueError(f"expected a uint8 image, got {image_bgr.dtype}")
    rgb = cv2.cvtColor(image_bgr, _TO_RGB[channels]).astype(np.float32)
    rgb -= 127.5
    rgb *= 0.0078125
    return rgb


def integral_image(image: np.ndarray) -> np.ndarray:
    """(H+1, W+1, C) float64 summed-area table: every resize below is read from it.

    Built once per frame, it serves all pyramid levels and all R-Net and O-Net crops.
    """
    return cv2.integral(image, sdepth=cv2.CV_64F)


def _bins(start: np.ndarray, length: np.ndarray, n_out: int) -> tuple[np.ndarray, np.ndarray]:
    """Per window, the [first, last) source index of each of n_out output cells (torch's
    adaptive pooling bins: floor(i·L/n) to ceil((i+1)·L/n), which overlap when L/n is fractional)."""
    i = np.arange(n_out, dtype=np.int64)[None, :]
    length = length[:, None]
    first = start[:, None] + (i * length) // n_out
    last = start[:, None] + ((i + 1) * length + n_out - 1) // n_out
    return first, last


def area_resize(table: np.ndarray, windows: np.ndarray, height: int, width: int) -> np.ndarray:
    """(N, height, width, C) float32: each window (x0, y0, x1, y1), half-open, of the image
    behind `table`, resized by averaging.

    This is exactly torch's `interpolate(mode="area")` (adaptive average pooling), which the
    reference uses. cv2.INTER_AREA is not: it weights partial pixels and interpolates when
    enlarging, and that alone moves boxes enough (IoU down to ~0.7 against the reference, and
    faces gained and lost) to fail the parity test.
    """
    windows = np.asarray(windows, dtype=np.int64).reshape(-1, 4)
    r0, r1 = _bins(windows[:, 1], windows[:, 3] - windows[:, 1], height)
    c0, c1 = _bins(windows[:, 0], windows[:, 2] - windows[:, 0], width)
    # Corner sums by flat index: `take` is ~2.5x faster here than 2-D fancy indexing.
    flat = table.reshape(-1, table.shape[2])
    top, bottom = (r0 * table.shape[1])[:, :, None], (r1 * table.shape[1])[:, :, None]
    left, right = c0[:, None, :], c1[:, None, :]
    total = flat.take(bottom + right, axis=0)
    total -= flat.take(top + right, axis=0)
    total -= flat.take(bottom + left, axis=0)
    total += flat.take(top + left, axis=0)
    total /= ((r1 - r0)[:, :, None] * (c1 - c0)[:, None, :])[..., None]
    return total.astype(np.float32)


def to_nchw(images: np.ndarray) -> np.ndarray:
    """(N, H, W, 3) → contiguous (N, 3, H, W), the networks' layout."""
    return np.ascontiguousarray(images.transpose(0, 3, 1, 2))


def pyramid_scales(height: int, width: int, min_face_size: float, factor: float) -> list[float]:
    """Scales at which P-Net's 12 px window covers faces from min_face_size up to the whole image."""
    scale = PNET_CELL / min_face_size
    side = min(height, width) * scale
    scales: list[float] = []
    while side >= PNET_CELL:
        scales.append(scale)
        scale *= factor
        side *= factor
    return scales


# --------------------------------------------------------------------------- box arithmetic


def nms(boxes: np.ndarray, scores: np.ndarray, threshold: float, mode: Literal["union", "min"] = "union",
        inclusive: bool = False, ties: Literal["first", "last"] = "first") -> np.ndarray:
    """Greedy non-maximum suppression; indices kept, best score first.

    A box is dropped when its overlap with a better kept box is > threshold. `mode` "union" is
    IoU, "min" divides by the smaller area. `inclusive` counts pixels (+1 on width and height),
    as the reference's last NMS does; torchvision's (used for the others) does not. `ties`: which
    of equal scores goes first. Exact ties are real: two candidates whose boxes truncate to the
    same pixels get the same crop, hence the same score, but keep different float boxes.
    torchvision keeps the first ("first"); the reference's last NMS reads numpy's default
    argsort from the end ("last": mostly the later one, but that sort is not stable).
    """
    if len(boxes) == 0:
        return np.zeros(0, dtype=np.int64)
    one = np.float32(1.0 if inclusive else 0.0)
    x1, y1, x2, y2 = (boxes[:, i] for i in range(4))
    area = (x2 - x1 + one) * (y2 - y1 + one)
    if ties == "first":
        order = np.argsort(-scores, kind="stable")
    else:  # the reference's very call (numpy's default sort), so equal scores come out alike
        order = np.argsort(scores)[::-1]
    keep: list[int] = []
    while order.size:
        i = order[0]
        keep.append(int(i))
        rest = order[1:]
        w = np.maximum(0.0, np.minimum(x2[i], x2[rest]) - np.maximum(x1[i], x1[rest]) + one)
        h = np.maximum(0.0, np.minimum(y2[i], y2[rest]) - np.maximum(y1[i], y1[rest]) + one)
        inter = w * h
        denom = np.minimum(area[i], area[rest]) if mode == "min" else area[i] + area[rest] - inter
        overlap = inter / np.maximum(denom, np.finfo(np.float32).tiny)
        order = rest[overlap <= threshold]
    return np.asarray(keep, dtype=np.int64)


def regress(boxes: np.ndarray, reg: np.ndarray, inclusive: bool) -> np.ndarray:
    """Move box edges by the nets' regression, as fractions of width/height (+1 if inclusive)."""
    one = np.float32(1.0 if inclusive else 0.0)
    out = boxes.copy()
    w = boxes[:, 2] - boxes[:, 0] + one
    h = boxes[:, 3] - boxes[:, 1] + one
    out[:, 0] = boxes[:, 0] + reg[:, 0] * w
    out[:, 1] = boxes[:, 1] + reg[:, 1] * h
    out[:, 2] = boxes[:, 2] + reg[:, 2] * w
    out[:, 3] = boxes[:, 3] + reg[:, 3] * h
    return out


def square(boxes: np.ndarray) -> np.ndarray:
    """Grow each box to a square around its centre (the reference's `rerec`): the nets take squares."""
    out = boxes.copy()
    w = boxes[:, 2] - boxes[:, 0]
    h = boxes[:, 3] - boxes[:, 1]
    side = np.maximum(w, h)
    out[:, 0] = boxes[:, 0] + w * 0.5 - side * 0.5
    out[:, 1] = boxes[:, 1] + h * 0.5 - side * 0.5
    out[:, 2] = out[:, 0] + side
    out[:, 3] = out[:, 1] + side
    return out


def crop_windows(boxes: np.ndarray, width: int, height: int) -> tuple[np.ndarray, np.ndarray]:
    """Integer pixel windows (x0, y0, x1, y1), half-open, of the boxes clipped to the image, and
    which boxes keep any pixel.

    As the reference's `pad`: truncate, clip, and take the part inside the image (it is resized
    to the net's square as it is, not padded), so faces cut by the border still get a crop.
    """
    b = np.trunc(boxes[:, :4]).astype(np.int64)
    x0 = np.maximum(b[:, 0], 1) - 1
    y0 = np.maximum(b[:, 1], 1) - 1
    x1 = np.minimum(b[:, 2], width)
    y1 = np.minimum(b[:, 3], height)
    valid = (x1 > x0) & (y1 > y0)
    return np.stack([x0, y0, x1, y1], axis=1), valid


def boxes_from_pnet(reg: np.ndarray, prob: np.ndarray, scale: float, threshold: float) -> np.ndarray:
    """Candidate boxes (K, 9) = x1, y1, x2, y2, score, 4 regressions, from one P-Net map.

    reg (4, h, w), prob (h, w). Each output cell is a 12 px window at stride 2 in the resized
    image, mapped back to the original by `scale`.
    """
    ys, xs = np.nonzero(prob >= threshold)
    cells = np.stack([xs, ys], axis=1).astype(np.float32)
    top_left = np.floor((PNET_STRIDE * cells + 1) / np.float32(scale))
    bottom_right = np.floor((PNET_STRIDE * cells + PNET_CELL) / np.float32(scale))
    score = prob[ys, xs][:, None]
    return np.concatenate([top_left, bottom_right, score, reg[:, ys, xs].T], axis=1).astype(np.float32)


# --------------------------------------------------------------------------- the three stages
# `table` is the frame's integral_image; the frame is table.shape[0] - 1 by table.shape[1] - 1.


def _frame_size(table: np.ndarray) -> tuple[int, int]:
    return table.shape[0] - 1, table.shape[1] - 1


def _crops(table: np.ndarray, boxes: np.ndarray, size: int) -> tuple[np.ndarray, np.ndarray]:
    """The boxes that keep any pixel inside the frame, and their (N, 3, size, size) crops."""
    height, width = _frame_size(table)
    windows, valid = crop_windows(boxes, width, height)
    return boxes[valid], to_nchw(area_resize(table, windows[valid], size, size))


def run_pnet(session: InferenceSession, table: np.ndarray, scales: list[float], threshold: float) -> np.ndarray:
    """Stage 1: square candidate boxes (K, 5) from every pyramid level."""
    height, width = _frame_size(table)
    whole = np.array([[0, 0, width, height]])
    per_scale = [np.zeros((0, 9), np.float32)]
    for scale in scales:
        level = area_resize(table, whole, int(height * scale + 1), int(width * scale + 1))
        reg, prob = session.run(None, {"image": to_nchw(level)})
        boxes = boxes_from_pnet(reg[0], prob[0, 1], scale, threshold)
        per_scale.append(boxes[nms(boxes[:, :4], boxes[:, 4], NMS_PNET_SCALE)])
    boxes = np.concatenate(per_scale, axis=0)
    boxes = boxes[nms(boxes[:, :4], boxes[:, 4], NMS_PNET_ALL)]
    boxes = np.concatenate([regress(boxes[:, :4], boxes[:, 5:9], inclusive=False), boxes[:, 4:5]], axis=1)
    return square(boxes)


def run_rnet(session: InferenceSession, table: np.ndarray, boxes: np.ndarray, threshold: float) -> np.ndarray:
    """Stage 2: rescore all candidates in one batch, keep the faces, refine and square them."""
    boxes, batch = _crops(table, boxes, RNET_SIZE)
    if len(boxes) == 0:
        return boxes
    reg, prob = session.run(None, {"image": batch})
    passed = prob[:, 1] > threshold
    boxes = np.concatenate([boxes[passed, :4], prob[passed, 1:2]], axis=1)
    reg = reg[passed]
    keep = nms(boxes[:, :4], boxes[:, 4], NMS_RNET)
    boxes, reg = boxes[keep], reg[keep]
    return square(np.concatenate([regress(boxes[:, :4], reg, inclusive=True), boxes[:, 4:5]], axis=1))


def run_onet(session: InferenceSession, table: np.ndarray, boxes: np.ndarray,
             threshold: float) -> tuple[np.ndarray, np.ndarray]:
    """Stage 3: final boxes (K, 5) and landmarks (K, 5, 2), all candidates in one batch."""
    boxes, batch = _crops(table, boxes, ONET_SIZE)
    if len(boxes) == 0:
        return boxes, np.zeros((0, 5, 2), np.float32)
    boxes, landmarks = onet_outputs(session, boxes, batch)
    passed = boxes[:, 4] > threshold
    boxes, landmarks = boxes[passed], landmarks[passed]
    keep = nms(boxes[:, :4], boxes[:, 4], NMS_ONET, mode="min", inclusive=True, ties="last")
    return boxes[keep], landmarks[keep]


def onet_outputs(session: InferenceSession, boxes: np.ndarray, batch: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """O-Net on the crops `batch` of `boxes`: regressed boxes with their face score (K, 5) and
    landmarks (K, 5, 2), nothing filtered."""
    reg, points, prob = session.run(None, {"image": batch})
    boxes = np.concatenate([boxes[:, :4], prob[:, 1:2]], axis=1)
    # Landmarks are fractions of the box the net saw (before regression), pixel-inclusive.
    w = (boxes[:, 2] - boxes[:, 0] + 1)[:, None]
    h = (boxes[:, 3] - boxes[:, 1] + 1)[:, None]
    xs = w * points[:, :5] + boxes[:, 0:1] - 1
    ys = h * points[:, 5:] + boxes[:, 1:2] - 1
    landmarks = np.stack([xs, ys], axis=2).astype(np.float32)
    boxes = np.concatenate([regress(boxes[:, :4], reg, inclusive=True), boxes[:, 4:5]], axis=1)
    return boxes, landmarks


#: A re-found face may be at most this much larger or smaller (in side) than the box it was looked for at.
REFINE_MAX_GROWTH = 1.3


def _areas(boxes: np.ndarray) -> np.ndarray:
    return np.clip(boxes[:, 2] - boxes[:, 0], 0, None) * np.clip(boxes[:, 3] - boxes[:, 1], 0, None)


def _crops_near(image_bgr: np.ndarray, box: np.ndarray, size: int) -> np.ndarray:
    """(K, 3, size, size) crops of one box (4,), K = 0 (no pixel inside the frame), 1 or 2.
    Only the pixels around it are normalised and summed.

    A box cut by the frame's edge is cropped both ways: as the cascade crops it (the part inside
    the frame, squeezed into the square) and whole, the missing part mid-grey (0 after
    normalisation); which one O-Net is surer of depends on how much of the face is cut.
    """
    height, width = image_bgr.shape[:2]
    boxes = box.reshape(1, 4)
    clipped, valid = crop_windows(boxes, width, height)
    if not valid[0]:
        return np.zeros((0, 3, size, size), np.float32)
    x0, y0 = int(np.floor(box[0])) - 1, int(np.floor(box[1])) - 1
    x1, y1 = int(np.ceil(box[2])) + 1, int(np.ceil(box[3])) + 1
    ix0, iy0, ix1, iy1 = max(x0, 0), max(y0, 0), min(x1, width), min(y1, height)
    local = cv2.copyMakeBorder(to_network_image(image_bgr[iy0:iy1, ix0:ix1]), iy0 - y0, y1 - iy1, ix0 - x0, x1 - ix1,
                               cv2.BORDER_CONSTANT, value=(0, 0, 0))
    origin = np.array([x0, y0, x0, y0])
    windows = clipped - origin
    if box[0] < 0 or box[1] < 0 or box[2] > width or box[3] > height:  # cut: the whole box too
        windows = np.concatenate([windows, crop_windows(boxes - origin, x1 - x0, y1 - y0)[0]])
    return to_nchw(area_resize(integral_image(local), windows, size, size))


def refine_faces(onet: InferenceSession, image_bgr: np.ndarray, boxes: np.ndarray,
                 threshold: float) -> list[Detection | None]:
    """Each known box (N, 4) re-found by O-Net alone, or None where O-Net sees no face there.

    For video: a face tracked from the last frame has hardly moved, so the last stage, run on
    the square around where it should be, finds it again with its landmarks, all faces in one
    small batch, skipping P-Net's pyramid and R-Net. (Trying more squares per face, shifted or
    scaled, found no more faces on the bench clip and cost O-Net time.) A face whose box would
    grow or shrink by more than REFINE_MAX_GROWTH is not taken: it is not a frame-to-frame change.
    """
    boxes = np.asarray(boxes, dtype=np.float32).reshape(-1, 4)
    candidates = square(boxes)
    result: list[Detection | None] = [None] * len(boxes)
    batches = [_crops_near(image_bgr, candidate, ONET_SIZE) for candidate in candidates]
    owner = np.repeat(np.arange(len(boxes)), [len(b) for b in batches])  # which box each crop is of
    if len(owner) == 0:
        return result
    found, landmarks = onet_outputs(onet, candidates[owner], np.concatenate(batches))
    # Regression on a squeezed edge crop can overshoot, and would compound frame after frame.
    growth = np.sqrt(_areas(found) / np.maximum(_areas(boxes)[owner], 1e-6))
    plausible = (found[:, 4] > threshold) & (growth < REFINE_MAX_GROWTH) & (growth > 1 / REFINE_MAX_GROWTH)
    for i in range(len(boxes)):
        hits = np.flatnonzero((owner == i) & plausible)
        if len(hits):
            best = hits[np.argmax(found[hits, 4])]
            result[i] = Detection(box=found[best, :4].copy(), score=float(found[best, 4]), landmarks=landmarks[best].copy())
    return result


def detect_faces(sessions: tuple[InferenceSession, InferenceSession, InferenceSession],
                 image_bgr: np.ndarray, config: DetectorConfig) -> list[Detection]:
    """The whole cascade on one BGR image; detections best score first."""
    pnet, rnet, onet = sessions
    height, width = image_bgr.shape[:2]
    scales = pyramid_scales(height, width, config.min_face_size, config.scale_factor)
    if not scales:
        return []  # the image is smaller than the smallest face looked for
    table = integral_image(to_network_image(image_bgr))
    t1, t2, t3 = config.thresholds
    boxes = run_pnet(pnet, table, scales, t1)
    if len(boxes):
        boxes = run_rnet(rnet, table, boxes, t2)
    if len(boxes) == 0:
        return []
    boxes, landmarks = run_onet(onet, table, boxes, t3)
    order = np.argsort(-boxes[:, 4], kind="stable")
    return [Detection(box=boxes[i, :4].copy(), score=float(boxes[i, 4]), landmarks=landmarks[i].copy()) for i in order]


def add_small_faces(found: list[Detection], deeper: list[Detection], max_side: float,
                    max_overlap: float = PHOTO_SMALL_OVERLAP) -> list[Detection]:
    """`found` plus the detections of `deeper` whose shorter side is below `max_side` and that
    overlap no box of `found` by more than `max_overlap` of their own area; best score first."""
    if not deeper:
        return found
    boxes = np.array([d.box for d in deeper], np.float32).reshape(-1, 4)
    sides = np.minimum(boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1])
    keep = sides < max_side
    if found and keep.any():
        kept = np.array([d.box for d in found], np.float32).reshape(-1, 4)
        x1 = np.maximum(boxes[:, None, 0], kept[None, :, 0])
        y1 = np.maximum(boxes[:, None, 1], kept[None, :, 1])
        x2 = np.minimum(boxes[:, None, 2], kept[None, :, 2])
        y2 = np.minimum(boxes[:, None, 3], kept[None, :, 3])
        inter = np.clip(x2 - x1, 0, None) * np.clip(y2 - y1, 0, None)
        own = np.maximum(_areas(boxes), 1e-6)[:, None]
        keep &= (inter / own).max(axis=1) <= max_overlap
    merged = found + [d for d, k in zip(deeper, keep) if k]
    return sorted(merged, key=lambda d: -d.score)


# --------------------------------------------------------------------------- the detector


class MTCNN:
    """The face detector: three onnxruntime sessions and a config the GUI may swap at any time.

    `detect` reads `config` once per call, so changing it from another thread between frames is
    safe; `with_config` gives a second detector sharing the same sessions.
    """

    STAGES = ("pnet", "rnet", "onet")

    def __init__(self, model_dir: str | Path | None = None, config: DetectorConfig = DetectorConfig()) -> None:
        self.model_dir = Path(model_dir) if model_dir is not None else default_detector_dir()
        self._sessions = tuple(self._load(stage) for stage in self.STAGES)
        self.config = config
        log.info("MTCNN from %s, %s", self.model_dir, config)

    @classmethod
    def _from_sessions(cls, model_dir: Path, sessions: tuple[InferenceSession, ...], config: DetectorConfig) -> MTCNN:
        detector = cls.__new__(cls)
        detector.model_dir = model_dir
        detector._sessions = sessions
        detector.config = config
        return detector

    def _load(self, stage: str) -> InferenceSession:
        path = self.model_dir / f"{stage}.onnx"
        try:
            data = path.read_bytes()
        except OSError as exc:
            raise DetectorLoadError(
                f"cannot read {path}: {exc.strerror or exc} (regenerate with `mask-train export-detector`)"
            ) from exc
        try:
            session = create_session(data)
        except Exception as exc:  # onnxruntime raises its own exception types
            raise DetectorLoadError(f"{path.name} is not a loadable ONNX model: {exc}") from exc
        check_stage(session, stage, path.name)
        return session

    @property
    def config(self) -> DetectorConfig:
        return self._config

    @config.setter
    def config(self, config: DetectorConfig) -> None:
        if not isinstance(config, DetectorConfig):
            raise TypeError(f"config must be a DetectorConfig, not {type(config).__name__}")
        self._config = config

    def with_config(self, config: DetectorConfig) -> MTCNN:
        """A detector with other settings over the same (already loaded) networks."""
        return self._from_sessions(self.model_dir, self._sessions, config)

    def detect(self, image_bgr: np.ndarray) -> list[Detection]:
        """Faces in a BGR uint8 H×W×3 image (as OpenCV reads it), best score first."""
        return detect_faces(self._sessions, image_bgr, self.config)

    def detect_photo(self, image_bgr: np.ndarray) -> list[Detection]:
        """Faces in a photo (not a video frame), best score first: `detect`'s, plus, in a photo small
        enough that `DetectorConfig.photo_min_face` is below min_face_size, the smaller faces a
        deeper pyramid finds (`add_small_faces`). Searching only deeper would lose some larger
        faces to small boxes inside them; the union keeps every face `detect` finds."""
        config = self.config
        found = detect_faces(self._sessions, image_bgr, config)
        smallest = config.photo_min_face(*image_bgr.shape[:2])
        if smallest >= config.min_face_size:
            return found
        deeper = detect_faces(self._sessions, image_bgr, replace(config, min_face_size=smallest))
        return add_small_faces(found, deeper, config.min_face_size)

    def refine(self, image_bgr: np.ndarray, boxes: np.ndarray) -> list[Detection | None]:
        """Known boxes (a tracker's) re-found by O-Net alone; None where there is no face now."""
        return refine_faces(self._sessions[2], image_bgr, boxes, self.config.thresholds[2])

    def detect_in_region(self, image_bgr: np.ndarray, region: tuple[int, int, int, int], scale: float = 1.0,
                         min_face_size: float | None = None) -> list[Detection]:
        """Faces inside `region` (x0, y0, x1, y1 px, clipped to the image), in image pixels.

        How a tracker re-finds a face it knows is near for a fraction of a full search: the
        region is resized by `scale` (< 1 shrinks a large face towards the nets' own sizes) and
        searched from `min_face_size` (px after scaling; default the config's), so the pyramid is
        a few small levels. The cascade is the same as `detect`'s; only its input is smaller.
        """
        height, width = image_bgr.shape[:2]
        x0, y0 = max(0, int(region[0])), max(0, int(region[1]))
        x1, y1 = min(width, int(region[2])), min(height, int(region[3]))
        if x1 - x0 < PNET_CELL or y1 - y0 < PNET_CELL:
            return []
        crop = image_bgr[y0:y1, x0:x1]
        if scale != 1.0:
            size = (max(1, round((x1 - x0) * scale)), max(1, round((y1 - y0) * scale)))
            crop = cv2.resize(crop, size, interpolation=cv2.INTER_AREA)
        config = self.config
        if min_face_size is not None:
            config = replace(config, min_face_size=max(PNET_CELL, int(min_face_size)))
        sx, sy = (x1 - x0) / crop.shape[1], (y1 - y0) / crop.shape[0]
        factor = np.array([sx, sy, sx, sy], np.float32)
        offset = np.array([x0, y0, x0, y0], np.float32)
        return [
            Detection(box=d.box * factor + offset, score=d.score, landmarks=d.landmarks * factor[:2] + offset[:2])
            for d in detect_faces(self._sessions, crop, config)
        ]
