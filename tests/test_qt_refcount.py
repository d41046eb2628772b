"""The GUI toolkit must not leak references to None.

PySide6-Essentials 6.12.0 on Python < 3.12 drops one reference to None on every binding call that
returns nothing (QPainter.save/restore/fillRect, QFont.setBold, ...). The live view paints about 30
times a second, so None's count falls by hundreds a second until None is freed and the process dies
with "none_dealloc: deallocating None" after ~20 s. Python 3.12+ has an immortal None, so the count
cannot be watched there and the test is moot.

The loop stops as soon as the count falls, so a leaking build fails the test without crashing it.
"""
from __future__ import annotations

import sys

import pytest
from PySide6.QtCore import QPointF
from PySide6.QtGui import QColor, QImage, QPainter

from core.imageio import load_image

pytestmark = pytest.mark.skipif(sys.version_info >= (3, 12), reason="None is immortal on Python 3.12+")

#: Paints of the real overlay; the live view does ~1,800 a minute.
PAINTS = 3000
#: Checked after every this many paints: a leaking build loses ~10 references per face per paint.
CHUNK = 100


@pytest.fixture(scope="module")
def real_faces(samples_dir):
    """Faces the shipped models find and label on a real photo (several faces, all three heads)."""
    from core.analyzer import FaceAnalyzer

    image = load_image(samples_dir / "scene_mixed.jpg").image
    faces = FaceAnalyzer.with_default_models().analyze(image)
    assert len(faces) >= 2 and all(f.mask is not None for f in faces)
    return image, faces


def none_count_drift(paint, paints: int = PAINTS) -> int:
    """How far sys.getrefcount(None) fell over `paints` calls (stops early once it falls)."""
    paint()  # first call: caches, fonts, lazily created objects
    before = sys.getrefcount(None)
    done = 0
    while done < paints:
        for _ in range(CHUNK):
            paint()
        done += CHUNK
        if before - sys.getrefcount(None) > 5 * CHUNK:
            break  # leaking: stop long before None could reach zero
    return before - sys.getrefcount(None)


def test_painting_the_overlay_keeps_none_alive(qapp, real_faces):
    from app.overlay import paint_faces

    image, faces = real_faces
    canvas = QImage(image.shape[1], image.shape[0], QImage.Format.Format_RGB32)

    def paint() -> None:
        painter = QPainter(canvas)
        try:
            painter.fillRect(canvas.rect(), QColor(0, 0, 0))
            paint_faces(painter, faces, scale=1.0, offset=QPointF(0, 0), emphasised={0})
        finally:
            painter.end()

    drift = none_count_drift(paint)
    from PySide6 import __version__ as pyside_version

    assert drift < 50, (
        f"sys.getrefcount(None) fell by {drift} over the overlay paints: PySide6 {pyside_version} "
        "leaks references to None (6.12.0 on Python 3.11 does); the live view would crash within a minute"
    )


def test_the_frame_view_paints_without_leaking(qapp, real_faces):
    """The widget the live view repaints every frame: HUD, message and banner included."""
    from app.frame_view import FrameView

    image, faces = real_faces
    view = FrameView()
    view.resize(640, 480)
    view.set_frame(image, faces, emphasised={0})
    view.set_hud("12.0 fps")
    view.set_banner("No mask: #1")
    view.set_message("Paused")
    target = QImage(640, 480, QImage.Format.Format_RGB32)
    drift = none_count_drift(lambda: view.render(target), paints=1000)
    assert drift < 50, f"sys.getrefcount(None) fell by {drift} over 1000 repaints of the frame view"
