"""What the live view remembers for the user to export: each alert (when, who, what, how long)
and the counts minute by minute. Kept in memory only; a file is written only when the user
exports, atomically. Pure Python: fed on the UI thread from each frame's notes, tested without Qt.
"""
from __future__ import annotations

import csv
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from app.tracking import STATE_TEXT, FrameNotes
from core.atomic import atomic_open
from core.labels import Mask

#: Alerts kept per session (oldest dropped first): a camera watched for weeks must not grow without
#: bound; 50,000 entries are ~10 MB, and a CSV export holds the newest this many.
MAX_ALERTS = 50_000
#: Minutes of counts kept per session (oldest dropped first), for the same reason: 50,000 minutes are
#: ~35 days of a camera that never stops, ~20 MB; a CSV export holds the newest this many.
MAX_MINUTES = 50_000
ALERT_COLUMNS = ("time", "track_id", "state", "duration_s", "ongoing")
MINUTE_COLUMNS = ("minute", "faces_max", "new_mask_worn", "new_mask_worn_wrongly", "new_no_mask", "alerts")


@dataclass
class AlertEntry:
    """One announced alert: from when it was raised until the person masked up or left."""

    started: datetime
    track_id: int
    state: Mask
    ended: datetime | None = None  # None while it lasts

    def duration_s(self, now: datetime) -> float:
        return max(0.0, ((self.ended or now) - self.started).total_seconds())


class AlertLog:
    """Alerts of the current session, oldest first. `update` once per analysed frame."""

    def __init__(self, clock: Callable[[], datetime] = datetime.now, max_entries: int = MAX_ALERTS) -> None:
        self.clock = clock
        self.entries: deque[AlertEntry] = deque(maxlen=max_entries)
        self._open: dict[int, AlertEntry] = {}

    def clear(self) -> None:
        self.entries.clear()
        self._open.clear()

    def update(self, notes: FrameNotes) -> bool:
        """Opens an entry per person announced, ends those no longer alerting; True if anything changed."""
        now = self.clock()
        changed = False
        alerting = {track for track, _ in notes.alerting_people}
        for track in [t for t in self._open if t not in alerting]:
            self._open.pop(track).ended = now
            changed = True
        if notes.alert is not None:
            for track, state in zip(notes.alert.track_ids, notes.alert.states):
                if track not in self._open:
                    entry = AlertEntry(now, track, state)
                    self.entries.append(entry)
                    self._open[track] = entry
                    changed = True
        return changed

    def end_all(self) -> None:
        """The source stopped or ended: nobody is being watched, every alert still open ends now."""
        now = self.clock()
        for entry in self._open.values():
            entry.ended = now
        self._open.clear()

    @property
    def ongoing(self) -> bool:
        return bool(self._open)

    def rows(self) -> list[tuple[str, int, str, float, bool]]:
        """The entries as table / CSV rows: time, track id, state, seconds, still going."""
        now = self.clock()
        return [(e.started.isoformat(sep=" ", timespec="seconds"), e.track_id, STATE_TEXT[e.state],
                 round(e.duration_s(now), 1), e.ended is None) for e in self.entries]

    def write_csv(self, path: Path) -> Path:
        return _write(path, ALERT_COLUMNS, self.rows())


@dataclass
class _Minute:
    faces_max: int = 0
    new: dict[Mask, int] = field(default_factory=lambda: {m: 0 for m in Mask})
    alerts: int = 0


class MinuteCounts:
    """Faces and people counted per wall-clock minute of the current session (the newest
    `max_minutes` minutes)."""

    def __init__(self, clock: Callable[[], datetime] = datetime.now, max_minutes: int = MAX_MINUTES) -> None:
        self.clock = clock
        self.max_minutes = max_minutes
        self.clear()

    def clear(self) -> None:
        self._minutes: dict[datetime, _Minute] = {}
        self._totals = {m: 0 for m in Mask}

    def update(self, notes: FrameNotes) -> None:
        minute = self._minutes.setdefault(self.clock().replace(second=0, microsecond=0), _Minute())
        while len(self._minutes) > self.max_minutes:  # the minute first counted goes (dicts keep that order)
            del self._minutes[next(iter(self._minutes))]
        counts = notes.counts
        minute.faces_max = max(minute.faces_max, counts.now)
        for mask, total in ((Mask.WEAR, counts.wear), (Mask.INCORRECT, counts.incorrect), (Mask.NOT_WEAR, counts.none)):
            minute.new[mask] += max(0, total - self._totals[mask])
            self._totals[mask] = total
        if notes.alert is not None:
            minute.alerts += len(notes.alert.track_ids)

    def rows(self) -> list[tuple]:
        return [(when.isoformat(sep=" ", timespec="minutes"), m.faces_max, m.new[Mask.WEAR], m.new[Mask.INCORRECT],
                 m.new[Mask.NOT_WEAR], m.alerts) for when, m in sorted(self._minutes.items())]

    def write_csv(self, path: Path) -> Path:
        return _write(path, MINUTE_COLUMNS, self.rows())


def _write(path: Path, header: tuple[str, ...], rows: list[tuple]) -> Path:
    with atomic_open(path, "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(header)
        writer.writerows(rows)
    return path
