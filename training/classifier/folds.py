"""Which cached faces a run trains and validates on: the folds of <cache>/folds.csv.

`mask-train split` writes the folds once; every consumer (train, evaluate, export, the ensemble)
reads them here, so a person is never in training and validation at once.
"""
from __future__ import annotations

from dataclasses import replace

from training.config import ConfigError, TrainConfig
from training.data.cache import TEST_FOLD, Cache, CachedFace


def faces_with_folds(cache: Cache) -> tuple[list[CachedFace], dict[str, int]]:
    faces = cache.read_faces()
    folds = cache.read_folds()
    unknown = sorted({f.row.person_id for f in faces} - set(folds))
    if unknown:
        raise ConfigError(f"{len(unknown)} people have no fold (e.g. {unknown[0]}): the data changed, run `mask-train split` again")
    return faces, folds


def split_faces(cache: Cache, fold: int) -> tuple[list[CachedFace], list[CachedFace]]:
    """(train, validation) by the saved folds; a person unknown to folds.csv is an error.
    People in the held-out test split (fold "test") are in neither."""
    faces, folds = faces_with_folds(cache)
    count = max(folds.values()) + 1
    if fold < 0 or fold >= count:
        raise ConfigError(f"fold {fold} does not exist: folds.csv has {count} folds (0..{count - 1})")
    train = [f for f in faces if folds[f.row.person_id] not in (fold, TEST_FOLD)]
    val = [f for f in faces if folds[f.row.person_id] == fold]
    if not train or not val:
        raise ConfigError(f"fold {fold} leaves {len(train)} training and {len(val)} validation photos")
    return train, val


def held_out_faces(cache: Cache) -> list[CachedFace]:
    """The held-out test split (`mask-train split --holdout`); an error when there is none."""
    faces, folds = faces_with_folds(cache)
    test = [f for f in faces if folds[f.row.person_id] == TEST_FOLD]
    if not test:
        raise ConfigError(f"{cache.folds_path} has no test split: run `mask-train split --holdout F` first")
    return test


def fold_configs(config: TrainConfig) -> list[TrainConfig]:
    """One config per fold of config.run_folds ("all": every fold of folds.csv), each with its own run
    folder: <run_dir>/fold<K> when run_dir is set, else the default <cache>/runs/<model>_fold<K>."""
    folds = Cache(config.cache).read_folds()
    count = max(folds.values(), default=TEST_FOLD) + 1
    numbers = list(range(count)) if config.run_folds == "all" else [int(k) for k in config.run_folds.split(",")]
    missing = [k for k in numbers if not 0 <= k < count]
    if not numbers or missing:
        raise ConfigError(f"folds {missing or config.run_folds!r} do not exist: {config.cache}/folds.csv has {count} folds")
    return [
        replace(config, run_folds="", fold=k, run_dir=config.run_dir / f"fold{k}" if config.run_dir else None)
        for k in numbers
    ]

