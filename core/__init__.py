"""Mask Checker runtime engine: numpy, OpenCV and onnxruntime only (no Qt, no torch).

The public API, importable from `core` itself (docs/ARCHITECTURE.md draws how they fit):

- FaceAnalyzer (core.analyzer): faces in a picture, each with its mask, gender and age verdicts;
  its results are Face and HeadResult.
- LiveAnalyzer (core.live): the same over video frames, with tracks; results TrackedFace, LiveCounters.
- BatchJob (core.batch): folders of photos to result files; results ImageResult, BatchSummary.
- The configs (core.config): AnalyzerConfig, DetectorConfig, LiveConfig.
- The models: MTCNN and Detection (core.mtcnn), Classifier (core.classifier), ModelMetadata
  (core.metadata), and the labels Mask, Gender, Age (core.labels).

They are imported on first use (PEP 562), so `import core.labels` stays as light as it is.
"""
from __future__ import annotations

import importlib
from typing import Any

_PUBLIC: dict[str, str] = {
    "FaceAnalyzer": "core.analyzer", "Face": "core.analyzer", "HeadResult": "core.analyzer",
    "LiveAnalyzer": "core.live", "TrackedFace": "core.live", "LiveCounters": "core.live",
    "BatchJob": "core.batch", "BatchOptions": "core.batch", "BatchSummary": "core.batch", "ImageResult": "core.batch",
    "AnalyzerConfig": "core.config", "DetectorConfig": "core.config", "LiveConfig": "core.config",
    "MTCNN": "core.mtcnn", "Detection": "core.mtcnn", "Classifier": "core.classifier", "ModelMetadata": "core.metadata",
    "Mask": "core.labels", "Gender": "core.labels", "Age": "core.labels",
}

__all__ = sorted(_PUBLIC)


def __getattr__(name: str) -> Any:
    if name not in _PUBLIC:
        raise AttributeError(f"module 'core' has no attribute {name!r}")
    value = getattr(importlib.import_module(_PUBLIC[name]), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_PUBLIC))
