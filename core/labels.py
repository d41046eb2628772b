"""Label encoding shared by training and runtime: the three heads and the 18-class code.

class id = mask * 6 + gender * 3 + age, as in the mask-wearing competition.
"""
from __future__ import annotations

from enum import IntEnum

import numpy as np


class Mask(IntEnum):
    WEAR = 0
    INCORRECT = 1
    NOT_WEAR = 2


class Gender(IntEnum):
    MALE = 0
    FEMALE = 1


class Age(IntEnum):
    UNDER_30 = 0
    FROM_30_TO_59 = 1
    OVER_60 = 2


HEADS: dict[str, type[IntEnum]] = {"mask": Mask, "gender": Gender, "age": Age}

#: Human-readable names, in label order; these are also written into the ONNX metadata.
LABEL_NAMES: dict[str, tuple[str, ...]] = {
    "mask": ("wear", "incorrect", "not_wear"),
    "gender": ("male", "female"),
    "age": ("<30", "30-59", "60+"),
}

#: Age group boundaries (years): age < 30 -> UNDER_30, 30 <= age < OLD_AGE -> FROM_30_TO_59.
YOUNG_AGE_LIMIT = 30
OLD_AGE = 60

NUM_CLASSES = len(Mask) * len(Gender) * len(Age)  # 18


def age_group_texts(old_age: int = OLD_AGE) -> dict[Age, str]:
    """How the groups read for a model trained with `old_age` as the start of the oldest one
    (`--age-boundary 58`: "<30", "30–57", "58+"), so a caption never states the default range."""
    return {Age.UNDER_30: f"<{YOUNG_AGE_LIMIT}", Age.FROM_30_TO_59: f"{YOUNG_AGE_LIMIT}–{old_age - 1}", Age.OVER_60: f"{old_age}+"}


def age_group(age: float, old_age: int = OLD_AGE) -> Age:
    """Age group of an age in years.

    `old_age` moves the boundary of the oldest group: the competitors trained with 58 so the
    scarce 60+ group gets the faces of 58- and 59-year-olds, who look the same.
    """
    if age < YOUNG_AGE_LIMIT:
        return Age.UNDER_30
    if age < old_age:
        return Age.FROM_30_TO_59
    return Age.OVER_60


def encode_class(mask: int, gender: int, age: int) -> int:
    """The competition's 18-class id."""
    return int(Mask(mask)) * 6 + int(Gender(gender)) * 3 + int(Age(age))


def decode_class(class_id: int) -> tuple[Mask, Gender, Age]:
    if not 0 <= class_id < NUM_CLASSES:
        raise ValueError(f"class id must be in 0..{NUM_CLASSES - 1}, got {class_id}")
    return Mask(class_id // 6), Gender(class_id % 6 // 3), Age(class_id % 3)


def class_names() -> tuple[str, ...]:
    """The 18 classes as "mask/gender/age", in class-id order (the names an 18-way head carries)."""
    return tuple(
        "/".join(LABEL_NAMES[head][int(value)] for head, value in zip(HEADS, decode_class(c))) for c in range(NUM_CLASSES)
    )


def marginals(class_probs: np.ndarray) -> dict[str, np.ndarray]:
    """18-class probabilities (N×18) → per-head probabilities, summed class by class."""
    class_probs = np.asarray(class_probs, dtype=np.float64)
    out = {name: np.zeros((len(class_probs), len(labels))) for name, labels in LABEL_NAMES.items()}
    for class_id in range(NUM_CLASSES):
        for name, label in zip(HEADS, decode_class(class_id)):
            out[name][:, int(label)] += class_probs[:, class_id]
    return out
