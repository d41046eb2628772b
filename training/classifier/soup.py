"""`soup`: several runs of one recipe averaged weight by weight into ONE network (a "model soup",
Wortsman et al. 2022), for an ensemble's accuracy at one network's cost.

It works for runs that started from the same weights: the same pretrained trunk and the same seed
(so the heads' random start is the same), differing in length or in a setting. Averaged weights
leave BatchNorm's running statistics wrong for the new network, so they are measured again on the
training crops of the first run's fold (each crop and its mirror image, no augmentation). The result
is a run folder with checkpoints/best.pt and config.json, so `export`, `evaluate` and
`export --ensemble` take it like any run; soup.json names the ingredients.

Measured (issue 16, cache/robust_un fold 0, flip TTA): the 8-, 16- and 30-epoch runs of teacher.toml
as one soup scored out-of-source gender 0.869 and age macro-F1 0.761, test split gender 0.918 (their
three-network ensemble: 0.875 / 0.797 / 0.924; the 8-epoch run alone: 0.866 / 0.737 / 0.913) at a
third of the ensemble's time per face. Without the BatchNorm pass the soup's out-of-source age
macro-F1 fell to 0.55, and with the crops in cache order (batches of one source) to 0.71.
"""
from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from core.atomic import atomic_open
from core.crop import to_input
from training import checkpoint
from training.classifier.evaluate import runtime_crops
from training.classifier.folds import split_faces
from training.config import ConfigError, SoupConfig, saved_dict
from training.data.cache import Cache
from training.export.ensemble import load_members, shared

log = logging.getLogger(__name__)


def average_weights(states: Sequence[dict[str, torch.Tensor]]) -> dict[str, torch.Tensor]:
    """The element-wise mean of every floating-point tensor; counters (BatchNorm's
    num_batches_tracked) are taken from the first state."""
    first = states[0]
    for i, state in enumerate(states[1:], start=1):
        if state.keys() != first.keys() or any(state[k].shape != first[k].shape for k in first):
            raise ConfigError(f"ingredient {i + 1} has other tensors than the first: not the same network")
    return {k: (torch.stack([s[k].float() for s in states]).mean(dim=0).to(v.dtype) if v.is_floating_point() else v.clone())
            for k, v in first.items()}


@torch.no_grad()
def recompute_batchnorm(model: torch.nn.Module, crops: np.ndarray, batch_size: int, progress: bool = True) -> int:
    """Replace every BatchNorm layer's running mean and variance by those of `crops` (N×S×S×3 BGR
    uint8) and their mirror images; returns the number of layers reset."""
    layers = [m for m in model.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)]
    for layer in layers:
        layer.reset_running_stats()
        layer.momentum = None  # a plain average over every batch
    config = model.data_config()
    model.train()
    for start in tqdm(range(0, len(crops), batch_size), desc="BatchNorm statistics", unit="batch", disable=not progress):
        inputs = torch.from_numpy(to_input(crops[start : start + batch_size], config["mean"], config["std"]))
        model(inputs)
        model(torch.flip(inputs, dims=(3,)))
    model.eval()
    return len(layers)


def make_soup(config: SoupConfig, progress: bool = True) -> Path:
    """Average the runs' best checkpoints into config.out (a run folder); returns it."""
    recovered = [str(r) for r in config.runs if (Path(r) / "recovered.json").is_file()]
    if recovered:  # training.export.recover: their BatchNorm is "add the folded bias", with no statistics to measure again
        raise ConfigError(f"{', '.join(recovered)}: recovered from an exported file (BatchNorm folded); "
                          "a soup needs the trained checkpoints")
    members = load_members([Path(r) for r in config.runs])
    for what, value_of in (("architecture", lambda m: m.config.model), ("heads", lambda m: m.config.single_head),
                           ("seed (their heads must start from the same random weights)", lambda m: m.config.seed),
                           ("starting weights (--weights)", lambda m: m.config.weights),
                           ("trunk input size (--trunk-input)", lambda m: m.config.trunk_input),
                           ("crop geometry (their caches')", lambda m: str(Cache(config.cache or m.config.cache).read_info().geometry))):
        shared(members, what, value_of, role="soup ingredients")
    first = members[0]
    first_config, first_state = first.config, first.state
    cache = Cache(config.cache or first_config.cache)

    model = first.model
    model.load_state_dict(average_weights([m.state["model"] for m in members]))
    train_faces, _ = split_faces(cache, first_config.fold)
    # Shuffled, as training batches are: a batch of one source only has a smaller variance, and the
    # statistics are the mean of the batches' (in cache order they came out far too narrow).
    picked = np.random.default_rng(config.seed).permutation(len(train_faces))[: config.bn_crops]
    crops = runtime_crops([train_faces[i] for i in picked])
    layers = recompute_batchnorm(model, crops, config.batch_size, progress)

    out = Path(config.out)
    (out / "checkpoints").mkdir(parents=True, exist_ok=True)
    checkpoint.save(out / "checkpoints" / "best.pt", checkpoint.best_model(
        model, int(first_state["epoch"]), float(np.mean([float(m.state["score"]) for m in members])),
        first_state.get("config") or json.dumps(saved_dict(first_config)), first_config.model, model.head_names))
    with atomic_open(out / "config.json", "w", encoding="utf-8") as handle:
        handle.write((first.run_dir / "config.json").read_text(encoding="utf-8"))
    ingredients = [{"run": str(m.run_dir), "epoch": int(m.state["epoch"]), "validation_score": round(float(m.state["score"]), 4)}
                   for m in members]
    with atomic_open(out / "soup.json", "w", encoding="utf-8") as handle:
        json.dump({"ingredients": ingredients, "batchnorm_crops": len(crops), "batchnorm_layers": layers}, handle, indent=1)
    log.info("soup of %d runs (%s) -> %s; BatchNorm statistics of %d layers from %d training crops", len(members),
             ", ".join(m.run_dir.name for m in members), out, layers, len(crops))
    return out
