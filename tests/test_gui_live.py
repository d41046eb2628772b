"""A video made from a real photo plays through the real pipeline: faces reach the overlay and counters."""
from __future__ import annotations

import os

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

import time  # noqa: E402
from dataclasses import replace  # noqa: E402

import cv2  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
from PySide6.QtGui import QColor  # noqa: E402

from app.capture import CaptureState  # noqa: E402
from app.overlay import face_caption, mask_colour  # noqa: E402
from app.sources import Source  # noqa: E402
from core.analyzer import FaceAnalyzer  # noqa: E402
from core.labels import Mask  # noqa: E402
from core.mtcnn import MTCNN  # noqa: E402

WAIT_MS = 120_000


@pytest.fixture
def classified_window(make_window, gui_store, random_classifier):
    """A window whose saved model is the random-weight classifier, so faces get mask verdicts."""
    gui_store.setValue("model/path", str(random_classifier))
    window = make_window()
    assert window.model_info.path == random_classifier
    return window


def _states(window) -> list[tuple[CaptureState, str]]:
    seen: list[tuple[CaptureState, str]] = []
    window.live.stateChanged.connect(lambda state, message: seen.append((state, message)))
    return seen


def _near(colour: QColor, expected: QColor, tolerance: int = 40) -> bool:
    return all(abs(a - b) <= tolerance for a, b in zip(colour.getRgb()[:3], expected.getRgb()[:3]))


def test_video_plays_through_the_pipeline(classified_window, qtbot, scene_video):
    window = classified_window
    states = _states(window)
    results = []
    window.live.frameAnalyzed.connect(results.append)
    window.open_source(Source.file(scene_video))
    view = window.live_panel.view
    assert window.live_panel.stack.currentWidget() is view

    qtbot.waitUntil(lambda: len(view.faces) >= 3, timeout=WAIT_MS)
    qtbot.waitUntil(lambda: bool(states) and states[-1][0] is CaptureState.ENDED, timeout=WAIT_MS)
    assert CaptureState.PLAYING in [s for s, _ in states]

    # Overlay: every face is classified and drawn in its mask colour on the view.
    faces = view.faces
    assert all(face.mask is not None for face in faces)
    picture = view.grab().toImage()
    drawn = 0
    for face in faces:
        x1, y1, x2, y2 = (float(v) for v in face.box)
        point = view.map_from_image(x1, (y1 + y2) / 2)
        expected = mask_colour(face.mask.label)
        around = [picture.pixelColor(round(point.x()) + dx, round(point.y()) + dy) for dx in (-1, 0, 1) for dy in (-1, 0, 1)]
        drawn += any(_near(c, expected) for c in around)
    assert drawn >= len(faces) / 2, f"only {drawn} of {len(faces)} boxes found on screen"
    assert "fps" in view.hud and "ms/frame" in view.hud

    # Counters: faces now, and the people seen since Start by mask state.
    counts = window.live_panel.counts
    assert counts.now == len(faces)
    assert counts.wear + counts.incorrect + counts.none >= 3
    assert window.live_panel.faces_now.text() == f"Faces now: {counts.now}"
    assert window.live_panel.count_labels[Mask.WEAR].text().endswith(f": {counts.wear}")
    assert view.message.endswith("end of video")

    # Tracks: every face carries core's track id, shown first in its caption; on this still
    # scene the ids stay, and the counters count those people, not face-frames.
    distinct = {i for r in results for i in r.notes.track_ids}
    assert all(face_caption(f).startswith(f"#{f.track_id} ") for f in faces)
    assert len(faces) <= len(distinct) <= len(faces) + 2, f"ids churn on a still scene: {sorted(distinct)}"
    assert counts.wear + counts.incorrect + counts.none <= len(distinct)
    assert not window.act_stop.isEnabled()

    # Only confirmed tracks reach the view and the counters: a face is shown from its third
    # analysed frame on, so a detector's one-frame false face never is.
    assert all(f.confirmed for r in results for f in r.faces)
    assert results[0].faces == [] and results[1].faces == []


