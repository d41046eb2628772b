"""A frame analysed after the video ended must not bring the alert banner back (seen under Xvfb:
"No mask: #8" stayed over "end of video" for good) nor reopen the alerts that the end closed."""
from __future__ import annotations

import os

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

import numpy as np  # noqa: E402

from app.capture import CaptureState  # noqa: E402
from app.inference import FrameResult  # noqa: E402
from app.sources import Source  # noqa: E402
from app.tracking import AlertOptions, LiveStats  # noqa: E402
from core.labels import Mask  # noqa: E402
from tests.test_gui_tracking import face  # noqa: E402


def test_a_late_frame_after_the_end_raises_no_banner(make_window, qtbot, tmp_path):
    from app.soak import write_clip

    window = make_window()
    ended = []
    window.live.stateChanged.connect(lambda state, _m: ended.append(state) if state is CaptureState.ENDED else None)
    window.open_source(Source.file(write_clip(tmp_path / "short.avi", seconds=1.0)))
    qtbot.waitUntil(lambda: bool(ended), timeout=60_000)

    alerting = LiveStats(AlertOptions(frames=1)).update([face(1, Mask.NOT_WEAR)])
    assert alerting.banner, "the notes of an unmasked face carry a banner"
    late = FrameResult(window.live.session, 999, np.zeros((48, 64, 3), np.uint8), [face(1, Mask.NOT_WEAR)], alerting, 0.01, 0.0)
    window.show_frame(late)
    assert window.live_panel.view.banner == ""
    assert not window.alert_log.ongoing
