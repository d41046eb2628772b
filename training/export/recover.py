"""`recover`: the networks inside an exported classifier back as run folders.

The shipped file is often the only copy of its networks (checkpoints live in a git-ignored cache
that a fresh machine does not have). Recovering them lets `export --ensemble` add new runs to the
shipped ones, and lets `evaluate` (or `export` and `calibrate`) look at each network on its own,
without training them again.

The exporter folds each BatchNorm into the convolution before it (weight scaled, a bias added), so
the statistics cannot be split out again: a recovered network's BatchNorm layers are the identity
plus that bias (mean 0, variance 1 − eps, scale 1). In eval mode it computes exactly what the file
does; training it again (or `soup`, which measures BatchNorm statistics again) would re-learn them
from scratch, so use it for evaluation and ensembles, not as a starting point for fine-tuning.

Each recovered network is checked against the file before anything is written: the torch ensemble
rebuilt from them (same flip TTA, same age prior correction) must give onnxruntime's probabilities.
"""
from __future__ import annotations

import dataclasses
import json
import logging
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnx
import torch
from google.protobuf.message import DecodeError
from onnx import numpy_helper
from torch import nn

from core.atomic import atomic_open
from core.crop import to_input
from core.metadata import ModelMetadata
from training import checkpoint
from training.classifier import prior
from training.classifier.folds import split_faces
from training.classifier.model import MaskClassifier, build_model
from training.config import ConfigError, RecoverConfig, TrainConfig
from training.config.files import saved_dict
from training.data.cache import Cache
from training.export.ensemble import Ensemble, View, member_view, spread_crops
from training.export.onnx import PARITY_TOLERANCE, ExportError, onnx_difference

log = logging.getLogger(__name__)

#: `<member prefix>backbone.<module>.weight`: the prefix is "members.K." in an ensemble, "model." alone.
_WEIGHT_NAME = re.compile(r"^(?P<prefix>(?:members\.\d+\.)?(?:model\.)?)(?P<module>(?:backbone|heads)\..+)\.weight$")


@dataclass(frozen=True)
class RecoveredNetwork:
    """One network of the file: its weights as a MaskClassifier and what the metadata says of it."""

    name: str
    fold: int
    epoch: int
    validation_score: float
    model: MaskClassifier
    heads: tuple[str, ...] | None = None  # the heads it feeds in the file (export --member-heads); None: every head
    input_size: int | None = None  # the crop size it was trained at, when the file's crop is larger or wider
    crop_margin: float | None = None  # the crop margin it was trained at, when the file's is wider

    def geometry(self, metadata: ModelMetadata) -> tuple[int, float]:
        """(crop size, crop margin) of the crops it was trained on."""
        return (self.input_size or metadata.input_size,
                metadata.crop_margin if self.crop_margin is None else self.crop_margin)

    def view(self, metadata: ModelMetadata) -> View | None:
        """The part of the file's crop it sees (training.export.ensemble.member_view)."""
        if self.input_size is None and self.crop_margin is None:
            return None
        return member_view(metadata.input_size, metadata.crop_margin, *self.geometry(metadata))


class _GraphTensors:
    """Initializers by name, float16-stored ones (training.export.half) read back through their Cast."""

    def __init__(self, graph: onnx.GraphProto) -> None:
        self.arrays = {t.name: numpy_helper.to_array(t) for t in graph.initializer}
        self.cast_from = {n.output[0]: n.input[0] for n in graph.node if n.op_type == "Cast" and n.input[0] in self.arrays}

    def get(self, name: str) -> np.ndarray:
        source = self.cast_from.get(name, name)
        if source not in self.arrays:
            raise ExportError(f"tensor {name} is not a stored weight: not a graph `mask-train export` wrote")
        return self.arrays[source].astype(np.float32)


def _layers(graph: onnx.GraphProto, tensors: _GraphTensors) -> dict[str, dict[str, tuple[np.ndarray, np.ndarray]]]:
    """prefix -> module name -> (weight, bias) for every Conv and Gemm whose weight is a stored tensor."""
    found: dict[str, dict[str, tuple[np.ndarray, np.ndarray]]] = {}
    for node in graph.node:
        match = _WEIGHT_NAME.match(node.input[1]) if node.op_type in ("Conv", "Gemm") else None
        if match is None:
            continue
        weight = tensors.get(node.input[1])
        has_bias = len(node.input) > 2 and node.input[2]
        bias = tensors.get(node.input[2]) if has_bias else np.zeros(weight.shape[0], dtype=np.float32)
        found.setdefault(match["prefix"], {})[match["module"]] = (weight, bias)
    return found


