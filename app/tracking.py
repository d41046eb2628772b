"""Per-person bookkeeping for the live view: who is who between frames, counters, alerts.

A deliberately small stand-in until core gets real tracking: faces are matched to the previous
frame's faces by box overlap (IoU), greedily, best overlap first. That is enough to say "this
face has been unmasked for N frames in a row" and to count people rather than face-frames.
Pure Python over numpy, so it runs in the inference worker and is tested without Qt.
"""
from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np

from core.analyzer import Face
from core.labels import Mask

#: Mask states that raise an alert when they last.
ALERT_STATES = frozenset({Mask.INCORRECT, Mask.NOT_WEAR})


def iou(a: np.ndarray, b: np.ndarray) -> float:
    """Intersection over union of two x1, y1, x2, y2 boxes."""
    w = max(0.0, float(min(a[2], b[2]) - max(a[0], b[0])))
    h = max(0.0, float(min(a[3], b[3]) - max(a[1], b[1])))
    inter = w * h
    union = float((a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1])) - inter
    return inter / union if union > 0 else 0.0


@dataclass(frozen=True)
class AlertOptions:
    """enabled: raise alerts at all. frames: consecutive analysed frames a face must stay
    incorrect / unmasked. cooldown_s: least time between two alerts (banner and beep)."""

    enabled: bool = True
    frames: int = 15
    beep: bool = False
    cooldown_s: float = 10.0


@dataclass
class _Track:
    id: int
    box: np.ndarray
    state: Mask | None
    seen: int = 1  # consecutive frames matched
    missed: int = 0  # consecutive frames not matched
    bad_streak: int = 0  # consecutive frames in an ALERT_STATE
    counted: bool = False
    alerted: bool = False


@dataclass(frozen=True)
class Counts:
    """Faces in the current frame, and people counted per mask state since Start."""

    now: int = 0
    wear: int = 0
    incorrect: int = 0
    none: int = 0


@dataclass(frozen=True)
class Alert:
    """Faces that have just crossed the alert threshold."""

    track_ids: tuple[int, ...]
    states: tuple[Mask, ...]

    @property
    def message(self) -> str:
        n_none = sum(s is Mask.NOT_WEAR for s in self.states)
        n_wrong = sum(s is Mask.INCORRECT for s in self.states)
        parts = []
        if n_none:
            parts.append(f"{n_none} without a mask")
        if n_wrong:
            parts.append(f"{n_wrong} wearing it wrongly")
        return "Alert: " + " and ".join(parts)


@dataclass(frozen=True)
class FrameNotes:
    """What the tracker adds to a frame's faces (lists are parallel to the faces)."""

    track_ids: tuple[int, ...]
    alerting: frozenset[int]  # indices of faces over the alert threshold now
    counts: Counts
    alert: Alert | None = None  # a new, rate-limited alert to announce


@dataclass
class LiveStats:
    """Matches faces between consecutive frames, counts people, and decides when to alert.

    A person is counted once, in the mask state they show when they have been seen in
    `confirm_frames` consecutive frames (one-frame false detections are not counted).
    A track survives `max_missed` frames without a match, so a blink of the detector does not
    reset an alert streak. Faces without a mask verdict (detection only) are never counted
    or alerted on.
    """

    options: AlertOptions = field(default_factory=AlertOptions)
    min_iou: float = 0.3
    max_missed: int = 3
    confirm_frames: int = 2
    clock: Callable[[], float] = time.monotonic

    def __post_init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        self._tracks: list[_Track] = []
        self._next_id = 1
        self._totals = {Mask.WEAR: 0, Mask.INCORRECT: 0, Mask.NOT_WEAR: 0}
        self._last_alert: float | None = None

    def update(self, faces: Sequence[Face]) -> FrameNotes:
        ids = self._associate(faces)
        alerting = set()
        due: list[_Track] = []
        by_id = {t.id: t for t in self._tracks}
        for index, track_id in enumerate(ids):
            track = by_id[track_id]
            if not track.counted and track.state is not None and track.seen >= self.confirm_frames:
                self._totals[track.state] += 1
                track.counted = True
            if self.options.enabled and track.bad_streak >= max(1, self.options.frames):
                alerting.add(index)
                if not track.alerted:
                    due.append(track)
        alert = None
        now = self.clock()
        if due and (self._last_alert is None or now - self._last_alert >= self.options.cooldown_s):
            for track in due:
                track.alerted = True
            self._last_alert = now
            alert = Alert(tuple(t.id for t in due), tuple(t.state for t in due if t.state is not None))
        counts = Counts(len(faces), self._totals[Mask.WEAR], self._totals[Mask.INCORRECT], self._totals[Mask.NOT_WEAR])
        return FrameNotes(tuple(ids), frozenset(alerting), counts, alert)

    def _associate(self, faces: Sequence[Face]) -> list[int]:
        """Track id per face: greedy best-IoU matching, new tracks for the rest."""
        pairs = sorted(
            ((iou(t.box, f.box), ti, fi) for ti, t in enumerate(self._tracks) for fi, f in enumerate(faces)),
            reverse=True,
        )
        matched_track: dict[int, int] = {}
        used_tracks: set[int] = set()
        for overlap, ti, fi in pairs:
            if overlap < self.min_iou:
                break
            if ti in used_tracks or fi in matched_track:
                continue
            used_tracks.add(ti)
            matched_track[fi] = ti
        survivors: list[_Track] = []
        for ti, track in enumerate(self._tracks):
            if ti not in used_tracks:
                track.missed += 1
                track.seen = 0
                if track.missed <= self.max_missed:
                    survivors.append(track)
        ids = []
        for fi, face in enumerate(faces):
            state = face.mask.label if face.mask is not None else None
            if fi in matched_track:
                track = self._tracks[matched_track[fi]]
                track.box, track.state, track.missed = face.box, state, 0
                track.seen += 1
                survivors.append(track)
            else:
                track = _Track(self._next_id, face.box, state)
                self._next_id += 1
                survivors.append(track)
            if state in ALERT_STATES:
                track.bad_streak += 1
            else:
                track.bad_streak = 0
                track.alerted = False
            ids.append(track.id)
        self._tracks = survivors
        return ids


class RateMeter:
    """Frames per second over a sliding window of arrival times (for the on-screen FPS)."""

    def __init__(self, window_s: float = 2.0, clock: Callable[[], float] = time.monotonic) -> None:
        self.window_s = window_s
        self.clock = clock
        self._times: list[float] = []

    def tick(self) -> float:
        now = self.clock()
        self._times.append(now)
        while self._times and now - self._times[0] > self.window_s:
            self._times.pop(0)
        if len(self._times) < 2:
            return 0.0
        return (len(self._times) - 1) / max(1e-6, self._times[-1] - self._times[0])

    def reset(self) -> None:
        self._times.clear()
