"""The live view's bookkeeping without Qt: newest-frame hand-over, counters and alerts keyed by
core's track ids (the matching itself is tested in tests/test_tracking.py)."""
from __future__ import annotations

import numpy as np

from app.frames import Frame, LatestFrame
from app.tracking import AlertOptions, LiveStats, RateMeter
from core.analyzer import HeadResult
from core.labels import Age, Gender, Mask
from core.live import TrackedFace


def face(track_id: int, mask: Mask | None = Mask.WEAR, x: float = 0.0, size: float = 60) -> TrackedFace:
    heads = {}
    if mask is not None:
        probs = [0.1, 0.1, 0.1]
        probs[int(mask)] = 0.8
        heads = {"mask": HeadResult(mask, tuple(probs)), "gender": HeadResult(Gender.FEMALE, (0.2, 0.8)),
                 "age": HeadResult(Age.FROM_30_TO_59, (0.1, 0.8, 0.1))}
    box = np.array([x, 0, x + size, size], np.float32)
    return TrackedFace(box=box, landmarks=np.zeros((5, 2), np.float32), det_score=0.99, track_id=track_id, **heads)


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


def test_notes_follow_the_track_ids():
    stats = LiveStats()
    assert stats.update([face(1), face(2, x=200)]).track_ids == (1, 2)
    assert stats.update([face(2, x=205), face(1, x=4), face(3, x=400)]).track_ids == (2, 1, 3)


def test_people_are_counted_once_after_two_frames():
    stats = LiveStats()
    counts = stats.update([face(1, Mask.WEAR), face(2, Mask.NOT_WEAR)]).counts
    assert (counts.now, counts.wear, counts.none) == (2, 0, 0)  # a one-frame detection is not counted yet
    for _ in range(5):
        counts = stats.update([face(1, Mask.WEAR), face(2, Mask.NOT_WEAR)]).counts
    assert (counts.wear, counts.incorrect, counts.none) == (1, 0, 1)
    counts = stats.update([face(3, Mask.INCORRECT)]).counts
    counts = stats.update([face(3, Mask.INCORRECT)]).counts
    assert (counts.now, counts.wear, counts.incorrect, counts.none) == (1, 1, 1, 1)


def test_a_person_who_keeps_their_track_id_is_not_counted_again():
    stats = LiveStats()
    for _ in range(3):
        stats.update([face(1, Mask.WEAR)])
    for _ in range(10):  # out of the picture for a while, back with the same id (core's tracker kept it)
        stats.update([])
    for _ in range(3):
        counts = stats.update([face(1, Mask.WEAR)]).counts
    assert counts.wear == 1


def test_a_one_frame_track_is_never_counted():
    stats = LiveStats()
    stats.update([face(1, Mask.NOT_WEAR)])
    counts = stats.update([face(2, Mask.NOT_WEAR)]).counts  # another id: not the same person
    assert counts.none == 0


def test_unclassified_faces_are_neither_counted_nor_alerted():
    stats = LiveStats(AlertOptions(frames=1))
    for _ in range(5):
        notes = stats.update([face(1, None)])
    assert notes.counts.now == 1 and notes.counts.wear + notes.counts.incorrect + notes.counts.none == 0
    assert notes.alert is None and not notes.alerting


