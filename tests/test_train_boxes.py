"""Known face boxes (csv x1..y2, the boxes layout), prepare without detection, the held-out test
split (stratified, duplicates kept together, never trained on) and evaluate's breakdowns."""
from __future__ import annotations

import csv
import shutil
from pathlib import Path

import numpy as np
import pytest

from core.crop import crop_face
from core.imageio import load_image
from core.labels import Gender, Mask
from training.data import prepare as prepare_module
from training.data.cache import TEST_FOLD, Cache, CachedFace, read_png, runtime_name
from training.config import ConfigError, EvaluateConfig, PrepareConfig, SplitConfig
from training.data.readers import parse_spec, read_boxes, read_csv_manifest, read_dataset
from training.data.records import ManifestRow
from training.classifier.evaluate import _breakdown_report, breakdown
from training.classifier.metrics import IGNORE
from training.data.prepare import box_key, prepare
from training.data.split import assign_holdout, duplicate_groups, split
from training.classifier.folds import held_out_faces, split_faces


def touch(path: Path, data: bytes = b"\xff\xd8 not decoded by the readers") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


# ------------------------------------------------------------------------------ readers


def test_csv_box_columns_are_read_and_malformed_boxes_reported_by_line(tmp_path):
    for name in "abcdef":
        touch(tmp_path / f"{name}.jpg")
    (tmp_path / "list.csv").write_text(
        "path,person_id,mask,gender,age,source,style,placement,x1,y1,x2,y2\n"
        "a.jpg,p1,0,0,30,synth:utkface,surgical_blue,correct,10.5,20,110.5,140\n"  # 2: good, extra columns ignored
        "b.jpg,p2,2,1,40,synth:utkface,none,none,,,,\n"  # 3: no box
        "c.jpg,p3,0,,,,,,10,20,,40\n"  # 4: partial
        "d.jpg,p4,0,,,,,,10,x,30,40\n"  # 5: not a number
        "e.jpg,p5,0,,,,,,30,20,10,40\n"  # 6: inverted
        "f.jpg,p6,0,,,,,,nan,20,30,40\n"  # 7: not finite
    )
    result = read_csv_manifest(tmp_path / "list.csv")
    rows = {r.path.name: r for r in result.rows}
    assert set(rows) == {"a.jpg", "b.jpg"}
    assert rows["a.jpg"].box == (10.5, 20.0, 110.5, 140.0) and rows["a.jpg"].source == "synth:utkface"
    assert rows["a.jpg"].mask is Mask.WEAR and rows["a.jpg"].gender is Gender.MALE
    assert rows["b.jpg"].box is None
    problems = {p.line: p for p in result.problems}
    assert set(problems) == {4, 5, 6, 7} and all(p.level == "error" and p.file.endswith("list.csv") for p in problems.values())
    assert "partial box" in problems[4].message
    assert "not four numbers" in problems[5].message
    assert "empty" in problems[6].message
    assert "finite" in problems[7].message


def test_csv_without_box_columns_has_no_boxes(tmp_path):
    touch(tmp_path / "a.jpg")
    (tmp_path / "list.csv").write_text("path,mask\na.jpg,wear\n")
    assert read_csv_manifest(tmp_path / "list.csv").rows[0].box is None


def test_boxes_reader_on_face_mask_853(shared_data, tmp_path):
    table = shared_data / "face_mask_853" / "boxes.csv"
    result = read_dataset(f"boxes={table}")
    assert result.problems == []
    with open(table, newline="") as handle:
        expected = list(csv.DictReader(handle))
    assert len(result.rows) == len(expected)
    first, row = result.rows[0], expected[0]
    assert first.box == tuple(float(row[c]) for c in ("xmin", "ymin", "xmax", "ymax"))
    assert first.path == table.parent / row["path"] and first.source == "boxes:face_mask_853"
    assert (first.gender, first.age, first.age_group) == (None, None, None)
    counts = {m: sum(r.mask is m for r in result.rows) for m in Mask}
    assert counts == {Mask.WEAR: 2539, Mask.INCORRECT: 95, Mask.NOT_WEAR: 574}
    # Near-duplicate images share one person id; other images are their own person.
    with open(table.parent / "near_duplicate_groups.csv", newline="") as handle:
        groups: dict[str, set[str]] = {}
        for g in csv.DictReader(handle):
            groups.setdefault(g["group"], set()).add(g["path"])
    person_of = {}
    for r in result.rows:
        person_of.setdefault(r.path.relative_to(table.parent).as_posix(), set()).add(r.person_id)
    assert all(len(p) == 1 for p in person_of.values())  # all boxes of an image: one person
    for group, paths in groups.items():
        ids = {next(iter(person_of[p])) for p in paths if p in person_of}
        assert ids == {f"boxes:face_mask_853/group{group}"}
    loner = next(p for p in person_of if not any(p in paths for paths in groups.values()))
    assert person_of[loner] == {f"boxes:face_mask_853/{loner}"}
    # A bare path to boxes.csv is recognised.
    assert parse_spec(str(table)) == ("boxes", table)


