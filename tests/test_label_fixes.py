"""`train --label-fixes`: corrected labels reach the training photos they name, and only those."""
from __future__ import annotations

import csv
import logging
from pathlib import Path, PurePosixPath

import numpy as np
import pytest

from core.labels import Age, Gender, Mask
from training.classifier.dataset import target_matrix, weigh_real_incorrect
from training.classifier.fixes import apply_fixes, checked_masks, fix_training_faces, read_fixes
from training.classifier.out_of_source import read_labels
from training.config import ConfigError, TrainConfig, load_saved, to_dict
from training.data.cache import CachedFace
from training.data.records import ManifestRow
from training.teacher.pseudo import named_person

REPO = Path(__file__).resolve().parents[1]
SHIPPED = REPO / "training" / "labels" / "label_fixes.csv"
EYE_LABELS = REPO / "training" / "labels" / "masked_gender_by_eye.csv"
WRONGLY_WORN = REPO / "training" / "labels" / "wrongly_worn_by_eye.csv"
WRONGLY_WORN_SECOND = REPO / "training" / "labels" / "wrongly_worn_second_pass.csv"
WRONGLY_WORN_THIRD = REPO / "training" / "labels" / "wrongly_worn_third_pass.csv"
CHECKED_MASKS = {split: REPO / "training" / "labels" / f"mask_{split}_by_eye.csv" for split in ("val", "test")}
HEADER = "path,x1,y1,x2,y2,mask,gender,age,was,note\n"


def face(path: str, mask: Mask, box=None, gender=None, source="boxes:face_mask_853") -> CachedFace:
    return CachedFace(ManifestRow(Path(path), path, mask, gender, None, None, source, box), Path(f"{path}.png"))


def write(tmp_path: Path, rows: str) -> Path:
    path = tmp_path / "fixes.csv"
    path.write_text(HEADER + rows, encoding="utf-8")
    return path


def test_fixes_reach_the_named_training_faces_only(tmp_path, caplog):
    scene = "/data/face_mask_853/images/s1.jpg"
    train = [
        face(scene, Mask.WEAR, (10, 10, 50, 50)),
        face(scene, Mask.WEAR, (100, 10, 140, 50)),
        face("/elsewhere/mask_web/with_mask/7.jpg", Mask.WEAR, source="folders:mask_web", gender=Gender.MALE),
        face("/data/mask_web/with_mask/8.jpg", Mask.WEAR, source="folders:mask_web"),
    ]
    held_out = [face("/data/mask_web/with_mask/9.jpg", Mask.WEAR, source="folders:mask_web")]
    fixes = read_fixes(write(tmp_path, (
        "face_mask_853/images/s1.jpg,100.4,10,140,49.6,incorrect,,,wear,nose out\n"  # the second face, within 1 px
        "with_mask/7.jpg,,,,,,female,45,,\n"  # one face in the photo: no box needed; the end of any root's path
        "mask_web/with_mask/9.jpg,,,,,incorrect,,,,\n"  # a validation / test photo
        "mask_web/with_mask/404.jpg,,,,,not_wear,,,,\n"  # no such photo
    )))
    with caplog.at_level(logging.INFO, logger="training.classifier.fixes"):
        fixed, summary = apply_fixes(train, held_out, fixes)
    assert [f.row.mask for f in fixed] == [Mask.WEAR, Mask.INCORRECT, Mask.WEAR, Mask.WEAR]
    assert fixed[2].row.gender == Gender.FEMALE and fixed[2].row.age == 45 and fixed[2].row.mask == Mask.WEAR
    assert held_out[0].row.mask == Mask.WEAR  # held-out photos are never changed
    assert (summary.applied, summary.held_out, len(summary.unmatched)) == (2, 1, 1)
    assert "404.jpg" in summary.unmatched[0] and any("matches no photo" in r.message for r in caplog.records)
    assert [f.row.mask for f in train] == [Mask.WEAR] * 4  # the caller's list is left as it was

    # What training sees: the new target, and the sampler counting the face as real wrongly worn.
    assert target_matrix(fixed, 60, False)[1, 0] == int(Mask.INCORRECT)
    weights = weigh_real_incorrect(fixed, np.ones(4), 3.0)
    assert weights.tolist() == [1.0, 3.0, 1.0, 1.0]


