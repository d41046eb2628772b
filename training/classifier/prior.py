"""The age head's prior correction (post-hoc logit adjustment, Menon et al. 2021, "Long-tail
learning via logit adjustment").

A run trained with inverse-frequency class weights (`class_weights`) or the balancing sampler
(`sampler = "weighted"`) learns as if every age group were equally common: its age head answers
"60+" for far more faces than photos hold (issue 16: ages of 20-40-year-olds often "60+"; on the
test split 616 answers of 60+ for 403 such faces). Adding τ·log(prior) to the head's log
probabilities, with the prior the groups' share of the run's training labels, puts the real
frequencies back; τ = 1 is the full correction, 0 none. `mask-train export --age-prior τ` bakes it
into the graph (training.export.ensemble), so the app's output is already corrected, and
`mask-train calibrate` chooses τ on the validation fold and the out-of-source faces.
"""
from __future__ import annotations

import json
from collections.abc import Sequence

import numpy as np

from core.labels import HEADS, LABEL_NAMES
from training.classifier.dataset import target_matrix
from training.classifier.folds import split_faces
from training.classifier.metrics import IGNORE
from training.config import TrainConfig
from training.data.cache import Cache

#: The metadata key of an exported file that holds the age prior and the τ applied.
METADATA_KEY = "age_prior"
AGE = list(HEADS).index("age")


def balances_age(config: TrainConfig) -> bool:
    """Whether the run learned a uniform age prior (class weights or the balancing sampler)."""
    return bool(config.class_weights) or config.sampler == "weighted"


def training_prior(config: TrainConfig, cache: Cache) -> np.ndarray:
    """The age groups' share of the run's training labels, as its class weights counted them (the
    teacher's labels included when the run used them); add-one smoothed so no group is 0."""
    from training.teacher.pseudo import with_teacher  # reads teacher.csv; not needed otherwise

    faces, _ = split_faces(cache, config.fold)
    labels = target_matrix(faces, config.age_boundary, False)
    if config.teacher:
        faces, labels = with_teacher(faces, labels, cache.root, config.age_boundary)
    known = labels[:, AGE][labels[:, AGE] != IGNORE]
    groups = len(LABEL_NAMES["age"])
    counts = np.bincount(known, minlength=groups).astype(np.float64)
    return (counts + 1.0) / (counts.sum() + groups)


def members_prior(members: Sequence[tuple[TrainConfig, Cache]]) -> np.ndarray | None:
    """The mean training prior of runs that all learned a uniform age prior; None when any did not
    (a mix of balanced and unbalanced runs has no single correction)."""
    if not all(balances_age(config) for config, _ in members):
        return None
    # Members of one fold share their training labels: each set is counted once.
    keys = [(str(cache.root), config.fold, config.teacher, config.age_boundary) for config, cache in members]
    counted: dict[tuple, np.ndarray] = {}
    for key, (config, cache) in zip(keys, members):
        if key not in counted:
            counted[key] = training_prior(config, cache)
    return np.mean([counted[key] for key in keys], axis=0)


def logit_bias(prior: np.ndarray, tau: float) -> np.ndarray:
    """τ·log(prior): what the correction adds to the age head's log probabilities."""
    return tau * np.log(np.asarray(prior, dtype=np.float64))


def adjust(probs: np.ndarray, bias: np.ndarray) -> np.ndarray:
    """Age probabilities (N, 3) after the correction: softmax(log p + bias), as the graph does it."""
    logits = np.log(np.clip(np.asarray(probs, dtype=np.float64), 1e-12, None)) + bias
    logits -= logits.max(axis=1, keepdims=True)
    exp = np.exp(logits)
    return exp / exp.sum(axis=1, keepdims=True)


def describe(prior: np.ndarray, tau: float) -> str:
    """The metadata value: the training prior, τ and the bias the graph adds (JSON)."""
    return json.dumps({"training_prior": [round(float(p), 6) for p in prior], "tau": tau,
                       "logit_bias": [round(float(b), 6) for b in logit_bias(prior, tau)]})


def read(extra: dict[str, str]) -> tuple[np.ndarray, float] | None:
    """(training prior, τ applied) from an exported file's metadata extras; None if it has none."""
    if METADATA_KEY not in extra:
        return None
    value = json.loads(extra[METADATA_KEY])
    return np.array(value["training_prior"], dtype=np.float64), float(value["tau"])