def test_snapshot_only_when_asked_and_blurred_on_request(classified_window, qtbot, scene_video, tmp_path):
    window = classified_window
    folder = tmp_path / "snapshots"
    window.open_source(Source.file(scene_video))
    qtbot.waitUntil(lambda: window.last_result is not None and len(window.last_result.faces) >= 3, timeout=WAIT_MS)
    window.stop_live()
    assert not folder.exists() or not any(folder.iterdir()), "nothing is written unless asked"

    plain = window.snapshot()
    window.apply_settings(replace(window.settings, blur_snapshots=True))
    blurred = window.snapshot()
    assert plain is not None and blurred is not None and plain != blurred
    assert sorted(p.name for p in folder.iterdir()) == sorted([plain.name, blurred.name])  # no temp files left
    a, b = cv2.imread(str(plain)), cv2.imread(str(blurred))
    frame = window.last_result.image
    assert a.shape == b.shape == frame.shape
    face = max(window.last_result.faces, key=lambda f: f.area)
    x1, y1, x2, y2 = (int(v) for v in face.box)
    cx, cy, r = (x1 + x2) // 2, (y1 + y2) // 2, max(2, (x2 - x1) // 4)
    inner = (slice(cy - r, cy + r), slice(cx - r, cx + r))  # inside the box, clear of its caption
    sharpness = lambda img: cv2.Laplacian(cv2.cvtColor(img[inner], cv2.COLOR_BGR2GRAY), cv2.CV_64F).var()  # noqa: E731
    assert sharpness(b) < 0.5 * sharpness(a)


class SlowDetector(MTCNN):
    """The real detector, made slower than the video so frames must be dropped. The live pipeline
    calls one of these two on every frame: `detect` (full frames) or `refine` (tracked faces)."""

    delay_s = 0.25

    def detect(self, image_bgr):
        time.sleep(self.delay_s)
        return super().detect(image_bgr)

    def refine(self, image_bgr, boxes):
        time.sleep(self.delay_s)
        return super().refine(image_bgr, boxes)


def slow_analyzer(detector):
    analyzer = FaceAnalyzer.with_default_models(detector)
    analyzer.detector = SlowDetector(analyzer.detector.model_dir, detector)
    return analyzer


def test_a_slow_analyzer_drops_frames_instead_of_lagging(make_window, qtbot, scene_video):
    window = make_window(analyzer_factory=slow_analyzer)
    shown: list[int] = []
    window.live.frameAnalyzed.connect(lambda result: shown.append(result.index))
    states = _states(window)
    window.open_source(Source.file(scene_video))
    qtbot.waitUntil(lambda: bool(states) and states[-1][0] is CaptureState.ENDED, timeout=WAIT_MS)
    # The last frame read is never dropped: it waits in the slot until the worker is free.
    qtbot.waitUntil(lambda: bool(shown) and shown[-1] == 29, timeout=WAIT_MS)
    assert shown == sorted(shown) and len(set(shown)) == len(shown), "frames shown in order, each once"
    assert len(shown) < 30 and window.live.slot.dropped == 30 - len(shown), "the rest were dropped, not queued"


def test_alert_banner_and_beep_are_rate_limited(classified_window, qtbot, monkeypatch):
    """Frames whose faces all stay unmasked: one banner, one beep, then quiet during the cool-down."""
    from app.inference import FrameResult
    from app.tracking import AlertOptions, LiveStats
    from core.analyzer import HeadResult
    from core.labels import Age, Gender
    from core.live import TrackedFace

    window = classified_window
    beeps = []
    monkeypatch.setattr("app.main_window.QApplication.beep", lambda: beeps.append(1))
    options = AlertOptions(enabled=True, frames=3, beep=True, cooldown_s=3600)
    window.apply_settings(replace(window.settings, alerts=options))
    stats = LiveStats(options)
    face = TrackedFace(np.array([100, 100, 180, 180], np.float32), np.zeros((5, 2), np.float32), 0.99,
                       HeadResult(Mask.NOT_WEAR, (0.1, 0.1, 0.8)), HeadResult(Gender.MALE, (0.9, 0.1)),
                       HeadResult(Age.UNDER_30, (0.8, 0.1, 0.1)), track_id=1)
    image = np.zeros((480, 640, 3), np.uint8)
    for i in range(8):
        window.show_frame(FrameResult(window.live.session, i, image, [face], stats.update([face]), 0.01, 0.0))
        if i == 1:
            assert window.live_panel.view.banner == "" and not beeps
    assert "without a mask" in window.live_panel.view.banner
    assert beeps == [1]
    assert window.live_panel.view.emphasised == {0}
