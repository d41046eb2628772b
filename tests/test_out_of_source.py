"""bench/out_of_source.py: its metrics on tiny cases worked out by hand, the dlib-style alignment
(training.teacher.align) on points moved by a known transform, and a run on the first rows of the
real labelled set, with and without the real dlib networks."""
from __future__ import annotations

import csv
from pathlib import Path

import cv2
import numpy as np
import pytest

from bench.out_of_source import (
    DEFAULT_DATA, DEFAULT_LABELS, LabelledFace, Verdicts, accuracy, f1, macro_f1, main, rate, recall, score,
)
from core.classifier import Classifier
from core.config import default_classifier_path
from training.teacher.align import DLIB_PADDING, DLIB_TEMPLATE, aligned_chip, similarity_transform
from training.teacher.dlib_models import DlibAnswer, dlib_age_group


def test_accuracy_and_recall_count_no_answer_as_wrong() -> None:
    true = ["male", "male", "female", "female"]
    pred = ["male", "female", "female", None]
    assert accuracy(true, pred) == pytest.approx(0.5)
    assert recall(true, pred, "male") == pytest.approx(0.5)
    assert recall(true, pred, "female") == pytest.approx(0.5)
    assert recall(true, pred, "other") is None
    assert accuracy([], []) is None


def test_f1_and_macro_f1_by_hand() -> None:
    true = ["a", "a", "a", "b", "b", "c"]
    pred = ["a", "a", "b", "b", "b", "a"]
    # a: TP 2, FP 1, FN 1 -> 4/6; b: TP 2, FP 1, FN 0 -> 4/5; c: no TP -> 0
    assert f1(true, pred, "a") == pytest.approx(2 / 3)
    assert f1(true, pred, "b") == pytest.approx(4 / 5)
    assert f1(true, pred, "c") == 0.0
    assert macro_f1(true, pred, ("a", "b", "c")) == pytest.approx((2 / 3 + 4 / 5 + 0) / 3)
    # a class no face truly has is left out of the mean, even when it is predicted
    only_bare = ["not_wear"] * 4
    assert macro_f1(only_bare, ["not_wear", "not_wear", "wear", "incorrect"], ("wear", "incorrect", "not_wear")) \
        == pytest.approx(2 * 2 / (2 * 2 + 0 + 2))


def test_rate() -> None:
    assert rate(["wear", "not_wear", "incorrect", "not_wear"], ("wear", "incorrect")) == pytest.approx(0.5)
    assert rate([], ("wear",)) is None


def _face(mask: str, gender: str, age: str) -> LabelledFace:
    return LabelledFace("x.jpg", (0, 0, 10, 10), mask, gender, age)


def test_score_splits_bare_and_masked() -> None:
    faces = [
        _face("not_wear", "male", "<30"), _face("not_wear", "female", "60+"), _face("not_wear", "unclear", "unclear"),
        _face("wear", "male", "unclear"), _face("incorrect", "female", "30-59"), _face("wear", "female", "<30"),
    ]
    # right on every bare face; on the masked ones gender flipped, and one masked called bare
    verdicts = Verdicts(
        "m",
        mask=["not_wear", "not_wear", "wear", "wear", "incorrect", "not_wear"],
        gender=["male", "female", "male", "female", "male", "male"],
        age=["<30", "60+", "<30", "<30", "<30", "<30"],
    )
    figures = {f.name: (f.value, f.n) for f in score(faces, verdicts)}
    assert figures["gender accuracy, bare"] == (1.0, 2)
    assert figures["gender accuracy, masked"] == (0.0, 3)
    assert figures["gender accuracy, all"] == (pytest.approx(2 / 5), 5)
    assert figures["gender recall female, masked"] == (0.0, 2)
    assert figures["age macro-F1, bare"] == (1.0, 2)
    # masked ages: <30 right, 30-59 called <30 -> F1(<30) = 2/3, F1(30-59) = 0
    assert figures["age macro-F1, masked"] == (pytest.approx(1 / 3), 2)
    assert figures["age recall 30-59, masked"] == (0.0, 1)
    assert figures["bare face called masked or wrongly worn, bare"] == (pytest.approx(1 / 3), 3)
    assert figures["masked face called bare, masked"] == (pytest.approx(1 / 3), 3)
    assert figures["mask accuracy, all"] == (pytest.approx(4 / 6), 6)


def test_similarity_transform_recovers_a_known_one() -> None:
    angle, scale, shift = np.deg2rad(17.0), 2.5, np.array([40.0, -7.0])
    rot = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    src = DLIB_TEMPLATE * 100
    dst = src @ (scale * rot).T + shift
    matrix = similarity_transform(src, dst)
    np.testing.assert_allclose(matrix[:, :2], scale * rot, atol=1e-9)
    np.testing.assert_allclose(matrix[:, 2], shift, atol=1e-7)


def test_aligned_chip_puts_landmarks_on_the_template() -> None:
    """Dots drawn where a rotated, scaled face's landmarks are must land on the template's points."""
    size, angle, scale = 64, np.deg2rad(-20.0), 3.0
    rot = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    chip_points = (DLIB_PADDING + DLIB_TEMPLATE) / (2 * DLIB_PADDING + 1) * size
    landmarks = chip_points @ (scale * rot).T + np.array([150.0, 120.0])
    image = np.zeros((400, 400, 3), np.uint8)
    for x, y in landmarks:
        cv2.circle(image, (round(x * 16), round(y * 16)), 6 * 16, (255, 255, 255), -1, cv2.LINE_AA, shift=4)
    chip = aligned_chip(image, landmarks, size)
    gray = chip[..., 0].astype(np.float64)
    for x, y in chip_points:
        cx, cy = round(x), round(y)
        patch = gray[cy - 4:cy + 5, cx - 4:cx + 5]
        ys, xs = np.mgrid[cy - 4:cy + 5, cx - 4:cx + 5]
        centre = np.array([(xs * patch).sum(), (ys * patch).sum()]) / patch.sum()
        assert np.hypot(centre[0] - x, centre[1] - y) < 0.25


