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
    """A camera that played and then drops out is retried ("Camera lost … Retrying") until it
    is back; while it first connects, a slow camera gets a few attempts."""
    image = cv2.resize(cv2.imread(str(shared_data / "face_mask_853" / "images" / SCENE)), (640, 480))
    opened = CallLog()

    class DropsOut(FakeCamera):
        def __init__(self, frames: int) -> None:
            super().__init__(image)
            self.left = frames

        def read(self):
            self.left -= 1
            return super().read() if self.left >= 0 else (False, None)

    def factory(source: Source):
        assert source.kind is SourceKind.CAMERA
        n = opened.add(source)
        if n == 1:
            return ClosedCapture()  # slow to start: the second attempt opens it
        if n == 2:
            return DropsOut(frames=10)
        return ClosedCapture() if n <= 4 else FakeCamera(image)  # unplugged for two retries, then back

    window = make_window(capture_factory=factory, camera_probe=lambda: [0])
    qtbot.waitUntil(lambda: window.live_panel.sources.count() == 1, timeout=10_000)
    messages: list[tuple[CaptureState, str]] = []
    window.live.stateChanged.connect(lambda state, message: messages.append((state, message)))

    window.start_live()
    view = window.live_panel.view
    qtbot.waitUntil(lambda: view.message.startswith("Camera lost"), timeout=WAIT_MS)
    assert "Retrying" in view.message
    # Back: the fifth open plays again, and the message goes with its first frame.
    qtbot.waitUntil(lambda: len(opened.items) >= 5 and messages[-1] == (CaptureState.PLAYING, "Reconnected"), timeout=WAIT_MS)
    qtbot.waitUntil(lambda: len(view.faces) >= 3 and view.message == "", timeout=WAIT_MS)
    assert messages[1] == (CaptureState.CONNECTING, "Connecting to Camera 0… (attempt 2 of 3)")
    lost = [m for s, m in messages if s is CaptureState.LOST]
    assert len(lost) == 3 and "attempt 3" in lost[-1], lost
    assert not window.live_panel.failure_bar.isVisibleTo(window)

    window.stop_live()
    qtbot.waitUntil(lambda: window.live.state is CaptureState.STOPPED, timeout=WAIT_MS)
    frames = window.frames_shown
    qtbot.wait(300)
    assert window.frames_shown == frames, "nothing arrives after Stop"
    assert view.message == "Stopped"


def test_a_stream_that_never_connects_says_why_and_offers_retry(make_window, qtbot):
    """No "lost … retrying" for a stream that never sent a picture: after a few attempts it
    says it could not connect, and why, with a Retry button that tries again."""
    opened = CallLog()

    def factory(source: Source):
        opened.add(source)
        return ClosedCapture()

    window = make_window(capture_factory=factory)
    states: list[tuple[CaptureState, str]] = []
    window.live.stateChanged.connect(lambda state, message: states.append((state, message)))
    window.open_source(Source.url("rtsp://admin:secret@10.0.0.2:554/live"))
    qtbot.waitUntil(lambda: window.live.state is CaptureState.FAILED, timeout=WAIT_MS)
    message = window.live_panel.view.message
    assert message == ("Could not connect to rtsp://admin:***@10.0.0.2:554/live (no answer: check the address, "
                       "the network and that the stream is running).")
    assert CaptureState.LOST not in [s for s, _ in states] and "retrying" not in " ".join(m for _, m in states).lower()
    assert len(opened.items) == 3
    panel = window.live_panel
    assert panel.failure_bar.isVisibleTo(window) and panel.failure.text() == message
    assert not window.live.running

    panel.retry.click()  # tries the same source again
    qtbot.waitUntil(lambda: len(opened.items) == 6 and window.live.state is CaptureState.FAILED, timeout=WAIT_MS)
    assert panel.failure_bar.isVisibleTo(window)


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
