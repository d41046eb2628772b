"""Would a bias on the gender head help an exported classifier? (issue 16)

A bias b is added to each face's female log-odds, log p(female) - log p(male), for b from -1 to +1;
each b is scored on the validation fold of the cache and on the pooled real faces labelled by eye
(the same faces `mask-train calibrate` and the model choice use). The test split is never read. The
ensemble is worth a bias only if one beats b = 0 on both; MODEL_CARD.md ("Age prior correction")
records the answer for 0.9.

    .venv/bin/python bench/gender_bias.py [--model FILE] [--cache DIR] [--fold K]
"""
from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

os.environ.setdefault("ORT_DISABLE_TELEMETRY", "1")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402

from bench.model_probe import add_arguments, by_eye, open_probe  # noqa: E402
from core.labels import Gender  # noqa: E402
from training.classifier import oos_check  # noqa: E402
from training.classifier.evaluate import fold_head  # noqa: E402


def female_log_odds(probs: np.ndarray) -> np.ndarray:
    clipped = np.clip(probs, 1e-6, 1.0)
    return np.log(clipped[:, Gender.FEMALE]) - np.log(clipped[:, Gender.MALE])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_arguments(parser)
    args = parser.parse_args()

    probe = open_probe(args)
    classifier = probe.classifier
    val_probs, val_truth = fold_head(classifier, probe.cache, probe.fold, "gender", 64)
    val_odds = female_log_odds(val_probs)
    pooled = probe.pooled()
    pooled_gender = by_eye(pooled.faces, "gender")
    gendered = pooled_gender >= 0
    pooled_odds = female_log_odds(oos_check.predict_onnx(classifier, pooled.crops, 64)["gender"])[gendered]
    pooled_truth = pooled_gender[gendered]

    print(f"{args.model.name}: validation fold {len(val_truth)} faces, pooled real faces {len(pooled_truth)}")
    print("| bias | fold right | women called male | men called female | pooled right | mean accuracy |")
    print("|---|---|---|---|---|---|")
    for bias in np.round(np.arange(-1.0, 1.0001, 0.1), 2) + 0.0:  # + 0.0: no "-0.0"
        val_female = val_odds + bias > 0
        fold_right = int((val_female == (val_truth == Gender.FEMALE)).sum())
        pooled_right = int(((pooled_odds + bias > 0) == (pooled_truth == Gender.FEMALE)).sum())
        women_as_men = int((~val_female & (val_truth == Gender.FEMALE)).sum())
        men_as_women = int((val_female & (val_truth == Gender.MALE)).sum())
        mean = (fold_right / len(val_truth) + pooled_right / len(pooled_truth)) / 2
        print(f"| {bias:+.1f} | {fold_right} | {women_as_men} | {men_as_women} | {pooled_right} | {mean:.5f} |")


if __name__ == "__main__":
    main()
