"""Dataset readers: one per layout, the same rows out, every problem reported with file and line."""
from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from core.labels import Age, Gender, Mask
from training.data.records import LabelError, ManifestRow, parse_age
from training.data.readers import (
    parse_spec,
    read_competition,
    read_csv_manifest,
    read_dataset,
    read_folders,
    read_utkface,
)


def touch(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"\xff\xd8 not really decoded by the readers")
    return path


def by_message(problems, text):
    return [p for p in problems if text in p.message]


# ------------------------------------------------------------------------------ competition


def competition(root: Path, table: str, folders: dict[str, list[str]]) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    (root / "train.csv").write_text(table)
    for folder, names in folders.items():
        for name in names:
            touch(root / "images" / folder / name)
    return root


ALL = ["mask1.jpg", "mask2.jpg", "mask3.png", "mask4.jpeg", "mask5.jpg", "incorrect_mask.jpg", "normal.jpg"]


def test_competition_layout_labels_every_file(tmp_path):
    root = competition(
        tmp_path / "train",
        "id,gender,race,age,path\n000001,female,Asian,45,000001_female_Asian_45\n000002,male,Asian,61,000002_male_Asian_61\n",
        {"000001_female_Asian_45": ALL + [".DS_Store", "._mask1.jpg"], "000002_male_Asian_61": ALL},
    )
    result = read_competition(root)
    assert result.problems == []
    assert len(result.rows) == 14
    rows = {(r.person_id.rsplit("/", 1)[1], r.path.name): r for r in result.rows}
    first = rows[("000001", "mask3.png")]
    assert first.mask is Mask.WEAR and first.gender is Gender.FEMALE and first.age == 45.0
    assert rows[("000001", "incorrect_mask.jpg")].mask is Mask.INCORRECT
    assert rows[("000001", "normal.jpg")].mask is Mask.NOT_WEAR
    assert rows[("000002", "normal.jpg")].age_label() is Age.OVER_60
    assert rows[("000002", "normal.jpg")].age_label(old_age=58) is Age.OVER_60
    # person id = the id column, namespaced by the dataset
    assert {r.person_id for r in result.rows} == {"competition:train/000001", "competition:train/000002"}


def test_competition_malformed_rows_are_reported_with_line_numbers(tmp_path):
    table = (
        "id,gender,race,age,path\n"
        "000001,female,Asian,45,p1\n"  # line 2: fine
        "000002,unknown,Asian,30,p2\n"  # line 3: unknown gender
        "000003,male,Asian,abc,p3\n"  # line 4: bad age
        "000004,male,Asian,30,missing_folder\n"  # line 5: folder missing
        "000005,male,Asian\n"  # line 6: too few fields
        "000006,male,Asian,30,p6,extra\n"  # line 7: too many fields
        "000007,male,Asian,30,p1\n"  # line 8: same folder again
        "000008,female,Asian,250,p8\n"  # line 9: impossible age
    )
    root = competition(tmp_path / "c", table, {"p1": ALL, "p2": ALL, "p3": ALL, "p6": ALL, "p8": ALL[:-1] + ["notes.txt"]})
    result = read_competition(root)
    assert {r.person_id for r in result.rows} == {"competition:c/000001"}
    lines = {p.line: p for p in result.problems}
    assert "unknown gender label 'unknown'" in lines[3].message and lines[3].level == "error"
    assert "age 'abc'" in lines[4].message
    assert "not found" in lines[5].message
    assert "fewer than" in lines[6].message
    assert "more than" in lines[7].message
    assert "already listed on line 2" in lines[8].message and lines[8].level == "warning"
    assert "outside 0..130" in lines[9].message
    assert all(p.file.endswith("train.csv") for p in result.problems)
    assert str(lines[3]).startswith(f"{root / 'train.csv'}:3: error:")


