"""Label fixes: corrected labels for single photos, applied to the *training* photos only.

A dataset's labels are sometimes plainly wrong (a mask pulled under the nose filed as "worn"). A
fixes CSV (`train --label-fixes`, format in training/labels/README.md) corrects them without
editing the dataset or the cache, so the split and the cache stay as they are. Validation and test
photos keep the dataset's own labels: fixes are usually found with a model's help, and a model must
not be scored against labels chosen that way. Each fix names the photo by the end of its path
(`face_mask_853/images/x.jpg` matches `/any/root/face_mask_853/images/x.jpg`) and, where a photo
has several labelled faces, by the dataset's box (within BOX_TOLERANCE px).
"""
from __future__ import annotations

import csv
import logging
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path, PurePosixPath

from core.labels import Age, Gender, Mask
from training.config import ConfigError
from training.data.cache import Cache, CachedFace
from training.data.records import LabelError, parse_age, parse_box, parse_gender, parse_mask

log = logging.getLogger(__name__)

BOX_TOLERANCE = 1.0
COLUMNS = ("path", "x1", "y1", "x2", "y2", "mask", "gender", "age")


@dataclass(frozen=True)
class LabelFix:
    """One photo's corrected labels; None: keep the dataset's."""

    path: PurePosixPath
    box: tuple[float, float, float, float] | None
    mask: Mask | None
    gender: Gender | None
    age: float | None
    age_group: Age | None
    line: int

    def names_box(self, box: Sequence[float] | None) -> bool:
        """Whether the fix is for the face with this box (a fix without a box names every face)."""
        if self.box is None:
            return True
        return box is not None and all(abs(a - b) <= BOX_TOLERANCE for a, b in zip(self.box, box))

    def fixed(self, face: CachedFace) -> CachedFace:
        row = face.row
        if self.mask is not None:
            row = replace(row, mask=self.mask)
        if self.gender is not None:
            row = replace(row, gender=self.gender)
        if self.age is not None or self.age_group is not None:
            row = replace(row, age=self.age, age_group=self.age_group)
        return replace(face, row=row)


@dataclass
class FixSummary:
    applied: int = 0  # training photos whose labels a fix changed
    held_out: int = 0  # fixes whose photo is in the validation or test split: left as labelled
    unmatched: list[str] = field(default_factory=list)  # "file:line path" of fixes that name no photo of the cache


def read_fixes(path: Path) -> list[LabelFix]:
    """The fixes CSV; a bad row is a ConfigError naming its line (nothing is half applied)."""
    if not Path(path).is_file():
        raise ConfigError(f"label fixes file {path} does not exist")
    fixes: list[LabelFix] = []
    with open(path, newline="", encoding="utf-8") as handle:
        reader = csv.DictReader(handle)
        missing = [c for c in COLUMNS if c not in (reader.fieldnames or [])]
        if missing:
            raise ConfigError(f"{path}: missing column(s) {', '.join(missing)} (needs {', '.join(COLUMNS)})")
        for line, record in enumerate(reader, start=2):
            try:
                if not record["path"].strip():
                    raise LabelError("no path")
                age, age_group = parse_age(record["age"])
                fix = LabelFix(PurePosixPath(record["path"].strip().replace("\\", "/")),
                               parse_box(record[c] for c in ("x1", "y1", "x2", "y2")),
                               parse_mask(record["mask"]), parse_gender(record["gender"]), age, age_group, line)
            except LabelError as error:
                raise ConfigError(f"{path}:{line}: {error}") from None
            if fix.mask is None and fix.gender is None and fix.age is None and fix.age_group is None:
                raise ConfigError(f"{path}:{line}: a fix needs a mask, gender or age")
            fixes.append(fix)
    return fixes


def fixes_by_path(paths: Sequence[Path | str], fixes: Sequence[LabelFix]) -> dict[int, list[int]]:
    """fix index -> indices of the photo paths that end with the fix's path."""
    lengths = {len(f.path.parts) for f in fixes}
    wanted: dict[tuple[str, ...], list[int]] = defaultdict(list)
    for i, fix in enumerate(fixes):
        wanted[fix.path.parts].append(i)
    found: dict[int, list[int]] = defaultdict(list)
    for j, path in enumerate(paths):
        parts = PurePosixPath(Path(path).as_posix()).parts
        for n in lengths:
            for i in wanted.get(tuple(parts[-n:]), ()):
                found[i].append(j)
    return found


