"""Cached crops as torch datasets: targets per head (IGNORE where unknown), views, samplers."""
from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Sequence

import numpy as np
import torch
from torch.utils.data import Dataset

from core.crop import to_input
from core.labels import Mask, encode_class
from training.classifier.augment import AugmentConfig, augment
from training.classifier.metrics import IGNORE  # noqa: F401  (re-exported: the missing-label target)
from training.config import ConfigError
from training.data.cache import CachedFace, CropGeometry

log = logging.getLogger(__name__)

def targets(face: CachedFace, age_boundary: int, single_head: bool) -> list[int]:
    """[mask, gender, age] (IGNORE where unknown), or [18-class id] for the single head."""
    row = face.row
    labels = [row.mask, row.gender, row.age_label(age_boundary)]
    if single_head:
        if any(v is None for v in labels):
            return [IGNORE]
        return [encode_class(*labels)]  # type: ignore[arg-type]
    return [IGNORE if v is None else int(v) for v in labels]


def target_matrix(faces: Sequence[CachedFace], age_boundary: int, single_head: bool) -> np.ndarray:
    """(N, heads) int64 targets."""
    width = 1 if single_head else 3
    return np.array([targets(f, age_boundary, single_head) for f in faces], dtype=np.int64).reshape(-1, width)


def check_single_head(faces: Sequence[CachedFace], age_boundary: int) -> None:
    """The 18-way head learns from fully labelled photos only; refuse anything else, loudly."""
    partial = Counter(f.row.source for f in faces if targets(f, age_boundary, True)[0] == IGNORE)
    if partial:
        raise ConfigError(
            "--single-head needs mask, gender and age on every photo; missing on "
            + ", ".join(f"{n} from {s}" for s, n in partial.items())
            + " (train three heads instead)"
        )


class CropDataset(Dataset):
    """Cached crops → (normalised CHW float tensor, targets). Validation takes the runtime crop;
    training an augmented view of the context crop, seeded by (seed, epoch, index)."""

    def __init__(
        self,
        faces: Sequence[CachedFace],
        labels: np.ndarray,
        geometry: CropGeometry,
        mean: Sequence[float],
        std: Sequence[float],
        augmentation: AugmentConfig | None = None,
        seed: int = 0,
    ) -> None:
        self.faces = list(faces)
        self.labels = torch.from_numpy(labels)
        self.geometry = geometry
        self.mean, self.std = tuple(mean), tuple(std)
        self.augmentation = augmentation
        self.seed = seed
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return len(self.faces)

    def view(self, index: int) -> np.ndarray:
        """The BGR uint8 crop the network sees for `index` this epoch."""
        if self.augmentation is None:
            return self.faces[index].load_runtime()
        cached = self.faces[index].load()
        if cached.shape[0] != self.geometry.cache_size:
            raise ValueError(f"{self.faces[index].crop} is {cached.shape[0]} px, the cache says {self.geometry.cache_size}")
        rng = np.random.default_rng([self.seed, self.epoch, index])
        return augment(cached, self.geometry, self.augmentation, rng)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        image = to_input(self.view(index), self.mean, self.std)[0]
        return torch.from_numpy(image), self.labels[index]


def balanced_weights(labels: np.ndarray) -> np.ndarray:
    """Per-sample weights ∝ 1 / frequency of the sample's label combination (unknowns included),
    for a WeightedRandomSampler: each combination is drawn about equally often."""
    keys = [tuple(row) for row in labels.tolist()]
    counts = Counter(keys)
    return np.array([1.0 / counts[k] for k in keys], dtype=np.float64)


def fair_weights(faces: Sequence[CachedFace]) -> np.ndarray:
    """Per-sample weights for a WeightedRandomSampler (`--sampler fair`): the faces with a gender
    and a race are drawn, together, as often as under plain random sampling, but each (gender,
    race) group of them equally often. Every other face keeps its weight of 1, so its share of the
    batches does not change: the mask-only photos, and faces whose race is unknown (real photos
    with a gender by eye, UTKFace files without a race field). Unknown is not a group to balance:
    as one, 2 UTKFace faces were each drawn ~500 times an epoch (recipes before 2026-12-05)."""
    keys = [(int(f.row.gender), f.row.race) if f.row.gender is not None and f.row.race is not None else None for f in faces]
    groups = Counter(k for k in keys if k is not None)
    balanced = sum(groups.values())
    weights = [1.0 if k is None else balanced / (len(groups) * groups[k]) for k in keys]
    if groups:
        unknown_race = sum(1 for f, k in zip(faces, keys) if k is None and f.row.gender is not None)
        log.info("fair sampler: %d (gender, race) groups over %d faces; %d with a gender but no race and %d mask-only photos "
                 "drawn as under random sampling", len(groups), balanced, unknown_race, len(faces) - balanced - unknown_race)
    return np.array(weights, dtype=np.float64)


def is_synthetic(face: CachedFace) -> bool:
    """A face whose mask `mask-train synth` drew (source synth:...), not a real photo's."""
    return face.row.source.startswith("synth")


def weigh_real_incorrect(faces: Sequence[CachedFace], weights: np.ndarray | None, factor: float) -> np.ndarray | None:
    """Sampler weights with every real (not synthetic) wrongly worn photo drawn `factor` times as
    often (`--real-incorrect-weight`): they are the real case the synthetic placements only
    approximate, and there are few (~90 in face_mask_853). None (plain random sampling) stays None
    when factor is 1."""
    if factor == 1.0:
        return weights
    scaled = np.ones(len(faces)) if weights is None else np.array(weights, dtype=np.float64)
    real_incorrect = np.array([f.row.mask == Mask.INCORRECT and not is_synthetic(f) for f in faces], dtype=bool)
    scaled[real_incorrect] *= factor
    log.info("real wrongly worn photos: %d, drawn %.3g times as often", int(real_incorrect.sum()), factor)
    return scaled


def class_weights(labels: np.ndarray, classes: int) -> torch.Tensor:
    """Inverse-frequency weights of one head's known labels, mean 1; unseen classes weigh 1."""
    known = labels[labels != IGNORE]
    counts = np.bincount(known, minlength=classes).astype(np.float64)
    weights = np.ones(classes)
    seen = counts > 0
    if seen.any():
        weights[seen] = counts[seen].sum() / (seen.sum() * counts[seen])
    return torch.tensor(weights, dtype=torch.float32)


