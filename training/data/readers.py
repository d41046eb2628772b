"""Dataset readers: one per folder layout, all giving the same manifest rows.

A label that a dataset does not have is None (UTKFace has no mask label, a mask folder has no
age); the loss leaves it out, so such sets can be mixed. Nothing is dropped silently: every
malformed row, missing file and unknown label becomes a `Problem` naming the file and line.
"""
from __future__ import annotations

import csv
import logging
from collections.abc import Iterable
from pathlib import Path

from core.files import find_images, is_image_name
from core.labels import Mask
from training.data.records import (
    LabelError,
    ManifestRow,
    Problem,
    ReadResult,
    parse_age,
    parse_box,
    parse_gender,
    parse_mask,
)
from training.data.utkface import is_utkface_name, parse_race, race_of_person, utkface_labels, utkface_race

log = logging.getLogger(__name__)

KINDS = ("competition", "utkface", "folders", "csv", "boxes")

#: competition layout: file stem -> mask label.
COMPETITION_FILES: dict[str, Mask] = {
    **{f"mask{i}": Mask.WEAR for i in range(1, 6)},
    "incorrect_mask": Mask.INCORRECT,
    "normal": Mask.NOT_WEAR,
}

#: folders layout: folder name (lower case) -> mask label name, or "skip" to leave a folder out.
DEFAULT_CLASS_MAP: dict[str, str] = {
    "with_mask": "wear",
    "without_mask": "not_wear",
    "incorrect_mask": "incorrect",
    "mask_weared_incorrect": "incorrect",
}
SKIP = "skip"

BOX_COLUMNS = ("x1", "y1", "x2", "y2")
#: boxes layout (face_mask_853): the near-duplicate groups file beside boxes.csv.
NEAR_DUPLICATES = "near_duplicate_groups.csv"


# ------------------------------------------------------------------------------------ readers


def _open_csv(path: Path, result: ReadResult, required: Iterable[str]) -> list[tuple[int, dict[str, str]]] | None:
    """(line number, row) pairs, or None with a problem when the file or its header is unusable."""
    try:
        with open(path, newline="", encoding="utf-8-sig") as handle:
            reader = csv.DictReader(handle)
            columns = [c.strip() for c in reader.fieldnames or []]
            missing = [c for c in required if c not in columns]
            if missing:
                result.problems.append(Problem(str(path), 1, f"missing column(s) {', '.join(missing)} (has {', '.join(columns) or 'none'})"))
                return None
            reader.fieldnames = columns
            rows = []
            for row in reader:
                if None in row:  # DictReader files surplus fields under the key None
                    result.problems.append(Problem(str(path), reader.line_num, f"more than the {len(columns)} fields of the header"))
                    continue
                if any(v is None for v in row.values()):  # and fills missing ones with None
                    result.problems.append(Problem(str(path), reader.line_num, f"fewer than the {len(columns)} fields of the header"))
                    continue
                rows.append((reader.line_num, {k: v.strip() for k, v in row.items()}))
            return rows
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        result.problems.append(Problem(str(path), None, f"cannot read: {exc}"))
        return None


def _file_person(source: str, root: Path, path: Path) -> str:
    """The person id of a photo in a layout without ids: the photo itself."""
    return f"{source}/{path.relative_to(root).as_posix()}"


def read_competition(root: Path, source: str | None = None) -> ReadResult:
    """`train.csv` (id, gender, race, age, path) + `images/<path>/{mask1..5,incorrect_mask,normal}.*`."""
    root = Path(root)
    source = source or f"competition:{root.name}"
    result = ReadResult()
    table = root / "train.csv"
    rows = _open_csv(table, result, ("id", "gender", "age", "path"))
    if rows is None:
        return result
    seen: dict[str, int] = {}
    for line, row in rows:
        where = (str(table), line)
        if row["path"] in seen:
            result.problems.append(Problem(*where, f"folder {row['path']!r} already listed on line {seen[row['path']]}", "warning"))
            continue
        seen[row["path"]] = line
        try:
            if not row["id"]:
                raise LabelError("empty id")
            gender = parse_gender(row["gender"])
            years, group = parse_age(row["age"])
            if gender is None or (years is None and group is None):
                raise LabelError("gender and age must be given")
        except LabelError as exc:
            result.problems.append(Problem(*where, str(exc)))
            continue
        folder = root / "images" / row["path"]
        if not row["path"] or not folder.is_dir():
            result.problems.append(Problem(*where, f"image folder {folder} not found"))
            continue
        found: set[str] = set()
        for file in sorted(folder.iterdir()):
            if file.name.startswith("."):
                continue
            stem = file.name.split(".", 1)[0]
            mask = COMPETITION_FILES.get(stem)
            if mask is None or not file.is_file():
                result.problems.append(Problem(*where, f"unexpected file {file.name} in {row['path']}/ (not used)", "warning"))
                continue
            if stem in found:
                result.problems.append(Problem(*where, f"{stem} appears twice in {row['path']}/ (both used)", "warning"))
            found.add(stem)
            result.rows.append(ManifestRow(file, f"{source}/{row['id']}", mask, gender, years, group, source))
        missing = sorted(set(COMPETITION_FILES) - found)
        if missing:
            result.problems.append(Problem(*where, f"{row['path']}/ lacks {', '.join(missing)}", "warning"))
    return result


