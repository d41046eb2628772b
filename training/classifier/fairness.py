"""Fairness figures of `evaluate`: gender accuracy and the mask false-alarm rate per race group and
per gender, with counts, and the gap between the worst and the best group.

A false alarm is a bare face called masked or wrongly masked: the app would then report a mask
that is not there, and whether that happens more to one group than another is what a user of
such a checker worries about first. Race is UTKFace's field (training.data.utkface.RACE_NAMES), so
the race groups are the UTKFace faces (with their synthetic masks, bare ones included); faces of
other sources have no race and only enter the gender groups when they have a gender label.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, field

import numpy as np

from core.labels import LABEL_NAMES, Mask
from training.classifier.metrics import IGNORE
from training.data.cache import CachedFace
from training.data.utkface import RACE_NAMES

#: A group needs this many faces behind a figure to enter the worst-vs-best gap (smaller ones are
#: still listed, with their counts).
MIN_GROUP = 20
COLUMNS = ["by", "group", "gender_n", "gender_acc", "bare_n", "false_alarm"]


@dataclass(frozen=True)
class GroupScore:
    """One group's figures; None where the group has no face for that figure."""

    by: str  # "race" or "gender"
    group: str
    gender_n: int
    gender_acc: float | None
    bare_n: int
    false_alarm: float | None  # share of its bare faces called wear or incorrect


@dataclass(frozen=True)
class Gap:
    """Worst minus best group of one figure (for false alarms, worst is the highest)."""

    by: str
    figure: str
    worst_group: str
    worst: float
    best_group: str
    best: float

    @property
    def gap(self) -> float:
        return abs(self.worst - self.best)


@dataclass
class Fairness:
    groups: list[GroupScore] = field(default_factory=list)
    gaps: list[Gap] = field(default_factory=list)
    min_group: int = MIN_GROUP

    def rows(self) -> list[dict]:
        """fairness.csv's rows (COLUMNS), figures rounded, "" where there is none."""
        return [{k: ("" if v is None else round(v, 4) if isinstance(v, float) else v) for k, v in asdict(g).items()} for g in self.groups]

    def to_json(self) -> dict:
        return {"groups": self.rows(), "min_group": self.min_group,
                "gaps": [{**asdict(g), "gap": round(g.gap, 4)} for g in self.gaps]}

    def report_lines(self) -> list[str]:
        if not self.groups:
            return []
        lines = ["", "## Fairness: gender accuracy and mask false alarms (bare face called masked) by group", "",
                 "| by | group | gender accuracy (faces) | false alarms (bare faces) |", "|---|---|---|---|"]
        for g in self.groups:
            acc = "–" if g.gender_acc is None else f"{g.gender_acc:.4f}"
            alarm = "–" if g.false_alarm is None else f"{g.false_alarm:.4f}"
            lines.append(f"| {g.by} | {g.group} | {acc} ({g.gender_n}) | {alarm} ({g.bare_n}) |")
        if not self.gaps:
            lines += ["", f"No worst-vs-best gap: fewer than two groups have {self.min_group} faces behind a figure."]
        else:
            lines += ["", f"Gap worst vs best group (groups with at least {self.min_group} faces behind the figure):", ""]
            lines += [f"- {g.figure} by {g.by}: {g.gap:.4f} (worst {g.worst_group} {g.worst:.4f}, best {g.best_group} {g.best:.4f})"
                      for g in self.gaps]
        return lines


def fairness(faces: Sequence[CachedFace], probs: dict[str, np.ndarray], labels: np.ndarray, min_group: int = MIN_GROUP) -> Fairness:
    """The figures per race group and per gender of `faces` (labels: (N, 3) targets, IGNORE = unknown)."""
    gender_pred = np.argmax(probs["gender"], axis=1)
    mask_pred = np.argmax(probs["mask"], axis=1)
    has_gender = labels[:, 1] != IGNORE
    right_gender = has_gender & (gender_pred == labels[:, 1])
    bare = labels[:, 0] == int(Mask.NOT_WEAR)
    alarm = bare & (mask_pred != int(Mask.NOT_WEAR))
    race = np.array([-1 if f.row.race is None else f.row.race for f in faces], dtype=np.int64)
    result = Fairness(min_group=min_group)
    for by, names, key in (("race", RACE_NAMES, race), ("gender", LABEL_NAMES["gender"], np.where(has_gender, labels[:, 1], -1))):
        scored = []
        for value, name in enumerate(names):
            rows = key == value
            n_gender, n_bare = int((rows & has_gender).sum()), int((rows & bare).sum())
            if not n_gender and not n_bare:
                continue
            acc = float(right_gender[rows].sum() / n_gender) if n_gender else None
            false_alarm = float(alarm[rows].sum() / n_bare) if n_bare else None
            scored.append(GroupScore(by, name, n_gender, acc, n_bare, false_alarm))
        result.groups += scored
        result.gaps += _gaps(by, scored, min_group)
    return result


def _gaps(by: str, groups: list[GroupScore], min_group: int) -> list[Gap]:
    out = []
    for figure, value, count, higher_is_better in (("gender accuracy", "gender_acc", "gender_n", True),
                                                   ("false alarm rate", "false_alarm", "bare_n", False)):
        eligible = [g for g in groups if getattr(g, value) is not None and getattr(g, count) >= min_group]
        if len(eligible) < 2:
            continue
        ranked = sorted(eligible, key=lambda g: getattr(g, value), reverse=not higher_is_better)  # worst first
        worst, best = ranked[0], ranked[-1]
        out.append(Gap(by, figure, worst.group, getattr(worst, value), best.group, getattr(best, value)))
    return out
