"""Would a zoomed centre crop, averaged into the gender and mask heads only, help an exported classifier? (issue 16)

0.7's flip-and-zoom test-time augmentation was dropped because zooming cut the hair and forehead
that age needs (MODEL_CARD.md, "Where the gain comes from"). This asks the narrower question: keep
the age head on the crop as it is, and average a zoomed view (the crop's centre, z of its side,
scaled back up) into the gender and / or mask probabilities with weight w. Scored on the validation
fold of the cache (gender: all faces with one; mask: its real photos, the guard of the model choice)
and on the real faces labelled by eye (gender: pooled out_of_source.csv + real_val_by_eye.csv; mask:
out_of_source.csv's faces). The test split is never read. MODEL_CARD.md records the answer for 0.9.

    .venv/bin/python bench/zoom_tta.py [--model FILE] [--zoom 0.9] [--weight 0.33 0.5] [--cache DIR] [--fold K]
"""
from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

os.environ.setdefault("ORT_DISABLE_TELEMETRY", "1")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import cv2  # noqa: E402
import numpy as np  # noqa: E402

from bench.model_probe import add_arguments, by_eye, open_probe  # noqa: E402
from core.labels import HEADS  # noqa: E402
from training.classifier import oos_check  # noqa: E402
from training.classifier.dataset import is_synthetic, target_matrix  # noqa: E402
from training.classifier.evaluate import runtime_crops  # noqa: E402
from training.classifier.folds import split_faces  # noqa: E402
from training.classifier.out_of_source import DEFAULT_LABELS, read_label_files  # noqa: E402

HEAD_SETS = ((), ("gender",), ("mask",), ("gender", "mask"))


def zoomed(crops: np.ndarray, zoom: float) -> np.ndarray:
    """The centre `zoom` of each square crop, scaled back to the crop's size."""
    size = crops.shape[1]
    side = int(round(size * zoom))
    start = (size - side) // 2
    return np.stack([cv2.resize(c[start : start + side, start : start + side], (size, size), interpolation=cv2.INTER_LINEAR)
                     for c in crops])


def mixed(base: dict[str, np.ndarray], zoom: dict[str, np.ndarray], heads: tuple[str, ...], weight: float) -> dict[str, np.ndarray]:
    return {h: (1 - weight) * base[h] + weight * zoom[h] if h in heads else base[h] for h in HEADS}


def right(probs: np.ndarray, truth: np.ndarray) -> int:
    return int((probs.argmax(axis=1) == truth).sum())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_arguments(parser)
    parser.add_argument("--zoom", type=float, default=0.9, help="share of the crop's side kept in the zoomed view")
    parser.add_argument("--weight", type=float, nargs="+", default=[1 / 3, 0.5], help="the zoomed view's weight(s)")
    args = parser.parse_args()

    probe = open_probe(args)
    classifier = probe.classifier
    _, val_faces = split_faces(probe.cache, probe.fold)
    labels = target_matrix(val_faces, classifier.metadata.age_boundary, False)
    val_gender, val_mask = labels[:, list(HEADS).index("gender")], labels[:, list(HEADS).index("mask")]
    has_gender = val_gender >= 0
    real = np.array([not is_synthetic(f) for f in val_faces])
    pooled = probe.pooled()
    oos_paths = {f.path for f in read_label_files(DEFAULT_LABELS)}
    in_oos = np.array([f.path in oos_paths for f in pooled.faces])
    pooled_gender = by_eye(pooled.faces, "gender")
    oos_mask = by_eye(pooled.faces, "mask")[in_oos]

    val_crops = runtime_crops(val_faces)
    views = {name: {z: oos_check.predict_onnx(classifier, crops if z == 1.0 else zoomed(crops, z), 64) for z in (1.0, args.zoom)}
             for name, crops in (("val", val_crops), ("pooled", pooled.crops))}

    print(f"{args.model.name}, zoom {args.zoom}: validation fold {int(has_gender.sum())} faces with a gender, {int(real.sum())} real "
          f"photos; pooled real faces {int((pooled_gender >= 0).sum())} with a gender; out of source {int(in_oos.sum())}")
    print("| heads zoomed | weight | fold gender right | pooled gender right | fold real photos mask right | out of source mask right |")
    print("|---|---|---|---|---|---|")
    for heads in HEAD_SETS:
        for weight in args.weight if heads else [0.0]:
            v = mixed(views["val"][1.0], views["val"][args.zoom], heads, weight)
            p = mixed(views["pooled"][1.0], views["pooled"][args.zoom], heads, weight)
            print(f"| {' + '.join(heads) or 'none'} | {weight:.2f} | {right(v['gender'][has_gender], val_gender[has_gender])} | "
                  f"{right(p['gender'][pooled_gender >= 0], pooled_gender[pooled_gender >= 0])} | {right(v['mask'][real], val_mask[real])} | "
                  f"{right(p['mask'][in_oos], oos_mask)} |")


if __name__ == "__main__":
    main()
