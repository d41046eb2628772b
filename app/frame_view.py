"""A widget that shows one picture, letterboxed, with the face overlay, a HUD line and a message.

Texts never sit on the picture's middle (where faces are): the alert banner is a bar above the
picture (the picture is laid out below it, so it covers no box or caption), the message a box
in the top-left corner and the HUD one in the bottom-left corner."""
from __future__ import annotations

from collections.abc import Collection, Sequence

import numpy as np
from PySide6.QtCore import QPointF, QRectF, QSize, Qt
from PySide6.QtGui import QColor, QFontMetricsF, QImage, QPainter, QPaintEvent
from PySide6.QtWidgets import QSizePolicy, QWidget

from app.overlay import bgr_to_qimage, paint_faces
from core.analyzer import Face


class FrameView(QWidget):
    """Paints the current frame and its faces; only the UI thread calls it (via slots)."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Expanding)
        self.setMinimumSize(320, 240)
        self.setAttribute(Qt.WidgetAttribute.WA_OpaquePaintEvent, True)
        self.image: QImage | None = None
        self.faces: list[Face] = []
        self.emphasised: frozenset[int] = frozenset()
        self.hud = ""
        self.message = ""
        self.banner = ""  # an alert, in a bar above the picture
        self.min_confidence = 0.0  # gender and age below this read "?" (Settings)

    def sizeHint(self) -> QSize:
        return QSize(800, 600)

    def set_frame(self, image: np.ndarray, faces: Sequence[Face], emphasised: Collection[int] = ()) -> None:
        self.image = bgr_to_qimage(image)
        self.faces = list(faces)
        self.emphasised = frozenset(emphasised)
        self.update()

    def set_hud(self, text: str) -> None:
        self.hud = text
        self.update()

    def set_message(self, text: str) -> None:
        self.message = text
        self.update()

    def set_min_confidence(self, value: float) -> None:
        self.min_confidence = value
        self.update()

    def set_banner(self, text: str) -> None:
        self.banner = text
        self.update()

    def clear(self) -> None:
        self.image = None
        self.faces = []
        self.emphasised = frozenset()
        self.hud = ""
        self.update()

    def banner_height(self) -> float:
        """The bar the banner takes at the top (0 without a banner)."""
        if not self.banner:
            return 0.0
        font = self.font()
        font.setBold(True)
        font.setPixelSize(self._banner_px())
        return float(QFontMetricsF(font).height() + 16)

    def _banner_px(self) -> int:
        return max(14, min(24, self.height() // 24))

    def image_rect(self) -> QRectF:
        """Where the picture lands in the widget (aspect kept, centred below the banner's bar)."""
        if self.image is None or self.image.isNull():
            return QRectF()
        top = self.banner_height()
        iw, ih = self.image.width(), self.image.height()
        scale = min(self.width() / iw, (self.height() - top) / ih)
        w, h = iw * scale, ih * scale
        return QRectF((self.width() - w) / 2, top + (self.height() - top - h) / 2, w, h)

    def map_from_image(self, x: float, y: float) -> QPointF:
        """Widget coordinates of an image pixel (for tests and hit-testing)."""
        rect = self.image_rect()
        scale = rect.width() / self.image.width() if self.image is not None else 1.0
        return QPointF(rect.left() + x * scale, rect.top() + y * scale)

    def paintEvent(self, event: QPaintEvent) -> None:
        painter = QPainter(self)
        painter.fillRect(self.rect(), QColor(24, 24, 24))
        if self.image is not None and not self.image.isNull():
            rect = self.image_rect()
            painter.setRenderHint(QPainter.RenderHint.SmoothPixmapTransform, True)
            painter.drawImage(rect, self.image)
            scale = rect.width() / self.image.width()
            painter.setClipRect(rect)  # captions stay on the picture, off the banner's bar
            paint_faces(painter, self.faces, scale, rect.topLeft(), self.emphasised, top_limit=rect.top(),
                        min_confidence=self.min_confidence)
            painter.setClipping(False)
        if self.banner:
            self._banner(painter)
        if self.hud:
            self._text_box(painter, self.hud, Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignBottom)
        if self.message:
            self._text_box(painter, self.message, Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignTop)
        painter.end()

    def _banner(self, painter: QPainter) -> None:
        painter.save()
        font = painter.font()
        font.setBold(True)
        font.setPixelSize(self._banner_px())
        painter.setFont(font)
        box = QRectF(0, 0, self.width(), self.banner_height())
        painter.fillRect(box, QColor(217, 52, 43, 230))
        painter.setPen(QColor(255, 255, 255))
        painter.drawText(box, Qt.AlignmentFlag.AlignCenter, self.banner)
        painter.restore()

    def _text_box(self, painter: QPainter, text: str, align: Qt.AlignmentFlag) -> None:
        metrics = painter.fontMetrics()
        width = metrics.horizontalAdvance(text) + 16
        height = metrics.height() + 8
        x = 8 if align & Qt.AlignmentFlag.AlignLeft else (self.width() - width) / 2
        if align & Qt.AlignmentFlag.AlignTop:
            y = self.banner_height() + 8
        elif align & Qt.AlignmentFlag.AlignBottom:
            y = self.height() - height - 8
        else:
            y = (self.height() - height) / 2
        box = QRectF(x, y, width, height)
        painter.fillRect(box, QColor(0, 0, 0, 170))
        painter.setPen(QColor(255, 255, 255))
        painter.drawText(box, Qt.AlignmentFlag.AlignCenter, text)
