"""Holding the fine-tuned nets to stock on bare faces (distillation).

Fine-tuning on masked faces moved earlier runs' scores on hard bare faces (a half-hidden face, a
boy looking down) below the thresholds. Stock's own face probability on every crop (the
teacher, computed once with facenet-pytorch's weights and cached with the crops) gives a target
for crops around bare faces: a cross-entropy towards it keeps the fine-tune's scores there
where stock's were, also on part crops that carry no face/non-face label.
"""
from __future__ import annotations

import numpy as np
import torch
from torch import nn


def load_nets(names: tuple[str, ...]) -> dict[str, nn.Module]:
    from facenet_pytorch.models.mtcnn import ONet, PNet, RNet

    classes = {"pnet": PNet, "rnet": RNet, "onet": ONet}
    return {name: classes[name](pretrained=True) for name in names}


def net_outputs(name: str, net: nn.Module, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None, torch.Tensor]:
    """(box regression (N, 4), landmarks (N, 10) or None, face logits (N, 2))."""
    out = net(x)
    if name == "onet":
        return out[0], out[1], out[2]
    reg, logits = out
    if name == "pnet":
        reg, logits = reg[:, :, 0, 0], logits[:, :, 0, 0]
    return reg, None, logits


def teacher_scores(net: nn.Module, name: str, images: np.ndarray, batch: int = 2048) -> np.ndarray:
    """Stock's face probability (N,) on crops (N, 3, S, S) in the nets' normalisation."""
    out = np.zeros(len(images), np.float32)
    net.eval()
    with torch.no_grad():
        for start in range(0, len(images), batch):
            x = torch.from_numpy(images[start:start + batch].astype(np.float32))
            _, _, probs = net_outputs(name, net, x)  # the nets end in a softmax when not training
            out[start:start + batch] = probs[:, 1].numpy()
    return out


def distill_loss(logits: torch.Tensor, teacher: torch.Tensor, chosen: torch.Tensor) -> torch.Tensor:
    """Binary cross-entropy of the student's face probability towards the teacher's, on `chosen` crops."""
    if not chosen.any():
        return logits.sum() * 0
    log_p = torch.log_softmax(logits[chosen], dim=1)
    t = teacher[chosen].clamp(1e-4, 1 - 1e-4)
    return -(t * log_p[:, 1] + (1 - t) * log_p[:, 0]).mean()