def test_boxes_reader_problems_and_class_map(tmp_path):
    touch(tmp_path / "images" / "a.jpg")
    (tmp_path / "boxes.csv").write_text(
        "path,img_w,img_h,label,xmin,ymin,xmax,ymax\n"
        "images/a.jpg,100,100,with_mask,1,2,30,40\n"  # 2
        "images/a.jpg,100,100,mask_weared_incorrect,40,2,70,40\n"  # 3
        "images/a.jpg,100,100,hat,1,2,30,40\n"  # 4: unknown label
        "images/a.jpg,100,100,without_mask,1,2,,40\n"  # 5: partial box
        "images/gone.jpg,100,100,with_mask,1,2,30,40\n"  # 6: missing file
    )
    result = read_boxes(tmp_path / "boxes.csv")
    assert [(r.mask, r.box, r.person_id) for r in result.rows] == [
        (Mask.WEAR, (1.0, 2.0, 30.0, 40.0), f"boxes:{tmp_path.name}/images/a.jpg"),
        (Mask.INCORRECT, (40.0, 2.0, 70.0, 40.0), f"boxes:{tmp_path.name}/images/a.jpg"),
    ]
    assert [p.line for p in result.errors] == [4, 5, 6]
    assert "unknown label 'hat'" in result.errors[0].message
    mapped = read_boxes(tmp_path / "boxes.csv", {"hat": "skip"})
    assert [p.line for p in mapped.errors] == [5, 6]


# ------------------------------------------------------------------------------ prepare


