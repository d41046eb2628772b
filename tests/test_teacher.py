"""`mask-train teach` (training.teacher.pseudo) with the real dlib networks on real mask_web photos,
and `train --teacher`: who gets labelled, who never does (the out-of-source people), how sure the
teacher must be, that training only fills labels that were missing, and the masked twins of the
bare faces it labels (training.teacher.twins)."""
from __future__ import annotations

import csv
import shutil
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from core.labels import Age, Gender, Mask
from training.classifier.metrics import IGNORE
from training.config import ConfigError, PrepareConfig, SplitConfig, TeachConfig
from training.data.cache import CachedFace, CropGeometry, read_png, runtime_name
from training.data.prepare import prepare
from training.data.records import ManifestRow
from training.data.split import split
from training.synth.geometry import Placement
from training.teacher.pseudo import CHECK_FILE, TEACHER_FILE, TeacherLabels, apply_teacher, named_person, read_teacher, teach
from training.teacher.twins import TWINS_DIR, WRONG, Twin, draw_twins, masked_twins, read_twins, twin_placement, twin_rng

#: Out-of-source photos (in training/labels/out_of_source.csv), one of a named person with more photos.
OOS_PHOTOS = ("without_mask/0_0_chenglong_0070.jpg", "without_mask/0.jpg", "with_mask/0999.jpg")
SAME_PERSON = "without_mask/0_0_chenglong_0036.jpg"
OTHERS = ("without_mask/0_0_aidai_0014.jpg", "without_mask/0_0_aidai_0029.jpg")