def apply_fixes(train_faces: Sequence[CachedFace], held_out_faces: Sequence[CachedFace], fixes: Sequence[LabelFix],
                source: str = "label fixes") -> tuple[list[CachedFace], FixSummary]:
    """The training faces with their fixes applied, and what happened to every fix."""
    out = list(train_faces)
    summary = FixSummary()
    in_training = fixes_by_path([face.row.path for face in out], fixes)
    elsewhere = fixes_by_path([face.row.path for face in held_out_faces], fixes)
    for i, fix in enumerate(fixes):
        hits = [j for j in in_training.get(i, []) if fix.names_box(out[j].row.box)]
        held = [j for j in elsewhere.get(i, []) if fix.names_box(held_out_faces[j].row.box)]
        if fix.box is None and len(hits) + len(held) > 1:
            raise ConfigError(f"{source}:{fix.line}: {fix.path} has {len(hits) + len(held)} labelled faces: give the face's box")
        if hits:
            for j in hits:
                out[j] = fix.fixed(out[j])
            summary.applied += len(hits)
        elif held:
            summary.held_out += 1
        else:
            summary.unmatched.append(f"{source}:{fix.line} {fix.path}")
    log.info("label fixes (%s): %d training photos relabelled; %d fixes for validation / test photos left as labelled; %d match no photo",
             source, summary.applied, summary.held_out, len(summary.unmatched))
    for where in summary.unmatched[:5]:
        log.warning("label fix matches no photo of the cache: %s", where)
    return out, summary


def checked_mask_states(photos: Sequence[tuple[Path | str, Sequence[float] | None]], *paths: Path) -> dict[int, Mask]:
    """Index of each (photo path, box) that a by-eye check file names (and its box, where the row
    gives one) -> the checked mask state; a later file wins. Shared by checked_masks (cached faces)
    and bench/candidate_rule.py (out-of-source faces)."""
    states: dict[int, Mask] = {}
    for path in paths:
        fixes = read_fixes(path)
        for i, hits in fixes_by_path([photo for photo, _ in photos], fixes).items():
            fix = fixes[i]
            for j in hits:
                if fix.mask is not None and fix.names_box(photos[j][1]):
                    states[j] = fix.mask
    return states


def checked_masks(faces: Sequence[CachedFace], *paths: Path) -> tuple[list[CachedFace], int]:
    """The scored faces with the mask states of by-eye check files (training/labels/mask_val_by_eye.csv,
    mask_test_by_eye.csv), for a figure *reported next to* the dataset's labels, never for training.
    The check looked at every scored real face blind to any model, so unlike a fix found with a
    model's help it may score one. A row whose photo is not among `faces` is skipped (one call may
    name both files); the count is of faces whose mask state changed."""
    out = list(faces)
    changed = 0
    for j, mask in checked_mask_states([(face.row.path, face.row.box) for face in faces], *paths).items():
        if out[j].row.mask != mask:
            out[j] = replace(out[j], row=replace(out[j].row, mask=mask))
            changed += 1
    log.info("checked mask labels (%s): %d scored faces take the by-eye mask state",
             ", ".join(Path(p).name for p in paths), changed)
    return out, changed


def fix_training_faces(cache: Cache, train_faces: Sequence[CachedFace], *paths: Path | None) -> list[CachedFace]:
    """`train`'s use: the training faces with the labels of each CSV in `paths` applied in turn
    (None: skipped; where two files name one face, the later wins); every other face of the cache
    (validation and test) counts as held out."""
    files = [path for path in paths if path is not None]
    if not files:
        return list(train_faces)
    training = {f.crop for f in train_faces}
    others = [f for f in cache.read_faces() if f.crop not in training]
    faces = list(train_faces)
    for path in files:
        faces = apply_fixes(faces, others, read_fixes(path), str(path))[0]
    return faces
