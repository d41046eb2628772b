"""`split`: person-level stratified k-fold, written once so every run validates on the same people.

A person's photos all land in one fold (the same face in train and validation would flatter
the score). Folds are balanced per stratum, the person's combination of mask states, gender
and age group, so each fold sees e.g. older women with incorrectly worn masks.

With `holdout` > 0, a stratified fraction of the people is first set aside as the test split
(fold "test" in folds.csv): `train` never sees them, neither for training nor for validation,
and `evaluate --split test` scores them. The k folds are made from the rest.

Exact duplicates: photos with the same bytes (sha1 of the source file) listed under different
person ids (the same picture in two datasets, or twice in one) would put one picture on both
sides of a boundary. Their people are merged into one group before splitting, and a group goes
to one side as a whole: never split between test and train, nor between folds. The group of
every person is written to folds.csv.
"""
from __future__ import annotations

import csv
import hashlib
import logging
import math
from collections import Counter, defaultdict
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from core.atomic import atomic_open
from core.labels import LABEL_NAMES
from training.config import ConfigError, SplitConfig
from training.data.cache import TEST_FOLD, TEST_NAME, Cache, CachedFace

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


def file_digest(path: Path) -> str | None:
    """sha1 of the file's bytes; None when it cannot be read."""
    digest = hashlib.sha1()
    try:
        with open(path, "rb") as handle:
            for chunk in iter(lambda: handle.read(1 << 20), b""):
                digest.update(chunk)
    except OSError as exc:
        log.warning("cannot read %s for the duplicate check: %s", path, exc.strerror or exc)
        return None
    return digest.hexdigest()


def duplicate_groups(people: dict[str, list[CachedFace]], digest=file_digest) -> dict[str, str]:
    """person id -> group id: people whose photos share file bytes (exact duplicates) are one
    group, named after its first person id in sorted order; everyone else is their own group."""
    parent = {p: p for p in people}

    def find(p: str) -> str:
        while parent[p] != p:
            parent[p] = parent[parent[p]]
            p = parent[p]
        return p

    first: dict[str, str] = {}  # digest -> a person with that photo
    digests: dict[Path, str | None] = {}
    for person in sorted(people):
        for face in people[person]:
            path = face.row.path
            if path not in digests:
                digests[path] = digest(path)
            key = digests[path]
            if key is None:
                continue
            other = first.setdefault(key, person)
            a, b = find(other), find(person)
            if a != b:
                parent[max(a, b)] = min(a, b)
    return {p: find(p) for p in people}


def _merge(people: dict[str, list[CachedFace]], groups: dict[str, str]) -> dict[str, list[CachedFace]]:
    merged: dict[str, list[CachedFace]] = defaultdict(list)
    for person in sorted(people):
        merged[groups[person]].extend(people[person])
    return dict(merged)


def assign_holdout(people: dict[str, list[CachedFace]], fraction: float, seed: int, age_boundary: int) -> set[str]:
    """The ids of a stratified `fraction` of `people` (each stratum gives its share, rounding
    carried over from stratum to stratum so the total is right)."""
    if fraction <= 0:
        return set()
    rng = np.random.default_rng([seed, 7])
    strata: dict[str, list[str]] = defaultdict(list)
    for person in sorted(people):
        strata[person_stratum(people[person], age_boundary)].append(person)
    chosen: set[str] = set()
    carry = 0.0
    for stratum in sorted(strata, key=lambda s: (-len(strata[s]), s)):
        members = list(strata[stratum])
        rng.shuffle(members)
        exact = fraction * len(members) + carry
        take = min(len(members), math.floor(exact + 1e-9))
        carry = exact - take
        chosen.update(members[:take])
    if not chosen or len(chosen) == len(people):
        raise ConfigError(f"a holdout of {fraction:g} of {len(people)} people leaves {len(chosen)} for the test split")
    return chosen


@dataclass(frozen=True)
class SplitSummary:
    people: int
    photos_per_fold: list[int]
    people_per_fold: list[int]
    strata: int
    test_people: int = 0
    test_photos: int = 0
    merged_people: int = 0  # people merged with others because they share an exact duplicate photo

    def describe(self) -> str:
        test = f"test split: {self.test_people} people, {self.test_photos} photos; " if self.test_people else ""
        return (
            f"{self.people} people ({self.merged_people} merged with others over exact duplicate photos); {test}"
            f"{len(self.people_per_fold)} folds ({self.strata} strata); "
            f"people per fold {self.people_per_fold}, photos per fold {self.photos_per_fold}"
        )


def _refuse_moving_trained_people(cache: Cache, assignment: dict[str, int]) -> None:
    """Runs in this cache read folds.csv again on resume, evaluate and export: moving a person
    they trained on into another fold or the test split would leak training data into the
    scores. New people may be added; nobody already assigned may move."""
    runs = cache.root / "runs"
    if not cache.folds_path.exists() or not runs.is_dir() or not any(runs.iterdir()):
        return
    with open(cache.folds_path, newline="", encoding="utf-8") as handle:
        old = {row["person_id"]: row["fold"] for row in csv.DictReader(handle)}
    moved = [p for p, fold in assignment.items() if p in old and old[p] != (TEST_NAME if fold == TEST_FOLD else str(fold))]
    if moved:
        raise ConfigError(
            f"this split would move {len(moved)} people (e.g. {moved[0]}) that the runs in {runs} were trained or "
            "scored on; split into a new cache folder, or remove those runs first"
        )


def split(config: SplitConfig) -> SplitSummary:
    """Write <cache>/folds.csv (person_id, fold, stratum, photos, group); fold "test" = held out."""
    cache = Cache(config.cache)
    people: dict[str, list[CachedFace]] = defaultdict(list)
    for face in cache.read_faces():
        people[face.row.person_id].append(face)
    groups = duplicate_groups(people)
    units = _merge(people, groups)
    sizes = Counter(groups.values())
    merged = sum(1 for p in people if sizes[groups[p]] > 1)
    test = assign_holdout(units, config.holdout, config.seed, config.age_boundary)
    rest = {g: faces for g, faces in units.items() if g not in test}
    unit_folds = assign_folds(rest, config.num_folds, config.seed, config.age_boundary)
    unit_folds.update({g: TEST_FOLD for g in test})
    assignment = {p: unit_folds[groups[p]] for p in people}
    strata = {p: person_stratum(people[p], config.age_boundary) for p in people}
    _refuse_moving_trained_people(cache, assignment)
    with atomic_open(cache.folds_path, "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["person_id", "fold", "stratum", "photos", "group"])
        for person in sorted(assignment):
            fold = assignment[person]
            writer.writerow([person, TEST_NAME if fold == TEST_FOLD else fold, strata[person], len(people[person]), groups[person]])
    photos = [0] * config.num_folds
    members = [0] * config.num_folds
    test_people = test_photos = 0
    for person, fold in assignment.items():
        if fold == TEST_FOLD:
            test_people += 1
            test_photos += len(people[person])
            continue
        photos[fold] += len(people[person])
        members[fold] += 1
    summary = SplitSummary(len(people), photos, members, len(set(strata.values())), test_people, test_photos, merged)
    log.info("wrote %s: %s", cache.folds_path, summary.describe())
    return summary
