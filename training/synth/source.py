"""The unmasked faces `mask-train synth` draws on: a labels CSV, or a folder of UTKFace-named files.

Labels are read by the dataset readers' own parsers (training.data.records, training.data.utkface),
so `synth` and `prepare` agree on every face's age and gender.
"""
from __future__ import annotations

import csv
import logging
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from training.data.readers import read_utkface
from training.data.records import LabelError, parse_age, parse_gender

log = logging.getLogger(__name__)


class SynthError(Exception):
    """Bad input or an output folder that cannot be resumed; the message says what to do."""



@dataclass(frozen=True)
class SourceFace:
    """One unmasked face picture and its labels (None: unknown)."""

    index: int  # position in the source list: seeds this face's randomness
    path: Path
    person_id: str  # the source file name
    age: float | None
    gender: int | None

    @property
    def stem(self) -> str:
        return self.person_id.split(".", 1)[0]



def read_source(source: str | Path) -> list[SourceFace]:
    """The faces of a labels CSV (columns path, age, gender; paths relative to the CSV's folder),
    of a folder holding labels.csv, or of a folder of UTKFace-named files (<age>_<gender>_...)."""
    source = Path(source)
    if source.is_dir() and (source / "labels.csv").is_file():
        source = source / "labels.csv"
    faces: list[SourceFace] = []
    if source.is_file():
        with open(source, newline="", encoding="utf-8") as handle:
            reader = csv.DictReader(handle)
            if "path" not in (reader.fieldnames or []):
                raise SynthError(f"{source}: no 'path' column")
            for line, row in enumerate(reader, start=2):
                try:
                    age, _ = parse_age(row.get("age") or "")
                    gender = parse_gender(row.get("gender") or "")
                except LabelError as exc:
                    log.warning("%s:%d: %s (row skipped)", source, line, exc)
                    continue
                path = Path(row["path"])
                path = path if path.is_absolute() else source.parent / path
                faces.append(SourceFace(len(faces), path, path.name, age, None if gender is None else int(gender)))
    elif source.is_dir():
        result = read_utkface(source)
        for problem in result.problems:
            log.warning("%s (not used)", problem)
        for row in sorted(result.rows, key=lambda r: r.path):
            faces.append(SourceFace(len(faces), row.path, row.path.name, row.age, int(row.gender)))
    else:
        raise SynthError(f"{source}: no such file or folder")
    if not faces:
        raise SynthError(f"{source}: no faces listed")
    stems = Counter(face.stem for face in faces)
    duplicated = [stem for stem, n in stems.items() if n > 1]
    if duplicated:
        raise SynthError(f"{source}: {len(duplicated)} file names repeat (e.g. {duplicated[0]}); outputs are named after them")
    return faces