def _network(layers: dict[str, tuple[np.ndarray, np.ndarray]], architecture: str, heads: dict[str, int],
             metadata: ModelMetadata, trunk_input: int | None = None) -> MaskClassifier:
    """A MaskClassifier holding `layers`, BatchNorm turned into "add the folded bias"."""
    model = build_model(architecture, single_head=list(heads) == ["class"], trunk_input=trunk_input)
    if list(model.head_names) != list(heads) or any(model.heads[f"{h}_head"].out_features != n for h, n in heads.items()):
        raise ExportError(f"the file's heads {heads} do not match a {architecture} classifier's")
    model.input_mean.copy_(torch.tensor(metadata.mean))
    model.input_std.copy_(torch.tensor(metadata.std))
    modules = [(name, m) for name, m in model.named_modules() if isinstance(m, (nn.Conv2d, nn.BatchNorm2d, nn.Linear))]
    used: set[str] = set()
    pending_bias: np.ndarray | None = None
    with torch.no_grad():
        for index, (name, module) in enumerate(modules):
            if isinstance(module, nn.BatchNorm2d):
                if pending_bias is None:
                    raise ExportError(f"{name}: a BatchNorm with no convolution before it; cannot place its folded bias")
                module.weight.fill_(1.0)
                module.running_mean.zero_()
                module.running_var.fill_(1.0 - module.eps)
                _copy(module.bias, pending_bias, name)
                pending_bias = None
                continue
            if name not in layers:
                if isinstance(module, nn.Linear) and not name.startswith("heads."):
                    continue  # e.g. a trunk's own classifier, unused with num_classes=0
                raise ExportError(f"the file has no weights for {name}: not a {architecture} network")
            weight, bias = layers[name]
            _copy(module.weight, weight, name)
            followed_by_norm = index + 1 < len(modules) and isinstance(modules[index + 1][1], nn.BatchNorm2d)
            if followed_by_norm:  # the folded bias belongs after the normalisation, which is now "+ bias"
                pending_bias = bias
                if module.bias is not None:
                    module.bias.zero_()
            elif module.bias is not None:
                _copy(module.bias, bias, name + " bias")
            elif np.any(bias != 0):
                raise ExportError(f"{name}: the file gives it a bias the network has no place for")
            used.add(name)
    left = sorted(set(layers) - used)
    if left:
        raise ExportError(f"the file has layers a {architecture} classifier does not ({', '.join(left[:3])}...)")
    return model.eval()


def _copy(target: torch.Tensor, value: np.ndarray, what: str) -> None:
    if tuple(target.shape) != value.shape:
        raise ExportError(f"{what}: the file's shape {value.shape} is not the network's {tuple(target.shape)}")
    target.copy_(torch.from_numpy(value))