def read_csv(path: Path) -> list[dict[str, str]]:
    with open(path, newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


@pytest.fixture(scope="module")
def taught(tmp_path_factory, shared_data: Path, dlib_dir: Path):
    """A cache of a few mask_web photos, taught; the out-of-source labels are the real rows of OOS_PHOTOS."""
    root = tmp_path_factory.mktemp("teach")
    web = root / "mask_web"
    others = [p for p in sorted((shared_data / "mask_web" / "without_mask").iterdir())
              if named_person(p) is None and p.suffix == ".jpg"][:6]
    chosen = [*OOS_PHOTOS, SAME_PERSON, *OTHERS, *(f"without_mask/{p.name}" for p in others)]
    for name in chosen:
        (web / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(shared_data / "mask_web" / name, web / name)
    labels = root / "oos.csv"
    rows = [r for r in read_csv(Path(__file__).resolve().parents[1] / "training" / "labels" / "out_of_source.csv")
            if r["path"] in {f"mask_web/{p}" for p in OOS_PHOTOS}]
    assert len(rows) == len(OOS_PHOTOS)
    with open(labels, "w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    cache = root / "cache"
    prepare(PrepareConfig(data=(f"folders={web}",), cache=cache, input_size=64), progress=False)
    config = TeachConfig(cache=cache, dlib_dir=dlib_dir, oos_labels=labels, oos_data=root, min_face=24)
    summary = teach(config)
    return root, cache, config, summary, chosen


def test_teach_labels_the_other_faces_and_never_the_out_of_source_people(taught) -> None:
    root, cache, config, summary, chosen = taught
    rows = read_csv(cache / TEACHER_FILE)
    taught_photos = {Path(r["path"]).relative_to(root / "mask_web").as_posix() for r in rows}
    assert not taught_photos & {*OOS_PHOTOS, SAME_PERSON}  # neither their photos nor the same named person
    assert set(OTHERS) <= taught_photos
    assert summary.excluded == len(OOS_PHOTOS) + 1 and summary.faces == len(rows)
    manifest = {r["crop"]: r for r in read_csv(cache / "manifest.csv")}
    for row in rows:
        assert manifest[row["crop"]]["path"] == row["path"] and row["mask"] == manifest[row["crop"]]["mask"]
        p_female = float(row["p_female"])
        p_age = np.array([float(v) for v in row["p_age"].split()])
        assert 0.0 <= p_female <= 1.0 and p_age.sum() == pytest.approx(1.0, abs=1e-3)
        sure_gender = max(p_female, 1 - p_female) >= config.gender_confidence
        assert (row["gender"] != "") == sure_gender
        if sure_gender:
            assert row["gender"] == ("female" if p_female > 0.5 else "male")
        assert (row["age_group"] != "") == (p_age.max() >= config.age_confidence)
    assert summary.gender == sum(r["gender"] != "" for r in rows) > 0  # clear bare web faces: the teacher is sure of some


def test_the_check_scores_the_teacher_on_the_out_of_source_faces(taught) -> None:
    _, cache, config, summary, _ = taught
    check = (cache / CHECK_FILE).read_text()
    assert check == summary.check
    assert f"({len(OOS_PHOTOS)} of {len(OOS_PHOTOS)} read)" in check and f">= {config.gender_confidence}" in check
    cells = {line.split(" | ")[0].lstrip("| "): line.split(" | ")[1:] for line in check.splitlines() if line.startswith("| ")}
    labelled, clear = (int(v) for v in cells["all"][0].split("/"))
    assert clear == 3 and 0 <= labelled <= clear  # all three OOS faces have a gender by eye
    bare_clear = int(cells["bare"][0].split("/")[1])
    assert bare_clear == 2


def test_training_fills_only_missing_labels_from_the_teacher(taught) -> None:
    pytest.importorskip("torch")
    from training.classifier.train import train
    from training.config import TrainConfig

    _, cache, _, _, _ = taught
    split(SplitConfig(cache=cache, num_folds=2, holdout=0.0))
    config = TrainConfig(cache=cache, run_dir=cache.parent / "run", model="mobilenetv3_small_050", epochs=1, batch_size=4,
                         loader_workers=0, torch_threads=2, device="cpu", teacher=True)
    train(config, progress=False)
    log = (config.run_dir / "train.log").read_text()
    filled = [line.split("pseudo: ")[1] for line in log.splitlines() if "teacher: gender for" in line]
    assert len(filled) == 1
    gender, age = int(filled[0].split()[3]), int(filled[0].split()[8])
    # exactly the taught photos of the training folds (not fold 0, the validation fold) are filled
    person = {r["crop"]: r["person_id"] for r in read_csv(cache / "manifest.csv")}
    fold = {r["person_id"]: r["fold"] for r in read_csv(cache / "folds.csv")}
    training = [r for r in read_csv(cache / TEACHER_FILE) if fold[person[r["crop"]]] != "0"]
    assert gender == sum(r["gender"] != "" for r in training) > 0
    assert age == sum(r["age_group"] != "" for r in training)


def _face(tmp_path: Path, name: str, gender: Gender | None, age: float | None) -> CachedFace:
    return CachedFace(ManifestRow(Path(f"{name}.jpg"), name, Mask.NOT_WEAR, gender, age, None, "folders:web"),
                      tmp_path / "crops" / f"{name}.png")


def test_apply_teacher_never_replaces_a_known_label(tmp_path: Path) -> None:
    faces = [_face(tmp_path, "utk", Gender.MALE, 25.0), _face(tmp_path, "web", None, None), _face(tmp_path, "unsure", None, None),
             _face(tmp_path, "untaught", None, None)]
    labels = np.array([[2, 0, 0], [2, IGNORE, IGNORE], [2, IGNORE, IGNORE], [2, IGNORE, IGNORE]])
    teacher = TeacherLabels({"crops/utk.png": (1, 2), "crops/web.png": (1, 1), "crops/unsure.png": (None, 0)}, 60)
    out = apply_teacher(faces, labels, tmp_path, teacher, 60)
    assert out.tolist() == [[2, 0, 0], [2, 1, 1], [2, IGNORE, 0], [2, IGNORE, IGNORE]]
    assert labels[1, 1] == IGNORE  # the input is left as it was
    with pytest.raises(ConfigError, match="age groups end at 60, training uses 58"):
        apply_teacher(faces, labels, tmp_path, teacher, 58)


def test_read_teacher_and_its_errors(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="run `mask-train teach` first"):
        read_teacher(tmp_path)
    (tmp_path / TEACHER_FILE).write_text(
        "crop,path,mask,face_px,landmarks,p_female,p_age,age_boundary,gender,age_group\n"
        "crops/a.png,a.jpg,not_wear,80,detected,0.99,0.99 0.01 0.0,60,female,<30\n"
        "crops/b.png,b.jpg,wear,40,onet,0.5,0.4 0.4 0.2,60,,\n")
    teacher = read_teacher(tmp_path)
    assert teacher.labels == {"crops/a.png": (int(Gender.FEMALE), 0), "crops/b.png": (None, None)} and teacher.age_boundary == 60
    with pytest.raises(ConfigError, match="probability"):
        TeachConfig(gender_confidence=1.5)
    with pytest.raises(ConfigError, match="single-head"):
        from training.config import TrainConfig

        TrainConfig(teacher=True, single_head=True)


def test_named_person() -> None:
    assert named_person("mask_web/without_mask/0_0_chenglong_0070.jpg") == "chenglong"
    assert named_person("1_0_chenglong_0040.jpg") == "chenglong"
    assert named_person("0_0_0 copy 10.jpg") is None and named_person("0129.jpg") is None
    assert named_person("with_mask_12.jpg") is None


@pytest.fixture(scope="module")
def twinned(taught, tmp_path_factory):
    """The taught cache copied and taught again with two masked twins per labelled bare face, then split."""
    root, cache, config, _, _ = taught
    copy = tmp_path_factory.mktemp("twins") / "cache"
    shutil.copytree(cache, copy)
    twin_config = replace(config, cache=copy, twins=2)
    summary = teach(twin_config)
    split(SplitConfig(cache=copy, num_folds=2, holdout=0.0))
    return copy, twin_config, summary


def test_teach_draws_masked_twins_of_the_bare_faces_it_labels(taught, twinned) -> None:
    _, cache, _, _, _ = taught
    assert read_twins(cache) == []  # twins=0 (the default) draws none
    copy, _, summary = twinned
    taught_rows = {r["crop"]: r for r in read_csv(copy / TEACHER_FILE)}
    wanted = [c for c, r in taught_rows.items() if r["mask"] == "not_wear" and r["landmarks"] != "box"
              and (r["gender"] or r["age_group"])]
    twins = read_twins(copy)
    assert wanted and summary.twins == len(twins)
    assert {t.crop for t in twins} <= set(wanted) and len(twins) >= len(wanted)  # a twin is left out only if its mask is off the photo
    for twin in twins:
        index = int(Path(twin.twin).stem[len(Path(twin.crop).stem) + 1:].split("_", 1)[0])  # <stem>_<index>_<placement>
        assert (twin.placement is Placement.CORRECT) == (index == 0) and (index == 0 or twin.placement in WRONG)
        original = read_png(copy / runtime_name(twin.crop)).astype(np.float32)
        drawn = read_png(copy / runtime_name(twin.twin)).astype(np.float32)
        assert drawn.shape == original.shape
        assert read_png(copy / twin.twin).shape == read_png(copy / twin.crop).shape
        change = np.abs(drawn - original).mean(axis=(1, 2))  # per row of the crop
        half = len(change) // 2
        assert change[half:].mean() > 3 * change[:half].mean() + 1.0  # a mask over the lower face, not the eyes


def test_training_adds_the_twins_of_its_training_photos_only(twinned) -> None:
    pytest.importorskip("torch")
    from training.classifier.train import train
    from training.config import TrainConfig

    copy, _, _ = twinned
    config = TrainConfig(cache=copy, run_dir=copy.parent / "run", model="mobilenetv3_small_050", epochs=1, batch_size=4,
                         loader_workers=0, torch_threads=2, device="cpu", teacher=True)
    train(config, progress=False)
    added = [line.split(" masked twins of")[0].split()[-1] for line in (config.run_dir / "train.log").read_text().splitlines()
             if "masked twins of" in line]
    assert len(added) == 1
    person = {r["crop"]: r["person_id"] for r in read_csv(copy / "manifest.csv")}
    fold = {r["person_id"]: r["fold"] for r in read_csv(copy / "folds.csv")}
    twins = read_twins(copy)
    training = [t for t in twins if fold[person[t.crop]] != "0"]
    assert 0 < len(training) < len(twins)  # both folds hold twinned faces: the validation fold's are left out
    assert int(added[0]) == len(training)


def test_teach_again_without_twins_removes_them(twinned) -> None:
    copy, config, _ = twinned
    teach(replace(config, twins=0))
    assert read_twins(copy) == [] and not (copy / TWINS_DIR).exists()


def test_masked_twins_carry_the_drawn_mask_and_the_teachers_labels(tmp_path: Path) -> None:
    faces = [_face(tmp_path, "a", None, None), _face(tmp_path, "b", None, None)]
    taught = {"crops/a.png": (int(Gender.FEMALE), None), "crops/b.png": (None, None), "crops/gone.png": (0, 0)}
    twins = [Twin("crops/a.png", "twins/a_0_correct.png", Placement.CORRECT),
             Twin("crops/a.png", "twins/a_1_under_nose.png", Placement.UNDER_NOSE),
             Twin("crops/b.png", "twins/b_0_correct.png", Placement.CORRECT),  # the teacher was unsure of b
             Twin("crops/gone.png", "twins/gone_0_correct.png", Placement.CORRECT)]  # not a training photo
    out = masked_twins(faces, tmp_path, taught, twins)
    assert [f.crop for f in out] == [tmp_path / "twins/a_0_correct.png", tmp_path / "twins/a_1_under_nose.png"]
    assert [f.row.mask for f in out] == [Mask.WEAR, Mask.INCORRECT]
    assert all(f.row.gender is Gender.FEMALE and f.row.age_label() is None for f in out)
    assert all(f.row.source == "synth:twin:folders:web" and f.row.person_id == "a" for f in out)
    taught["crops/a.png"] = (None, int(Age.OVER_60))
    assert masked_twins(faces, tmp_path, taught, twins[:1])[0].row.age_label() is Age.OVER_60


def test_twin_placements_alternate_worn_and_wrongly_worn() -> None:
    rng = np.random.default_rng(0)
    placements = [twin_placement(i, rng, 0.5) for i in range(200)]
    assert set(placements[0::2]) == {Placement.CORRECT}
    wrong = placements[1::2]
    assert set(wrong) == set(WRONG)
    assert 30 < sum(p is Placement.UNDER_NOSE for p in wrong) < 70
    assert {twin_placement(1, rng, 1.0) for _ in range(20)} == {Placement.UNDER_NOSE}


def test_a_twin_whose_mask_falls_off_the_photo_is_left_out(shared_data: Path, tmp_path: Path) -> None:
    from core.imageio import load_image
    from core.mtcnn import MTCNN

    image = load_image(shared_data / "utkface" / "images" / "100_0_0_20170112215240346.jpg.chip.jpg").image  # room below the chin
    face = max(MTCNN().detect(image), key=lambda d: (d.box[2] - d.box[0]) * (d.box[3] - d.box[1]))
    mouth_y = int(face.landmarks[3:, 1].max())
    cut = image[: mouth_y + 2]  # the photo ends just under the mouth: a mask pulled to the chin is off it
    box = (face.box[0], face.box[1], face.box[2], min(face.box[3], cut.shape[0] - 1))
    crop = next(f"crops/{seed}.png" for seed in range(100)
                if twin_placement(1, twin_rng(0, f"crops/{seed}.png", 1), 0.0) is Placement.CHIN_OUT)
    geometry = CropGeometry.from_context(64, 0.2, 1.25)
    whole = draw_twins(image, crop, face.box, face.landmarks, face.box, geometry, tmp_path / "whole", 2, 0.0, 0)
    assert [r["placement"] for r in whole] == ["correct", "chin_out"]
    rows = draw_twins(cut, crop, box, face.landmarks, face.box, geometry, tmp_path / "cut", 2, 0.0, 0)
    assert [r["placement"] for r in rows] == ["correct"]
    assert not list((tmp_path / "cut").rglob("*chin_out*"))