def test_a_fix_without_a_box_on_a_photo_of_several_faces_is_refused(tmp_path):
    scene = "/data/face_mask_853/images/s1.jpg"
    train = [face(scene, Mask.WEAR, (10, 10, 50, 50)), face(scene, Mask.WEAR, (100, 10, 140, 50))]
    fixes = read_fixes(write(tmp_path, "face_mask_853/images/s1.jpg,,,,,incorrect,,,,\n"))
    with pytest.raises(ConfigError, match="2 labelled faces"):
        apply_fixes(train, [], fixes)


@pytest.mark.parametrize("rows, message", [
    ("a.jpg,,,,,worn-ish,,,,\n", r"fixes.csv:2: unknown mask label"),
    ("a.jpg,1,2,,,incorrect,,,,\n", r"fixes.csv:2: partial box"),
    ("a.jpg,,,,,,,,,\n", r"fixes.csv:2: a fix needs a mask, gender or age"),
    ("a.jpg,,,,,wear,,,,\n,,,,,wear,,,,\n", r"fixes.csv:3: no path"),
])
def test_a_bad_row_names_its_line(tmp_path, rows, message):
    with pytest.raises(ConfigError, match=message):
        read_fixes(write(tmp_path, rows))


def test_missing_file_and_columns_are_one_line_errors(tmp_path):
    with pytest.raises(ConfigError, match="does not exist"):
        read_fixes(tmp_path / "none.csv")
    (tmp_path / "short.csv").write_text("path,mask\na.jpg,wear\n", encoding="utf-8")
    with pytest.raises(ConfigError, match="missing column"):
        read_fixes(tmp_path / "short.csv")


def _assert_real_photos_and_dataset_boxes(fixes, shared_data) -> None:
    boxes = {}
    with open(shared_data / "face_mask_853" / "boxes.csv", newline="") as handle:
        for row in csv.DictReader(handle):
            boxes.setdefault(row["path"], []).append(tuple(float(row[k]) for k in ("xmin", "ymin", "xmax", "ymax")))
    for fix in fixes:
        assert (shared_data / fix.path).is_file(), fix.path
        if fix.box is not None:
            listed = boxes[str(fix.path.relative_to("face_mask_853"))]
            assert any(max(abs(a - b) for a, b in zip(fix.box, box)) <= 1 for box in listed), fix


SCORED = ("out_of_source", "real_val_by_eye", "real_test_by_eye")


def _assert_apart_from_scored_sets(paths: set[str]) -> None:
    """No photo, nor a person named by a file name, of the faces that choose or judge a model (out of
    source, validation and test by eye) among `paths` (training labels)."""
    scored = {str(f.path) for name in SCORED for f in read_labels(REPO / "training" / "labels" / f"{name}.csv")}
    assert not scored & paths, sorted(scored & paths)[:3]
    people = {named_person(p) for p in scored} - {None}
    assert not people & {named_person(p) for p in paths}


def test_the_shipped_fixes_name_real_photos_and_boxes(shared_data):
    fixes = read_fixes(SHIPPED)
    assert fixes and all(f.mask is not None for f in fixes)
    _assert_real_photos_and_dataset_boxes(fixes, shared_data)


@pytest.mark.parametrize("labels, rows, earlier", [(WRONGLY_WORN, 23, [SHIPPED]), (WRONGLY_WORN_SECOND, 10, [SHIPPED, WRONGLY_WORN]),
                                                    (WRONGLY_WORN_THIRD, 4, [SHIPPED, WRONGLY_WORN, WRONGLY_WORN_SECOND])],
                         ids=["first pass", "second pass", "third pass"])
def test_the_shipped_wrongly_worn_labels_are_training_photos_apart_from_every_scored_set(shared_data, labels, rows, earlier):
    """wrongly_worn_by_eye.csv, wrongly_worn_second_pass.csv and wrongly_worn_third_pass.csv (labels README): masks judged wrongly worn
    by eye on training photos the dataset files as worn; none of them already fixed by an earlier file,
    nor a photo or person scored out of source or in validation / test."""
    fixes = read_fixes(labels)
    assert len(fixes) == rows and all(f.mask == Mask.INCORRECT and f.gender is None and f.age_group is None for f in fixes)
    _assert_real_photos_and_dataset_boxes(fixes, shared_data)
    assert not {f.path for f in fixes} & {f.path for path in earlier for f in read_fixes(path)}
    _assert_apart_from_scored_sets({str(f.path) for f in fixes})


