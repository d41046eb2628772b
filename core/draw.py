"""Drawing results on an image, kept apart from analysis (like insightface's draw_on)."""
from __future__ import annotations

from collections.abc import Sequence

import cv2
import numpy as np

from core.analyzer import Face
from core.labels import Gender, Mask, age_group_texts

#: Box colours (BGR) by mask state: green wear, amber incorrect, red none; blue when unclassified.
MASK_COLOURS: dict[Mask | None, tuple[int, int, int]] = {
    Mask.WEAR: (60, 180, 40),
    Mask.INCORRECT: (0, 170, 255),
    Mask.NOT_WEAR: (40, 40, 230),
    None: (200, 140, 0),
}
MASK_TEXT = {Mask.WEAR: "Mask ok", Mask.INCORRECT: "Mask wrong", Mask.NOT_WEAR: "No mask"}
GENDER_TEXT = {Gender.MALE: "M", Gender.FEMALE: "F"}


def face_label(face: Face) -> str:
    """Short ASCII caption, e.g. "Mask ok | F | 30-59 (0.93)" (OpenCV fonts have no ✓ or –)."""
    if face.mask is None or face.gender is None or face.age is None:
        return f"face ({face.det_score:.2f})"
    age = age_group_texts(face.age_boundary)[face.age.label].replace("\u2013", "-")  # OpenCV's fonts lack the en dash
    return f"{MASK_TEXT[face.mask.label]} | {GENDER_TEXT[face.gender.label]} | {age} ({face.mask.confidence:.2f})"


def draw_faces(image_bgr: np.ndarray, faces: Sequence[Face]) -> np.ndarray:
    """A copy of the image with a coloured box and a caption per face."""
    canvas = image_bgr.copy()
    scale = max(0.4, min(canvas.shape[:2]) / 900.0)
    thickness = max(1, round(scale * 2))
    for face in faces:
        colour = MASK_COLOURS[face.mask.label if face.mask is not None else None]
        x1, y1, x2, y2 = (int(round(v)) for v in face.box)
        cv2.rectangle(canvas, (x1, y1), (x2, y2), colour, thickness, cv2.LINE_AA)
        text = face_label(face)
        (tw, th), base = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, scale, 1)
        ty = y1 - 4 if y1 - th - base - 4 >= 0 else y2 + th + 4
        cv2.rectangle(canvas, (x1, ty - th - base), (x1 + tw + 4, ty + base), colour, cv2.FILLED)
        cv2.putText(canvas, text, (x1 + 2, ty), cv2.FONT_HERSHEY_SIMPLEX, scale, (255, 255, 255), 1, cv2.LINE_AA)
    return canvas
