"""Sources that fail: a video whose capture dies mid-stream resumes where it stopped; a camera
that is gone is retried with a message, and picked up again when it comes back."""
from __future__ import annotations

import os

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

import cv2  # noqa: E402

from app.capture import CaptureState  # noqa: E402
from app.sources import Source, SourceKind, open_capture  # noqa: E402
from tests.gui_support import SCENE, CallLog, ClosedCapture, FailingCapture, FakeCamera, frame_stamp  # noqa: E402

WAIT_MS = 120_000
FAIL_AFTER = 8


def test_video_capture_failing_mid_stream_reconnects_and_resumes(make_window, qtbot, scene_video):
    opened = CallLog()

    def factory(source: Source):
        if opened.add(source) == 1:
            return FailingCapture(source.target, fail_after=FAIL_AFTER)
        return open_capture(source)

    window = make_window(capture_factory=factory)
    states: list[tuple[CaptureState, str]] = []
    window.live.stateChanged.connect(lambda state, message: states.append((state, message)))
    shown: list[tuple[int, int]] = []  # (index the worker gave, number stamped in the picture)
    window.live.frameAnalyzed.connect(lambda r: shown.append((r.index, frame_stamp(r.image))))

    window.open_source(Source.file(scene_video))
    qtbot.waitUntil(lambda: bool(states) and states[-1][0] in (CaptureState.ENDED, CaptureState.FAILED), timeout=WAIT_MS)
    qtbot.waitUntil(lambda: bool(shown) and shown[-1][0] == 29, timeout=WAIT_MS)

    kinds = [s for s, _ in states]
    assert kinds[-1] is CaptureState.ENDED
    lost = kinds.index(CaptureState.LOST)
    assert CaptureState.PLAYING in kinds[:lost] and (CaptureState.PLAYING, "Reconnected") in states[lost:]
    assert "retrying" in states[lost][1].lower()
    assert len(opened.items) == 2
    # It resumed at the frame where it failed (not from the start), and the pictures match the numbers.
    assert all(index == stamp for index, stamp in shown), shown
    assert any(index < FAIL_AFTER for index, _ in shown) and any(index > FAIL_AFTER for index, _ in shown)
    assert [i for i, _ in shown] == sorted(i for i, _ in shown)
    assert window.live_panel.view.message.endswith("end of video")


def test_lost_camera_is_retried_with_a_message_until_it_returns(make_window, qtbot, shared_data):
    image = cv2.resize(cv2.imread(str(shared_data / "face_mask_853" / "images" / SCENE)), (640, 480))
    opened = CallLog()

    def factory(source: Source):
        assert source.kind is SourceKind.CAMERA
        return ClosedCapture() if opened.add(source) <= 2 else FakeCamera(image)

    window = make_window(capture_factory=factory, camera_probe=lambda: [0])
    qtbot.waitUntil(lambda: window.live_panel.sources.count() == 1, timeout=10_000)
    messages: list[str] = []
    window.live.stateChanged.connect(lambda state, message: messages.append(message) if state is CaptureState.LOST else None)

    window.start_live()
    view = window.live_panel.view
    qtbot.waitUntil(lambda: view.message.startswith("Camera lost"), timeout=WAIT_MS)
    assert "Retrying" in view.message
    qtbot.waitUntil(lambda: len(view.faces) >= 3, timeout=WAIT_MS)
    assert view.message == ""
    assert len(messages) == 2 and "attempt 2" in messages[1]

    window.stop_live()
    qtbot.waitUntil(lambda: window.live.state is CaptureState.STOPPED, timeout=WAIT_MS)
    frames = window.frames_shown
    qtbot.wait(300)
    assert window.frames_shown == frames, "nothing arrives after Stop"
    assert view.message == "Stopped"


def test_pause_holds_the_video_and_resume_continues(make_window, qtbot, scene_video):
    window = make_window()
    shown: list[int] = []
    window.live.frameAnalyzed.connect(lambda r: shown.append(r.index))
    window.open_source(Source.file(scene_video))
    qtbot.waitUntil(lambda: len(shown) >= 2, timeout=WAIT_MS)
    window.act_pause.setChecked(True)
    qtbot.waitUntil(lambda: window.live.state is CaptureState.PAUSED, timeout=10_000)
    qtbot.wait(200)  # a read already under way when Pause was pressed may still land
    capture = window.live._capture
    position, count = capture.position, len(shown)
    qtbot.wait(700)  # 7 frames' worth at 10 fps
    assert capture.position == position, "the file is not read while paused"
    assert len(shown) <= count + 2, "at most the frames read before the pause arrive (slot + in analysis)"
    window.act_pause.setChecked(False)
    qtbot.waitUntil(lambda: bool(shown) and shown[-1] == 29, timeout=WAIT_MS)
    qtbot.waitUntil(lambda: window.live.state is CaptureState.ENDED, timeout=WAIT_MS)


def test_a_missing_video_file_fails_at_once_with_its_name(make_window, qtbot, tmp_path):
    window = make_window()
    window.open_source(Source.file(tmp_path / "nowhere.avi"))
    qtbot.waitUntil(lambda: window.live.state is CaptureState.FAILED, timeout=WAIT_MS)
    assert window.live_panel.view.message.endswith("nowhere.avi: file not found")
    assert not window.live.running and not window.act_stop.isEnabled()


class OverstatedLength:
    """A real video capture whose container claims more frames than it holds (as FFmpeg may)."""

    def __init__(self, target: str) -> None:
        self._capture = cv2.VideoCapture(target)

    def __getattr__(self, name):
        return getattr(self._capture, name)

    def get(self, prop):
        if prop == cv2.CAP_PROP_FRAME_COUNT:
            return 1000.0
        return self._capture.get(prop)


def test_video_whose_length_is_overstated_ends_instead_of_failing(make_window, qtbot, scene_video):
    window = make_window(capture_factory=lambda source: OverstatedLength(source.target))
    states: list[CaptureState] = []
    window.live.stateChanged.connect(lambda state, message: states.append(state))
    window.open_source(Source.file(scene_video))
    qtbot.waitUntil(lambda: bool(states) and states[-1] in (CaptureState.ENDED, CaptureState.FAILED), timeout=WAIT_MS)
    assert states[-1] is CaptureState.ENDED
