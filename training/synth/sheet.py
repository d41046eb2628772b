"""A contact sheet of rendered masks for a person to look at: one row per style, one column per
placement, each tile the crop the classifier sees (core.crop.crop_face, margin 0.2)."""
from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

import cv2
import numpy as np

from core.atomic import atomic_open
from core.crop import crop_face
from core.imageio import ImageReadError, load_image
from core.mtcnn import MTCNN, Detection
from training.detector.reference import reference_detector
from training.synth.geometry import FaceFrame, Placement
from training.synth.pipeline import MIN_FACE, PAD_FRACTION, detect_face, output_rng
from training.synth.render import render_mask
from training.synth.source import SourceFace, SynthError, read_source
from training.synth.styles import STYLES, sample_style

log = logging.getLogger(__name__)

COLUMNS: tuple[Placement, ...] = (Placement.CORRECT, Placement.UNDER_NOSE, Placement.NOSE_OUT, Placement.CHIN_OUT, Placement.NONE)
_TITLES = {Placement.CORRECT: "correct", Placement.UNDER_NOSE: "under nose", Placement.NOSE_OUT: "nose out",
           Placement.CHIN_OUT: "chin out", Placement.NONE: "none"}
_LABEL_W = 104
_HEADER_H = 18
_CROP_MARGIN = 0.2  # training's default crop margin (PrepareConfig.crop_margin)
_FONT = cv2.FONT_HERSHEY_SIMPLEX


def _text(canvas: np.ndarray, text: str, x: int, y: int, scale: float = 0.38) -> None:
    cv2.putText(canvas, text, (x, y), _FONT, scale, (235, 235, 235), 1, cv2.LINE_AA)


def _usable_face(faces: Sequence[SourceFace], start: int, detector: MTCNN,
                 pad_fraction: float) -> tuple[SourceFace, np.ndarray, Detection] | None:
    """The first face from `start` on (wrapping round) that loads and has plausible landmarks."""
    for k in range(len(faces)):
        face = faces[(start + k) % len(faces)]
        try:
            image = load_image(face.path).image
        except ImageReadError:
            continue
        padded, found = detect_face(detector, image, pad_fraction)
        if found is None:
            continue
        try:
            FaceFrame.from_detection(found.landmarks, found.box)
        except ValueError:
            continue
        return face, padded, found
    return None


def contact_sheet(faces: Sequence[SourceFace], seed: int = 0, tile: int = 96, detector: MTCNN | None = None,
                  styles: Sequence[str] = STYLES, pad_fraction: float = PAD_FRACTION) -> np.ndarray:
    """BGR image: for each style, one face (spread over `faces`) in every placement, labelled."""
    detector = detector or reference_detector(min_face=MIN_FACE)
    rows: list[np.ndarray] = []
    for r, style_name in enumerate(styles):
        # One face per row, spread evenly over the list: labels.csv is sorted by age.
        usable = _usable_face(faces, int((r + 0.5) * len(faces) / len(styles)), detector, pad_fraction)
        if usable is None:
            raise SynthError("contact sheet: no face found in the source")
        face, padded, found = usable
        style = sample_style(style_name, np.random.default_rng([seed, 3, face.index]))
        row = np.full((tile, _LABEL_W + tile * len(COLUMNS), 3), 40, np.uint8)
        for col, placement in enumerate(COLUMNS):
            rendered = render_mask(padded, found.landmarks, found.box, style, placement, output_rng(seed, face.index, placement))
            x = _LABEL_W + col * tile
            row[:, x:x + tile] = crop_face(rendered, found.box, _CROP_MARGIN, tile)
        _text(row, style_name, 4, 20)
        who = " ".join(s for s in ("" if face.gender is None else "MF"[face.gender],
                                   "" if face.age is None else f"{face.age:g}y") if s)
        _text(row, who, 4, 40)
        rows.append(row)
    header = np.full((_HEADER_H, _LABEL_W + tile * len(COLUMNS), 3), 40, np.uint8)
    for col, placement in enumerate(COLUMNS):
        _text(header, _TITLES[placement], _LABEL_W + col * tile + 6, 13)
    return np.vstack([header, *rows])


def write_contact_sheet(source: str | Path | Sequence[SourceFace], png: str | Path, seed: int = 0,
                        limit: int | None = None, tile: int = 96, detector: MTCNN | None = None) -> Path:
    """`contact_sheet` of a source (as `synthesize` takes it) written atomically as PNG."""
    faces = list(source) if not isinstance(source, (str, Path)) else read_source(source)
    sheet = contact_sheet(faces[:limit] if limit is not None else faces, seed=seed, tile=tile, detector=detector)
    ok, data = cv2.imencode(".png", sheet)
    if not ok:
        raise RuntimeError("PNG encoding failed")
    png = Path(png)
    with atomic_open(png, "wb") as handle:
        handle.write(data.tobytes())
    log.info("contact sheet: %s", png)
    return png
