"""The classifier network: one timm trunk, one small head per task."""
from __future__ import annotations

import logging
from pathlib import Path

import timm
import torch
from torch import nn

from core.labels import LABEL_NAMES

log = logging.getLogger(__name__)

#: The three heads in output order, with their number of labels.
THREE_HEADS: dict[str, int] = {name: len(labels) for name, labels in LABEL_NAMES.items()}


class MaskClassifier(nn.Module):
    """timm backbone (`forward_features` + pooling) shared by the mask, gender and age heads."""

    def __init__(
        self,
        architecture: str,
        heads: dict[str, int] | None = None,
        weights: Path | None = None,
        drop_rate: float = 0.2,
    ) -> None:
        super().__init__()
        self.architecture = architecture
        # No model hub here: weights only from a local file the user points at.
        self.backbone = timm.create_model(architecture, pretrained=False, num_classes=0, drop_rate=drop_rate)
        if weights is not None:
            self._load_backbone(Path(weights))
        # Pooled feature width; for MobileNetV3 this is the conv head's, not num_features.
        features = getattr(self.backbone, "head_hidden_size", None) or self.backbone.num_features
        # Module names get a suffix: a head called "class" would be a Python keyword to torch.fx.
        self.head_names = list(heads or THREE_HEADS)
        self.heads = nn.ModuleDict({f"{name}_head": nn.Linear(features, n) for name, n in (heads or THREE_HEADS).items()})

    def _load_backbone(self, path: Path) -> None:
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file

            state = load_file(str(path))
        else:
            state = torch.load(path, map_location="cpu", weights_only=True)
        missing, unexpected = self.backbone.load_state_dict(state, strict=False)
        log.info("loaded backbone weights from %s (%d missing, %d unexpected keys)", path, len(missing), len(unexpected))

    def data_config(self) -> dict:
        """timm's preprocessing description of the trunk (mean, std, ...)."""
        return timm.data.resolve_data_config(model=self.backbone)

    def forward(self, images: torch.Tensor) -> dict[str, torch.Tensor]:
        features = self.backbone(images)
        return {name: self.heads[f"{name}_head"](features) for name in self.head_names}
