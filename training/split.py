"""`split`: person-level stratified k-fold, written once so every run validates on the same people.

A person's photos all land in one fold (the same face in train and validation would flatter
the score). Folds are balanced per stratum, the person's combination of mask states, gender
and age group, so each fold sees e.g. older women with incorrectly worn masks.
"""
from __future__ import annotations

import csv
import logging
from collections import Counter, defaultdict
from dataclasses import dataclass

import numpy as np

from core.atomic import atomic_open
from core.labels import LABEL_NAMES
from training.cache import Cache, CachedFace
from training.config import ConfigError, SplitConfig

log = logging.getLogger(__name__)


def _majority(values: list) -> object | None:
    known = [v for v in values if v is not None]
    return Counter(known).most_common(1)[0][0] if known else None


def person_stratum(faces: list[CachedFace], age_boundary: int) -> str:
    """"mask states|gender|age group" of one person, "?" where unknown."""
    masks = sorted({int(f.row.mask) for f in faces if f.row.mask is not None})
    gender = _majority([f.row.gender for f in faces])
    age = _majority([f.row.age_label(age_boundary) for f in faces])
    mask_part = "+".join(LABEL_NAMES["mask"][m] for m in masks) or "?"
    gender_part = LABEL_NAMES["gender"][int(gender)] if gender is not None else "?"
    age_part = LABEL_NAMES["age"][int(age)] if age is not None else "?"
    return f"{mask_part}|{gender_part}|{age_part}"


def assign_folds(people: dict[str, list[CachedFace]], folds: int, seed: int, age_boundary: int) -> dict[str, int]:
    """person id -> fold. Within each stratum (in shuffled order) a person goes to the fold with
    the fewest people of that stratum, ties to the fold with the fewest photos."""
    if len(people) < folds:
        raise ConfigError(f"{len(people)} people cannot fill {folds} folds")
    rng = np.random.default_rng(seed)
    strata: dict[str, list[str]] = defaultdict(list)
    for person in sorted(people):
        strata[person_stratum(people[person], age_boundary)].append(person)
    photos = np.zeros(folds, dtype=np.int64)
    assignment: dict[str, int] = {}
    # Largest strata first, so the small ones even out the photo counts.
    for stratum in sorted(strata, key=lambda s: (-len(strata[s]), s)):
        members = list(strata[stratum])
        rng.shuffle(members)
        count = np.zeros(folds, dtype=np.int64)
        for person in members:
            fold = min(range(folds), key=lambda k: (count[k], photos[k], k))
            assignment[person] = fold
            count[fold] += 1
            photos[fold] += len(people[person])
    return assignment


@dataclass(frozen=True)
class SplitSummary:
    people: int
    photos_per_fold: list[int]
    people_per_fold: list[int]
    strata: int

    def describe(self) -> str:
        return (
            f"{self.people} people in {len(self.people_per_fold)} folds ({self.strata} strata); "
            f"people per fold {self.people_per_fold}, photos per fold {self.photos_per_fold}"
        )


def split(config: SplitConfig) -> SplitSummary:
    """Write <cache>/folds.csv (person_id, fold, stratum, photos)."""
    cache = Cache(config.cache)
    people: dict[str, list[CachedFace]] = defaultdict(list)
    for face in cache.read_faces():
        people[face.row.person_id].append(face)
    assignment = assign_folds(people, config.folds, config.seed, config.age_boundary)
    strata = {p: person_stratum(people[p], config.age_boundary) for p in people}
    with atomic_open(cache.folds_path, "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["person_id", "fold", "stratum", "photos"])
        for person in sorted(assignment):
            writer.writerow([person, assignment[person], strata[person], len(people[person])])
    photos = [0] * config.folds
    members = [0] * config.folds
    for person, fold in assignment.items():
        photos[fold] += len(people[person])
        members[fold] += 1
    summary = SplitSummary(len(people), photos, members, len(set(strata.values())))
    log.info("wrote %s: %s", cache.folds_path, summary.describe())
    return summary
