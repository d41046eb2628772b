"""The person-level stratified k-fold: no person in two folds, strata spread, same folds every time."""
from __future__ import annotations

import csv
from collections import Counter, defaultdict
from pathlib import Path

import numpy as np
import pytest

from core.labels import Gender, Mask
from training.data.cache import CachedFace, Cache
from training.config import ConfigError, SplitConfig
from training.data.records import ManifestRow
from training.data.split import _refuse_moving_trained_people, assign_folds, person_stratum, split


def people(n: int, seed: int = 0) -> dict[str, list[CachedFace]]:
    """n competition-like people (7 photos, all mask states) plus n single-photo UTK-like people."""
    rng = np.random.default_rng(seed)
    out: dict[str, list[CachedFace]] = {}
    for i in range(n):
        gender, age = Gender(int(rng.integers(2))), float(rng.choice([20, 45, 65]))
        pid = f"comp/{i}"
        out[pid] = [
            CachedFace(ManifestRow(Path(f"{pid}/{m}.jpg"), pid, mask, gender, age, None, "comp"), Path(f"{pid}_{m}.png"))
            for m, mask in enumerate([Mask.WEAR] * 5 + [Mask.INCORRECT, Mask.NOT_WEAR])
        ]
        uid = f"utk/{i}"
        out[uid] = [CachedFace(ManifestRow(Path(f"{uid}.jpg"), uid, None, gender, age, None, "utk"), Path(f"{uid}.png"))]
    return out


def test_every_person_is_in_exactly_one_fold_and_folds_are_balanced():
    group = people(60)
    folds = assign_folds(group, 5, seed=0, age_boundary=60)
    assert set(folds) == set(group)  # a dict: one fold per person by construction
    photos = Counter()
    for person, fold in folds.items():
        photos[fold] += len(group[person])
    assert set(photos) == set(range(5))
    assert max(photos.values()) - min(photos.values()) <= 7  # at most one competition person apart
    # Each stratum is spread evenly over the folds.
    by_stratum: dict[str, Counter] = defaultdict(Counter)
    for person, fold in folds.items():
        by_stratum[person_stratum(group[person], 60)][fold] += 1
    for counts in by_stratum.values():
        full = [counts.get(k, 0) for k in range(5)]
        assert max(full) - min(full) <= 1


def test_same_seed_same_folds_other_seed_other_folds():
    group = people(30)
    assert assign_folds(group, 5, 1, 60) == assign_folds(group, 5, 1, 60)
    assert assign_folds(group, 5, 1, 60) != assign_folds(group, 5, 2, 60)


def test_stratum_names_the_person():
    group = people(1)
    comp = group["comp/0"]
    stratum = person_stratum(comp, 60)
    assert stratum.startswith("wear+incorrect+not_wear|")
    assert person_stratum(group["utk/0"], 60).startswith("?|")


def test_too_few_people_is_an_error():
    with pytest.raises(ConfigError, match="cannot fill 5 folds"):
        assign_folds(people(2), 5, 0, 60)


def test_split_writes_folds_csv(tmp_path):
    cache = Cache(tmp_path)
    group = people(10)
    with open(cache.manifest_path, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["path", "person_id", "source", "mask", "gender", "age", "age_group", "status", "crop"])
        for faces in group.values():
            for f in faces:
                r = f.row
                mask = "" if r.mask is None else ["wear", "incorrect", "not_wear"][r.mask]
                writer.writerow([r.path, r.person_id, r.source, mask, ["male", "female"][r.gender], r.age, "", "ok", f.crop])
        writer.writerow(["lost.jpg", "lost", "x", "wear", "", "", "", "no_face", ""])  # not in any fold
    summary = split(SplitConfig(cache=tmp_path, num_folds=4))
    rows = list(csv.DictReader(open(cache.folds_path)))
    assert len(rows) == len({r["person_id"] for r in rows}) == 20
    assert sum(summary.photos_per_fold) == 80 and sum(summary.people_per_fold) == 20
    assert cache.read_folds() == {r["person_id"]: int(r["fold"]) for r in rows}


def test_resplitting_under_trained_runs_may_not_move_people(tmp_path):
    """A run's validation fold must keep meaning what it meant when it was trained."""
    cache = Cache(tmp_path)
    folds = cache.folds_path
    folds.write_text("person_id,fold,stratum,photos,group\nsomeone,3,x,1,someone\n")
    (tmp_path / "runs" / "a_run").mkdir(parents=True)
    _refuse_moving_trained_people(cache, {"someone": 3, "newcomer": 0})  # adding people is fine
    with pytest.raises(ConfigError, match="move 1 people"):
        _refuse_moving_trained_people(cache, {"someone": 1})
    assert list(csv.DictReader(folds.open()))[0]["fold"] == "3"
