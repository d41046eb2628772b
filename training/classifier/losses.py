"""The multi-head loss: each head's cross-entropy over the photos that carry its label.

A missing label (IGNORE) leaves that photo out of that head only, so a UTKFace face teaches
gender and age but not mask, and a mask-folder photo the reverse.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from training.classifier.dataset import IGNORE


def head_loss(
    logits: torch.Tensor,
    target: torch.Tensor,
    smoothing: float = 0.0,
    gamma: float = 0.0,
    weight: torch.Tensor | None = None,
) -> torch.Tensor:
    """Cross-entropy with label smoothing, optionally focal (gamma > 0) and class-weighted, over
    the rows whose target is not IGNORE; 0 (still in the graph) when there are none.

    With gamma = 0 and no weight this equals F.cross_entropy(..., ignore_index, label_smoothing).
    Class weights scale each row by its true class's weight and normalise by their sum, as
    cross_entropy's weighted mean does.
    """
    valid = target != IGNORE
    if not bool(valid.any()):
        return logits.sum() * 0.0
    logits, target = logits[valid].float(), target[valid]
    log_p = F.log_softmax(logits, dim=1)
    classes = logits.shape[1]
    soft = torch.full_like(log_p, smoothing / classes)
    soft.scatter_(1, target[:, None], 1.0 - smoothing + smoothing / classes)
    loss = -(soft * log_p).sum(dim=1)
    if gamma > 0:
        p_true = log_p.gather(1, target[:, None]).squeeze(1).exp()
        loss = loss * (1.0 - p_true).pow(gamma)
    if weight is not None:
        w = weight.to(loss.device)[target]
        return (loss * w).sum() / w.sum()
    return loss.mean()


@dataclass
class MultiHeadLoss:
    """Weighted sum of the heads' losses. targets: (N, heads) in `heads` order."""

    heads: tuple[str, ...]
    head_weights: dict[str, float]
    smoothing: float = 0.0
    gamma: float = 0.0
    class_weights: dict[str, torch.Tensor] | None = None

    def per_head(self, outputs: dict[str, torch.Tensor], targets: torch.Tensor) -> dict[str, torch.Tensor]:
        weights = self.class_weights or {}
        return {
            name: head_loss(outputs[name], targets[:, i], self.smoothing, self.gamma, weights.get(name))
            for i, name in enumerate(self.heads)
        }

    def __call__(self, outputs: dict[str, torch.Tensor], targets: torch.Tensor) -> torch.Tensor:
        losses = self.per_head(outputs, targets)
        return sum(self.head_weights.get(name, 1.0) * loss for name, loss in losses.items())  # type: ignore[return-value]
