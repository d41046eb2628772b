"""Runtime configuration in one place: where the models live and the detector's knobs."""
from __future__ import annotations

import os
import sys
from dataclasses import dataclass, field
from pathlib import Path


def assets_dir() -> Path:
    """The shipped models and icons: next to the packages in a checkout, or in a frozen bundle."""
    override = os.environ.get("MASK_CHECKER_ASSETS")
    if override:
        return Path(override)
    frozen_root = getattr(sys, "_MEIPASS", None)
    if frozen_root:
        return Path(frozen_root) / "assets"
    return Path(__file__).resolve().parent.parent / "assets"


def models_dir() -> Path:
    return assets_dir() / "models"


def default_detector_dir() -> Path:
    return models_dir() / "mtcnn"


def default_classifier_path() -> Path:
    return models_dir() / "classifier.onnx"


@dataclass(frozen=True)
class DetectorConfig:
    """MTCNN settings.

    min_face_size: smallest face (px) looked for; it sets how deep the image pyramid goes, so it
    is the biggest lever on speed. thresholds: score a candidate must pass at P-Net, R-Net, O-Net.
    scale_factor: ratio between pyramid levels.
    """

    min_face_size: int = 40
    thresholds: tuple[float, float, float] = (0.6, 0.7, 0.7)
    scale_factor: float = 0.709

    def __post_init__(self) -> None:
        if self.min_face_size < 12:
            raise ValueError("min_face_size must be at least 12 px (P-Net's window)")
        if len(self.thresholds) != 3 or not all(0.0 <= t <= 1.0 for t in self.thresholds):
            raise ValueError("thresholds must be three numbers in [0, 1]")
        if not 0.1 <= self.scale_factor < 1.0:
            raise ValueError("scale_factor must be in [0.1, 1)")


@dataclass(frozen=True)
class AnalyzerConfig:
    """Everything FaceAnalyzer needs to be built."""

    detector: DetectorConfig = field(default_factory=DetectorConfig)
    detector_dir: Path = field(default_factory=default_detector_dir)
    classifier_path: Path | None = field(default_factory=default_classifier_path)
