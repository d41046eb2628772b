"""Face boxes and captions drawn with QPainter: one drawing routine for the live view, the batch
preview and snapshots. Qt's fonts render ✓ and – that core/draw.py's OpenCV fonts cannot."""
from __future__ import annotations

from collections.abc import Collection, Sequence

import numpy as np
from PySide6.QtCore import QPointF, QRectF, Qt
from PySide6.QtGui import QColor, QFont, QFontMetricsF, QImage, QPainter, QPen

from core.analyzer import Face
from core.draw import MASK_COLOURS
from core.labels import Gender, Mask, age_group_texts
from core.live import TrackedFace

MASK_TEXT = {Mask.WEAR: "Mask ✓", Mask.INCORRECT: "Mask wrong", Mask.NOT_WEAR: "No mask"}
GENDER_TEXT = {Gender.MALE: "M", Gender.FEMALE: "F"}


def mask_colour(mask: Mask | None) -> QColor:
    """core/draw.py's colours (stored BGR) as a QColor."""
    b, g, r = MASK_COLOURS[mask]
    return QColor(r, g, b)


#: Shown for a gender or age the classifier is not sure of (below the Settings threshold).
UNSURE = "?"


def gender_text(face: Face, min_confidence: float = 0.0) -> str:
    """"M" / "F", or "?" when the classifier's confidence is below `min_confidence` ("" without a verdict)."""
    if face.gender is None:
        return ""
    return GENDER_TEXT[face.gender.label] if face.gender.confidence >= min_confidence else UNSURE


def age_text(face: Face, min_confidence: float = 0.0) -> str:
    if face.age is None:
        return ""
    return age_group_texts(face.age_boundary)[face.age.label] if face.age.confidence >= min_confidence else UNSURE


def face_caption(face: Face, min_confidence: float = 0.0) -> str:
    """e.g. "Mask ✓ · F · 30–59 (0.93)"; "face (0.99)" when no classifier is loaded. A tracked
    face (live view) starts with its track id, e.g. "#3 Mask ✓ · …", and its labels are smoothed.
    A gender or age guessed with less than `min_confidence` reads "?" rather than a fact."""
    prefix = f"#{face.track_id} " if isinstance(face, TrackedFace) else ""
    if face.mask is None or face.gender is None or face.age is None:
        return f"{prefix}face ({face.det_score:.2f})"
    return (
        f"{prefix}{MASK_TEXT[face.mask.label]} · {gender_text(face, min_confidence)} · "
        f"{age_text(face, min_confidence)} ({face.mask.confidence:.2f})"
    )


def bgr_to_qimage(image: np.ndarray) -> QImage:
    """A QImage that owns a copy of the pixels (so the array may go away afterwards)."""
    image = np.ascontiguousarray(image)
    height, width = image.shape[:2]
    return QImage(image.data, width, height, image.strides[0], QImage.Format.Format_BGR888).copy()


def paint_faces(
    painter: QPainter,
    faces: Sequence[Face],
    scale: float = 1.0,
    offset: QPointF = QPointF(0, 0),
    emphasised: Collection[int] = (),
    font_px: float = 13.0,
    top_limit: float = 0.0,
    min_confidence: float = 0.0,
) -> None:
    """Boxes and captions for `faces` given in image pixels; the view maps them with scale/offset.

    Faces in `emphasised` (alerting, or the selected row) get a thicker box. Captions keep a
    fixed on-screen size whatever the zoom, and flip below the box where they would rise above
    `top_limit` (the picture's top edge).
    """
    painter.save()
    painter.setRenderHint(QPainter.RenderHint.Antialiasing, True)
    font = QFont(painter.font())
    font.setPixelSize(max(8, round(font_px)))
    painter.setFont(font)
    metrics = QFontMetricsF(font)
    for index, face in enumerate(faces):
        colour = mask_colour(face.mask.label if face.mask is not None else None)
        x1, y1, x2, y2 = (float(v) for v in face.box)
        box = QRectF(offset.x() + x1 * scale, offset.y() + y1 * scale, (x2 - x1) * scale, (y2 - y1) * scale)
        pen = QPen(colour, 4.0 if index in emphasised else 2.0)
        pen.setJoinStyle(Qt.PenJoinStyle.MiterJoin)
        painter.setPen(pen)
        painter.setBrush(Qt.BrushStyle.NoBrush)
        painter.drawRect(box)
        text = face_caption(face, min_confidence)
        width = metrics.horizontalAdvance(text) + 8
        height = metrics.height() + 4
        top = box.top() - height if box.top() - height >= top_limit else box.bottom()
        label = QRectF(box.left(), top, width, height)
        painter.fillRect(label, colour)
        painter.setPen(QColor(255, 255, 255))
        painter.drawText(label, Qt.AlignmentFlag.AlignCenter, text)
    painter.restore()
