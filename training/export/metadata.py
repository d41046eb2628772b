"""What an exported classifier says about itself beyond its weights: head labels and training data.

Shared by the single-run and the ensemble export, so both files describe themselves alike.
"""
from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Sequence

from core.labels import HEADS, LABEL_NAMES, class_names
from core.metadata import CLASS_HEAD
from training.data.cache import CachedFace


def head_labels(head_names: Sequence[str]) -> dict[str, tuple[str, ...]]:
    """The metadata's heads: label names per output, the 18 class names for a single head."""
    return {name: class_names() if name == CLASS_HEAD else LABEL_NAMES[name] for name in head_names}


def training_data_summary(faces: list[CachedFace], fold: int | str) -> str:
    """One line per source: photos and which labels they carry, e.g.
    "competition:train 18900 photos (mask, gender, age)"; then the held-out fold (or, given as
    text, how validation was done)."""
    photos: Counter[str] = Counter()
    labelled: dict[str, set[str]] = defaultdict(set)
    for face in faces:
        row = face.row
        photos[row.source] += 1
        for head, value in zip(HEADS, (row.mask, row.gender, row.age_label())):
            if value is not None:
                labelled[row.source].add(head)
    parts = [
        f"{source} {n} photos ({', '.join(h for h in HEADS if h in labelled[source]) or 'no labels'})"
        for source, n in sorted(photos.items())
    ]
    held_out = fold if isinstance(fold, str) else f"fold {fold} held out for validation"
    return "; ".join(parts) + f"; {held_out}"
