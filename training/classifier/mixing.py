"""Mixup and cutmix over a batch, with the missing-label target kept out of the mixed loss."""
from __future__ import annotations

import math

import numpy as np
import torch

from training.classifier.dataset import IGNORE
from training.config import TrainConfig


def mix_batch(images: torch.Tensor, targets: torch.Tensor, config: TrainConfig, rng: np.random.Generator):
    """Mixup or cutmix (if enabled): (images, targets_a, targets_b, lam). A head whose label is
    missing on either of the two mixed photos is left out for that row."""
    modes = [m for m, alpha in (("mixup", config.mixup), ("cutmix", config.cutmix)) if alpha > 0]
    if not modes or len(images) < 2:
        return images, targets, targets, 1.0
    mode = modes[int(rng.integers(len(modes)))]
    lam = float(rng.beta(config.mixup if mode == "mixup" else config.cutmix, config.mixup if mode == "mixup" else config.cutmix))
    perm = torch.from_numpy(rng.permutation(len(images))).to(images.device)
    if mode == "mixup":
        images = lam * images + (1.0 - lam) * images[perm]
    else:
        h, w = images.shape[-2:]
        cut = math.sqrt(1.0 - lam)
        ch, cw = int(h * cut), int(w * cut)
        cy, cx = int(rng.integers(h)), int(rng.integers(w))
        y0, y1 = max(0, cy - ch // 2), min(h, cy + ch // 2)
        x0, x1 = max(0, cx - cw // 2), min(w, cx + cw // 2)
        images = images.clone()
        images[..., y0:y1, x0:x1] = images[perm][..., y0:y1, x0:x1]
        lam = 1.0 - (y1 - y0) * (x1 - x0) / (h * w)
    targets_a, targets_b = targets.clone(), targets[perm].clone()
    unknown = (targets_a == IGNORE) | (targets_b == IGNORE)
    targets_a[unknown] = IGNORE
    targets_b[unknown] = IGNORE
    return images, targets_a, targets_b, lam