@pytest.fixture
def scenes(tmp_path, shared_data, scene_boxes) -> Path:
    """boxes.csv over two real face_mask_853 scenes (all their boxes) plus a 6 px box."""
    chosen = [p for p, boxes in sorted(scene_boxes.items()) if len(boxes) >= 2][:2]
    folder = tmp_path / "scenes"
    rows = []
    for path in chosen:
        touch(folder / path, (shared_data / "face_mask_853" / path).read_bytes())
        rows += scene_boxes[path]
    tiny = dict(rows[0], xmin="1", ymin="1", xmax="7", ymax="30")
    rows.append(tiny)
    with open(folder / "boxes.csv", "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    return folder / "boxes.csv"


def test_prepare_crops_known_boxes_without_detection_and_resumes_per_box(scenes, tmp_path, monkeypatch):
    def no_detector(*args, **kwargs):
        raise AssertionError("known boxes must not be detected")

    monkeypatch.setattr(prepare_module, "FaceAnalyzer", no_detector)
    decoded = []
    real_load = prepare_module.load_image
    monkeypatch.setattr(prepare_module, "load_image", lambda path, *a, **k: decoded.append(path) or real_load(path, *a, **k))
    with open(scenes, newline="") as handle:
        listed = list(csv.DictReader(handle))
    config = PrepareConfig(data=(f"boxes={scenes}",), cache=tmp_path / "cache", input_size=48, min_box=10)

    calls = []
    first = prepare(config, progress=False, should_stop=lambda: calls.append(1) or len(calls) >= 2)
    # Stops after the photo in hand: all the boxes of the first photo (its crops are written) are journaled.
    first_photo = sum(r["path"] == listed[0]["path"] for r in listed)
    assert first.interrupted and first.processed == first_photo < len(listed)

    summary = prepare(config, progress=False)
    assert summary.images == 2 and summary.boxes == len(listed)
    assert (summary.reused, summary.processed) == (first_photo, len(listed) - first_photo)
    assert summary.status["box_too_small"] == 1 and summary.status["ok"] == len(listed) - 1
    assert summary.how["box"] == len(listed) - 1 and summary.how["detected"] == 0
    assert len(decoded) <= 3  # each photo once per run (one may be split by the interruption)

    cache = Cache(config.cache)
    with open(cache.manifest_path, newline="") as handle:
        manifest = list(csv.DictReader(handle))
    assert len(manifest) == len(listed)
    small = [r for r in manifest if r["status"] == "box_too_small"]
    assert len(small) == 1 and small[0]["how"] == "box" and small[0]["x2"] == "7.0" and small[0]["crop"] == ""
    geometry = cache.read_info().geometry
    for record in manifest:
        if record["status"] != "ok":
            continue
        assert record["how"] == "box"
        box = tuple(float(record[c]) for c in ("x1", "y1", "x2", "y2"))
        image = load_image(Path(record["path"])).image
        runtime = read_png(cache.root / runtime_name(record["crop"]))
        assert np.array_equal(runtime, crop_face(image, box, geometry.crop_margin, geometry.input_size))
        context = read_png(cache.root / record["crop"])
        assert np.array_equal(context, crop_face(image, box, geometry.cache_margin, geometry.cache_size))
    journal = cache.read_journal()
    key = box_key(manifest[0]["path"], tuple(float(manifest[0][c]) for c in ("x1", "y1", "x2", "y2")))
    assert journal[key].how == "box" and journal[key].box is not None
    faces = cache.read_faces()
    assert len(faces) == len(listed) - 1 and all(f.row.box is not None for f in faces)

    decoded.clear()
    again = prepare(config, progress=False)
    assert (again.reused, again.processed) == (len(listed), 0) and decoded == []


def test_prepare_mixes_box_rows_and_detected_rows(tmp_path, shared_data):
    from tests.train_helpers import utk_faces

    face = utk_faces(shared_data, 1)[0]
    touch(tmp_path / "a.jpg", face.read_bytes())
    (tmp_path / "list.csv").write_text("path,person_id,mask,x1,y1,x2,y2\na.jpg,p,wear,30,30,170,170\na.jpg,p,wear,,,,\n")
    summary = prepare(PrepareConfig(data=(f"csv={tmp_path / 'list.csv'}",), cache=tmp_path / "cache", input_size=48), progress=False)
    assert summary.images == 1 and summary.boxes == 1 and summary.processed == 2
    assert summary.how["box"] == 1 and summary.how["detected"] + summary.how["padded"] == summary.status["ok"] - 1


# ------------------------------------------------------------------------------ split --holdout


def write_manifest(cache: Cache, faces: list[CachedFace]) -> None:
    with open(cache.manifest_path, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["path", "person_id", "source", "mask", "gender", "age", "age_group", "status", "crop"])
        for f in faces:
            r = f.row
            mask = "" if r.mask is None else ["wear", "incorrect", "not_wear"][r.mask]
            gender = "" if r.gender is None else ["male", "female"][r.gender]
            writer.writerow([r.path, r.person_id, r.source, mask, gender, "" if r.age is None else r.age, "", "ok", f.crop])


@pytest.fixture
def population(tmp_path) -> tuple[Cache, list[CachedFace]]:
    """60 people with 2 photos each (distinct bytes), plus pairs of people sharing exact duplicates."""
    rng = np.random.default_rng(0)
    faces = []
    for i in range(60):
        gender, age, mask = Gender(int(rng.integers(2))), float(rng.choice([20, 45, 65])), Mask(int(rng.integers(3)))
        for j in range(2):
            path = touch(tmp_path / "photos" / f"p{i}_{j}.jpg", f"person {i} photo {j}".encode())
            faces.append(CachedFace(ManifestRow(path, f"src/p{i}", mask, gender, age, None, "src" if i % 2 else "other"), Path(f"c{i}_{j}.png")))
    # p0 and p1 share a photo's bytes (a copy under another name), p1 and p2 too: one group of three.
    shutil.copy(tmp_path / "photos" / "p0_0.jpg", tmp_path / "photos" / "copy_of_p0.jpg")
    faces.append(CachedFace(ManifestRow(tmp_path / "photos" / "copy_of_p0.jpg", "src/p1", Mask.WEAR, None, None, None, "src"), Path("x.png")))
    shutil.copy(tmp_path / "photos" / "p2_1.jpg", tmp_path / "photos" / "copy_of_p2.jpg")
    faces.append(CachedFace(ManifestRow(tmp_path / "photos" / "copy_of_p2.jpg", "src/p1", Mask.WEAR, None, None, None, "src"), Path("y.png")))
    cache = Cache(tmp_path / "cache")
    cache.root.mkdir()
    write_manifest(cache, faces)
    return cache, faces


def test_duplicate_photos_merge_their_people(population):
    _, faces = population
    people: dict[str, list[CachedFace]] = {}
    for f in faces:
        people.setdefault(f.row.person_id, []).append(f)
    groups = duplicate_groups(people)
    assert groups["src/p0"] == groups["src/p1"] == groups["src/p2"] == "src/p0"
    assert len(set(groups.values())) == 60 - 2


def test_holdout_is_stratified_disjoint_saved_and_keeps_duplicates_together(population):
    cache, faces = population
    summary = split(SplitConfig(cache=cache.root, num_folds=3, holdout=0.2, seed=1))
    folds = cache.read_folds()
    assert set(folds) == {f.row.person_id for f in faces}
    test = {p for p, k in folds.items() if k == TEST_FOLD}
    assert 9 <= len(test) <= 14 and summary.test_people == len(test)
    assert {folds[p] for p in folds if p not in test} == {0, 1, 2}
    assert len({folds["src/p0"], folds["src/p1"], folds["src/p2"]}) == 1  # exact duplicates: one side
    assert summary.merged_people == 3
    with open(cache.folds_path, newline="") as handle:
        written = list(csv.DictReader(handle))
    assert {r["fold"] for r in written} == {"0", "1", "2", "test"}
    assert {r["group"] for r in written if r["person_id"] in ("src/p0", "src/p1", "src/p2")} == {"src/p0"}
    # The same settings give the same test split.
    split(SplitConfig(cache=cache.root, num_folds=3, holdout=0.2, seed=1))
    assert {p for p, k in cache.read_folds().items() if k == TEST_FOLD} == test

    # train never sees the test people, in any fold, for training or validation.
    held = held_out_faces(cache)
    assert {f.row.person_id for f in held} == test
    for fold in range(3):
        train, val = split_faces(cache, fold)
        used = {f.row.person_id for f in train} | {f.row.person_id for f in val}
        assert not used & test
        assert len(train) + len(val) + len(held) == len(faces)
    with pytest.raises(ConfigError, match="does not exist"):
        split_faces(cache, TEST_FOLD)


def test_without_holdout_there_is_no_test_split(population):
    cache, _ = population
    summary = split(SplitConfig(cache=cache.root, num_folds=3))
    assert summary.test_people == 0 and TEST_FOLD not in cache.read_folds().values()
    with pytest.raises(ConfigError, match="no test split"):
        held_out_faces(cache)


def test_assign_holdout_takes_each_strata_share():
    people = {}
    for i in range(100):
        mask = Mask.WEAR if i < 80 else Mask.INCORRECT
        people[f"p{i}"] = [CachedFace(ManifestRow(Path(f"{i}.jpg"), f"p{i}", mask, None, None, None, "s"), Path("c.png"))]
    chosen = assign_holdout(people, 0.25, 0, 60)
    assert len(chosen) == 25
    assert sum(people[p][0].row.mask is Mask.INCORRECT for p in chosen) == 5


def test_evaluate_config_split_values():
    assert EvaluateConfig(run_dir=Path("r"), subset="test").subset == "test"
    with pytest.raises(ConfigError):
        EvaluateConfig(run_dir=Path("r"), subset="train")
    with pytest.raises(ConfigError):
        EvaluateConfig(run_dir=Path("r"), subset="test", fold=1)


# ------------------------------------------------------------------------------ evaluate breakdown


def test_breakdown_per_source_gender_and_age():
    rows = [
        ManifestRow(Path("a"), "a", Mask.WEAR, Gender.MALE, 20.0, None, "real"),
        ManifestRow(Path("b"), "b", Mask.NOT_WEAR, Gender.FEMALE, 70.0, None, "real"),
        ManifestRow(Path("c"), "c", Mask.INCORRECT, None, None, None, "synth:utkface"),
        ManifestRow(Path("d"), "d", None, Gender.FEMALE, 40.0, None, "synth:utkface"),
    ]
    faces = [CachedFace(r, Path("x.png")) for r in rows]
    labels = np.array([[0, 0, 0], [2, 1, 2], [1, IGNORE, IGNORE], [IGNORE, 1, 1]])
    onehot = lambda idx, n: np.eye(n)[idx]  # noqa: E731
    probs = {"mask": onehot([0, 0, 1, 0], 3), "gender": onehot([0, 1, 0, 1], 2), "age": onehot([0, 2, 0, 0], 3)}
    parts = {(r["by"], r["group"], r["head"]): r for r in breakdown(faces, probs, labels)}
    assert parts[("all", "all", "mask")]["n"] == 3 and parts[("all", "all", "mask")]["accuracy"] == pytest.approx(2 / 3, abs=1e-4)
    assert parts[("source", "real", "mask")]["accuracy"] == 0.5
    assert parts[("source", "synth:utkface", "mask")]["accuracy"] == 1.0
    assert parts[("source", "synth:utkface", "age")]["accuracy"] == 0.0
    assert ("source", "real", "gender") in parts
    assert parts[("gender", "male", "mask")]["accuracy"] == 1.0 and parts[("gender", "female", "mask")]["accuracy"] == 0.0
    assert parts[("age", "<30", "mask")]["n"] == 1 and parts[("age", "60+", "mask")]["n"] == 1
    assert ("age", "30-59", "mask") not in parts  # d has no mask label


def test_breakdown_pools_the_real_photos_of_every_source():
    # Two real sources, each with one class only: apart, each source's macro-F1 hides the confusion
    # between wrongly worn and bare that the pooled real photos show.
    rows = [
        ManifestRow(Path("a"), "a", Mask.INCORRECT, None, None, None, "boxes:scenes"),
        ManifestRow(Path("b"), "b", Mask.INCORRECT, None, None, None, "boxes:scenes"),
        ManifestRow(Path("c"), "c", Mask.NOT_WEAR, None, None, None, "folders:web"),
        ManifestRow(Path("d"), "d", Mask.NOT_WEAR, None, None, None, "folders:web"),
        ManifestRow(Path("e"), "e", Mask.WEAR, None, None, None, "synth:utkface"),
    ]
    faces = [CachedFace(r, Path("x.png")) for r in rows]
    labels = np.array([[1, IGNORE, IGNORE], [1, IGNORE, IGNORE], [2, IGNORE, IGNORE], [2, IGNORE, IGNORE], [0, IGNORE, IGNORE]])
    predicted = [1, 1, 1, 2, 0]  # one bare face called wrongly worn
    probs = {"mask": np.eye(3)[predicted], "gender": np.full((5, 2), 0.5), "age": np.full((5, 3), 1 / 3)}
    parts = {(r["by"], r["group"], r["head"]): r for r in breakdown(faces, probs, labels)}
    real = parts[("photos", "real photos", "mask")]
    assert real["n"] == 4 and real["accuracy"] == 0.75
    assert real["f1"] == pytest.approx((0.8 + 2 / 3) / 2, abs=1e-4)  # wrongly worn 2/(2+1), bare 1/(1.5); no "wear" here
    assert parts[("photos", "synthetic masks", "mask")]["n"] == 1
    only_real = breakdown(faces[:4], {h: p[:4] for h, p in probs.items()}, labels[:4])
    assert not [r for r in only_real if r["by"] == "photos"]  # nothing to pool apart from "all"


def test_breakdown_by_face_size_and_without_faces_the_app_never_sees():
    # Real photos: a 12 px face (below the smallest face the app looks for) called wrong, a 30 px and a
    # 60 px face right, one face the detector found (no labelled box) right; a synthetic mask right.
    rows = [
        ManifestRow(Path("a"), "a", Mask.INCORRECT, None, None, None, "boxes:scenes", box=(0.0, 0.0, 12.0, 14.0)),
        ManifestRow(Path("b"), "b", Mask.WEAR, None, None, None, "boxes:scenes", box=(5.0, 5.0, 35.0, 40.0)),
        ManifestRow(Path("c"), "c", Mask.INCORRECT, None, None, None, "boxes:scenes", box=(0.0, 0.0, 60.0, 70.0)),
        ManifestRow(Path("d"), "d", Mask.NOT_WEAR, None, None, None, "folders:web"),
        ManifestRow(Path("e"), "e", Mask.WEAR, None, None, None, "synth:utkface"),
    ]
    faces = [CachedFace(r, Path("x.png")) for r in rows]
    labels = np.array([[1, IGNORE, IGNORE], [0, IGNORE, IGNORE], [1, IGNORE, IGNORE], [2, IGNORE, IGNORE], [0, IGNORE, IGNORE]])
    predicted = [0, 0, 1, 2, 0]
    probs = {"mask": np.eye(3)[predicted], "gender": np.full((5, 2), 0.5), "age": np.full((5, 3), 1 / 3)}
    parts = {(r["by"], r["group"], r["head"]): r for r in breakdown(faces, probs, labels)}
    assert parts[("photos", "real photos", "mask")]["accuracy"] == 0.75
    seen = parts[("photos", "real photos, faces >= 20 px", "mask")]
    assert seen["n"] == 3 and seen["accuracy"] == 1.0
    assert parts[("face size", "< 20 px", "mask")]["accuracy"] == 0.0
    assert parts[("face size", "20-39 px", "mask")]["n"] == 1 and parts[("face size", ">= 40 px", "mask")]["n"] == 1
    assert parts[("face size", "found by the detector", "mask")]["n"] == 1
    assert sum(r["n"] for k, r in parts.items() if k[0] == "face size") == 4  # real photos only
    report = "\n".join(_breakdown_report(list(parts.values())))
    assert "| **real photos, faces >= 20 px** (pooled) |" in report and "| < 20 px | 1 | 0.0000 | 0.0000 |" in report
