"""Masked twins of the bare real faces the teacher labelled (`mask-train teach --twins K`, issue 16).

The teacher is surest on bare faces (out of source: gender right 0.986 bare, 0.941 masked) and is
rarely sure of an age under a mask, while the app mostly has to judge masked faces. So for each
bare real face it gave a gender or an age group, `teach --twins K` draws K synthetic masks on the
photo with `mask-train synth`'s renderer (that face's MTCNN landmarks; the first twin worn
correctly, the next wrongly, and so on) and crops them exactly as prepare cropped the face. The
twins are listed in <cache>/twins.csv; `train --teacher` adds the twins of its *training* photos
(never of a validation or test photo) with the teacher's labels and the drawn mask's state. They
count as synthetic (source synth:twin:...), like every other drawn mask.
"""
from __future__ import annotations

import csv
import logging
import shutil
import zlib
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from core.atomic import atomic_open
from core.crop import crop_face
from core.labels import Age, Gender
from training.data.cache import CachedFace, CropGeometry, runtime_name
from training.data.prepare import write_png
from training.synth.geometry import Placement
from training.synth.render import render
from training.synth.styles import STYLES, sample_style

log = logging.getLogger(__name__)

TWINS_FILE = "twins.csv"
TWINS_DIR = "twins"
TWIN_COLUMNS = ("crop", "twin", "placement")
#: source tag of a twin: "synth" first, so is_synthetic() and the real wrongly worn weight see it as drawn
TWIN_SOURCE = "synth:twin:"
WRONG = (Placement.UNDER_NOSE, Placement.NOSE_OUT, Placement.CHIN_OUT)
#: a twin is kept only when its drawn mask covers at least this share of the runtime crop (what the
#: model sees). A mask pulled to the chin of a face cut at the chin (mask_web's tight crops) falls
#: off the photo, and the twin would be a bare face labelled masked: 0.002 of the crop there. On
#: whole faces a mask at the chin covers 0.01-0.03 (synth's UTKFace chips), worn correctly 0.06-0.15.
MIN_COVER = 0.02


def twin_rng(seed: int, crop: str, index: int) -> np.random.Generator:
    """The generator of one twin: stable for a face whatever else the cache holds."""
    return np.random.default_rng([seed, zlib.crc32(crop.encode("utf-8")), index])


def twin_placement(index: int, rng: np.random.Generator, under_nose: float) -> Placement:
    """Even twins wear the mask correctly; odd ones wrongly: just under the nose tip with
    probability under_nose, else nose out or pulled to the chin."""
    if index % 2 == 0:
        return Placement.CORRECT
    if rng.random() < under_nose:
        return Placement.UNDER_NOSE
    return WRONG[1 + int(rng.integers(2))]


def draw_twins(image_bgr: np.ndarray, crop: str, face_box: Sequence[float], landmarks: np.ndarray,
               landmark_box: Sequence[float], geometry: CropGeometry, cache_root: Path, count: int,
               under_nose: float, seed: int) -> list[dict[str, str]]:
    """Draw `count` masks on one face, write each twin's context and runtime crops (face_box,
    the box the original crop was cut from) into the cache; their twins.csv rows. None when
    the landmarks do not look like a face; a twin whose mask is mostly outside the photo is
    left out (MIN_COVER)."""
    rows = []
    stem = Path(crop).stem
    for index in range(count):
        rng = twin_rng(seed, crop, index)
        placement = twin_placement(index, rng, under_nose)
        style = sample_style(STYLES[int(rng.integers(len(STYLES)))], rng)
        try:
            drawn = render(image_bgr, landmarks, np.asarray(landmark_box, np.float64), style, placement, rng)
        except ValueError as exc:
            log.debug("%s: no twin (%s)", crop, exc)
            return []
        box = np.asarray(face_box, np.float64)
        cover = float(crop_face(drawn.alpha, box, geometry.crop_margin, geometry.input_size).mean())
        if cover < MIN_COVER:
            log.debug("%s: %s twin left out (its mask covers %.3f of the crop)", crop, placement.value, cover)
            continue
        name = f"{TWINS_DIR}/{stem}_{index}_{placement.value}.png"
        write_png(cache_root / runtime_name(name), geometry.runtime_crop(drawn.image, box))
        write_png(cache_root / name, crop_face(drawn.image, box, geometry.cache_margin, geometry.cache_size))
        rows.append({"crop": crop, "twin": name, "placement": placement.value})
    return rows


def clear_twins(cache_root: Path) -> None:
    """Remove the twins of an earlier `teach` (their crops and list)."""
    shutil.rmtree(cache_root / TWINS_DIR, ignore_errors=True)
    (cache_root / TWINS_FILE).unlink(missing_ok=True)


@dataclass(frozen=True)
class Twin:
    crop: str  # the original's context crop, relative to the cache
    twin: str  # the twin's context crop, relative to the cache
    placement: Placement


def read_twins(cache_root: Path) -> list[Twin]:
    """twins.csv's rows; none when teach drew no twins."""
    path = Path(cache_root) / TWINS_FILE
    if not path.is_file():
        return []
    with open(path, newline="", encoding="utf-8") as handle:
        return [Twin(r["crop"], r["twin"], Placement(r["placement"])) for r in csv.DictReader(handle)]


def masked_twins(faces: Sequence[CachedFace], cache_root: Path, taught: dict[str, tuple[int | None, int | None]],
                 twins: Sequence[Twin]) -> list[CachedFace]:
    """The twins of `faces` (the training photos) as faces of their own: the original's row with
    the drawn mask, the teacher's gender / age group and a synth:twin: source."""
    by_crop = {face.crop.relative_to(cache_root).as_posix(): face for face in faces}
    out = []
    for twin in twins:
        face = by_crop.get(twin.crop)
        labels = taught.get(twin.crop)
        if face is None or labels is None or labels == (None, None):
            continue
        gender, age = labels
        row = replace(face.row, mask=twin.placement.mask_label, gender=None if gender is None else Gender(gender),
                      age=None, age_group=None if age is None else Age(age), source=TWIN_SOURCE + face.row.source)
        out.append(CachedFace(row, cache_root / twin.twin))
    if twins:
        log.info("teacher: %d masked twins of %d training photos added (of %d twins in %s)", len(out),
                 len({t.crop for t in twins if t.crop in by_crop}), len(twins), TWINS_FILE)
    return out


def write_twins(cache_root: Path, rows: Sequence[dict[str, str]]) -> None:
    """twins.csv, written whole or not at all."""
    with atomic_open(Path(cache_root) / TWINS_FILE, "w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=TWIN_COLUMNS)
        writer.writeheader()
        writer.writerows(rows)