def read_networks(path: str | Path) -> tuple[list[RecoveredNetwork], ModelMetadata]:
    """The networks of an exported classifier (one, or an ensemble's members in order) and its metadata."""
    try:
        proto = onnx.load(str(path))
    except DecodeError as exc:
        raise ExportError(f"{path} is not a readable ONNX file ({exc})") from exc
    metadata = ModelMetadata.from_props({p.key: p.value for p in proto.metadata_props})
    extra = metadata.extra
    if any(n.op_type == "BatchNormalization" for n in proto.graph.node):
        raise ExportError(f"{path}: BatchNorm is not folded into the convolutions; only files written by `mask-train export` can be recovered")
    tensors = _GraphTensors(proto.graph)
    by_prefix = _layers(proto.graph, tensors)
    prefixes = sorted(by_prefix, key=lambda p: int(p.split(".")[1]) if p.startswith("members.") else 0)
    if not prefixes:
        raise ExportError(f"{path}: no classifier weights found; not a file `mask-train export` wrote")
    described = json.loads(extra["ensemble"]) if "ensemble" in extra else [{
        "run": metadata.model_version, "fold": -1, "epoch": int(extra.get("epoch", 0)),
        "architecture": metadata.architecture, "validation_score": float(extra.get("validation_score", 0.0)),
        **({"trunk_input": int(extra["trunk_input"])} if "trunk_input" in extra else {})}]
    if len(described) != len(prefixes):
        raise ExportError(f"{path}: its metadata lists {len(described)} networks but the graph holds {len(prefixes)}")
    # A member inside a wrapper ("members.K.model."): the part of the crop it sees (its input_size, crop_margin)
    # is recoverable, a re-normalisation is not.
    if any(p.endswith("model.") and p.startswith("members.") and "input_size" not in about and "crop_margin" not in about
           for p, about in zip(prefixes, described)):
        raise ExportError(f"{path}: its members were normalised differently; recovering such an ensemble is not supported")
    heads = {name: len(labels) for name, labels in metadata.heads.items()}
    networks = []
    for prefix, about in zip(prefixes, described):
        model = _network(by_prefix[prefix], about["architecture"], heads, metadata, about.get("trunk_input"))
        networks.append(RecoveredNetwork(str(about["run"]), int(about["fold"]), int(about["epoch"]),
                                         float(about["validation_score"]), model,
                                         tuple(about["heads"]) if "heads" in about else None,
                                         int(about["input_size"]) if "input_size" in about else None,
                                         float(about["crop_margin"]) if "crop_margin" in about else None))
    return networks, metadata


def rebuilt_graph(networks: list[RecoveredNetwork], metadata: ModelMetadata) -> nn.Module:
    """The torch module that computes what the file does (its TTA and age prior correction included)."""
    correction = prior.read(metadata.extra)
    bias = prior.logit_bias(*correction).tolist() if correction and correction[1] else None
    flip = metadata.extra.get("tta") == "hflip"
    return Ensemble([n.model for n in networks], list(metadata.heads), flip, None, bias, [n.heads for n in networks],
                    [n.view(metadata) for n in networks]).eval()


def check_parity(path: str | Path, module: nn.Module, metadata: ModelMetadata, crops_bgr: np.ndarray) -> float:
    """The largest difference in any probability between the file (onnxruntime) and `module`."""
    batch = to_input(crops_bgr, metadata.mean, metadata.std)
    with torch.no_grad():
        want = [t.numpy() for t in module(torch.from_numpy(batch))]
    return onnx_difference(path, list(metadata.heads), batch, want)


def _cache_geometries(folders: Sequence[Path]) -> dict[tuple[int, float], Path]:
    """The prepared caches among `folders` by the crop size and margin they were cut at (the first of each)."""
    found: dict[tuple[int, float], Path] = {}
    for folder in folders:
        try:
            geometry = Cache(folder).read_info().geometry
            found.setdefault((geometry.input_size, geometry.crop_margin), Path(folder))
        except (ConfigError, OSError, ValueError) as exc:
            log.debug("cache %s: %s", folder, exc)
    return found


def _check_crops(cache: Path | None, fold: int, count: int, size: int) -> np.ndarray:
    """Real crops from `cache` (cut at the file's input size) when there is one, random ones otherwise."""
    try:
        if cache is None:
            raise ConfigError(f"no prepared cache cut at {size} px")
        train_faces, val_faces = split_faces(Cache(cache), fold)
    except (ConfigError, OSError) as exc:
        log.warning("no cached crops to check on (%s): using random crops", exc)
        return np.random.default_rng(0).integers(0, 256, (count, size, size, 3), dtype=np.uint8)
    return spread_crops(train_faces + val_faces, count)


