"""`mask-train synth`: masks rendered on real UTKFace chips from ../shared/data.

Six chips spread over labels.csv (which is sorted by age, so ages, genders and skin tones vary)
go through the library and the command; the checks look at pixels under the landmarks, labels,
files and bytes.
"""
from __future__ import annotations

import csv
import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest

from core.imageio import load_image
from core.mtcnn import MTCNN
from training.cli import main
from training.synth import COLUMNS, STYLES, Placement, SynthError, read_source, render, synthesize
from training.synth.pipeline import IMAGES_DIR, detect_face

N_CHIPS = 6
GENDERS = {"male": 0, "female": 1}


@pytest.fixture(scope="module")
def chips(shared_data: Path, tmp_path_factory) -> Path:
    """A labels.csv of six chips spread over the dataset, with absolute paths."""
    root = shared_data / "utkface"
    with open(root / "labels.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    picked = [rows[int((i + 0.5) * len(rows) / N_CHIPS)] for i in range(N_CHIPS)]
    table = tmp_path_factory.mktemp("chips") / "labels.csv"
    with open(table, "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        for row in picked:
            writer.writerow({**row, "path": str(root / row["path"])})
    return table


@pytest.fixture(scope="module")
def labels(chips: Path) -> dict[str, dict[str, str]]:
    with open(chips, newline="") as handle:
        return {Path(row["path"]).name: row for row in csv.DictReader(handle)}


@pytest.fixture(scope="module")
def detector() -> MTCNN:
    return MTCNN()


@pytest.fixture(scope="module")
def runs(chips: Path, detector: MTCNN, tmp_path_factory) -> dict[str, tuple[Path, object]]:
    """Seed 7 twice (one and two workers) and seed 8, all with --per-face 3."""
    out = {}
    for name, seed, workers in (("a", 7, 1), ("b", 7, 2), ("other", 8, 1)):
        folder = tmp_path_factory.mktemp(f"synth_{name}")
        out[name] = (folder, synthesize(chips, folder, per_face=3, seed=seed, workers=workers,
                                        detector=detector, progress=False))
    return out


def _manifest(folder: Path) -> list[dict[str, str]]:
    with open(folder / "manifest.csv", newline="") as handle:
        reader = csv.DictReader(handle)
        assert tuple(reader.fieldnames or ()) == COLUMNS
        return list(reader)


def test_manifest_rows_match_files(runs) -> None:
    folder, summary = runs["a"]
    rows = _manifest(folder)
    assert summary.detected == N_CHIPS and summary.skipped_no_face == 0
    assert summary.written == len(rows) == 3 * N_CHIPS
    files = {p.relative_to(folder).as_posix() for p in (folder / IMAGES_DIR).iterdir()}
    assert files == {row["path"] for row in rows}
    for row in rows:
        assert load_image(folder / row["path"]).image.shape[:2] == (340, 340)  # 200 px chip + 35% each side


def test_labels_carried_and_outcomes(runs, labels) -> None:
    rows = _manifest(runs["a"][0])
    by_person: dict[str, list[dict[str, str]]] = {}
    for row in rows:
        source = labels[row["person_id"]]
        assert float(row["age"]) == float(source["age"])
        assert int(row["gender"]) == GENDERS[source["gender"]]
        assert row["source"] == "synth:utkface"
        assert int(row["mask"]) == Placement(row["placement"]).mask_label
        by_person.setdefault(row["person_id"], []).append(row)
    assert len(by_person) == N_CHIPS
    for person_rows in by_person.values():
        assert sorted(int(r["mask"]) for r in person_rows) == [0, 1, 2]
        styles = {r["placement"]: r["style"] for r in person_rows}
        assert styles["none"] == "none"
        masked = [s for p, s in styles.items() if p != "none"]
        assert len(set(masked)) == 1 and masked[0] in STYLES  # one mask per face, worn two ways


def test_boxes_inside_the_image(runs) -> None:
    folder, _ = runs["a"]
    for row in _manifest(folder):
        x1, y1, x2, y2 = (float(row[k]) for k in ("x1", "y1", "x2", "y2"))
        assert 0 <= x1 < x2 <= 340 and 0 <= y1 < y2 <= 340
        assert x2 - x1 > 100 and y2 - y1 > 100  # the chip's face, not a speck


def test_same_seed_same_bytes_different_seed_differs(runs) -> None:
    a, b, other = (runs[k][0] for k in ("a", "b", "other"))
    assert (a / "manifest.csv").read_bytes() == (b / "manifest.csv").read_bytes()
    masked = 0
    for row in _manifest(a):
        data = (a / row["path"]).read_bytes()
        assert data == (b / row["path"]).read_bytes(), row["path"]  # one worker or two
        if row["placement"] != "none":
            other_file = other / row["path"]
            # Another seed may pick the other wrong placement, so a file can be missing there.
            if other_file.exists():
                assert data != other_file.read_bytes(), row["path"]
            masked += 1
    assert masked == 2 * N_CHIPS
    assert (a / "manifest.csv").read_bytes() != (other / "manifest.csv").read_bytes()


def _patch(image: np.ndarray, point: np.ndarray, r: int = 2) -> np.ndarray:
    x, y = np.rint(point).astype(int)
    return image[y - r:y + r + 1, x - r:x + r + 1].astype(np.float32)


def test_written_files_cover_the_right_landmarks(runs, labels, detector) -> None:
    """On the JPEGs: the correct mask changes the nose tip and mouth corners, a wrong one leaves
    the nose tip (and for chin-out the mouth corners) as on the bare picture."""
    folder, _ = runs["a"]
    rows = _manifest(folder)
    for person in labels:
        mine = {r["placement"]: load_image(folder / r["path"]).image for r in rows if r["person_id"] == person}
        _, found = detect_face(detector, load_image(Path(labels[person]["path"])).image, 0.35)
        nose, mouth = found.landmarks[2], found.landmarks[3:5]
        bare = mine["none"]
        diff = lambda img, p: float(np.abs(_patch(img, p) - _patch(bare, p)).mean())  # noqa: E731
        assert diff(mine["correct"], nose) > 8 and all(diff(mine["correct"], m) > 8 for m in mouth)
        wrong = "nose_out" if "nose_out" in mine else "chin_out"
        assert diff(mine[wrong], nose) < 4, (person, wrong)
        if wrong == "chin_out":
            assert all(diff(mine[wrong], m) < 4 for m in mouth), person


@pytest.mark.parametrize("style", STYLES)
def test_render_covers_and_spares_exact_pixels(style: str, chips: Path, labels, detector) -> None:
    """render(): under a correct mask the nose tip and mouth corners are covered (alpha ~1 and
    changed pixels); nose-out leaves the nose tip byte-identical, chin-out also the mouth corners;
    the eyes are never touched."""
    for index, person in enumerate(labels):
        padded, found = detect_face(detector, load_image(Path(labels[person]["path"])).image, 0.35)
        lm = found.landmarks
        at = lambda arr, p: arr[int(round(p[1])), int(round(p[0]))]  # noqa: E731
        for placement in (Placement.CORRECT, Placement.NOSE_OUT, Placement.CHIN_OUT):
            rng = np.random.default_rng([index, placement.code])
            out = render(padded, lm, found.box, style, placement, rng)
            covered = [at(out.alpha, p) for p in lm[2:]]
            changed = [not np.array_equal(at(out.image, p), at(padded, p)) for p in lm[2:]]
            for eye in lm[:2]:
                assert at(out.alpha, eye) == 0 and np.array_equal(at(out.image, eye), at(padded, eye))
            if placement is Placement.CORRECT:
                assert min(covered) > 0.95 and all(changed), (person, covered)
            else:
                assert covered[0] == 0 and not changed[0], (person, placement, covered)
                if placement is Placement.NOSE_OUT:
                    assert min(covered[1:]) > 0.95, (person, covered)  # the mouth stays covered
                else:
                    assert max(covered[1:]) == 0 and not any(changed[1:]), (person, covered)
        assert np.array_equal(render(padded, lm, found.box, style, Placement.NONE, rng).image, padded)


def test_per_face_one_is_balanced(chips: Path, detector, tmp_path: Path) -> None:
    summary = synthesize(chips, tmp_path, per_face=1, seed=3, detector=detector, progress=False)
    rows = _manifest(tmp_path)
    assert len(rows) == summary.written == N_CHIPS
    assert sorted(int(r["mask"]) for r in rows) == [0, 0, 1, 1, 2, 2]


def test_resume_keeps_done_work_and_refuses_other_settings(runs, chips: Path, detector, tmp_path: Path) -> None:
    shutil.copytree(runs["a"][0], tmp_path / "out")
    out = tmp_path / "out"
    before = (out / "manifest.csv").read_bytes()
    again = synthesize(chips, out, per_face=3, seed=7, detector=detector, progress=False)
    assert again.written == 0 and again.reused == 3 * N_CHIPS
    victim = _manifest(out)[4]["path"]
    original = (out / victim).read_bytes()
    (out / victim).unlink()
    again = synthesize(chips, out, per_face=3, seed=7, detector=detector, progress=False)
    assert again.written == 1 and (out / victim).read_bytes() == original
    assert (out / "manifest.csv").read_bytes() == before
    with pytest.raises(SynthError, match="other settings"):
        synthesize(chips, out, per_face=3, seed=8, detector=detector, progress=False)


def test_command_line_with_contact_sheet(chips: Path, tmp_path: Path) -> None:
    sheet = tmp_path / "sheet.png"
    code = main(["synth", str(chips), "--out", str(tmp_path / "out"), "--limit", "2", "--seed", "1",
                 "--contact-sheet", str(sheet)])
    assert code == 0
    assert len(_manifest(tmp_path / "out")) == 2
    image = cv2.imread(str(sheet))
    assert image.shape == (18 + 96 * len(STYLES), 104 + 96 * len(Placement), 3)  # a column per placement
    assert main(["synth", str(chips)]) == 2  # neither --out nor --contact-sheet


def test_source_folder_of_utkface_names(shared_data: Path, tmp_path: Path) -> None:
    """A folder without labels.csv: labels come from <age>_<gender>_<race>_... names."""
    chips = sorted((shared_data / "utkface" / "images").glob("*_1_*.jpg"))[:2]
    for chip in chips:
        shutil.copy(chip, tmp_path / chip.name)
    (tmp_path / "notes.txt").write_text("not a face")
    faces = read_source(tmp_path)
    assert [f.person_id for f in faces] == [c.name for c in chips]
    assert all(f.gender == 1 and f.age == float(f.person_id.split("_")[0]) for f in faces)


def test_under_nose_leaves_the_tip_and_covers_below_it(chips: Path, labels, detector) -> None:
    """The commonest real wrongly worn mask: the nose tip stays bare and untouched, the mouth is
    covered, and the top edge sits higher than a nose-out mask's (the point a third of the way
    from the nose tip to the mouth is under it)."""
    for index, person in enumerate(labels):
        padded, found = detect_face(detector, load_image(Path(labels[person]["path"])).image, 0.35)
        lm = found.landmarks
        nose, mouth = lm[2], (lm[3] + lm[4]) / 2
        below_tip = nose + 0.35 * (mouth - nose)
        at = lambda arr, p: arr[int(round(p[1])), int(round(p[0]))]  # noqa: E731
        rng = np.random.default_rng([index, Placement.UNDER_NOSE.code])
        out = render(padded, lm, found.box, "surgical_blue", Placement.UNDER_NOSE, rng)
        assert out.placement.mask_label == Placement.NOSE_OUT.mask_label
        assert at(out.alpha, nose) < 1e-3 and np.array_equal(at(out.image, nose), at(padded, nose)), person
        assert min(at(out.alpha, p) for p in lm[3:]) > 0.95, person
        assert at(out.alpha, below_tip) > 0.8, (person, at(out.alpha, below_tip))


def test_under_nose_share_replaces_wrong_placements_only_when_asked(chips: Path, detector, tmp_path: Path) -> None:
    from training.synth.pipeline import plan_face

    plans = [plan_face(i, 3, 5)[0] for i in range(60)]
    assert plans == [plan_face(i, 3, 5, under_nose=0.0)[0] for i in range(60)]
    assert all(p[1] is Placement.UNDER_NOSE for p in (plan_face(i, 3, 5, under_nose=1.0)[0] for i in range(60)))
    half = [plan_face(i, 3, 5, under_nose=0.5)[0][1] for i in range(60)]
    assert 15 < sum(p is Placement.UNDER_NOSE for p in half) < 45
    # the other faces keep the placement they had without the option
    assert all(p is Placement.UNDER_NOSE or p is q[1] for p, q in zip(half, plans))

    synthesize(chips, tmp_path / "a", per_face=3, seed=5, detector=detector, under_nose=1.0, progress=False)
    rows = _manifest(tmp_path / "a")
    wrong = [r for r in rows if r["placement"] not in ("correct", "none")]
    assert len(wrong) == N_CHIPS and {r["placement"] for r in wrong} == {"under_nose"} and {r["mask"] for r in wrong} == {"1"}
    with pytest.raises(SynthError, match="other settings"):  # an old folder is never mixed with the new placement
        synthesize(chips, tmp_path / "a", per_face=3, seed=5, detector=detector, progress=False)
