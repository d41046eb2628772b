"""Detectors on held-out synthetic faces (`eval-detector --synth`): found per placement, and how
far their landmarks land from the reference detector's on the bare chip."""
from __future__ import annotations

import csv
import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from tqdm import tqdm

from core.config import DetectorConfig
from core.imageio import ImageReadError, load_image
from core.mtcnn import MTCNN
from core.tracker import iou_matrix
from training.detector.reference import reference_detector
from training.detector.scenes import utk_heldout
from training.synth.pipeline import MANIFEST_NAME, SETTINGS_NAME, detect_face


def bare_landmarks(detector: MTCNN, chip: Path, pad_fraction: float, box: np.ndarray) -> np.ndarray | None:
    """The five landmarks synth drew the mask from: stock MTCNN on the padded bare chip (the same
    call synth made); None when the face found is not the manifest's."""
    try:
        image = load_image(chip).image
    except ImageReadError:
        return None
    _, found = detect_face(detector, image, pad_fraction)
    if found is None or iou_matrix(found.box[None], box[None])[0, 0] < 0.9:
        return None
    return found.landmarks


def synth_pad_fraction(synth_dir: Path) -> float:
    """The context padding `mask-train synth` detected its faces with (its settings file)."""
    return float(json.loads((Path(synth_dir) / SETTINGS_NAME).read_text(encoding="utf-8"))["pad_fraction"])


def synth_rows(synth_dir: Path, heldout: bool) -> list[dict[str, str]]:
    """`mask-train synth`'s manifest rows whose UTKFace chip is held out (heldout=True) or not."""
    with open(Path(synth_dir) / MANIFEST_NAME, newline="", encoding="utf-8") as handle:
        return [r for r in csv.DictReader(handle) if utk_heldout(r["person_id"]) == heldout]


@dataclass
class SynthCheck:
    """A detector on held-out synthetic faces, per placement (none, correct, nose_out, chin_out):
    faces found (IoU >= 0.5 with the bare face's box) and the mean landmark error of those found,
    as a fraction of the eye distance, against stock MTCNN's landmarks on the bare chip."""

    name: str
    found: dict[str, int] = field(default_factory=dict)
    total: dict[str, int] = field(default_factory=dict)
    error: dict[str, float] = field(default_factory=dict)


def synth_check(detector_dirs: list[Path], labels: list[str], data: Path, synth_dir: Path, limit: int = 400,
                min_face: int = 40, progress: bool = True, reference: Path | None = None) -> list[SynthCheck]:
    """Score detectors on synth rows whose UTKFace chip is held out (utk_heldout): never trained on."""
    synth_dir = Path(synth_dir)
    utk_dir = Path(data) / "utkface" / "images"
    pad = synth_pad_fraction(synth_dir)
    rows = synth_rows(synth_dir, heldout=True)[:limit]
    stock = reference_detector(reference, min_face=40)  # as synth detected the bare chips
    detectors = [MTCNN(d, DetectorConfig(min_face_size=min_face)) for d in detector_dirs]
    checks = [SynthCheck(label) for label in labels]
    errors: list[dict[str, list[float]]] = [{} for _ in checks]
    for row in tqdm(rows, desc="synth check", unit="face", disable=not progress):
        box = np.array([float(row[k]) for k in ("x1", "y1", "x2", "y2")], np.float32)
        truth = bare_landmarks(stock, utk_dir / row["person_id"], pad, box)
        if truth is None:
            continue
        image = load_image(synth_dir / row["path"]).image
        eyes = float(np.linalg.norm(truth[0] - truth[1]))
        for detector, check, err in zip(detectors, checks, errors):
            place = row["placement"]
            check.total[place] = check.total.get(place, 0) + 1
            found = detector.detect(image)
            if not found:
                continue
            overlap = iou_matrix(box[None], np.array([d.box for d in found]))[0]
            best = int(np.argmax(overlap))
            if overlap[best] >= 0.5:
                check.found[place] = check.found.get(place, 0) + 1
                err.setdefault(place, []).append(float(np.linalg.norm(found[best].landmarks - truth, axis=1).mean()) / eyes)
    for check, err in zip(checks, errors):
        check.error = {k: float(np.mean(v)) for k, v in err.items()}
    return checks


def synth_check_table(checks: list[SynthCheck]) -> str:
    places = sorted({p for c in checks for p in c.total})
    intro = ("Per placement: faces found (IoU ≥ 0.5 with the bare face's box), and the mean landmark error of "
             "those found, in eye distances, against stock MTCNN's landmarks on the bare chip.\n")
    lines = ["## Held-out synthetic faces\n", intro,
             "| detector | " + " | ".join(f"{p}: found, landmark error" for p in places) + " |", "|---" * (len(places) + 1) + "|"]
    for c in checks:
        cells = [f"{c.found.get(p, 0)}/{c.total.get(p, 0)}, {c.error.get(p, float('nan')):.3f}" for p in places]
        lines.append(f"| {c.name} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"