def test_competition_reports_missing_and_unexpected_files(tmp_path):
    root = competition(
        tmp_path / "c", "id,gender,race,age,path\n1,male,Asian,30,p\n", {"p": ["mask1.jpg", "normal.jpg", "selfie.jpg"]}
    )
    result = read_competition(root)
    assert len(result.rows) == 2
    assert by_message(result.warnings, "unexpected file selfie.jpg")[0].line == 2
    assert "lacks incorrect_mask, mask2, mask3, mask4, mask5" in by_message(result.warnings, "lacks")[0].message


def test_competition_without_required_columns_says_which(tmp_path):
    (tmp_path / "train.csv").write_text("id,sex,age\n1,male,30\n")
    (tmp_path / "images").mkdir()
    result = read_competition(tmp_path)
    assert result.rows == [] and result.errors[0].line == 1
    assert "missing column(s) gender, path" in result.errors[0].message


# ------------------------------------------------------------------------------ utkface


def test_utkface_names_give_age_and_gender_and_no_mask(tmp_path):
    touch(tmp_path / "images" / "23_0_2_20170116174525125.jpg.chip.jpg")
    touch(tmp_path / "images" / "61_1_20170109142408075.jpg.chip.jpg")  # no race field (3 such files exist)
    touch(tmp_path / "images" / "badname.jpg")
    touch(tmp_path / "images" / "40_7_0_20170116174525125.jpg")  # gender 7
    result = read_utkface(tmp_path)
    rows = {r.path.name: r for r in result.rows}
    young = rows["23_0_2_20170116174525125.jpg.chip.jpg"]
    assert (young.mask, young.gender, young.age, young.age_label()) == (None, Gender.MALE, 23.0, Age.UNDER_30)
    old = rows["61_1_20170109142408075.jpg.chip.jpg"]
    assert old.gender is Gender.FEMALE and old.age_label() is Age.OVER_60
    assert young.person_id != old.person_id  # no ids: one person per file
    assert {Path(p.file).name for p in result.errors} == {"badname.jpg", "40_7_0_20170116174525125.jpg"}


def test_utkface_reads_the_shared_folder(shared_data):
    result = read_utkface(shared_data / "utkface")
    assert len(result.rows) > 16_000 and not result.errors
    import csv

    with open(shared_data / "utkface" / "labels.csv", newline="") as handle:
        labels = {Path(r["path"]).name: r for r in csv.DictReader(handle)}
    for row in result.rows[::500]:
        expected = labels[row.path.name]
        assert row.age == float(expected["age"]) and row.gender.name.lower() == expected["gender"]


# ------------------------------------------------------------------------------ folders


def test_folders_map_class_names_and_report_unknown_folders(tmp_path):
    for name in ("with_mask/a.jpg", "with_mask/sub/b.png", "without_mask/c.jpg", "mask_weared_incorrect/d.jpg",
                 "chin_out/e.jpg", "blurry/f.jpg", "stray.jpg"):
        touch(tmp_path / name)
    result = read_folders(tmp_path, {"chin_out": "incorrect"})
    masks = {r.path.name: r.mask for r in result.rows}
    assert masks == {"a.jpg": Mask.WEAR, "b.png": Mask.WEAR, "c.jpg": Mask.NOT_WEAR, "d.jpg": Mask.INCORRECT, "e.jpg": Mask.INCORRECT}
    assert all(r.gender is None and r.age is None for r in result.rows)
    assert "unknown class folder 'blurry'" in result.errors[0].message and result.errors[0].file.endswith("blurry")
    assert "outside a class folder" in result.warnings[0].message
    skipped = read_folders(tmp_path, {"blurry": "skip", "chin_out": "skip"})
    assert not skipped.errors and len(skipped.rows) == 4
    assert "unknown mask label 'sideways'" in read_folders(tmp_path, {"blurry": "sideways", "chin_out": "skip"}).errors[0].message


def test_folders_read_the_shared_mask_web(shared_data):
    result = read_folders(shared_data / "mask_web")
    assert not result.problems
    assert {r.mask for r in result.rows} == {Mask.WEAR, Mask.NOT_WEAR}


