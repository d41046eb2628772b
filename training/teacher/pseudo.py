"""Pseudo-labels from the dlib teacher (`mask-train teach`, issue 16) and their use in training.

UTKFace alone teaches gender and age, so the heads learn one source's faces. The real photos of
face_mask_853 and mask_web come with a mask state only. `teach` runs the CC0 dlib networks
(training.teacher.dlib_models) on every such face in a cache and keeps the answers it is sure of
(a class probability at or above --gender-confidence / --age-confidence): <cache>/teacher.csv.
`train --teacher` then fills the missing gender / age targets of its *training* photos from that
file; validation, test and every reported figure keep the true labels only.

The out-of-source faces (training/labels/out_of_source.csv) come from the same collections. Their
photos, every photo of the same person id (face_mask_853's near-duplicate groups) and every photo
naming the same person (mask_web's <n>_<n>_<name>_<nnnn> files) are left out of teacher.csv, so
the out-of-source check never scores a person the student was taught on by the teacher.
The teacher is scored on those faces instead, at the same confidence: <cache>/teacher_check.md
says how many it would label and how many of those it gets right, bare vs masked.
With --twins K, each bare face it labels also gets K synthetic-mask twins (training.teacher.twins).
"""
from __future__ import annotations

import csv
import logging
import re
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from tqdm import tqdm

from core.atomic import atomic_open
from core.imageio import ImageReadError, load_image
from core.labels import LABEL_NAMES
from training.classifier.dataset import target_matrix
from training.classifier.metrics import IGNORE
from training.classifier.out_of_source import SPLITS, UNCLEAR, LabelledFace, read_label_files
from training.config.base import ConfigError
from training.data.cache import Cache, CachedFace
from training.teacher.align import FaceGeometry, Landmarker
from training.teacher.dlib_models import DlibAnswer, DlibNetworks
from training.teacher.twins import clear_twins, draw_twins, masked_twins, read_twins, write_twins

log = logging.getLogger(__name__)

TEACHER_FILE = "teacher.csv"
CHECK_FILE = "teacher_check.md"
COLUMNS = ("crop", "path", "mask", "face_px", "landmarks", "p_female", "p_age", "age_boundary", "gender", "age_group")
GENDERS, AGES = LABEL_NAMES["gender"], LABEL_NAMES["age"]


@dataclass(frozen=True)
class Verdict:
    """What the teacher says of one face: probabilities, and the labels it is sure of (None: unsure)."""

    p_gender: np.ndarray  # (2,) male, female (core's Gender order)
    p_age: np.ndarray  # (3,) core's age groups at the boundary
    gender: int | None
    age: int | None


def verdict(answer: DlibAnswer, age_boundary: int, gender_confidence: float, age_confidence: float) -> Verdict:
    p_gender = answer.gender[::-1].astype(np.float64)  # dlib: female, male -> core: male, female
    p_age = answer.age_group_probs(age_boundary)
    gender = int(np.argmax(p_gender))
    age = int(np.argmax(p_age))
    return Verdict(p_gender, p_age, gender if p_gender[gender] >= gender_confidence else None,
                   age if p_age[age] >= age_confidence else None)


@dataclass
class TeachSummary:
    faces: int = 0  # faces the teacher saw
    gender: int = 0  # of them, labelled with a gender
    age: int = 0
    unreadable: int = 0  # photos that could not be read (their faces left out)
    excluded: int = 0  # faces left out as out-of-source people
    routes: dict[str, int] = field(default_factory=dict)  # landmark route -> faces
    twins: int = 0  # masked twins drawn
    check: str = ""  # the teacher_check.md table


def _is_pupil(record: dict[str, str]) -> bool:
    """A real photo's face in the cache with no gender or no age: what the teacher may label."""
    synthetic = record["source"].startswith("synth")
    unlabelled = not record["gender"] or not (record["age"] or record["age_group"])
    return record["status"] == "ok" and not synthetic and unlabelled


def _box(record: dict[str, str]) -> tuple[float, float, float, float]:
    return tuple(float(record[c]) for c in ("x1", "y1", "x2", "y2"))  # type: ignore[return-value]


def _face_px(box: Sequence[float]) -> float:
    """The face box's shorter side: the dlib networks see 32 and 64 px chips of it."""
    return min(box[2] - box[0], box[3] - box[1])


#: mask_web names its photos of known people <n>_<n>_<name>_<nnnn> (e.g. 0_0_chenglong_0070.jpg):
#: one person per name, across its with_mask and without_mask folders.
_NAMED_PHOTO = re.compile(r"^\d+_\d+_([a-z]+)_\d+$")


def named_person(path: str | Path) -> str | None:
    """The person a photo's file name names (see _NAMED_PHOTO), else None."""
    match = _NAMED_PHOTO.match(Path(path).stem)
    return match.group(1) if match else None


