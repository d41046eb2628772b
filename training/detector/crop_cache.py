"""One part of the detector fine-tune's crops (scenes, synth faces, dressed scenes, web photos,
mined negatives) saved in the run folder with the settings that built it, so an interrupted
build resumes after the last finished part and a changed setting rebuilds only what it touches."""
from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np

from core.atomic import atomic_open

log = logging.getLogger(__name__)

Arrays = dict[str, dict[str, np.ndarray]]  # net -> key -> array


def part_paths(run_dir: Path, name: str) -> tuple[Path, Path]:
    folder = Path(run_dir) / "parts"
    return folder / f"{name}.npz", folder / f"{name}.json"


def load_part(run_dir: Path, name: str, settings: dict) -> tuple[Arrays, dict] | None:
    """The part's arrays and info when it was built with exactly these settings, else None."""
    data_path, info_path = part_paths(run_dir, name)
    if not (data_path.is_file() and info_path.is_file()):
        return None
    info = json.loads(info_path.read_text(encoding="utf-8"))
    if info.pop("settings", None) != settings:
        log.info("crops part %s: built with other settings, building it again", name)
        return None
    arrays: Arrays = {}
    with np.load(data_path) as data:
        for key in data.files:
            net, field = key.split(".", 1)
            arrays.setdefault(net, {})[field] = data[key]
    log.info("crops part %s: reused (%s)", name, {net: len(a["labels"]) for net, a in arrays.items()})
    return arrays, info


def save_part(run_dir: Path, name: str, settings: dict, arrays: Arrays, info: dict) -> None:
    data_path, info_path = part_paths(run_dir, name)
    data_path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_open(data_path, "wb") as handle:
        np.savez(handle, **{f"{net}.{k}": v for net, a in arrays.items() for k, v in a.items()})
    with atomic_open(info_path, "w", encoding="utf-8") as handle:
        json.dump({**info, "settings": settings}, handle, indent=2)


def merge(parts: list[Arrays], nets: tuple[str, ...]) -> Arrays:
    """The parts' crops of each net, concatenated in order."""
    return {net: {k: np.concatenate([p[net][k] for p in parts if net in p]) for k in parts[0][net]} for net in nets}