# ------------------------------------------------------------------------------ csv manifest


def test_csv_manifest_mixed_labels_and_problems_by_line(tmp_path):
    touch(tmp_path / "img" / "a.jpg")
    touch(tmp_path / "img" / "b.jpg")
    touch(tmp_path / "img" / "c.jpg")
    (tmp_path / "list.csv").write_text(
        "path,person_id,mask,gender,age\n"
        "img/a.jpg,p1,wear,female,34\n"  # 2: full
        "img/b.jpg,p1,,male,\n"  # 3: gender only
        "img/c.jpg,,incorrect,,60+\n"  # 4: mask + age group, no person id
        "img/missing.jpg,p2,wear,male,30\n"  # 5: file missing
        "img/a.jpg,p3,sideways,male,30\n"  # 6: unknown mask label
        "img/a.jpg,p3,,,\n"  # 7: no label at all
        ",p3,wear,male,30\n"  # 8: empty path
    )
    result = read_csv_manifest(tmp_path / "list.csv")
    rows = [(r.path.name, r.mask, r.gender, r.age, r.age_group) for r in result.rows]
    assert rows == [
        ("a.jpg", Mask.WEAR, Gender.FEMALE, 34.0, None),
        ("b.jpg", None, Gender.MALE, None, None),
        ("c.jpg", Mask.INCORRECT, None, None, Age.OVER_60),
    ]
    assert result.rows[0].person_id == result.rows[1].person_id == "csv:list/p1"
    assert result.rows[2].person_id == "csv:list/img/c.jpg"  # no id: the path
    assert result.rows[2].age_label(old_age=58) is Age.OVER_60  # a group stays a group
    problems = {p.line: p for p in result.problems}
    assert "file not found" in problems[5].message
    assert "unknown mask label 'sideways'" in problems[6].message
    assert problems[7].level == "warning" and "no label" in problems[7].message
    assert "empty path" in problems[8].message
    assert set(problems) == {5, 6, 7, 8}


def test_label_parsing():
    assert parse_age("37") == (37.0, None)
    assert parse_age("30-59") == (None, Age.FROM_30_TO_59)
    assert parse_age("") == (None, None)
    with pytest.raises(LabelError):
        parse_age("-3")
    row = ManifestRow(Path("x"), "p", None, None, 58.0, None, "s")
    assert row.age_label() is Age.FROM_30_TO_59 and row.age_label(old_age=58) is Age.OVER_60


# ------------------------------------------------------------------------------ specs


def test_layouts_are_recognised_or_named(tmp_path, shared_data):
    comp = competition(tmp_path / "comp", "id,gender,race,age,path\n", {})
    (comp / "images").mkdir(exist_ok=True)
    assert parse_spec(str(comp)) == ("competition", comp)
    assert parse_spec(str(shared_data / "utkface"))[0] == "utkface"
    assert parse_spec(str(shared_data / "mask_web"))[0] == "folders"
    (tmp_path / "m.csv").write_text("path\n")
    assert parse_spec(str(tmp_path / "m.csv")) == ("csv", tmp_path / "m.csv")
    assert parse_spec(f"folders={comp}") == ("folders", comp)
    empty = tmp_path / "empty"
    empty.mkdir()
    result = read_dataset(str(empty))
    assert "cannot tell the layout" in result.errors[0].message
    assert "not found" in read_dataset(f"utkface={tmp_path / 'nope'}").errors[0].message


def test_mixed_datasets_share_one_row_type(tmp_path, shared_data):
    some = tmp_path / "utk"
    some.mkdir()
    for path in sorted((shared_data / "utkface" / "images").iterdir())[:3]:
        shutil.copy(path, some / path.name)
    utk = read_dataset(f"utkface={some}")
    folders = read_dataset(f"folders={shared_data / 'mask_web'}")
    assert type(utk.rows[0]) is type(folders.rows[0]) is ManifestRow
    assert utk.rows[0].mask is None and folders.rows[0].gender is None
