"""Per-person bookkeeping for the live view: counters and alerts, keyed by core's track ids.

Who is who between frames is core's job (core/tracker.py, run by core/live.py's LiveAnalyzer);
here each track id is one person: counted once, alerted on once per streak and at most once per
cool-down. Pure Python, so it runs in the inference worker and is tested without Qt.
"""
from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from core.labels import Mask
from core.live import TrackedFace

#: Mask states that raise an alert when they last.
ALERT_STATES = frozenset({Mask.INCORRECT, Mask.NOT_WEAR})


@dataclass(frozen=True)
class AlertOptions:
    """enabled: raise alerts at all. frames: consecutive analysed frames a face must stay
    incorrect / unmasked. cooldown_s: least time between two alerts (beep and log entry) for the
    same person; other people alert on their own. The banner does not wait: it names whoever is
    over the threshold now."""

    enabled: bool = True
    frames: int = 15
    beep: bool = False
    cooldown_s: float = 10.0

#: A person alerting who drops out of the picture stays named in the banner this long (a blink
#: of the detector must not make it flicker); then the banner lets them go.
LINGER_S = 0.5

STATE_TEXT = {Mask.NOT_WEAR: "No mask", Mask.INCORRECT: "Mask worn wrongly", Mask.WEAR: "Mask worn"}


@dataclass
class _Person:
    """What the live view remembers about one track."""

    state: Mask | None = None
    seen: int = 0  # consecutive analysed frames the track was in
    bad_streak: int = 0  # consecutive frames (in which it was seen) in an ALERT_STATE
    last_frame: int = 0
    counted: bool = False
    alerted: bool = False  # this streak was announced (or fell in the person's cool-down)
    last_alert: float | None = None  # clock time of this person's last announced alert
    alerting_since: float | None = None  # clock time they went over the threshold; None when not
    last_seen: float = 0.0


@dataclass(frozen=True)
class Counts:
    """Faces in the current frame, and people counted per mask state since Start."""

    now: int = 0
    wear: int = 0
    incorrect: int = 0
    none: int = 0


@dataclass(frozen=True)
class Alert:
    """People who have just crossed the alert threshold, outside their own cool-down."""

    track_ids: tuple[int, ...]
    states: tuple[Mask, ...]

    @property
    def message(self) -> str:
        return banner_text(tuple(zip(self.track_ids, self.states)))


def banner_text(people: tuple[tuple[int, Mask], ...]) -> str:
    """e.g. "No mask: #3, #7 · Mask worn wrongly: #5"; "" for nobody."""
    parts = []
    for state in (Mask.NOT_WEAR, Mask.INCORRECT):
        ids = [f"#{track}" for track, s in people if s is state]
        if ids:
            parts.append(f"{STATE_TEXT[state]}: {', '.join(ids)}")
    return " · ".join(parts)


@dataclass(frozen=True)
class FrameNotes:
    """What the live bookkeeping adds to a frame's faces (tuples are parallel to the faces)."""

    track_ids: tuple[int, ...]
    alerting: frozenset[int]  # indices of faces over the alert threshold now
    counts: Counts
    alert: Alert | None = None  # people to announce now (beep, log entry): each outside their cool-down
    alerting_people: tuple[tuple[int, Mask], ...] = ()  # (track id, state) over the threshold now, by id

    @property
    def banner(self) -> str:
        """The banner's text: who is unmasked or wrongly masked now ("" clears it)."""
        return banner_text(self.alerting_people)


@dataclass
class LiveStats:
    """Counts people and decides when to alert, from the track ids core gives each face.

    A person is counted once, in the mask state they show when they have been seen in
    `confirm_frames` consecutive frames (one-frame false detections are not counted). A frame
    without a track (the detector blinked, someone passed in front) does not end an alert
    streak; only a different mask state does. Faces without a mask verdict (detection only) are
    never counted or alerted on. Ids are never reused, so a track gone for `forget_after`
    frames is dropped.
    """

    options: AlertOptions = field(default_factory=AlertOptions)
    confirm_frames: int = 2
    forget_after: int = 900
    clock: Callable[[], float] = time.monotonic

    def __post_init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        self._people: dict[int, _Person] = {}
        self._frame = 0
        self._totals = {Mask.WEAR: 0, Mask.INCORRECT: 0, Mask.NOT_WEAR: 0}

    def update(self, faces: Sequence[TrackedFace]) -> FrameNotes:
        self._frame += 1
        now = self.clock()
        alerting = set()
        due: list[tuple[int, _Person]] = []
        for index, face in enumerate(faces):
            person = self._observe(face, now)
            if not person.counted and person.state is not None and person.seen >= self.confirm_frames:
                self._totals[person.state] += 1
                person.counted = True
            if self.options.enabled and person.bad_streak >= max(1, self.options.frames):
                alerting.add(index)
                if person.alerting_since is None:
                    person.alerting_since = now
                if not person.alerted:
                    person.alerted = True  # once per streak, announced or not
                    if person.last_alert is None or now - person.last_alert >= self.options.cooldown_s:
                        person.last_alert = now
                        due.append((face.track_id, person))
        alert = None
        if due:
            alert = Alert(tuple(i for i, _ in due), tuple(p.state for _, p in due if p.state is not None))
        here = {f.track_id for f in faces}
        for track_id, person in self._people.items():  # gone from the picture: let go after LINGER_S
            if track_id not in here and person.alerting_since is not None and now - person.last_seen > LINGER_S:
                person.alerting_since = None
        people = tuple(sorted((i, p.state) for i, p in self._people.items()
                              if p.alerting_since is not None and p.state in ALERT_STATES))
        self._people = {i: p for i, p in self._people.items() if self._frame - p.last_frame <= self.forget_after}
        counts = Counts(len(faces), self._totals[Mask.WEAR], self._totals[Mask.INCORRECT], self._totals[Mask.NOT_WEAR])
        return FrameNotes(tuple(f.track_id for f in faces), frozenset(alerting), counts, alert, people)

    def _observe(self, face: TrackedFace, now: float) -> _Person:
        person = self._people.setdefault(face.track_id, _Person())
        person.seen = person.seen + 1 if person.last_frame == self._frame - 1 else 1
        person.last_frame = self._frame
        person.last_seen = now
        person.state = face.mask.label if face.mask is not None else None
        if person.state in ALERT_STATES:
            person.bad_streak += 1
        else:
            person.bad_streak = 0
            person.alerted = False
            person.alerting_since = None  # masked up (or no verdict): off the banner at once
        return person


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
