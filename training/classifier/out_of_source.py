"""Faces from other sources (issue 16): the labels file and its scores, bare vs masked, with counts.

The faces are training/labels/out_of_source.csv (see the README beside it): real faces from
face_mask_853 and mask_web, each with a box in the original photo, the dataset's mask state, and
gender / age group judged by eye ("unclear" where not clear). UTKFace trains age and gender, so
these faces tell how those heads hold on faces of another source. `mask-train evaluate
--out-of-source`, `mask-train train --select-on out-of-source` (training.classifier.oos_check) and
bench/out_of_source.py all score them with the functions here, so their figures agree.

Metrics: see `score`. Macro-F1 averages the per-class F1 over the classes present in the truth of
that split (so the bare split's mask F1 is the not_wear F1). A head that gave no answer (None)
counts as wrong. No torch and no OpenCV here: bench imports it too.
"""
from __future__ import annotations

import csv
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from core.labels import LABEL_NAMES

REPO = Path(__file__).resolve().parents[2]
DEFAULT_LABELS = REPO / "training" / "labels" / "out_of_source.csv"
COLUMNS = ("source", "path", "x1", "y1", "x2", "y2", "mask", "gender", "age", "note")
MASKS, GENDERS, AGES = LABEL_NAMES["mask"], LABEL_NAMES["gender"], LABEL_NAMES["age"]
UNCLEAR = "unclear"

SPLITS: dict[str, tuple[str, ...]] = {"all": MASKS, "bare": ("not_wear",), "masked": ("wear", "incorrect")}


# --------------------------------------------------------------------------- the labels


@dataclass(frozen=True)
class LabelledFace:
    """One row of the labels file."""

    path: str  # relative to the data root
    box: tuple[float, float, float, float]  # x1, y1, x2, y2 in the original photo
    mask: str
    gender: str  # male / female / unclear
    age: str  # <30 / 30-59 / 60+ / unclear
    source: str = ""
    note: str = ""


class LabelsError(ValueError):
    """The labels file cannot be used; the message says where and why."""


def read_labels(path: Path, limit: int | None = None) -> list[LabelledFace]:
    """The rows of the labels CSV (the first `limit`), checked so a typo fails at once, by line."""
    try:
        with open(path, newline="", encoding="utf-8") as handle:
            reader = csv.DictReader(handle)
            missing = [c for c in COLUMNS if c not in (reader.fieldnames or [])]
            if missing:
                raise LabelsError(f"{path}: missing column(s) {', '.join(missing)}")
            faces = []
            for line, row in enumerate(reader, start=2):
                if limit is not None and len(faces) >= limit:
                    break
                faces.append(_face_of(row, f"{path}:{line}"))
    except OSError as exc:
        raise LabelsError(f"cannot read {path}: {exc.strerror or exc}") from exc
    return faces


def read_label_files(paths: Path | str | Sequence[Path | str]) -> list[LabelledFace]:
    """The rows of one labels CSV or of several pooled (e.g. out_of_source.csv and real_val_by_eye.csv),
    in order; a face (photo and box) in two files is refused, as it would count twice."""
    files = [Path(paths)] if isinstance(paths, (str, Path)) else [Path(p) for p in paths]
    faces: list[LabelledFace] = []
    seen: dict[tuple[str, tuple[float, ...]], Path] = {}
    for path in files:
        for face in read_labels(path):
            key = (face.path, face.box)
            if key in seen:
                raise LabelsError(f"{path}: {face.path} {face.box} is also in {seen[key]}")
            seen[key] = path
            faces.append(face)
    return faces


def _face_of(row: dict[str, str], where: str) -> LabelledFace:
    try:
        box = tuple(float(row[c]) for c in ("x1", "y1", "x2", "y2"))
    except ValueError:
        raise LabelsError(f"{where}: box is not four numbers") from None
    if box[2] <= box[0] or box[3] <= box[1]:
        raise LabelsError(f"{where}: empty box {box}")
    for column, allowed in (("mask", MASKS), ("gender", GENDERS + (UNCLEAR,)), ("age", AGES + (UNCLEAR,))):
        if row[column] not in allowed:
            raise LabelsError(f"{where}: {column} {row[column]!r} is not one of {', '.join(allowed)}")
    return LabelledFace(row["path"], box, row["mask"], row["gender"], row["age"], row["source"], row["note"] or "")  # type: ignore[arg-type]


# --------------------------------------------------------------------------- the metrics


def _pairs(true: Sequence[str], pred: Sequence[str | None]) -> list[tuple[str, str | None]]:
    if len(true) != len(pred):
        raise ValueError(f"{len(true)} true labels but {len(pred)} predictions")
    return list(zip(true, pred))


def accuracy(true: Sequence[str], pred: Sequence[str | None]) -> float | None:
    """Share of faces whose prediction equals the truth; None for no faces."""
    pairs = _pairs(true, pred)
    return sum(t == p for t, p in pairs) / len(pairs) if pairs else None


def recall(true: Sequence[str], pred: Sequence[str | None], label: str) -> float | None:
    """Of the faces that truly are `label`, the share predicted `label`; None when there are none."""
    hits = [p == label for t, p in _pairs(true, pred) if t == label]
    return sum(hits) / len(hits) if hits else None