def read_utkface(root: Path, source: str | None = None) -> ReadResult:
    """Files named `<age>_<gender>_<race>_<date>.jpg[.chip.jpg]` (training.data.utkface).

    No mask label (nobody wears one) and no person ids: each file is its own person.
    """
    root = Path(root)
    source = source or f"utkface:{root.name}"
    result = ReadResult()
    for entry in find_images([root], recursive=True):
        try:
            if entry.error is not None:
                raise LabelError(entry.error)
            age, gender = utkface_labels(entry.path.name)
        except LabelError as exc:
            result.problems.append(Problem(str(entry.path), None, str(exc)))
            continue
        result.rows.append(ManifestRow(entry.path, _file_person(source, root, entry.path), None, gender, age, None, source,
                                       race=utkface_race(entry.path.name)))
    if not result.rows and not result.problems:
        result.problems.append(Problem(str(root), None, "no images found"))
    return result


def read_folders(root: Path, class_map: dict[str, str] | None = None, source: str | None = None) -> ReadResult:
    """`<root>/<class>/**/*.jpg`: the folder name is the mask label, through `class_map`."""
    root = Path(root)
    source = source or f"folders:{root.name}"
    mapping = {k.lower(): v for k, v in {**DEFAULT_CLASS_MAP, **(class_map or {})}.items()}
    result = ReadResult()
    try:
        children = sorted(root.iterdir())
    except OSError as exc:
        return ReadResult(problems=[Problem(str(root), None, f"cannot list: {exc.strerror or exc}")])
    for child in children:
        if child.name.startswith("."):
            continue
        if not child.is_dir():
            if is_image_name(child.name):
                result.problems.append(Problem(str(child), None, "image outside a class folder (not used)", "warning"))
            continue
        target = mapping.get(child.name.lower())
        if target == SKIP:
            log.info("skipping folder %s (mapped to skip)", child)
            continue
        try:
            mask = parse_mask(target) if target is not None else None
        except LabelError as exc:
            result.problems.append(Problem(str(child), None, f"class map: {exc}"))
            continue
        if mask is None:
            result.problems.append(Problem(
                str(child), None,
                f"unknown class folder {child.name!r} (map it: --class-map {child.name}=wear|incorrect|not_wear|skip)",
            ))
            continue
        for entry in find_images([child], recursive=True):
            if entry.error is not None:
                result.problems.append(Problem(str(entry.path), None, entry.error))
                continue
            result.rows.append(ManifestRow(entry.path, _file_person(source, root, entry.path), mask, None, None, None, source))
    if not result.rows and not result.problems:
        result.problems.append(Problem(str(root), None, "no class folders with images found"))
    return result


def read_csv_manifest(table: Path, source: str | None = None) -> ReadResult:
    """A CSV with path (relative to the CSV's folder, or absolute) and optional person_id, mask,
    gender, age (years or group), race (UTKFace's names or 0-4), source and x1, y1, x2, y2 (the
    face's box in the photo's pixels: all four or none) columns. An empty cell is an unknown label;
    other columns are ignored (`mask-train synth` adds style and placement). Without a race cell,
    a person_id that is a UTKFace file name (as `synth` writes them) gives the race."""
    table = Path(table)
    default_source = source or f"csv:{table.stem}"
    result = ReadResult()
    rows = _open_csv(table, result, ("path",))
    if rows is None:
        return result
    for line, row in rows:
        where = (str(table), line)
        if not row.get("path"):
            result.problems.append(Problem(*where, "empty path"))
            continue
        path = Path(row["path"])
        path = path if path.is_absolute() else table.parent / path
        try:
            mask = parse_mask(row.get("mask", ""))
            gender = parse_gender(row.get("gender", ""))
            years, group = parse_age(row.get("age", ""))
            box = parse_box(row.get(c, "") for c in BOX_COLUMNS)
            race = parse_race(row.get("race", "")) if row.get("race") else race_of_person(row.get("person_id") or row["path"])
        except LabelError as exc:
            result.problems.append(Problem(*where, str(exc)))
            continue
        if not path.is_file():
            result.problems.append(Problem(*where, f"file not found: {path}"))
            continue
        row_source = row.get("source") or default_source
        manifest_row = ManifestRow(
            path, f"{row_source}/{row.get('person_id') or row['path']}", mask, gender, years, group, row_source, box, race
        )
        if not manifest_row.has_label():
            result.problems.append(Problem(*where, "no label at all (not used)", "warning"))
            continue
        result.rows.append(manifest_row)
    return result


