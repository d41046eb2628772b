"""Masked faces for the detector fine-tune, in context: real photos with known face boxes.

- `dressed_scenes`: face_mask_853's training scenes with synthetic masks (training.synth.dress)
  drawn on their labelled bare faces, where they stand;
- `letterbox` + `dressed_web`: mask_web's without_mask photos (the training part: `web_heldout`
  False), letterboxed into a larger frame like a close-up camera picture, their faces dressed;
- `pseudo_labelled_web`: mask_web's with_mask photos (training part), letterboxed; their box is
  unknown, so it is pseudo-labelled with the reference detector at loose thresholds (0.4/0.5/0.5)
  and only photos with exactly one box, scored >= PSEUDO_MIN_SCORE, are kept (no landmarks:
  stock's landmarks on a masked face are guesses).
Boxes and landmarks of dressed faces are the reference detector's on the bare face: MTCNN's box
style, as for the UTKFace synth faces.
"""
from __future__ import annotations

import logging
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from core.config import DetectorConfig
from core.imageio import ImageReadError, load_image
from core.labels import Mask
from core.mtcnn import MTCNN
from training.detector.evaluate import match_pairs
from training.detector.scenes import Scene, web_heldout
from training.synth.dress import choose_dressing, dress_face

log = logging.getLogger(__name__)

FRAME = (640, 480)  # width, height of the letterboxed frame
PSEUDO_THRESHOLDS = (0.4, 0.5, 0.5)
PSEUDO_MIN_SCORE = 0.8
DRESS_MIN_SCORE = 0.9  # a bare face is dressed only when the reference detector is this sure of it
IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".webp"}


@dataclass(frozen=True, eq=False)
class FaceSample:
    """One picture for the crops: faces to learn (MTCNN-style boxes, landmarks or None, bare or
    not) and other face boxes no negative may overlap."""

    image: np.ndarray
    boxes: np.ndarray  # (N, 4)
    landmarks: list[np.ndarray | None]
    bare: list[bool]
    others: np.ndarray  # (M, 4)
    source: str


def web_photos(data_dir: Path, folder: str) -> list[Path]:
    """mask_web/<folder>'s photos of the training part (never the close-up check's)."""
    root = Path(data_dir) / "mask_web" / folder
    paths = sorted(p for p in root.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES) if root.is_dir() else []
    return [p for p in paths if not web_heldout(p)]


def letterbox(image: np.ndarray, rng: np.random.Generator, frame: tuple[int, int] = FRAME) -> np.ndarray:
    """The photo scaled to fill 55-100 % of a frame's height or width, at a random place in it, on
    black, grey or a blurred stretch of itself."""
    width, height = frame
    h, w = image.shape[:2]
    scale = min(width / w, height / h) * rng.uniform(0.55, 1.0)
    nw, nh = max(1, int(round(w * scale))), max(1, int(round(h * scale)))
    kind = int(rng.integers(3))
    if kind == 0:
        canvas = np.zeros((height, width, 3), np.uint8)
    elif kind == 1:
        canvas = np.full((height, width, 3), int(rng.integers(60, 200)), np.uint8)
    else:
        canvas = cv2.GaussianBlur(cv2.resize(image, (width, height), interpolation=cv2.INTER_LINEAR), (0, 0), 25)
    x, y = int(rng.integers(0, width - nw + 1)), int(rng.integers(0, height - nh + 1))
    canvas[y:y + nh, x:x + nw] = cv2.resize(image, (nw, nh), interpolation=cv2.INTER_LINEAR if scale > 1 else cv2.INTER_AREA)
    return canvas


def _dress_all(image: np.ndarray, faces: Sequence, others: np.ndarray, rng: np.random.Generator,
               source: str) -> FaceSample | None:
    """Every face in `faces` (Detections) dressed on its own; None when none could be."""
    out, boxes, marks, bare = image, [], [], []
    for face in faces:
        dressing = choose_dressing(rng)
        try:
            out = dress_face(out, face.landmarks, face.box, dressing, rng)
        except ValueError:
            others = np.concatenate([others, face.box[None]])
            continue
        boxes.append(face.box)
        marks.append(face.landmarks)
        bare.append(dressing.bare)
    if not boxes:
        return None
    return FaceSample(out, np.array(boxes, np.float32), marks, bare, others.astype(np.float32).reshape(-1, 4), source)


def dressed_scenes(scenes: Sequence[Scene], detector: MTCNN, variants: int, rng: np.random.Generator,
                   mapped: Sequence[np.ndarray]) -> Iterator[FaceSample]:
    """`variants` dressed copies of each training scene with a labelled bare face the reference
    detector finds (IoU >= 0.4 with its box, score >= DRESS_MIN_SCORE). `mapped`: each scene's
    labelled boxes in MTCNN's style (the other faces: no negative may land on them)."""
    for scene, style_boxes in zip(scenes, mapped):
        bare_idx = [i for i, s in enumerate(scene.states) if s is Mask.NOT_WEAR]
        if not bare_idx:
            continue
        try:
            image = load_image(scene.path).image
        except ImageReadError:
            continue
        found = [d for d in detector.detect(image) if d.score >= DRESS_MIN_SCORE]
        if not found:
            continue
        pairs = match_pairs(scene.boxes[bare_idx], np.array([d.box for d in found]).reshape(-1, 4))
        faces = [found[j] for _, j, _ in pairs]
        taken = {bare_idx[i] for i, _, _ in pairs}
        others = np.concatenate([np.delete(style_boxes, sorted(taken), axis=0), np.delete(scene.boxes, sorted(taken), axis=0)])
        for _ in range(variants if faces else 0):
            sample = _dress_all(image, faces, others, rng, "scene")
            if sample is not None:
                yield sample


def _letterboxed(paths: Sequence[Path], rng: np.random.Generator) -> Iterator[np.ndarray]:
    """Each readable photo letterboxed into the detector's frame (unreadable ones are skipped)."""
    for path in paths:
        try:
            yield letterbox(load_image(path).image, rng)
        except ImageReadError:
            continue


def dressed_web(paths: Sequence[Path], detector: MTCNN, rng: np.random.Generator) -> Iterator[FaceSample]:
    """mask_web without_mask photos, letterboxed, every face found at DRESS_MIN_SCORE dressed."""
    for framed in _letterboxed(paths, rng):
        found = detector.detect(framed)
        sure = [d for d in found if d.score >= DRESS_MIN_SCORE]
        unsure = np.array([d.box for d in found if d.score < DRESS_MIN_SCORE], np.float32).reshape(-1, 4)
        sample = _dress_all(framed, sure, unsure, rng, "web_bare") if sure else None
        if sample is not None:
            yield sample


def pseudo_labelled_web(paths: Sequence[Path], detector: MTCNN, rng: np.random.Generator) -> Iterator[FaceSample]:
    """mask_web with_mask photos, letterboxed, kept when the reference detector at loose
    thresholds finds exactly one face, scored >= PSEUDO_MIN_SCORE: that box is the label."""
    loose = detector.with_config(DetectorConfig(min_face_size=detector.config.min_face_size, thresholds=PSEUDO_THRESHOLDS))
    for framed in _letterboxed(paths, rng):
        found = loose.detect(framed)
        if len(found) == 1 and found[0].score >= PSEUDO_MIN_SCORE:
            yield FaceSample(framed, found[0].box[None].astype(np.float32), [None], [False], np.zeros((0, 4), np.float32), "web_masked")