def f1(true: Sequence[str], pred: Sequence[str | None], label: str) -> float:
    """F1 of one class: 2·TP / (2·TP + FP + FN), 0 when it has no true positive."""
    pairs = _pairs(true, pred)
    tp = sum(t == label and p == label for t, p in pairs)
    fp = sum(t != label and p == label for t, p in pairs)
    fn = sum(t == label and p != label for t, p in pairs)
    return 2 * tp / (2 * tp + fp + fn) if tp else 0.0


def macro_f1(true: Sequence[str], pred: Sequence[str | None], labels: Sequence[str]) -> float | None:
    """Mean F1 over the `labels` present in `true` (a class no face has is left out); None for no faces."""
    present = [label for label in labels if label in set(true)]
    return sum(f1(true, pred, label) for label in present) / len(present) if present else None


def rate(pred: Sequence[str | None], called: Sequence[str]) -> float | None:
    """Share of predictions that are one of `called` (e.g. bare faces called wear or incorrect)."""
    return sum(p in called for p in pred) / len(pred) if pred else None


# --------------------------------------------------------------------------- scoring


@dataclass
class Verdicts:
    """One model's answer per face (None: the model has no such head, or gave no answer)."""

    name: str
    mask: list[str | None] = field(default_factory=list)
    gender: list[str | None] = field(default_factory=list)
    age: list[str | None] = field(default_factory=list)
    has_mask: bool = True
    has_gender_age: bool = True
    #: Extra lines for the table (e.g. how many faces got landmarks which way).
    notes: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Figure:
    """One cell: a figure's value and the number of faces behind it."""

    name: str
    value: float | None
    n: int


def score(faces: Sequence[LabelledFace], verdicts: Verdicts) -> list[Figure]:
    """Every figure of the table for one model, in table order."""
    if not len(faces) == len(verdicts.mask) == len(verdicts.gender) == len(verdicts.age):
        raise ValueError("one verdict per face is needed")
    figures: list[Figure] = []
    for split, states in SPLITS.items():
        rows = [i for i, face in enumerate(faces) if face.mask in states]
        if verdicts.has_gender_age:
            figures += _gender_age_figures(split, faces, verdicts, rows)
        if verdicts.has_mask:
            figures += _mask_figures(split, faces, verdicts, rows)
    return figures


def _gender_age_figures(split: str, faces: Sequence[LabelledFace], v: Verdicts, rows: list[int]) -> list[Figure]:
    g = [i for i in rows if faces[i].gender != UNCLEAR]
    g_true, g_pred = [faces[i].gender for i in g], [v.gender[i] for i in g]
    out = [Figure(f"gender accuracy, {split}", accuracy(g_true, g_pred), len(g))]
    out += [Figure(f"gender recall {label}, {split}", recall(g_true, g_pred, label), g_true.count(label)) for label in GENDERS]
    a = [i for i in rows if faces[i].age != UNCLEAR]
    a_true, a_pred = [faces[i].age for i in a], [v.age[i] for i in a]
    out.append(Figure(f"age macro-F1, {split}", macro_f1(a_true, a_pred, AGES), len(a)))
    out += [Figure(f"age recall {label}, {split}", recall(a_true, a_pred, label), a_true.count(label)) for label in AGES]
    return out


def _mask_figures(split: str, faces: Sequence[LabelledFace], v: Verdicts, rows: list[int]) -> list[Figure]:
    m_true, m_pred = [faces[i].mask for i in rows], [v.mask[i] for i in rows]
    out = [
        Figure(f"mask macro-F1, {split}", macro_f1(m_true, m_pred, MASKS), len(rows)),
        Figure(f"mask accuracy, {split}", accuracy(m_true, m_pred), len(rows)),
    ]
    bare = [v.mask[i] for i in rows if faces[i].mask == "not_wear"]
    masked = [v.mask[i] for i in rows if faces[i].mask != "not_wear"]
    if split != "masked":
        out.append(Figure(f"bare face called masked or wrongly worn, {split}", rate(bare, ("wear", "incorrect")), len(bare)))
    if split != "bare":
        out.append(Figure(f"masked face called bare, {split}", rate(masked, ("not_wear",)), len(masked)))
    return out


def markdown_table(all_verdicts: Sequence[Verdicts], faces: Sequence[LabelledFace]) -> str:
    """Rows: figures; columns: models. A cell is `value (n)`, '-' where the model has no such head."""
    per_model = [{f.name: f for f in score(faces, v)} for v in all_verdicts]
    names: list[str] = []
    for figures in per_model:
        names += [name for name in figures if name not in names]
    order = {name: i for i, name in enumerate(names)}
    names.sort(key=lambda name: (_split_rank(name), order[name]))
    lines = ["| figure | " + " | ".join(v.name for v in all_verdicts) + " |", "|---" * (len(all_verdicts) + 1) + "|"]
    for name in names:
        cells = [_cell(figures.get(name)) for figures in per_model]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    extra = sorted({key for v in all_verdicts for key in v.notes})
    for key in extra:
        lines.append(f"| {key} | " + " | ".join(v.notes.get(key, "-") for v in all_verdicts) + " |")
    return "\n".join(lines) + "\n"


def _split_rank(name: str) -> tuple[int, int]:
    head = 0 if name.startswith("gender") else 1 if name.startswith("age") else 2
    split = list(SPLITS).index(name.rsplit(", ", 1)[1])
    return head, split


def _cell(figure: Figure | None) -> str:
    if figure is None:
        return "-"
    if figure.value is None:
        return f"n/a ({figure.n})"
    return f"{figure.value:.3f} ({figure.n})"