@dataclass(frozen=True)
class Excluded:
    """Who the out-of-source faces are: the person ids of their photos (face_mask_853's near-duplicate
    groups) and the people their file names name. The teacher labels none of them."""

    person_ids: frozenset[str]
    names: frozenset[str]

    def __contains__(self, record: dict[str, str]) -> bool:
        return record["person_id"] in self.person_ids or named_person(record["path"]) in self.names


def excluded_people(records: Sequence[dict[str, str]], oos_faces: Sequence[LabelledFace], oos_data: Path) -> Excluded:
    photos = {(oos_data / f.path).resolve() for f in oos_faces}
    names = {named_person(f.path) for f in oos_faces} - {None}
    return Excluded(frozenset(r["person_id"] for r in records if Path(r["path"]).resolve() in photos), frozenset(names))  # type: ignore[arg-type]


def teach(config) -> TeachSummary:
    """Label the cache's real faces that lack gender or age; write teacher.csv and teacher_check.md."""
    cache = Cache(config.cache)
    records = cache.read_records()
    oos_faces = read_label_files(config.oos_labels)
    excluded = excluded_people(records, oos_faces, config.oos_data)
    unlabelled = [r for r in records if _is_pupil(r)]
    candidates = [r for r in unlabelled if r not in excluded]
    pupils = [r for r in candidates if _face_px(_box(r)) >= config.min_face]
    log.info("teacher: %d faces to label in %s; left out: %d of the out-of-source people (%d person ids, %d names), "
             "%d smaller than %d px", len(pupils), cache.root, len(unlabelled) - len(candidates), len(excluded.person_ids),
             len(excluded.names), len(candidates) - len(pupils), config.min_face)
    networks = DlibNetworks(config.dlib_dir)
    landmarker = Landmarker()
    summary = TeachSummary(excluded=len(unlabelled) - len(candidates))
    geometry = cache.read_info().geometry
    clear_twins(cache.root)
    twin_rows: list[dict[str, str]] = []

    by_photo: dict[str, list[dict[str, str]]] = defaultdict(list)
    for r in pupils:
        by_photo[r["path"]].append(r)
    rows: list[dict[str, str]] = []
    for path, faces in tqdm(by_photo.items(), desc="teacher", unit="photo"):
        image, answers = _answer(networks, landmarker, Path(path), [_box(r) for r in faces], summary)
        for record, (face, answer) in zip(faces, answers):
            v = verdict(answer, config.age_boundary, config.gender_confidence, config.age_confidence)
            if config.twins and _wants_twins(record, face.route, v):
                landmark_box = face.detected_box if face.detected_box is not None else _box(record)
                twin_rows += draw_twins(image, record["crop"], _box(record), face.landmarks, landmark_box, geometry,
                                        cache.root, config.twins, config.under_nose, config.seed)
            rows.append({
                "crop": record["crop"], "path": path, "mask": record["mask"],
                "face_px": f"{_face_px(_box(record)):.0f}", "landmarks": face.route,
                "p_female": f"{v.p_gender[1]:.4f}", "p_age": " ".join(f"{p:.4f}" for p in v.p_age),
                "age_boundary": str(config.age_boundary),
                "gender": "" if v.gender is None else GENDERS[v.gender], "age_group": "" if v.age is None else AGES[v.age],
            })
            summary.faces += 1
            summary.gender += v.gender is not None
            summary.age += v.age is not None
    with atomic_open(cache.root / TEACHER_FILE, "w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=COLUMNS)
        writer.writeheader()
        writer.writerows(rows)
    write_twins(cache.root, twin_rows)
    summary.twins = len(twin_rows)
    summary.check = check_on_labelled(networks, landmarker, oos_faces, config)
    with atomic_open(cache.root / CHECK_FILE, "w", encoding="utf-8") as handle:
        handle.write(summary.check)
    log.info("teacher: %d faces, gender given to %d, age group to %d; landmarks %s; %d unreadable photos; %d masked twins -> %s",
             summary.faces, summary.gender, summary.age, summary.routes, summary.unreadable, summary.twins, cache.root / TEACHER_FILE)
    return summary


def _wants_twins(record: dict[str, str], route: str, v: Verdict) -> bool:
    """A bare face the teacher labelled, with landmarks a network found (a mask needs them)."""
    return record["mask"] == "not_wear" and route != "box" and (v.gender is not None or v.age is not None)


def _answer(networks: DlibNetworks, landmarker: Landmarker, path: Path, boxes: list[tuple[float, float, float, float]],
            summary: TeachSummary) -> tuple[np.ndarray | None, list[tuple[FaceGeometry, DlibAnswer]]]:
    """The photo and (where the face is, answer) per box; no answers when the photo cannot be
    read (logged, counted)."""
    try:
        image = load_image(path).image
    except ImageReadError as exc:
        log.warning("%s: %s; its %d face(s) are left out", path, exc.reason, len(boxes))
        summary.unreadable += 1
        return None, []
    geometry = landmarker.locate(image, boxes)
    for g in geometry:
        summary.routes[g.route] = summary.routes.get(g.route, 0) + 1
    return image, list(zip(geometry, networks.answer(image, [g.landmarks for g in geometry])))


def check_on_labelled(networks: DlibNetworks, landmarker: Landmarker, faces: Sequence[LabelledFace], config) -> str:
    """The teacher on the out-of-source faces at the confidences teach uses: per split, how many
    faces with a clear label it labels, and how many of those rightly (a Markdown table)."""
    by_photo: dict[str, list[LabelledFace]] = defaultdict(list)
    for f in faces:
        by_photo[f.path].append(f)
    seen: list[tuple[LabelledFace, Verdict]] = []
    scratch = TeachSummary()
    for path, photo_faces in by_photo.items():
        _, answers = _answer(networks, landmarker, config.oos_data / path, [f.box for f in photo_faces], scratch)
        for f, (_, answer) in zip(photo_faces, answers):
            seen.append((f, verdict(answer, config.age_boundary, config.gender_confidence, config.age_confidence)))
    lines = [
        f"Teacher (dlib-models, CC0) on the out-of-source faces ({len(seen)} of {len(faces)} read), at gender confidence "
        f">= {config.gender_confidence} and age confidence >= {config.age_confidence}: labelled = the faces it is sure of, "
        "of those with a clear label by eye; right = of the labelled.\n",
        "| split | gender labelled | gender right | age labelled | age right |",
        "|---|---|---|---|---|",
    ]
    for split, masks in SPLITS.items():
        rows = [(f, v) for f, v in seen if f.mask in masks]
        cells = []
        for truth_of, guess_of, names in ((lambda f: f.gender, lambda v: v.gender, GENDERS), (lambda f: f.age, lambda v: v.age, AGES)):
            clear = [(truth_of(f), guess_of(v)) for f, v in rows if truth_of(f) != UNCLEAR]
            sure = [(t, g) for t, g in clear if g is not None]
            right = sum(t == names[g] for t, g in sure)
            cells += [f"{len(sure)}/{len(clear)}", f"{right / len(sure):.3f} ({right})" if sure else "-"]
        lines.append(f"| {split} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


# --------------------------------------------------------------------------- in training


@dataclass(frozen=True)
class TeacherLabels:
    """teacher.csv as train reads it: cache-relative crop -> (gender, age group), None where unsure."""

    labels: dict[str, tuple[int | None, int | None]]
    age_boundary: int | None


def read_teacher(cache_root: Path) -> TeacherLabels:
    path = Path(cache_root) / TEACHER_FILE
    if not path.is_file():
        raise ConfigError(f"{cache_root} has no {TEACHER_FILE}: run `mask-train teach` first (or train without --teacher)")
    labels: dict[str, tuple[int | None, int | None]] = {}
    boundaries = set()
    with open(path, newline="", encoding="utf-8") as handle:
        for row in csv.DictReader(handle):
            gender = GENDERS.index(row["gender"]) if row["gender"] else None
            age = AGES.index(row["age_group"]) if row["age_group"] else None
            labels[Path(row["crop"]).as_posix()] = (gender, age)
            boundaries.add(int(row["age_boundary"]))
    if len(boundaries) > 1:
        raise ConfigError(f"{path} mixes age boundaries {sorted(boundaries)}: run `mask-train teach` again")
    return TeacherLabels(labels, boundaries.pop() if boundaries else None)


def apply_teacher(faces: Sequence[CachedFace], labels: np.ndarray, cache_root: Path, teacher: TeacherLabels,
                  age_boundary: int) -> np.ndarray:
    """The (N, 3) mask/gender/age targets with the teacher's labels where the truth is missing
    (IGNORE); a known label is never replaced."""
    if teacher.age_boundary is not None and teacher.age_boundary != age_boundary:
        raise ConfigError(f"teacher.csv's age groups end at {teacher.age_boundary}, training uses {age_boundary}: "
                          f"run `mask-train teach --age-boundary {age_boundary}`")
    out = labels.copy()
    filled = [0, 0]
    for i, face in enumerate(faces):
        taught = teacher.labels.get(face.crop.relative_to(cache_root).as_posix())
        if taught is None:
            continue
        for column, value in ((1, taught[0]), (2, taught[1])):
            if value is not None and out[i, column] == IGNORE:
                out[i, column] = value
                filled[column - 1] += 1
    log.info("teacher: gender for %d and age group for %d training photos that had none", *filled)
    return out


def with_teacher(faces: Sequence[CachedFace], labels: np.ndarray, cache_root: Path,
                 age_boundary: int) -> tuple[list[CachedFace], np.ndarray]:
    """`train --teacher`'s training set: the teacher's labels where the truth is missing, plus the
    masked twins of these (training) photos with their own targets."""
    teacher = read_teacher(cache_root)
    labels = apply_teacher(faces, labels, cache_root, teacher, age_boundary)
    twins = masked_twins(faces, cache_root, teacher.labels, read_twins(cache_root))
    return [*faces, *twins], np.concatenate([labels, target_matrix(twins, age_boundary, False)])
