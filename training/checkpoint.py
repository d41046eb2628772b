"""Checkpoints that `torch.load(weights_only=True)` can read: tensors, numbers, strings, lists.

No pickled objects: configuration and history travel as JSON strings, RNG states as tensors,
so loading a checkpoint cannot run code from the file.
"""
from __future__ import annotations

import random
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from core.atomic import atomic_path

CHECKPOINT_FORMAT = 1


def best_model(model: torch.nn.Module, epoch: int, score: float, config_json: str, architecture: str,
               heads: Sequence[str], **extra: Any) -> dict[str, Any]:
    """What a run's checkpoints/best.pt holds, whoever writes it (train, soup, recover): export,
    evaluate and soup read these keys. extra: what one writer adds (train: the epoch's metrics)."""
    return {"format": CHECKPOINT_FORMAT, "epoch": int(epoch), "model": model.state_dict(), "score": float(score),
            "config": config_json, "architecture": architecture, "heads": list(heads), **extra}


def rng_state() -> dict[str, Any]:
    """Every random generator a run touches (torch CPU and CUDA, numpy's and Python's global ones)."""
    kind, keys, pos, has_gauss, gauss = np.random.get_state()
    return {
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
        "numpy": {"keys": torch.from_numpy(keys.astype(np.int64)), "pos": int(pos), "has_gauss": int(has_gauss), "gauss": float(gauss)},
        "python": [list(x) if isinstance(x, tuple) else x for x in random.getstate()],
    }


def set_rng_state(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    if state.get("cuda") and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
    n = state["numpy"]
    np.random.set_state(("MT19937", n["keys"].numpy().astype(np.uint32), n["pos"], n["has_gauss"], n["gauss"]))
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))


def save(path: Path, state: dict[str, Any]) -> None:
    """torch.save through a temporary file: an interrupted save leaves the previous checkpoint."""
    with atomic_path(path) as tmp:
        torch.save(state, tmp)


def load(path: Path) -> dict[str, Any]:
    return torch.load(path, map_location="cpu", weights_only=True)
