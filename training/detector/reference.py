"""The reference detector: stock MTCNN as facenet-pytorch ships it, pinned by its files' SHA-256.

eval-detector's landmark check, finetune-detector's proposals, box style and landmark targets, and
synth's landmarks all need *stock* MTCNN. "Whatever assets/models/mtcnn holds" is not that: once a
fine-tune ships there, a check against it would compare the fine-tune with itself. So the
reference is a named export whose three files are byte for byte the pinned ones (`mask-train
export-detector` makes them: its export is deterministic), looked for in STOCK_DIR (where
export-detector writes by default) and then in the shipped folder (which holds them today).
A folder given by hand (--reference DIR) is used as given, with a warning when it is not the pin.
"""
from __future__ import annotations

import hashlib
import logging
from pathlib import Path

from core.config import DetectorConfig, default_detector_dir
from core.mtcnn import MTCNN
from training.config import STOCK_DIR, ConfigError

log = logging.getLogger(__name__)

STOCK_NAME = "stock MTCNN: facenet-pytorch 2.5.3 weights, `mask-train export-detector` (torch 2.14.1, opset 18)"
#: SHA-256 of the pinned export's files.
STOCK_SHA256 = {
    "pnet.onnx": "c349c5461910c013e0470d4d212e12d5b56a4909299b5f9c3ceea720dba9d60c",
    "rnet.onnx": "e93658ad173797fc99857d1b20b75f9594252c439cd2a7ce4e06c92c97b1ce4d",
    "onet.onnx": "bfa48853c90682a8935162237ef43730d8b917d43428085db86eafe5972c6975",
}


def is_stock(folder: Path) -> bool:
    """Whether `folder` holds exactly the pinned stock export's three files."""
    for name, digest in STOCK_SHA256.items():
        try:
            if hashlib.sha256((Path(folder) / name).read_bytes()).hexdigest() != digest:
                return False
        except OSError:
            return False
    return True


def reference_dir(folder: Path | None = None) -> Path:
    """`folder` when given; else the first of STOCK_DIR and the shipped folder holding the pinned export."""
    if folder is not None:
        if not is_stock(folder):
            log.warning("reference detector %s is not the pinned stock export (%s): comparing against it as given",
                        folder, STOCK_NAME)
        return Path(folder)
    for candidate in (STOCK_DIR, default_detector_dir()):
        if is_stock(candidate):
            return candidate
    raise ConfigError(f"no pinned stock MTCNN export found in {STOCK_DIR} or {default_detector_dir()}: "
                      f"run `mask-train export-detector` (writes {STOCK_DIR}) or give --reference DIR")


def reference_detector(folder: Path | None = None, min_face: int = DetectorConfig.min_face_size,
                       thresholds: tuple[float, float, float] = DetectorConfig.thresholds) -> MTCNN:
    """The reference detector at these settings."""
    directory = reference_dir(folder)
    log.debug("reference detector: %s", directory)
    return MTCNN(directory, DetectorConfig(min_face_size=min_face, thresholds=thresholds))