def test_checked_masks_change_the_named_scored_faces_mask_only(tmp_path, caplog):
    """evaluate --checked-masks: the by-eye mask state replaces the dataset's on the faces it names
    (box within 1 px where a photo has several), gender and age stay, other rows are skipped."""
    scene = "/data/face_mask_853/images/s1.jpg"
    scored = [
        face(scene, Mask.WEAR, (10, 10, 50, 50), gender=Gender.MALE),
        face(scene, Mask.WEAR, (100, 10, 140, 50)),
        face("/data/mask_web/with_mask/7.jpg", Mask.WEAR, source="folders:mask_web"),
        face("/data/mask_web/without_mask/8.jpg", Mask.NOT_WEAR, source="folders:mask_web"),
    ]
    first = write(tmp_path, (
        "face_mask_853/images/s1.jpg,10.6,10,50,50,incorrect,,,wear,nose out\n"
        "mask_web/with_mask/7.jpg,,,,,wear,,,wear,looked at: as labelled\n"  # the same state: not a change
        "mask_web/with_mask/404.jpg,,,,,incorrect,,,wear,\n"  # another split's photo
    ))
    second = tmp_path / "second.csv"
    second.write_text(HEADER + "mask_web/without_mask/8.jpg,,,,,incorrect,,,not_wear,mask at chin\n", encoding="utf-8")
    with caplog.at_level(logging.INFO, logger="training.classifier.fixes"):
        checked, changed = checked_masks(scored, first, second)
    assert [f.row.mask for f in checked] == [Mask.INCORRECT, Mask.WEAR, Mask.WEAR, Mask.INCORRECT]
    assert changed == 2 and checked[0].row.gender == Gender.MALE
    assert [f.row.mask for f in scored] == [Mask.WEAR, Mask.WEAR, Mask.WEAR, Mask.NOT_WEAR]  # the caller's faces stay
    assert any("2 scored faces" in r.message for r in caplog.records)


def test_the_checked_mask_states_are_real_photos_apart_from_the_training_fixes(shared_data):
    """mask_val_by_eye.csv / mask_test_by_eye.csv (labels README): a mask state only, other than the
    dataset's (`was`), on real photos; no photo in both files, and none among the training photos'
    fixes apart from label_fixes.csv's one validation row (172.jpg), which must agree."""
    files = {split: read_fixes(path) for split, path in CHECKED_MASKS.items()}
    for split, fixes in files.items():
        assert fixes and all(f.mask is not None and f.gender is None and f.age_group is None for f in fixes), split
        _assert_real_photos_and_dataset_boxes(fixes, shared_data)
        with open(CHECKED_MASKS[split], newline="", encoding="utf-8") as handle:
            assert all(r["was"] and r["was"] != r["mask"] for r in csv.DictReader(handle)), split
    assert not {f.path for f in files["val"]} & {f.path for f in files["test"]}
    training = {f.path: f.mask for path in (SHIPPED, WRONGLY_WORN, WRONGLY_WORN_SECOND, WRONGLY_WORN_THIRD, EYE_LABELS)
                for f in read_fixes(path)}
    both = {f.path: (f.mask, training[f.path]) for fixes in files.values() for f in fixes if f.path in training}
    assert both == {PurePosixPath("mask_web/with_mask/172.jpg"): (Mask.INCORRECT, Mask.INCORRECT)}


