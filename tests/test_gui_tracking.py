"""The live view's bookkeeping without Qt: newest-frame hand-over, face association, counters, alerts."""
from __future__ import annotations

import numpy as np

from app.frames import Frame, LatestFrame
from app.tracking import AlertOptions, LiveStats, RateMeter, iou
from core.analyzer import Face, HeadResult
from core.labels import Age, Gender, Mask


def face(x: float, y: float, mask: Mask | None = Mask.WEAR, size: float = 60) -> Face:
    heads = {}
    if mask is not None:
        probs = [0.1, 0.1, 0.1]
        probs[int(mask)] = 0.8
        heads = dict(mask=HeadResult(mask, tuple(probs)), gender=HeadResult(Gender.FEMALE, (0.2, 0.8)),
                     age=HeadResult(Age.FROM_30_TO_59, (0.1, 0.8, 0.1)))
    return Face(np.array([x, y, x + size, y + size], np.float32), np.zeros((5, 2), np.float32), 0.99, **heads)


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_latest_frame_keeps_only_the_newest_and_signals_once():
    slot = LatestFrame()
    frames = [Frame(1, i, np.zeros((2, 2, 3), np.uint8), 0.0) for i in range(3)]
    assert slot.put(frames[0]) is True
    assert slot.put(frames[1]) is False and slot.put(frames[2]) is False  # a wake-up is already pending
    assert slot.take() is frames[2] and slot.dropped == 2
    assert slot.take() is None
    assert slot.put(frames[0]) is True  # taken: the next frame needs a new wake-up


def test_iou():
    a = np.array([0, 0, 10, 10], np.float32)
    assert iou(a, a) == 1.0
    assert iou(a, np.array([20, 20, 30, 30], np.float32)) == 0.0
    assert abs(iou(a, np.array([5, 0, 15, 10], np.float32)) - 50 / 150) < 1e-6


def test_faces_keep_their_ids_while_they_move_and_new_faces_get_new_ones():
    stats = LiveStats()
    first = stats.update([face(0, 0), face(200, 0)]).track_ids
    moved = stats.update([face(205, 3), face(4, 2), face(400, 400)]).track_ids
    assert moved[:2] == (first[1], first[0])
    assert moved[2] not in first


def test_people_are_counted_once_after_two_frames():
    stats = LiveStats()
    counts = stats.update([face(0, 0, Mask.WEAR), face(200, 0, Mask.NOT_WEAR)]).counts
    assert (counts.now, counts.wear, counts.none) == (2, 0, 0)  # a one-frame detection is not counted yet
    for _ in range(5):
        counts = stats.update([face(0, 0, Mask.WEAR), face(200, 0, Mask.NOT_WEAR)]).counts
    assert (counts.wear, counts.incorrect, counts.none) == (1, 0, 1)
    counts = stats.update([face(400, 300, Mask.INCORRECT)]).counts
    counts = stats.update([face(400, 300, Mask.INCORRECT)]).counts
    assert (counts.now, counts.wear, counts.incorrect, counts.none) == (1, 1, 1, 1)


def test_unclassified_faces_are_neither_counted_nor_alerted():
    stats = LiveStats(AlertOptions(frames=1))
    for _ in range(5):
        notes = stats.update([face(0, 0, None)])
    assert notes.counts.now == 1 and notes.counts.wear + notes.counts.incorrect + notes.counts.none == 0
    assert notes.alert is None and not notes.alerting


def test_alert_after_n_consecutive_frames_then_rate_limited():
    clock = Clock()
    stats = LiveStats(AlertOptions(frames=3, cooldown_s=10.0), clock=clock)
    alerts = [stats.update([face(0, 0, Mask.NOT_WEAR)]).alert for _ in range(3)]
    assert alerts[:2] == [None, None] and alerts[2] is not None
    assert "1 without a mask" in alerts[2].message
    # The same face does not alert again while it stays unmasked.
    assert all(stats.update([face(0, 0, Mask.NOT_WEAR)]).alert is None for _ in range(5))
    # Another face crosses the threshold during the cool-down: highlighted, but no new alert yet...
    for _ in range(3):
        notes = stats.update([face(0, 0, Mask.NOT_WEAR), face(300, 0, Mask.INCORRECT)])
    assert notes.alert is None and notes.alerting == {0, 1}
    # ...until the cool-down is over.
    clock.now = 11.0
    notes = stats.update([face(0, 0, Mask.NOT_WEAR), face(300, 0, Mask.INCORRECT)])
    assert notes.alert is not None and "1 wearing it wrongly" in notes.alert.message


def test_a_streak_is_broken_by_a_worn_mask_but_not_by_a_missed_detection():
    stats = LiveStats(AlertOptions(frames=3, cooldown_s=0.0))
    stats.update([face(0, 0, Mask.NOT_WEAR)])
    stats.update([face(0, 0, Mask.NOT_WEAR)])
    stats.update([face(0, 0, Mask.WEAR)])
    assert stats.update([face(0, 0, Mask.NOT_WEAR)]).alert is None
    stats.update([])  # the detector blinks
    stats.update([face(0, 0, Mask.NOT_WEAR)])
    assert stats.update([face(0, 0, Mask.NOT_WEAR)]).alert is not None


def test_alerts_can_be_switched_off():
    stats = LiveStats(AlertOptions(enabled=False, frames=1))
    notes = [stats.update([face(0, 0, Mask.NOT_WEAR)]) for _ in range(3)]
    assert all(n.alert is None and not n.alerting for n in notes)


def test_rate_meter():
    clock = Clock()
    meter = RateMeter(window_s=2.0, clock=clock)
    for i in range(21):
        clock.now = i * 0.1
        fps = meter.tick()
    assert abs(fps - 10.0) < 1e-6


def test_stream_passwords_are_not_shown_or_logged():
    from app.sources import Source

    assert Source.url("rtsp://admin:secret@10.0.0.2:554/live").label == "rtsp://admin:***@10.0.0.2:554/live"
    assert Source.url("http://cam.local/video.mjpg").label == "http://cam.local/video.mjpg"
    assert Source.file("/videos/clip.avi").label == "clip.avi" and Source.camera(1).label == "Camera 1"
