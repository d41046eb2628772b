"""Saving the annotated frame, only when the user asks: optionally with faces blurred, atomically."""
from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path

import cv2
import numpy as np
from PySide6.QtGui import QImage, QPainter

from app.overlay import bgr_to_qimage, paint_faces
from core.analyzer import Face
from core.atomic import atomic_path

log = logging.getLogger(__name__)


class SnapshotError(OSError):
    """The snapshot could not be written; the message says where and why."""


def blur_faces(image: np.ndarray, faces: Sequence[Face]) -> np.ndarray:
    """A copy with every face box (grown a little) heavily blurred, for sharing without identities."""
    out = image.copy()
    height, width = out.shape[:2]
    for face in faces:
        x1, y1, x2, y2 = (float(v) for v in face.box)
        pad_x, pad_y = 0.1 * (x2 - x1), 0.1 * (y2 - y1)
        x1, y1 = max(0, int(x1 - pad_x)), max(0, int(y1 - pad_y))
        x2, y2 = min(width, int(x2 + pad_x) + 1), min(height, int(y2 + pad_y) + 1)
        if x2 <= x1 or y2 <= y1:
            continue
        region = out[y1:y2, x1:x2]
        k = max(3, (max(x2 - x1, y2 - y1) // 3) | 1)  # odd kernel, a third of the face
        out[y1:y2, x1:x2] = cv2.GaussianBlur(region, (k, k), 0)
    return out


def render_annotated(image: np.ndarray, faces: Sequence[Face], blur: bool = False, min_confidence: float = 0.0) -> QImage:
    """The frame at full size with the same overlay the view shows (unsure guesses as "?")."""
    picture = bgr_to_qimage(blur_faces(image, faces) if blur else image)
    painter = QPainter(picture)
    paint_faces(painter, faces, font_px=max(12.0, min(picture.width(), picture.height()) / 40), min_confidence=min_confidence)
    painter.end()
    return picture


def snapshot_name(now: datetime | None = None) -> str:
    return f"mask-checker-{(now or datetime.now()).strftime('%Y%m%d-%H%M%S-%f')[:-3]}.png"


def save_snapshot(image: np.ndarray, faces: Sequence[Face], folder: Path, blur: bool = False,
                  min_confidence: float = 0.0) -> Path:
    """Write the annotated frame as PNG into `folder`; a reader never sees a half-written file."""
    target = Path(folder) / snapshot_name()
    picture = render_annotated(image, faces, blur, min_confidence)
    try:
        with atomic_path(target) as tmp:
            if not picture.save(str(tmp), "PNG"):
                raise SnapshotError(f"could not write {target}")
    except SnapshotError:
        raise
    except OSError as exc:
        raise SnapshotError(f"could not write {target}: {exc.strerror or exc}") from exc
    log.info("snapshot saved to %s", target)
    return target
