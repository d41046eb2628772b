"""The out-of-source faces (training.classifier.out_of_source) as a check of a model under training
or of a finished one: crops made once, a model's verdicts on them, the headline figures, and the
selection score `train --select-on out-of-source` uses.

The crops are made as the app makes them (FaceAnalyzer.classify_box): the photo read by
core.imageio.load_image (as `prepare` reads it), then core.crop.crop_face of the labelled box at
the cache's crop margin and input size, the geometry of the cache's runtime crops. A run makes them
once, before the first epoch.
"""
from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from core.classifier import Classifier
from core.crop import CropSpec, to_input
from core.imageio import ImageReadError, load_image
from core.labels import HEADS, LABEL_NAMES, marginals
from training.classifier.out_of_source import Figure, LabelledFace, Verdicts, read_label_files, score
from training.config import ConfigError

log = logging.getLogger(__name__)

#: metrics.csv columns of the out-of-source check -> the figure behind each.
HEADLINE: dict[str, str] = {
    "oos_gender_acc": "gender accuracy, all",
    "oos_gender_acc_bare": "gender accuracy, bare",
    "oos_gender_acc_masked": "gender accuracy, masked",
    "oos_age_f1": "age macro-F1, all",
    "oos_age_f1_bare": "age macro-F1, bare",
    "oos_age_f1_masked": "age macro-F1, masked",
    "oos_mask_f1": "mask macro-F1, all",
}


@dataclass
class OutOfSourceSet:
    """The readable labelled faces and their runtime crops (N×S×S×3 BGR uint8), in one order."""

    faces: list[LabelledFace]
    crops: np.ndarray
    crop: CropSpec
    unreadable: list[str] = field(default_factory=list)  # photos left out, with their faces

    def describe(self) -> str:
        bare = sum(f.mask == "not_wear" for f in self.faces)
        gendered = sum(f.gender != "unclear" for f in self.faces)
        aged = sum(f.age != "unclear" for f in self.faces)
        return (f"{len(self.faces)} out-of-source faces ({bare} bare, {len(self.faces) - bare} masked; {gendered} with a gender, "
                f"{aged} with an age group), {len(self.unreadable)} photos unreadable")


def load_set(labels: Path | Sequence[Path], data_root: Path, crop: CropSpec, progress: bool = False) -> OutOfSourceSet:
    """Read the labels (one CSV or several, pooled) and cut every face once, as the app would for a
    file taking `crop`; a photo that cannot be read is left out (logged)."""
    if not Path(data_root).is_dir():
        raise ConfigError(f"out-of-source photos: {data_root} is not a folder (--oos-data)")
    faces = read_label_files(labels)
    by_photo: dict[str, list[int]] = {}
    for i, face in enumerate(faces):
        by_photo.setdefault(face.path, []).append(i)
    kept: list[LabelledFace] = []
    crops: list[np.ndarray] = []
    unreadable: list[str] = []
    for path, rows in tqdm(by_photo.items(), desc="out-of-source crops", unit="photo", disable=not progress):
        try:
            image = load_image(Path(data_root) / path).image
        except ImageReadError as exc:
            log.warning("%s: %s; its %d face(s) are left out", path, exc.reason, len(rows))
            unreadable.append(path)
            continue
        for i in rows:
            kept.append(faces[i])
            crops.append(crop.cut(image, faces[i].box))
    if not kept:
        raise ConfigError(f"no out-of-source photo of {labels} could be read under {data_root} (--oos-data)")
    return OutOfSourceSet(kept, np.stack(crops), crop, unreadable)


def verdicts(name: str, probs: Mapping[str, np.ndarray]) -> Verdicts:
    """Each head's most likely label per face (None where the probabilities are not finite)."""
    def names(head: str) -> list[str | None]:
        p = np.asarray(probs[head], dtype=np.float64)
        best = np.argmax(p, axis=1)
        ok = np.isfinite(p).all(axis=1)
        return [LABEL_NAMES[head][int(b)] if good else None for b, good in zip(best, ok)]

    return Verdicts(name, names("mask"), names("gender"), names("age"))


@torch.no_grad()
def predict_torch(model: torch.nn.Module, crops: np.ndarray, batch_size: int, device: torch.device | str = "cpu") -> dict[str, np.ndarray]:
    """Per-head probabilities of a MaskClassifier on the crops (the 18-way head marginalised)."""
    was_training = model.training
    model.eval()
    config = model.data_config()
    chunks: dict[str, list[np.ndarray]] = {}
    for start in range(0, len(crops), batch_size):
        inputs = torch.from_numpy(to_input(crops[start : start + batch_size], config["mean"], config["std"])).to(device)
        for head, logits in model(inputs).items():
            chunks.setdefault(head, []).append(torch.softmax(logits.float(), dim=1).cpu().numpy())
    model.train(was_training)
    probs = {h: np.concatenate(c) for h, c in chunks.items()}
    return marginals(probs["class"]) if "class" in probs else probs


def predict_onnx(classifier: Classifier, crops: np.ndarray, batch_size: int) -> dict[str, np.ndarray]:
    """Per-head probabilities of an exported model through core's Classifier (the app's path)."""
    chunks: dict[str, list[np.ndarray]] = {h: [] for h in HEADS}
    for start in range(0, len(crops), batch_size):
        result = classifier.predict(crops[start : start + batch_size])
        for head in HEADS:
            chunks[head].append(getattr(result, head))
    return {h: np.concatenate(c) for h, c in chunks.items()}


def figures(oos: OutOfSourceSet, v: Verdicts) -> dict[str, Figure]:
    """Every figure of the out-of-source table for one model, by name."""
    return {f.name: f for f in score(oos.faces, v)}


def headline(found: Mapping[str, Figure]) -> dict[str, float | str]:
    """The metrics.csv columns: each figure rounded, "" where it has no faces."""
    return {column: ("" if found[name].value is None else round(float(found[name].value), 6)) for column, name in HEADLINE.items()}


def selection_score(found: Mapping[str, Figure], val_mask_f1: float) -> float:
    """Mean of the out-of-source gender accuracy and age macro-F1 (bare and masked together) and the
    validation fold's mask macro-F1. The out-of-source mask labels come from folders that train
    the mask head, so the mask term comes from the fold; a figure with no faces is left out."""
    terms = [found["gender accuracy, all"].value, found["age macro-F1, all"].value, val_mask_f1]
    known = [float(t) for t in terms if t is not None]
    return float(np.mean(known))
