"""What every dataset reader gives: labelled face rows, the problems met, and the label parsers.

A label that a dataset does not have is None (UTKFace has no mask label, a mask folder has no
age); the loss leaves it out, so such sets can be mixed.
"""
from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from core.labels import LABEL_NAMES, OLD_AGE, Age, Gender, Mask, age_group

MAX_AGE = 130


@dataclass(frozen=True)
class Problem:
    """Something wrong in a dataset. level "error": the row is not used; "warning": it is."""

    file: str
    line: int | None
    message: str
    level: str = "error"

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}" if self.line is not None else self.file
        return f"{where}: {self.level}: {self.message}"


@dataclass(frozen=True)
class ManifestRow:
    """One labelled face. age is in years when known; age_group when only the group is.

    box: the face's known box (x1, y1, x2, y2 in the photo's pixels); prepare crops it instead of
    detecting. None: prepare finds the face. A photo with several known faces gives one row each.
    race: UTKFace's race field (0-4, training.data.utkface.RACE_NAMES) where known: it is not a
    head, only what the fair sampler balances and evaluate's fairness table groups by.
    """

    path: Path
    person_id: str
    mask: Mask | None
    gender: Gender | None
    age: float | None
    age_group: Age | None
    source: str
    box: tuple[float, float, float, float] | None = None
    race: int | None = None

    def age_label(self, old_age: int = OLD_AGE) -> Age | None:
        """The age group, from the years when known (so --age-boundary applies), else the group."""
        if self.age is not None:
            return age_group(self.age, old_age=old_age)
        return self.age_group

    def has_label(self) -> bool:
        return self.mask is not None or self.gender is not None or self.age_label() is not None


@dataclass
class ReadResult:
    rows: list[ManifestRow] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)

    @property
    def errors(self) -> list[Problem]:
        return [p for p in self.problems if p.level == "error"]

    @property
    def warnings(self) -> list[Problem]:
        return [p for p in self.problems if p.level == "warning"]

    def extend(self, other: ReadResult) -> None:
        self.rows.extend(other.rows)
        self.problems.extend(other.problems)


class LabelError(ValueError):
    pass


def _lookup(enum: type, head: str, text: str, synonyms: dict[str, int]) -> object | None:
    text = text.strip()
    if text == "":
        return None
    key = text.lower()
    names = {name.lower(): i for i, name in enumerate(LABEL_NAMES[head])}
    names.update({member.name.lower(): int(member) for member in enum})
    names.update(synonyms)
    if key in names:
        return enum(names[key])
    if key.isdigit() and int(key) < len(enum):
        return enum(int(key))
    raise LabelError(f"unknown {head} label {text!r} (expected {', '.join(LABEL_NAMES[head])} or 0..{len(enum) - 1})")


def parse_mask(text: str) -> Mask | None:
    return _lookup(Mask, "mask", text, {"mask": 0, "incorrect_mask": 1, "no_mask": 2, "normal": 2})  # type: ignore[return-value]


def parse_gender(text: str) -> Gender | None:
    return _lookup(Gender, "gender", text, {"m": 0, "f": 1, "man": 0, "woman": 1})  # type: ignore[return-value]


def parse_age(text: str) -> tuple[float | None, Age | None]:
    """Years ("37", "37.5") or a group name ("<30", "30-59", "60+"); "" is unknown."""
    text = text.strip()
    if text == "":
        return None, None
    if text in LABEL_NAMES["age"]:
        return None, Age(LABEL_NAMES["age"].index(text))
    try:
        years = float(text)
    except ValueError:
        raise LabelError(f"age {text!r} is neither years nor one of {', '.join(LABEL_NAMES['age'])}") from None
    if not 0 <= years <= MAX_AGE:
        raise LabelError(f"age {years:g} is outside 0..{MAX_AGE}")
    return years, None


def parse_box(values: Iterable[str]) -> tuple[float, float, float, float] | None:
    """(x1, y1, x2, y2) from four cells: all empty is no box; some empty, non-numeric or an
    empty/inverted box is a LabelError."""
    cells = [v.strip() for v in values]
    if not any(cells):
        return None
    if not all(cells):
        raise LabelError(f"partial box {','.join(cells)!r}: give all of x1, y1, x2, y2 or none")
    try:
        box = tuple(float(v) for v in cells)
    except ValueError:
        raise LabelError(f"box {','.join(cells)!r} is not four numbers") from None
    if not all(math.isfinite(v) for v in box):
        raise LabelError(f"box {','.join(cells)!r} is not four finite numbers")
    if box[2] <= box[0] or box[3] <= box[1]:
        raise LabelError(f"box {','.join(cells)!r} is empty (needs x2 > x1 and y2 > y1)")
    return box  # type: ignore[return-value]

