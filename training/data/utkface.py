"""UTKFace file names, the one place they are read: `<age>_<gender>_<race>_<date>.jpg[.chip.jpg]`.

Gender 0 is male, 1 female; a few files lack the race field. Both the dataset reader
(training.data.readers) and `mask-train synth`'s source list use this, so they agree on which
files count and what their labels are.
"""
from __future__ import annotations

import re

from core.labels import Gender
from training.data.records import MAX_AGE, LabelError

_UTK_NAME = re.compile(r"^(\d+)_(\d+)_(?:(\d+)_)?\d+")



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
