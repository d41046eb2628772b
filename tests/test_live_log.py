"""The live view's alert log and counts per minute (app/live_log.py), fed by real LiveStats notes:
entries open when an alert is announced and end when the person masks up or leaves; files are
written only on export, atomically."""
from __future__ import annotations

import csv
from datetime import datetime, timedelta

from app.live_log import ALERT_COLUMNS, MINUTE_COLUMNS, AlertLog, MinuteCounts
from app.tracking import AlertOptions, LiveStats
from core.labels import Mask
from tests.test_gui_tracking import Clock, face


class WallClock:
    def __init__(self) -> None:
        self.now = datetime(2026, 5, 4, 9, 30, 0)

    def __call__(self) -> datetime:
        return self.now


def test_alerts_are_logged_with_their_person_state_and_duration(tmp_path):
    clock, wall = Clock(), WallClock()
    stats = LiveStats(AlertOptions(frames=2, cooldown_s=60.0), clock=clock)
    log = AlertLog(clock=wall)

    def step(*faces, seconds: float = 0.1):
        clock.now += seconds
        wall.now += timedelta(seconds=seconds)
        return log.update(stats.update(list(faces)))

    step(face(3, Mask.NOT_WEAR), face(7, Mask.WEAR, x=200))
    assert not log.entries
    assert step(face(3, Mask.NOT_WEAR), face(7, Mask.WEAR, x=200))  # #3 over the threshold: logged
    for _ in range(20):  # two seconds unmasked
        step(face(3, Mask.NOT_WEAR), face(7, Mask.INCORRECT, x=200))
    assert [(e.track_id, e.state) for e in log.entries] == [(3, Mask.NOT_WEAR), (7, Mask.INCORRECT)]
    assert log.ongoing and log.rows()[0][4] is True
    step(face(3, Mask.WEAR), face(7, Mask.INCORRECT, x=200))  # #3 masks up: their entry ends
    first = log.entries[0]
    assert first.ended is not None and abs(first.duration_s(wall.now) - 2.1) < 1e-6
    for _ in range(10):  # #7 walks out: their entry ends once the banner lets them go
        step(face(3, Mask.WEAR))
    assert all(e.ended is not None for e in log.entries) and not log.ongoing

    out = tmp_path / "exports" / "alerts.csv"
    assert not out.parent.exists()  # nothing written until asked
    log.write_csv(out)
    with open(out, newline="", encoding="utf-8") as handle:
        rows = list(csv.reader(handle))
    assert tuple(rows[0]) == ALERT_COLUMNS
    assert [r[1:3] for r in rows[1:]] == [["3", "No mask"], ["7", "Mask worn wrongly"]]
    assert rows[1][0] == "2026-05-04 09:30:00" and float(rows[1][3]) == 2.1 and rows[1][4] == "False"
    assert sorted(p.name for p in out.parent.iterdir()) == ["alerts.csv"]  # no temporary file left


def test_a_stopped_source_ends_the_open_alerts():
    wall = WallClock()
    stats = LiveStats(AlertOptions(frames=1))
    log = AlertLog(clock=wall)
    log.update(stats.update([face(1, Mask.NOT_WEAR)]))
    assert log.ongoing
    wall.now += timedelta(seconds=5)
    log.end_all()
    assert not log.ongoing and log.entries[0].duration_s(wall.now + timedelta(hours=1)) == 5.0


def test_counts_per_minute(tmp_path):
    wall = WallClock()
    stats = LiveStats(AlertOptions(frames=3, cooldown_s=0.0))
    counts = MinuteCounts(clock=wall)
    for _ in range(4):  # minute 09:30: one masked person, one unmasked who alerts
        counts.update(stats.update([face(1, Mask.WEAR), face(2, Mask.NOT_WEAR, x=200)]))
    wall.now += timedelta(minutes=1)
    for _ in range(3):  # minute 09:31: a third person, wrongly masked, alone in view
        counts.update(stats.update([face(3, Mask.INCORRECT)]))
    assert counts.rows() == [("2026-05-04 09:30", 2, 1, 0, 1, 1), ("2026-05-04 09:31", 1, 0, 1, 0, 1)]
    out = counts.write_csv(tmp_path / "minutes.csv")
    with open(out, newline="", encoding="utf-8") as handle:
        rows = list(csv.reader(handle))
    assert tuple(rows[0]) == MINUTE_COLUMNS and len(rows) == 3


def test_the_alert_log_is_bounded_for_cameras_watched_for_weeks():
    """Each new person alerting adds an entry; past the bound the oldest go, the newest stay."""
    wall = WallClock()
    stats = LiveStats(AlertOptions(frames=1, cooldown_s=0.0))
    log = AlertLog(clock=wall, max_entries=5)
    for track in range(1, 13):
        log.update(stats.update([face(track, Mask.NOT_WEAR)]))
    assert len(log.entries) == 5
    assert [e.track_id for e in log.entries] == [8, 9, 10, 11, 12]
    assert len(log.rows()) == 5


def test_the_counts_per_minute_are_bounded_for_cameras_watched_for_weeks():
    """A minute with faces adds a row; past the bound the oldest minutes go, the current one is counted."""
    wall = WallClock()
    stats = LiveStats(AlertOptions(frames=1, cooldown_s=0.0))
    counts = MinuteCounts(clock=wall, max_minutes=3)
    for track in range(1, 8):  # one new bare face each minute, 09:30 to 09:36
        counts.update(stats.update([face(track, Mask.NOT_WEAR)]))
        wall.now += timedelta(minutes=1)
    wall.now -= timedelta(minutes=1)
    counts.update(stats.update([face(7, Mask.NOT_WEAR), face(8, Mask.WEAR, x=200)]))  # 09:36 again: no new row
    assert [row[0] for row in counts.rows()] == ["2026-05-04 09:34", "2026-05-04 09:35", "2026-05-04 09:36"]
    assert counts.rows()[-1][1] == 2  # the current minute still counts: two faces at most
