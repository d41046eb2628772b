"""face_mask_853's scenes and the stable held-out split every detector job shares.

The held-out part is chosen by a stable hash of the near-duplicate group (or the photo, when it
has no group), so near copies never straddle it and the same photos are held out on every
machine. Everything a detector fine-tune uses from face_mask_853 comes from the rest; UTKFace
chips get a held-out part the same way (`utk_heldout`).
"""
from __future__ import annotations

import hashlib
import logging
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from core.labels import Mask
from training.data.readers import read_boxes

log = logging.getLogger(__name__)

#: Chance of a near-duplicate group (or lone photo) being held out. The hash puts 214 of 668 groups
#: (216 of 678 photos, 12 of the 33 wrongly worn masks >= 40 px) there: enough to measure the rare state.
HOLDOUT_FRACTION = 0.28
_HASH_SALT = "face_mask_853-detector-heldout-v1"
SPLITS = ("heldout", "train", "all")
#: Fraction of UTKFace chips (by file name hash) that a detector fine-tune never trains on: the
#: synthetic-face check's (`synth_check`).
UTK_HOLDOUT = 0.1
_UTK_SALT = "utkface-detector-heldout-v1"
#: Fraction of mask_web's photos (by person, see `web_group`) that a detector fine-tune never trains on:
#: the close-up check's (`mask-train eval-detector`'s letterboxed photos).
WEB_HOLDOUT = 0.3
_WEB_SALT = "mask_web-detector-heldout-v1"
#: mask_web/without_mask's flattened celebrity folders: `0_0_<name>_0014.jpg`, `1_0_<name>_0195.jpg`.
_WEB_PERSON = re.compile(r"^\d_\d_(?P<name>[A-Za-z]+)_\d+$")
#: face_mask_853's label names, in core's Mask order (wear, incorrect, not_wear).
STATE_NAMES = {Mask.WEAR: "with_mask", Mask.INCORRECT: "mask_weared_incorrect", Mask.NOT_WEAR: "without_mask"}


@dataclass(frozen=True, eq=False)
class Scene:
    """One photo and its labelled faces (compared by identity: it holds arrays)."""

    path: Path
    group: str  # near-duplicate group ("group<N>") or the photo's relative path
    boxes: np.ndarray  # (N, 4) float32 x1, y1, x2, y2
    states: tuple[Mask, ...]


def boxes_table(data_dir: Path) -> Path:
    return Path(data_dir) / "face_mask_853" / "boxes.csv"


def _hash_fraction(salt: str, name: str) -> float:
    """A number in [0, 1) fixed by the name: stable across runs and machines (sha1, not Python's salted hash)."""
    digest = hashlib.sha1(f"{salt}:{name}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


def is_heldout(group: str) -> bool:
    return _hash_fraction(_HASH_SALT, group) < HOLDOUT_FRACTION


def utk_heldout(name: str) -> bool:
    return _hash_fraction(_UTK_SALT, name) < UTK_HOLDOUT


def web_group(path: Path | str) -> str:
    """The person a mask_web photo shows, as far as its name tells: files of one celebrity name
    (`1_0_anhu_0195.jpg`) are one person; any other file is its own."""
    path = Path(path)
    found = _WEB_PERSON.match(path.stem)
    return f"{path.parent.name}/{found['name']}" if found else f"{path.parent.name}/{path.stem}"


def web_heldout(path: Path | str) -> bool:
    """Whether a mask_web photo belongs to the close-up check (never to a detector fine-tune)."""
    return _hash_fraction(_WEB_SALT, web_group(path)) < WEB_HOLDOUT


def load_scenes(table: Path, split: str = "all") -> list[Scene]:
    """face_mask_853's photos with their boxes, for one split ("heldout", "train" or "all"),
    sorted by path. Rows the reader rejects are logged and left out."""
    if split not in SPLITS:
        raise ValueError(f"split must be one of {', '.join(SPLITS)}, not {split!r}")
    result = read_boxes(Path(table))
    for problem in result.problems:
        log.warning("%s", problem)
    if not result.rows:
        raise ValueError(f"{table}: no usable face boxes")
    by_path: dict[Path, list] = {}
    for row in result.rows:
        by_path.setdefault(row.path, []).append(row)
    scenes = []
    for path in sorted(by_path):
        rows = by_path[path]
        group = rows[0].person_id.split("/", 1)[1]
        if split != "all" and is_heldout(group) != (split == "heldout"):
            continue
        boxes = np.array([r.box for r in rows], dtype=np.float32).reshape(-1, 4)
        scenes.append(Scene(path, group, boxes, tuple(r.mask for r in rows)))
    return scenes