def read_near_duplicates(table: Path, result: ReadResult) -> dict[str, str]:
    """`group,path` rows (path relative to the file's folder) -> {path: group}."""
    rows = _open_csv(table, result, ("group", "path"))
    groups: dict[str, str] = {}
    for line, row in rows or []:
        if not row["group"] or not row["path"]:
            result.problems.append(Problem(str(table), line, "empty group or path", "warning"))
            continue
        previous = groups.setdefault(row["path"], row["group"])
        if previous != row["group"]:
            result.problems.append(Problem(str(table), line, f"{row['path']} is in groups {previous} and {row['group']} (first kept)", "warning"))
    return groups


def read_boxes(table: Path, class_map: dict[str, str] | None = None, source: str | None = None) -> ReadResult:
    """Labelled face boxes in scene photos (face_mask_853): a CSV with path (relative to the CSV's
    folder), label, xmin, ymin, xmax, ymax (img_w, img_h optional), one row per box. The label
    goes through the folders layout's class map. No gender or age.

    Person id: the photo's near-duplicate group when `near_duplicate_groups.csv` (group, path) is
    beside the CSV, so near copies never straddle a split; else the photo itself.
    """
    table = Path(table)
    source = source or f"boxes:{table.parent.name}"
    mapping = {k.lower(): v for k, v in {**DEFAULT_CLASS_MAP, **(class_map or {})}.items()}
    result = ReadResult()
    rows = _open_csv(table, result, ("path", "label", "xmin", "ymin", "xmax", "ymax"))
    if rows is None:
        return result
    groups_file = table.parent / NEAR_DUPLICATES
    groups = read_near_duplicates(groups_file, result) if groups_file.is_file() else {}
    exists: dict[str, bool] = {}
    for line, row in rows:
        where = (str(table), line)
        if not row["path"]:
            result.problems.append(Problem(*where, "empty path"))
            continue
        target = mapping.get(row["label"].lower())
        if target == SKIP:
            continue
        try:
            if target is None:
                raise LabelError(f"unknown label {row['label']!r} (map it: --class-map {row['label'] or 'NAME'}=wear|incorrect|not_wear|skip)")
            mask = parse_mask(target)
            box = parse_box(row[c] for c in ("xmin", "ymin", "xmax", "ymax"))
            if box is None:
                raise LabelError("no box")
        except LabelError as exc:
            result.problems.append(Problem(*where, str(exc)))
            continue
        path = Path(row["path"])
        path = path if path.is_absolute() else table.parent / path
        if row["path"] not in exists:
            exists[row["path"]] = path.is_file()
        if not exists[row["path"]]:
            result.problems.append(Problem(*where, f"file not found: {path}"))
            continue
        group = groups.get(row["path"])
        person = f"{source}/group{group}" if group is not None else f"{source}/{row['path']}"
        result.rows.append(ManifestRow(path, person, mask, None, None, None, source, box))
    return result


# ------------------------------------------------------------------------------------- specs


def parse_spec(spec: str) -> tuple[str, Path]:
    """"KIND=PATH", or a bare PATH whose layout is recognised: train.csv + images/ is the
    competition, a .csv file with label and xmin..ymax columns boxes, another .csv a manifest,
    UTKFace-named files utkface, else folders."""
    kind, sep, rest = spec.partition("=")
    if sep and kind in KINDS:
        return kind, Path(rest)
    path = Path(spec)
    if path.is_file() and path.suffix.lower() == ".csv":
        try:
            with open(path, encoding="utf-8-sig") as handle:
                header = {c.strip() for c in handle.readline().strip().split(",")}
        except (OSError, UnicodeDecodeError):
            header = set()
        return ("boxes" if {"label", "xmin", "ymin", "xmax", "ymax"} <= header else "csv"), path
    if (path / "train.csv").is_file() and (path / "images").is_dir():
        return "competition", path
    if path.is_dir():
        for entry in find_images([path], recursive=True):
            if entry.error is None:
                return ("utkface" if is_utkface_name(entry.path.name) else "folders"), path
    raise ValueError(f"cannot tell the layout of {spec!r}: write KIND=PATH with KIND one of {', '.join(KINDS)}")


def read_dataset(spec: str, class_map: dict[str, str] | None = None) -> ReadResult:
    """Rows and problems of one dataset spec ("KIND=PATH" or a recognisable PATH)."""
    try:
        kind, path = parse_spec(spec)
    except ValueError as exc:
        return ReadResult(problems=[Problem(spec, None, str(exc))])
    if not path.exists():
        return ReadResult(problems=[Problem(str(path), None, "not found")])
    if kind == "competition":
        result = read_competition(path)
    elif kind == "utkface":
        result = read_utkface(path)
    elif kind == "folders":
        result = read_folders(path, class_map)
    elif kind == "boxes":
        result = read_boxes(path, class_map)
    else:
        result = read_csv_manifest(path)
    log.info("%s %s: %d rows, %d errors, %d warnings", kind, path, len(result.rows), len(result.errors), len(result.warnings))
    return result
