"""The classifier network: one timm trunk, one small head per task."""
from __future__ import annotations

import logging
from pathlib import Path

import timm
import torch
from torch import nn
from torch.nn import functional

from core.labels import LABEL_NAMES, NUM_CLASSES
from core.metadata import CLASS_HEAD
from training.classifier.pretrained import WeightsError, load_trunk_weights, trunk_for

log = logging.getLogger(__name__)

#: The three heads in output order, with their number of labels.
THREE_HEADS: dict[str, int] = {name: len(labels) for name, labels in LABEL_NAMES.items()}


class MaskClassifier(nn.Module):
    """timm backbone (`forward_features` + pooling) shared by the mask, gender and age heads.

    The input normalisation is part of the model (buffers saved with every checkpoint): a
    pretrained trunk brings its own (EfficientNet-Lite's (x - 127) / 128), and evaluate and
    export, which rebuild the network without its weights, must not fall back to timm's default.
    """

    def __init__(
        self,
        architecture: str,
        heads: dict[str, int] | None = None,
        weights: str | Path | None = None,
        drop_rate: float = 0.2,
        trunk_input: int | None = None,
    ) -> None:
        super().__init__()
        self.architecture = architecture
        # An ImageNet trunk saw objects at 224-260 px; a 112 px face crop enlarged inside the network
        # meets its filters nearer the scale they learnt (the crop, and so core's contract, is unchanged).
        self.trunk_input = trunk_input
        trunk = trunk_for(weights)
        if trunk is not None and trunk.architecture != architecture:
            raise WeightsError(f"--weights {trunk.name} is a {trunk.architecture} trunk: use --model {trunk.architecture}, not {architecture}")
        # No model hub here: weights only from a local file or an installed package.
        self.backbone = timm.create_model(architecture, pretrained=False, num_classes=0, drop_rate=drop_rate)
        if weights is not None:
            log.info("%s", load_trunk_weights(self.backbone, weights))
        defaults = timm.data.resolve_data_config(model=self.backbone)
        mean, std = (trunk.mean, trunk.std) if trunk is not None else (defaults["mean"], defaults["std"])
        self.register_buffer("input_mean", torch.tensor(mean, dtype=torch.float32))
        self.register_buffer("input_std", torch.tensor(std, dtype=torch.float32))
        # Pooled feature width; for MobileNetV3 this is the conv head's, not num_features.
        features = getattr(self.backbone, "head_hidden_size", None) or self.backbone.num_features
        # Module names get a suffix: a head called "class" would be a Python keyword to torch.fx.
        self.head_names = list(heads or THREE_HEADS)
        self.heads = nn.ModuleDict({f"{name}_head": nn.Linear(features, n) for name, n in (heads or THREE_HEADS).items()})

    def load_state_dict(self, state_dict, strict: bool = True, assign: bool = False):
        """Checkpoints from before the normalisation was kept in the model trained on timm's default."""
        state = dict(state_dict)
        for name in ("input_mean", "input_std"):
            state.setdefault(name, getattr(self, name))
        return super().load_state_dict(state, strict=strict, assign=assign)

    def data_config(self) -> dict:
        """timm's preprocessing description of the trunk, with the normalisation it was trained on."""
        config = dict(timm.data.resolve_data_config(model=self.backbone))
        config["mean"] = tuple(round(float(v), 6) for v in self.input_mean)
        config["std"] = tuple(round(float(v), 6) for v in self.input_std)
        return config

    def forward(self, images: torch.Tensor) -> dict[str, torch.Tensor]:
        if self.trunk_input is not None:
            images = functional.interpolate(images, size=(self.trunk_input, self.trunk_input), mode="bilinear", align_corners=False)
        features = self.backbone(images)
        return {name: self.heads[f"{name}_head"](features) for name in self.head_names}


def head_sizes(single_head: bool) -> dict[str, int]:
    """Outputs per head: the three heads, or the one 18-way head."""
    return {CLASS_HEAD: NUM_CLASSES} if single_head else dict(THREE_HEADS)


def build_model(architecture: str, single_head: bool, weights: str | Path | None = None, drop_rate: float = 0.2,
                trunk_input: int | None = None) -> MaskClassifier:
    return MaskClassifier(architecture, heads=head_sizes(single_head), weights=weights, drop_rate=drop_rate, trunk_input=trunk_input)

