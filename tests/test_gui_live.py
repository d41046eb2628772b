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


def test_alert_banner_names_people_clears_and_logs(classified_window, qtbot, monkeypatch, tmp_path):
    """Frames with one unmasked face at the top of the picture: one beep, the banner names #1 in a
    bar above the picture (it covers no box or caption), the alert log lists them, and once they
    mask up the banner goes at once; the logs are written only on export."""
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

    def person(mask: Mask) -> TrackedFace:
        probs = [0.1, 0.1, 0.1]
        probs[int(mask)] = 0.8
        return TrackedFace(np.array([100, 2, 180, 82], np.float32), np.zeros((5, 2), np.float32), 0.99,
                           HeadResult(mask, tuple(probs)), HeadResult(Gender.MALE, (0.9, 0.1)),
                           HeadResult(Age.UNDER_30, (0.8, 0.1, 0.1)), track_id=1)

    image = np.full((480, 640, 3), 90, np.uint8)
    view = window.live_panel.view
    for i in range(8):
        face = person(Mask.NOT_WEAR)
        window.show_frame(FrameResult(window.live.session, i, image, [face], stats.update([face]), 0.01, 0.0))
        if i == 1:
            assert view.banner == "" and not beeps
    assert view.banner == "No mask: #1" and beeps == [1] and view.emphasised == {0}

    # The banner is a bar above the picture: the box and its caption (flipped below the box at
    # the picture's top edge) are all below it, and the bar is painted in the banner's red.
    rect = view.image_rect()
    bar = view.banner_height()
    assert bar > 0 and rect.top() >= bar
    top_left = view.map_from_image(100, 2)
    assert top_left.y() >= bar
    picture = view.grab().toImage()
    assert _near(picture.pixelColor(5, round(bar / 2)), QColor(217, 52, 43))
    assert _near(picture.pixelColor(round(top_left.x()) + 10, round(top_left.y())), mask_colour(Mask.NOT_WEAR))

    panel = window.alert_panel
    assert panel.model.rowCount() == 1 and panel.model.index(0, 1).data() == "#1"
    assert panel.model.index(0, 2).data() == "No mask"

    for i in range(8, 10):  # masks up: the banner goes with the first frame that says so
        face = person(Mask.WEAR)
        window.show_frame(FrameResult(window.live.session, i, image, [face], stats.update([face]), 0.01, 0.0))
    assert view.banner == "" and view.image_rect().top() < bar
    assert window.alert_log.entries[0].ended is not None

    alerts_csv, minutes_csv = tmp_path / "alerts.csv", tmp_path / "minutes.csv"
    assert not alerts_csv.exists()
    monkeypatch.setattr("app.main_window.QFileDialog.getSaveFileName", lambda *a, **k: (str(alerts_csv), ""))
    window.act_export_alerts.trigger()
    monkeypatch.setattr("app.main_window.QFileDialog.getSaveFileName", lambda *a, **k: (str(minutes_csv), ""))
    window.act_export_counts.trigger()
    assert alerts_csv.read_text(encoding="utf-8").splitlines()[1].split(",")[1:3] == ["1", "No mask"]
    assert minutes_csv.read_text(encoding="utf-8").splitlines()[0].startswith("minute,faces_max")


def test_messages_sit_in_a_corner_not_on_the_faces(qtbot):
    """"Paused", "end of video", a file name: in the top-left corner, the middle of the picture
    (where faces are) left clear."""
    from app.frame_view import FrameView

    view = FrameView()
    qtbot.addWidget(view)
    view.resize(640, 480)
    view.set_frame(np.full((480, 640, 3), 200, np.uint8), [])
    view.set_message("clip.avi: end of video")
    view.set_hud("25.0 fps · 40 ms/frame")
    picture = view.grab().toImage()
    assert _near(picture.pixelColor(320, 240), QColor(200, 200, 200), tolerance=3)  # the middle is the picture
    assert picture.pixelColor(14, 14).lightness() < 100  # the message box, top left
    assert picture.pixelColor(14, 480 - 14).lightness() < 100  # the HUD box, bottom left