def test_several_fix_files_apply_in_turn_and_old_runs_settings_still_compare(tmp_path):
    web = "/data/mask_web/with_mask/{}.jpg"
    train = [face(web.format(i), Mask.WEAR, source="folders:mask_web") for i in (1, 2)]
    first = write(tmp_path, "mask_web/with_mask/1.jpg,,,,,incorrect,,,wear,nose out\n")
    second = tmp_path / "second.csv"
    second.write_text(HEADER + "mask_web/with_mask/1.jpg,,,,,not_wear,,,wear,\nmask_web/with_mask/2.jpg,,,,,incorrect,,,wear,\n",
                      encoding="utf-8")
    config = TrainConfig(cache=tmp_path, label_fixes=[first, second])
    assert config.label_fixes == (first, second) and TrainConfig(cache=tmp_path, label_fixes=first).label_fixes == (first,)
    fixed = fix_training_faces(_Cache(train), train, *config.label_fixes)
    assert [f.row.mask for f in fixed] == [Mask.NOT_WEAR, Mask.INCORRECT]  # the later file wins
    # a run saved when --label-fixes took one file resumes with that one file (train's resume check)
    saved = to_dict(load_saved(TrainConfig, {"cache": str(tmp_path), "label_fixes": str(first)}))
    assert saved["label_fixes"] == to_dict(TrainConfig(cache=tmp_path, label_fixes=first))["label_fixes"]
    assert to_dict(load_saved(TrainConfig, {"cache": str(tmp_path)}))["label_fixes"] is None


class _Cache:
    """The one thing fix_training_faces asks of a cache: all of its faces."""

    def __init__(self, faces: list[CachedFace]) -> None:
        self.faces = faces

    def read_faces(self) -> list[CachedFace]:
        return list(self.faces)


def test_eye_labels_apply_after_the_fixes_and_never_to_held_out_faces(tmp_path):
    web = "/data/mask_web/with_mask/{}.jpg"
    train = [face(web.format(i), Mask.WEAR, source="folders:mask_web") for i in (1, 2)]
    held_out = face(web.format(3), Mask.WEAR, source="folders:mask_web")
    fixes = write(tmp_path, "mask_web/with_mask/1.jpg,,,,,incorrect,male,,wear,nose out\n")
    eye = tmp_path / "eye.csv"
    eye.write_text(HEADER + "mask_web/with_mask/1.jpg,,,,,,female,,,\nmask_web/with_mask/2.jpg,,,,,,female,60+,,\n"
                   "mask_web/with_mask/3.jpg,,,,,,male,,,\n", encoding="utf-8")
    fixed = fix_training_faces(_Cache(train + [held_out]), train, fixes, eye)
    assert [(f.row.mask, f.row.gender) for f in fixed] == [(Mask.INCORRECT, Gender.FEMALE), (Mask.WEAR, Gender.FEMALE)]
    assert fixed[1].row.age_group == Age.OVER_60 and held_out.row.gender is None
    assert fix_training_faces(_Cache(train), train, None, None) == train


def test_the_shipped_eye_labels_name_training_photos_with_a_gender(shared_data):
    labels = read_fixes(EYE_LABELS)
    assert len(labels) >= 200 and all(f.mask is None and (f.gender is not None or f.age_group is not None) for f in labels)
    assert {f.path.parts[0] for f in labels} <= {"face_mask_853", "mask_web"}
    _assert_real_photos_and_dataset_boxes(labels, shared_data)
    _assert_apart_from_scored_sets({str(f.path) for f in labels})


def test_the_real_faces_by_eye_of_validation_and_test_are_apart_from_training_labels(shared_data):
    """real_val_by_eye.csv / real_test_by_eye.csv (labels README): valid rows on real photos, and no photo
    in two of: validation, test, the out-of-source check, the training faces labelled by eye."""
    labels = REPO / "training" / "labels"
    files = {name: read_labels(labels / f"{name}.csv") for name in SCORED}
    for name in ("real_val_by_eye", "real_test_by_eye"):
        faces = files[name]
        assert sum(f.gender != "unclear" for f in faces) >= 200, name
        assert {f.source for f in faces} == {"face_mask_853", "mask_web"}
        for f in faces:
            assert (shared_data / f.path).is_file(), f.path
    photos = {name: {f.path for f in faces} for name, faces in files.items()}
    photos["masked_gender_by_eye"] = {str(f.path) for f in read_fixes(EYE_LABELS)}
    names = sorted(photos)
    for i, a in enumerate(names):
        for b in names[i + 1:]:
            assert not photos[a] & photos[b], (a, b, sorted(photos[a] & photos[b])[:3])
