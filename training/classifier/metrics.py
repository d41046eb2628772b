"""Scores in numpy: macro-F1 (the competition's metric), accuracy, confusion matrices.

Per head over the photos that have that label; the 18-class score over the photos that have all
three. Predictions are each head's most likely label, as the app reports them.
"""
from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from core.labels import LABEL_NAMES, NUM_CLASSES, encode_class

#: Target of a missing label: left out of that head's loss and scores (torch's ignore_index convention).
IGNORE = -100


def confusion(y_true: np.ndarray, y_pred: np.ndarray, classes: int) -> np.ndarray:
    """(classes, classes) counts; rows are the truth."""
    matrix = np.zeros((classes, classes), dtype=np.int64)
    np.add.at(matrix, (np.asarray(y_true, dtype=np.int64), np.asarray(y_pred, dtype=np.int64)), 1)
    return matrix


def macro_f1(y_true: np.ndarray, y_pred: np.ndarray, classes: int) -> float:
    """Mean F1 over the classes that occur in the truth or the predictions (sklearn's
    f1_score(average="macro") convention); 0 for empty input."""
    if len(y_true) == 0:
        return 0.0
    matrix = confusion(y_true, y_pred, classes)
    tp = np.diag(matrix).astype(np.float64)
    support, predicted = matrix.sum(axis=1), matrix.sum(axis=0)
    present = (support + predicted) > 0
    f1 = np.divide(2 * tp, support + predicted, out=np.zeros_like(tp), where=present)
    return float(f1[present].mean())


def accuracy(y_true: np.ndarray, y_pred: np.ndarray) -> float:
    return float(np.mean(np.asarray(y_true) == np.asarray(y_pred))) if len(y_true) else 0.0


def score(probs: Mapping[str, np.ndarray], labels: np.ndarray) -> dict:
    """Metrics of head probabilities against (N, 3) targets [mask, gender, age] (IGNORE = unknown).

    Returns per head: f1, accuracy, n, confusion (truth × prediction); "class": the same for the
    18 classes over fully labelled rows; "score": mean of the per-head macro-F1s (the number
    early stopping watches; defined for any mix of labels).
    """
    result: dict = {}
    predictions = {}
    for i, (name, names) in enumerate(LABEL_NAMES.items()):
        pred = np.argmax(probs[name], axis=1)
        predictions[name] = pred
        valid = labels[:, i] != IGNORE
        truth = labels[valid, i]
        result[name] = {
            "f1": macro_f1(truth, pred[valid], len(names)),
            "accuracy": accuracy(truth, pred[valid]),
            "n": int(valid.sum()),
            "confusion": confusion(truth, pred[valid], len(names)),
        }
    full = np.all(labels != IGNORE, axis=1)
    truth = np.array([encode_class(*row) for row in labels[full]], dtype=np.int64)
    pred = np.array(
        [encode_class(m, g, a) for m, g, a in zip(*(predictions[h][full] for h in LABEL_NAMES))], dtype=np.int64
    )
    result["class"] = {
        "f1": macro_f1(truth, pred, NUM_CLASSES),
        "accuracy": accuracy(truth, pred),
        "n": int(full.sum()),
        "confusion": confusion(truth, pred, NUM_CLASSES),
    }
    heads = [result[h]["f1"] for h in LABEL_NAMES if result[h]["n"]]
    result["score"] = float(np.mean(heads)) if heads else 0.0
    return result
