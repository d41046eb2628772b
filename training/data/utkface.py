"""UTKFace file names, the one place they are read: `<age>_<gender>_<race>_<date>.jpg[.chip.jpg]`.

Gender 0 is male, 1 female; race 0-4 is White, Black, Asian, Indian, Others (RACE_NAMES), and a few
files lack the race field. Both the dataset reader
(training.data.readers) and `mask-train synth`'s source list use this, so they agree on which
files count and what their labels are.
"""
from __future__ import annotations

import re

from core.labels import Gender
from training.data.records import MAX_AGE, LabelError

_UTK_NAME = re.compile(r"^(\d+)_(\d+)_(?:(\d+)_)?\d+")
#: A name with the race field and UTKFace's long date-time stamp (17 digits): stricter than
#: _UTK_NAME, so web photos named like `1_0_2_0001.jpg` are not taken for UTKFace's.
_UTK_RACE_NAME = re.compile(r"^\d+_[01]_(\d+)_\d{8,}")
#: UTKFace's race field, 0-4.
RACE_NAMES = ("White", "Black", "Asian", "Indian", "Others")


def is_utkface_name(name: str) -> bool:
    """Whether a file name has UTKFace's shape (its labels may still be out of range)."""
    return _UTK_NAME.match(name) is not None


def utkface_labels(name: str) -> tuple[float, Gender]:
    """(age in years, gender) of a UTKFace file name; LabelError when it has none or they are out of range."""
    match = _UTK_NAME.match(name)
    if not match:
        raise LabelError("name is not <age>_<gender>_<race>_<date>")
    age, gender = int(match.group(1)), int(match.group(2))
    if gender not in (0, 1) or age > MAX_AGE:
        raise LabelError(f"gender {gender} (0/1) or age {age} out of range")
    return float(age), Gender(gender)


def utkface_race(name: str) -> int | None:
    """The race field (0-4) of a UTKFace file name; None when the name has none or is not UTKFace's."""
    match = _UTK_RACE_NAME.match(name)
    if match is None or int(match.group(1)) >= len(RACE_NAMES):
        return None
    return int(match.group(1))


def race_of_person(person_id: str) -> int | None:
    """The race of a row whose person id ends in a UTKFace file name: `utkface` rows and the rows
    `mask-train synth` writes (its person_id is the source chip's name), in old caches too."""
    return utkface_race(person_id.replace("\\", "/").rsplit("/", 1)[-1])


def parse_race(text: str) -> int | None:
    """A race cell: "" is unknown; a RACE_NAMES name (any case) or its number 0-4."""
    text = text.strip()
    if text == "":
        return None
    names = {name.lower(): i for i, name in enumerate(RACE_NAMES)}
    if text.lower() in names:
        return names[text.lower()]
    if text.isdigit() and int(text) < len(RACE_NAMES):
        return int(text)
    raise LabelError(f"unknown race {text!r} (expected {', '.join(RACE_NAMES)} or 0..{len(RACE_NAMES) - 1})")
