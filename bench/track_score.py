"""Scoring a live pipeline's confirmed faces against a clip's true faces (bench/truth_clips.py).

Per frame, confirmed boxes and counted true faces are paired one to one (greedy, best IoU first;
a loose truth pairs by its centre-and-size rule). A confirmed box left over that is still on some
true face (`Truth.near`: a second box on a face, a box in another style than the label's, a face
too small or cut to be counted) is neutral; any other is a stray track-frame. A stray track is
a confirmed track never on a true face while confirmed: what the app would draw, count and alarm
on with nobody there.
"""
from __future__ import annotations

import statistics
from dataclasses import dataclass, field

import numpy as np

from bench.truth_clips import Truth


def _score(truth: Truth, box: np.ndarray) -> float:
    """How well `box` fits `truth` (0: not a match): IoU, or 0.5 for a loose truth's match."""
    if not truth.matches(box):
        return 0.0
    if truth.loose:
        return 0.5
    a, b = truth.box, box
    w = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    h = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    return float(w * h / ((a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - w * h))


@dataclass
class ClipScore:
    """One pipeline on one clip."""

    face_frames: dict[str, int] = field(default_factory=dict)  # state -> counted true faces, all frames
    covered: dict[str, int] = field(default_factory=dict)  # state -> of those, covered by a confirmed box
    first_seen: dict[str, int] = field(default_factory=dict)  # person -> first frame counted
    first_shown: dict[str, int] = field(default_factory=dict)  # person -> first frame covered
    stray_frames: int = 0
    track_matched: dict[int, bool] = field(default_factory=dict)  # confirmed track id -> ever matched a true face
    frames: int = 0

    def add(self, truths: list[Truth], boxes: list[np.ndarray], track_ids: list[int]) -> None:
        """One frame: the true faces and the confirmed tracks' boxes and ids."""
        index = self.frames
        self.frames += 1
        counted = [t for t in truths if t.counted]
        for truth in counted:
            self.face_frames[truth.state] = self.face_frames.get(truth.state, 0) + 1
            self.first_seen.setdefault(truth.person, index)
        pairs = sorted(((s, i, j) for i, t in enumerate(counted) for j, b in enumerate(boxes) if (s := _score(t, b)) > 0),
                       reverse=True)
        used_t: set[int] = set()
        used_b: set[int] = set()
        for _, i, j in pairs:
            if i in used_t or j in used_b:
                continue
            used_t.add(i)
            used_b.add(j)
            truth = counted[i]
            self.covered[truth.state] = self.covered.get(truth.state, 0) + 1
            self.first_shown.setdefault(truth.person, index)
        for j, (box, track) in enumerate(zip(boxes, track_ids)):
            matched = j in used_b or any(t.near(box) for t in truths)
            self.track_matched[track] = self.track_matched.get(track, False) or matched
            self.stray_frames += not matched

    @property
    def stray_tracks(self) -> int:
        return sum(not matched for matched in self.track_matched.values())

    def delays(self) -> list[int]:
        """Frames from each found person's first counted frame to their first confirmed box."""
        return [self.first_shown[p] - self.first_seen[p] for p in self.first_shown]


@dataclass
class Totals:
    """Clip scores summed over clips (one threshold set)."""

    clips: list[ClipScore] = field(default_factory=list)

    def share(self, state: str | None = None) -> tuple[int, int]:
        """(covered, counted) true-face frames, of one state or all."""
        covered = sum(v for c in self.clips for k, v in c.covered.items() if state in (None, k))
        total = sum(v for c in self.clips for k, v in c.face_frames.items() if state in (None, k))
        return covered, total

    @property
    def persons(self) -> tuple[int, int]:
        return sum(len(c.first_shown) for c in self.clips), sum(len(c.first_seen) for c in self.clips)

    @property
    def median_delay(self) -> float | None:
        delays = [d for c in self.clips for d in c.delays()]
        return statistics.median(delays) if delays else None

    @property
    def stray_tracks(self) -> int:
        return sum(c.stray_tracks for c in self.clips)

    @property
    def stray_frames(self) -> int:
        return sum(c.stray_frames for c in self.clips)
