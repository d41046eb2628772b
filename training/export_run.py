"""`export`: a run's best checkpoint to the self-describing ONNX classifier the app loads.

The metadata comes from where it is true: input size and crop margin from the cache that made
the training crops, mean/std from the timm trunk, the age boundary from the run. The parity
check (training.export.export_classifier) runs on real validation crops from the cache.
"""
from __future__ import annotations

import logging
from collections import Counter, defaultdict
from pathlib import Path

from core.labels import LABEL_NAMES, class_names
from core.metadata import CLASS_HEAD, ModelMetadata
from training.cache import Cache, CachedFace
from training.config import ExportConfig
from training.evaluate import load_best, model_from_state, runtime_crops
from training.export import export_classifier
from training.train import split_faces

log = logging.getLogger(__name__)


def training_data_summary(faces: list[CachedFace], fold: int | str) -> str:
    """One line per source: photos and which labels they carry, e.g.
    "competition:train 18900 photos (mask, gender, age)"; then the held-out fold (or, given as
    text, how validation was done)."""
    photos: Counter[str] = Counter()
    labelled: dict[str, set[str]] = defaultdict(set)
    for face in faces:
        row = face.row
        photos[row.source] += 1
        for head, value in (("mask", row.mask), ("gender", row.gender), ("age", row.age_label())):
            if value is not None:
                labelled[row.source].add(head)
    parts = [
        f"{source} {n} photos ({', '.join(h for h in ('mask', 'gender', 'age') if h in labelled[source]) or 'no labels'})"
        for source, n in sorted(photos.items())
    ]
    held_out = fold if isinstance(fold, str) else f"fold {fold} held out for validation"
    return "; ".join(parts) + f"; {held_out}"


def export_run(config: ExportConfig) -> Path:
    """Write the ONNX file (default <run>/classifier.onnx); returns its path. An ensemble (or
    flip TTA) goes through training.ensemble."""
    if config.ensemble or config.tta:
        from training.ensemble import export_ensemble

        return export_ensemble(config)
    train_config, state = load_best(config.run_dir)
    cache = Cache(config.cache or train_config.cache)
    geometry = cache.read_info().geometry
    model = model_from_state(train_config, state)
    data_config = model.data_config()
    train_faces, val_faces = split_faces(cache, train_config.fold)
    if train_config.single_head:
        heads = {CLASS_HEAD: class_names()}
    else:
        heads = {name: LABEL_NAMES[name] for name in model.head_names}
    version = config.model_version or f"{train_config.model}-fold{train_config.fold}-e{state['epoch']}"
    metadata = ModelMetadata(
        heads=heads,
        input_size=geometry.input_size,
        mean=tuple(data_config["mean"]),
        std=tuple(data_config["std"]),
        crop_margin=geometry.crop_margin,
        model_version=version,
        training_data=training_data_summary(train_faces + val_faces, train_config.fold),
        architecture=train_config.model,
        age_boundary=train_config.age_boundary,
        extra={"validation_score": f"{state['score']:.4f}", "epoch": str(state["epoch"]), "exported_by": "mask-train export"},
    )
    check = runtime_crops(val_faces[: config.check_crops])
    out = config.out or Path(config.run_dir) / "classifier.onnx"
    return export_classifier(model, metadata, out, check)
