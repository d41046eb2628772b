"""`export`: a run's best checkpoint to the self-describing ONNX classifier the app loads.

The metadata comes from where it is true: input size and crop margin from the cache that made
the training crops, mean/std from the timm trunk, the age boundary from the run. The parity
check (training.export.onnx.export_classifier) runs on real validation crops from the cache.
"""
from __future__ import annotations

import logging
from pathlib import Path

from core.metadata import ModelMetadata
from training.classifier import prior
from training.classifier.evaluate import load_best, model_from_state, runtime_crops
from training.classifier.folds import split_faces
from training.config import ExportConfig
from training.data.cache import Cache
from training.export.metadata import head_labels, training_data_summary
from training.export.onnx import export_classifier

log = logging.getLogger(__name__)


def export_run(config: ExportConfig) -> Path:
    """Write the ONNX file (default <run>/classifier.onnx); returns its path. An ensemble (or
    flip TTA, or the age prior correction) goes through training.export.ensemble."""
    if config.ensemble or config.tta or config.age_prior:
        from training.export.ensemble import export_ensemble

        return export_ensemble(config)
    train_config, state = load_best(config.run_dir)
    cache = Cache(config.cache or train_config.cache)
    geometry = cache.read_info().geometry
    model = model_from_state(train_config, state)
    data_config = model.data_config()
    train_faces, val_faces = split_faces(cache, train_config.fold)
    heads = head_labels(model.head_names)
    age_prior = prior.members_prior([(train_config, cache)])
    extra = {"validation_score": f"{state['score']:.4f}", "epoch": str(state["epoch"]), "exported_by": "mask-train export"}
    if train_config.trunk_input is not None:  # what `mask-train recover` rebuilds the network with
        extra["trunk_input"] = str(train_config.trunk_input)
    if age_prior is not None:  # what `mask-train calibrate` reads
        extra[prior.METADATA_KEY] = prior.describe(age_prior, 0.0)
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
        extra=extra,
    )
    check = runtime_crops(val_faces[: config.check_crops])
    out = config.out or Path(config.run_dir) / "classifier.onnx"
    return export_classifier(model, metadata, out, check, half_weights=config.half_weights)
