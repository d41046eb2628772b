"""What the model-choice probes in bench/ share (issue 16): an exported classifier, the cache's
validation fold and the real faces labelled by eye, from the same command-line options. The test
split is never read."""
from __future__ import annotations

import argparse
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

os.environ.setdefault("ORT_DISABLE_TELEMETRY", "1")

import numpy as np  # noqa: E402

from core.classifier import Classifier  # noqa: E402
from core.labels import LABEL_NAMES  # noqa: E402
from training.classifier import oos_check  # noqa: E402
from training.classifier.out_of_source import DEFAULT_LABELS, LabelledFace  # noqa: E402
from training.data.cache import Cache  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
#: the real faces by eye that choose models: out of source plus the validation fold's real faces
POOLED = [DEFAULT_LABELS, DEFAULT_LABELS.with_name("real_val_by_eye.csv")]


@dataclass
class Probe:
    classifier: Classifier
    cache: Cache
    fold: int
    oos_data: Path

    def pooled(self) -> oos_check.OutOfSourceSet:
        """The pooled real faces by eye, cropped as the cache's faces are."""
        geometry = self.cache.read_info().geometry
        return oos_check.load_set(POOLED, self.oos_data, geometry.crop_spec)


def by_eye(faces: Sequence[LabelledFace], head: str) -> np.ndarray:
    """Each face's label index for `head` as judged by eye; -1 where it was unclear."""
    names = LABEL_NAMES[head]
    return np.array([names.index(getattr(f, head)) if getattr(f, head) in names else -1 for f in faces])


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", type=Path, default=REPO / "assets/models/classifier.onnx", help="exported classifier")
    parser.add_argument("--cache", type=Path, default=REPO / "cache/robust_un", help="prepared and split cache")
    parser.add_argument("--fold", type=int, default=0, help="validation fold")
    parser.add_argument("--oos-data", type=Path, default=REPO.parent / "shared/data", help="root of the labelled photos")


def open_probe(args: argparse.Namespace) -> Probe:
    return Probe(Classifier(args.model), Cache(args.cache), args.fold, args.oos_data)