def test_alert_after_n_consecutive_frames_with_a_cool_down_per_person():
    clock = Clock()
    stats = LiveStats(AlertOptions(frames=3, cooldown_s=10.0), clock=clock)
    alerts = [stats.update([face(1, Mask.NOT_WEAR)]).alert for _ in range(3)]
    assert alerts[:2] == [None, None] and alerts[2] is not None
    assert alerts[2].message == "No mask: #1" and alerts[2].track_ids == (1,)
    # The same face does not alert again while it stays unmasked.
    assert all(stats.update([face(1, Mask.NOT_WEAR)]).alert is None for _ in range(5))
    # Another person crossing the threshold alerts at once: the cool-down is #1's, not theirs.
    alerts = [stats.update([face(1, Mask.NOT_WEAR), face(2, Mask.INCORRECT, x=300)]).alert for _ in range(3)]
    assert alerts[:2] == [None, None] and alerts[2].track_ids == (2,) and alerts[2].message == "Mask worn wrongly: #2"
    # #1 masks up and takes it off again within their cool-down: highlighted, named, not announced again...
    stats.update([face(1, Mask.WEAR), face(2, Mask.INCORRECT, x=300)])
    for _ in range(3):
        notes = stats.update([face(1, Mask.NOT_WEAR), face(2, Mask.INCORRECT, x=300)])
    assert notes.alert is None and notes.alerting == {0, 1}
    assert notes.banner == "No mask: #1 · Mask worn wrongly: #2"
    # ...and announced once it is over.
    clock.now = 10.5
    stats.update([face(1, Mask.WEAR), face(2, Mask.INCORRECT, x=300)])
    for _ in range(3):
        notes = stats.update([face(1, Mask.NOT_WEAR), face(2, Mask.INCORRECT, x=300)])
    assert notes.alert is not None and notes.alert.track_ids == (1,)


def test_the_banner_names_who_alerts_now_and_lets_go_once_they_mask_up_or_leave():
    clock = Clock()
    stats = LiveStats(AlertOptions(frames=2, cooldown_s=60.0), clock=clock)
    for _ in range(2):
        notes = stats.update([face(4, Mask.NOT_WEAR), face(9, Mask.INCORRECT, x=200), face(5, Mask.WEAR, x=400)])
    assert notes.banner == "No mask: #4 · Mask worn wrongly: #9"
    clock.now += 0.1
    notes = stats.update([face(4, Mask.WEAR), face(9, Mask.INCORRECT, x=200)])  # #4 masks up: off at once
    assert notes.banner == "Mask worn wrongly: #9"
    clock.now += 0.3
    notes = stats.update([face(4, Mask.WEAR)])  # #9 missed for a moment: still named (no flicker)...
    assert notes.banner == "Mask worn wrongly: #9"
    clock.now += 0.4
    notes = stats.update([face(4, Mask.WEAR)])  # ...and let go 0.7 s after they were last seen
    assert notes.banner == "" and notes.alerting_people == ()


def test_a_streak_is_broken_by_a_worn_mask_but_not_by_a_missed_detection():
    stats = LiveStats(AlertOptions(frames=3, cooldown_s=0.0))
    stats.update([face(1, Mask.NOT_WEAR)])
    stats.update([face(1, Mask.NOT_WEAR)])
    stats.update([face(1, Mask.WEAR)])
    assert stats.update([face(1, Mask.NOT_WEAR)]).alert is None
    stats.update([])  # the detector blinks; the track survives in core
    stats.update([face(1, Mask.NOT_WEAR)])
    assert stats.update([face(1, Mask.NOT_WEAR)]).alert is not None


def test_alerts_can_be_switched_off():
    stats = LiveStats(AlertOptions(enabled=False, frames=1))
    notes = [stats.update([face(1, Mask.NOT_WEAR)]) for _ in range(3)]
    assert all(n.alert is None and not n.alerting for n in notes)


def test_tracks_long_gone_are_forgotten():
    stats = LiveStats(forget_after=5)
    stats.update([face(1)])
    for _ in range(6):
        stats.update([face(2)])
    assert set(stats._people) == {2}


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


def test_captions_say_question_mark_for_a_gender_or_age_the_classifier_is_unsure_of():
    from app.overlay import face_caption

    sure = face(3, Mask.WEAR)  # gender 0.8, age 0.8
    unsure = TrackedFace(box=sure.box, landmarks=sure.landmarks, det_score=0.99, track_id=4, mask=sure.mask,
                         gender=HeadResult(Gender.MALE, (0.55, 0.45)), age=HeadResult(Age.OVER_60, (0.3, 0.3, 0.4)))
    assert face_caption(sure, 0.6) == "#3 Mask ✓ · F · 30–59 (0.80)"
    assert face_caption(unsure, 0.6) == "#4 Mask ✓ · ? · ? (0.80)"
    assert face_caption(unsure, 0.0) == "#4 Mask ✓ · M · 60+ (0.80)"  # threshold 0: every guess shown