def recover(config: RecoverConfig, recipe: TrainConfig) -> list[Path]:
    """Write each network of config.onnx as a run folder under config.out; returns the folders."""
    networks, metadata = read_networks(config.onnx)
    if recipe.age_boundary != metadata.age_boundary:
        raise ConfigError(f"the recipe's age_boundary {recipe.age_boundary} is not the file's {metadata.age_boundary}")
    caches = _cache_geometries([Path(recipe.cache), *config.member_caches])
    crops = _check_crops(caches.get((metadata.input_size, metadata.crop_margin)), recipe.fold, config.check_crops, metadata.input_size)
    worst = check_parity(config.onnx, rebuilt_graph(networks, metadata), metadata, crops)
    if worst > PARITY_TOLERANCE:
        raise ExportError(f"the recovered networks differ from {config.onnx} by {worst:.2e} (> {PARITY_TOLERANCE:.0e}); nothing written")
    log.info("%d network(s) recovered from %s (max |ORT - torch| = %.2e on %d crops)", len(networks), config.onnx, worst, len(crops))

    out = Path(config.out)
    names = [n.name for n in networks]
    run_dirs = [out / (n.name if names.count(n.name) == 1 else f"{n.name}_{i}") for i, n in enumerate(networks)]
    taken = [str(d) for d in run_dirs if (d / "checkpoints" / "best.pt").exists()]
    if taken:
        raise ConfigError(f"{', '.join(taken)} already hold a run: choose another --out (nothing was written)")
    run_configs = [dataclasses.replace(recipe, run_dir=run_dir, fold=network.fold if network.fold >= 0 else recipe.fold,
                                       model=network.model.architecture, trunk_input=network.model.trunk_input,
                                       cache=_cache_for(network, metadata, caches, Path(recipe.cache)))
                   for network, run_dir in zip(networks, run_dirs)]
    _compare_age_prior(metadata, run_configs)
    written = []
    for index, (network, run_dir, run_config) in enumerate(zip(networks, run_dirs, run_configs)):
        (run_dir / "checkpoints").mkdir(parents=True, exist_ok=True)
        # recovered.json first: whatever stops the writing, a checkpoint never lies there without it (soup checks it).
        with atomic_open(run_dir / "recovered.json", "w", encoding="utf-8") as handle:
            json.dump({"from": str(config.onnx), "model_version": metadata.model_version, "member": index,
                       **({"heads": list(network.heads)} if network.heads is not None else {}),
                       **({"input_size": network.input_size} if network.input_size is not None else {}),
                       **({"crop_margin": network.crop_margin} if network.crop_margin is not None else {}),
                       "batchnorm": "folded into the convolutions by the export: identity plus bias (eval mode only)",
                       "max_difference": worst}, handle, indent=1)
        settings = json.dumps(saved_dict(run_config))
        with atomic_open(run_dir / "config.json", "w", encoding="utf-8") as handle:
            handle.write(settings)
        checkpoint.save(run_dir / "checkpoints" / "best.pt", checkpoint.best_model(
            network.model, network.epoch, network.validation_score, settings, network.model.architecture,
            network.model.head_names))
        written.append(run_dir)
        if network.heads is not None:
            log.info("%s fed only the %s head(s) in the file: export it back with --member-heads %s=%s", run_dir.name,
                     ", ".join(network.heads), run_dir, ",".join(network.heads))
    return written


def _cache_for(network: RecoveredNetwork, metadata: ModelMetadata, caches: dict[tuple[int, float], Path], default: Path) -> Path:
    """The cache cut at the crop size and margin `network` was trained at, which its run folder names
    (export reads its geometry there); the recipe's, with a warning, when none was given."""
    size, margin = network.geometry(metadata)
    if (size, margin) in caches:
        return caches[(size, margin)]
    if network.view(metadata) is None:  # the file's own crop: the recipe's cache, as before caches of two geometries
        return default
    log.warning("%s was trained on %d px crops at margin %g and no cache given is cut so: its run folder names %s; "
                "before exporting it again, prepare one (mask-train prepare --input-size %d --crop-margin %g --cache DIR) "
                "and pass --member-caches DIR", network.name, size, margin, default, size, margin)
    return default


def _compare_age_prior(metadata: ModelMetadata, run_configs: list[TrainConfig]) -> None:
    """Warn when the recipe and its cache would not give the file's age prior again: a re-export
    with --age-prior would then correct the age head differently from the file."""
    correction = prior.read(metadata.extra)
    if correction is None:
        return
    recorded = correction[0]
    try:
        again = prior.members_prior([(c, Cache(c.cache)) for c in run_configs])
    except (ConfigError, OSError) as exc:
        log.warning("cannot compare the file's age prior with the recipe's cache (%s)", exc)
        return
    if again is None:
        log.warning("the file's networks were trained with class weights or the weighted sampler, the recipe's [train] "
                    "says neither: export --age-prior will refuse these runs (give the recipe they were trained with)")
    elif np.abs(recorded - again).max() > 1e-3:
        log.warning("the recipe's cache gives the age prior %s, the file was exported with %s: a re-export with "
                    "--age-prior corrects differently", np.round(again, 6).tolist(), recorded.tolist())
