"""The face crop and the classifier's input preprocessing.

Training caches crops made by `crop_face` and feeds the network through `to_input`; the runtime
calls the same two functions, so what the model sees in the app is what it saw in training.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import cv2
import numpy as np


@dataclass(frozen=True)
class CropSpec:
    """How faces are cut for a classifier: `size` px at `margin`, with a narrower crop (size,
    margin) nested in its centre or None. A file's metadata and a training cache each name one;
    a file is scored only on a cache whose spec equals its own."""

    size: int
    margin: float
    inner: tuple[int, float] | None = None

    def cut(self, image: np.ndarray, box: Sequence[float]) -> np.ndarray:
        return crop_face(image, box, self.margin, self.size, self.inner)

    def cut_all(self, image: np.ndarray, boxes: Sequence[Sequence[float]]) -> np.ndarray:
        """Every face of one image cut alike, N×S×S×3: a classifier's batch."""
        return np.stack([self.cut(image, box) for box in boxes])

    def __str__(self) -> str:
        nested = "" if self.inner is None else f" around {self.inner[0]} px at {self.inner[1]:g}"
        return f"{self.size} px at margin {self.margin:g}{nested}"


def square_box(box: Sequence[float], margin: float) -> np.ndarray:
    """A square around a face box, grown by `margin` × the box's longer side on every side.

    A mask is judged from the nose bridge to the chin, so the crop keeps some context around
    the detector's tight box.
    """
    x1, y1, x2, y2 = (float(v) for v in box[:4])
    side = max(x2 - x1, y2 - y1) * (1.0 + 2.0 * margin)
    cx, cy = (x1 + x2) / 2.0, (y1 + y2) / 2.0
    half = side / 2.0
    return np.array([cx - half, cy - half, cx + half, cy + half], dtype=np.float32)


def centre_square(size: int, margin: float, inner_margin: float) -> tuple[int, int]:
    """(offset, side) of the square a crop at `inner_margin` covers inside a crop of `size` px at
    `margin` (square_box grows the box by 1 + 2·margin), in whole pixels; a square that does not
    fall on whole pixels, centred, or that is larger than the crop is refused (ValueError)."""
    exact = size * (1.0 + 2.0 * inner_margin) / (1.0 + 2.0 * margin)
    side = int(round(exact))
    if abs(exact - side) > 1e-6 or (size - side) % 2 or not 0 < side <= size:
        raise ValueError(f"a crop at margin {inner_margin:g} does not sit on whole pixels in the middle of a {size} px crop at "
                         f"margin {margin:g} (it would cover {exact:.3f} px)")
    return (size - side) // 2, side


def inner_offset(size: int, margin: float, inner_size: int, inner_margin: float) -> int:
    """Where a narrower crop (`inner_size` px at `inner_margin`) sits inside a crop of `size` px at
    `margin` when both have the same pixels per face: its top-left corner, in whole pixels. A pair
    whose inner square does not fall on whole pixels, centred, is refused (ValueError)."""
    offset, side = centre_square(size, margin, inner_margin)
    if side != inner_size or side == size:
        raise ValueError(f"a {inner_size} px crop at margin {inner_margin:g} does not sit on whole pixels in the middle of a {size} px "
                         f"crop at margin {margin:g} as a narrower crop (that margin covers {side} px there)")
    return offset


def crop_face(image: np.ndarray, box: Sequence[float], margin: float, size: int,
              inner: tuple[int, float] | None = None) -> np.ndarray:
    """The square face crop, `size`×`size`, same channel order as `image` (BGR in core).

    Parts of the square outside the image are filled with black, so a face at the frame's edge
    keeps its position and scale in the crop. `inner` = (size, margin) of a narrower crop at the
    same pixel scale (a nested crop): that crop, cut on its own, is pasted over the centre, so
    networks trained on it see it to the bit inside a wider crop (an ensemble of networks trained
    on two crop margins; core.metadata `inner_crop`).
    """
    crop = _square_crop(image, box, margin, size)
    if inner is not None:
        inner_size, inner_margin = inner
        at = inner_offset(size, margin, inner_size, inner_margin)
        crop[at : at + inner_size, at : at + inner_size] = _square_crop(image, box, inner_margin, inner_size)
    return crop


def _square_crop(image: np.ndarray, box: Sequence[float], margin: float, size: int) -> np.ndarray:
    if size <= 0:
        raise ValueError("crop size must be positive")
    h, w = image.shape[:2]
    x1, y1, x2, y2 = np.round(square_box(box, margin)).astype(int)
    side = max(1, x2 - x1, y2 - y1)
    x2, y2 = x1 + side, y1 + side
    pad_left, pad_top = max(0, -x1), max(0, -y1)
    pad_right, pad_bottom = max(0, x2 - w), max(0, y2 - h)
    patch = image[max(0, y1):min(h, y2), max(0, x1):min(w, x2)]
    if patch.size == 0:
        patch = np.zeros((side, side, image.shape[2]), dtype=image.dtype)
    elif pad_left or pad_top or pad_right or pad_bottom:
        patch = cv2.copyMakeBorder(patch, pad_top, pad_bottom, pad_left, pad_right, cv2.BORDER_CONSTANT, value=0)
    interpolation = cv2.INTER_AREA if side > size else cv2.INTER_LINEAR
    return cv2.resize(patch, (size, size), interpolation=interpolation)


def to_input(crops_bgr: np.ndarray, mean: Sequence[float], std: Sequence[float]) -> np.ndarray:
    """Stacked BGR uint8 crops (N×H×W×3) → the network's float32 N×3×H×W RGB input.

    mean and std are per RGB channel on the 0–1 scale (timm's convention).
    """
    if crops_bgr.ndim == 3:
        crops_bgr = crops_bgr[None]
    rgb = crops_bgr[..., ::-1].astype(np.float32) / 255.0
    rgb = (rgb - np.asarray(mean, dtype=np.float32)) / np.asarray(std, dtype=np.float32)
    return np.ascontiguousarray(rgb.transpose(0, 3, 1, 2))