def _answer(age: np.ndarray, gender: tuple[float, float] = (0.5, 0.5)) -> DlibAnswer:
    return DlibAnswer(np.array(gender), age)


def test_dlib_age_group_from_expected_age() -> None:
    probs = np.zeros(81)
    probs[[25, 35]] = 0.5  # expectation 30 years
    assert dlib_age_group(_answer(probs)) == 1
    probs[:] = 0
    probs[[20, 38]] = 0.5  # 29 years
    assert dlib_age_group(_answer(probs)) == 0
    probs[:] = 0
    probs[60] = 1.0
    assert dlib_age_group(_answer(probs)) == 2
    assert dlib_age_group(_answer(probs), old_age=61) == 1


def test_dlib_age_group_probabilities_sum_the_classes_of_each_group() -> None:
    probs = np.zeros(81)
    probs[[0, 29]] = 0.1  # 0.25 and 29 years: <30
    probs[[30, 57]] = 0.2  # 30-59 (58+ with --age-boundary 58 takes 58 and 59 only)
    probs[[58, 80]] = 0.2
    np.testing.assert_allclose(_answer(probs).age_group_probs(), [0.2, 0.6, 0.2])
    np.testing.assert_allclose(_answer(probs).age_group_probs(58), [0.2, 0.4, 0.4])


def test_dlib_gender_columns_are_female_then_male() -> None:
    flat = np.full(81, 1 / 81)
    assert _answer(flat, (0.2, 0.8)).gender_name == "male"
    assert _answer(flat, (0.7, 0.3)).gender_name == "female"
    assert _answer(flat, (0.5, 0.5)).gender_name == "female"  # a tie goes to the first label, as in the package


needs_data = pytest.mark.skipif(not (DEFAULT_DATA.is_dir() and DEFAULT_LABELS.is_file()),
                                reason="the labelled photos are not on this machine")


@needs_data
def test_runs_end_to_end_on_the_first_rows(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "report.md"
    assert main(["--limit", "20", "--no-progress", "--out", str(out)]) == 0
    with open(DEFAULT_LABELS, newline="") as handle:
        rows = list(csv.DictReader(handle))[:20]
    gendered = sum(r["gender"] != "unclear" for r in rows)
    bare = sum(r["mask"] == "not_wear" for r in rows)
    report = out.read_text()
    assert report == capsys.readouterr().out
    version = Classifier(default_classifier_path()).metadata.model_version  # models are told apart by version
    assert f"| figure | classifier.onnx ({version}) |" in report
    lines = {line.split(" | ")[0].lstrip("| "): line for line in report.splitlines() if line.startswith("| ")}
    assert lines["gender accuracy, all"].endswith(f"({gendered}) |")
    assert lines["bare face called masked or wrongly worn, bare"].endswith(f"({bare}) |")
    value = float(lines["mask accuracy, all"].split(" | ")[1].split()[0])
    assert 0.0 <= value <= 1.0


@needs_data
def test_dlib_column(dlib_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--limit", "10", "--no-progress", "--dlib-dir", str(dlib_dir)]) == 0
    report = capsys.readouterr().out
    assert "dlib-models (Cydral, CC0)" in report and "landmarks: MTCNN match" in report
    lines = {line.split(" | ")[0].lstrip("| "): line for line in report.splitlines() if line.startswith("| ")}
    dlib_gender = lines["gender accuracy, all"].split(" | ")[2]
    assert float(dlib_gender.split()[0]) >= 0.5  # the real networks on real faces: better than a coin


def test_bad_labels_give_one_line_and_write_nothing(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    labels = tmp_path / "labels.csv"
    labels.write_text("source,path,x1,y1,x2,y2,mask,gender,age,note\nweb,a.jpg,0,0,10,10,wear,robot,<30,\n")
    out = tmp_path / "report.md"
    assert main(["--labels", str(labels), "--data-root", str(tmp_path), "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and "labels.csv:2" in err and "gender 'robot'" in err and "\n" not in err
    assert not out.exists()


def test_label_files_pool_in_order_and_a_face_in_two_files_is_refused(tmp_path: Path) -> None:
    from training.classifier.out_of_source import LabelsError, read_label_files

    header = "source,path,x1,y1,x2,y2,mask,gender,age,note\n"
    first, second, clash = tmp_path / "a.csv", tmp_path / "b.csv", tmp_path / "c.csv"
    first.write_text(header + "mask_web,mask_web/x/1.jpg,0,0,50,50,wear,female,unclear,\n", encoding="utf-8")
    second.write_text(header + "mask_web,mask_web/x/2.jpg,0,0,50,50,not_wear,male,<30,\n"
                      "mask_web,mask_web/x/1.jpg,10,0,60,50,wear,male,unclear,\n", encoding="utf-8")  # same photo, other face
    clash.write_text(header + "mask_web,mask_web/x/1.jpg,0,0,50,50,wear,female,unclear,\n", encoding="utf-8")
    pooled = read_label_files([first, second])
    assert [(f.path, f.gender) for f in pooled] == [("mask_web/x/1.jpg", "female"), ("mask_web/x/2.jpg", "male"),
                                                    ("mask_web/x/1.jpg", "male")]
    assert read_label_files(first) == pooled[:1]
    with pytest.raises(LabelsError, match="also in .*a.csv"):
        read_label_files([first, clash])
