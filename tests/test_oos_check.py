"""The out-of-source check inside training (issue 16): crops made as the app makes them, the same
verdicts as bench/out_of_source.py, the selection score, and a tiny run that selects on it and is
then evaluated with --out-of-source and the fairness table. Plumbing, not accuracy."""
from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("torch")
pytest.importorskip("timm")

from bench import out_of_source as bench  # noqa: E402
from core.classifier import Classifier  # noqa: E402
from core.config import default_classifier_path  # noqa: E402
from core.crop import CropSpec, crop_face  # noqa: E402
from core.imageio import load_image  # noqa: E402
from training.classifier import oos_check  # noqa: E402
from training.classifier.out_of_source import DEFAULT_LABELS, Figure, read_labels  # noqa: E402
from training.cli import main  # noqa: E402
from training.config import ConfigError  # noqa: E402
from tests.train_helpers import utk_faces  # noqa: E402

ROWS = 14
REAL_VAL = DEFAULT_LABELS.parent / "real_val_by_eye.csv"


def first_rows(path: Path, n: int = ROWS, extra: str = "") -> Path:
    lines = DEFAULT_LABELS.read_text(encoding="utf-8").splitlines()
    path.write_text("\n".join(lines[: n + 1]) + "\n" + extra, encoding="utf-8")
    return path


def read_csv(path: Path) -> list[dict[str, str]]:
    with open(path, newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


def test_crops_are_the_runtime_crops_made_once_and_unreadable_photos_left_out(tmp_path, shared_data):
    (shared_data / "missing.jpg").exists() and pytest.skip("a missing.jpg exists in the data folder")
    labels = first_rows(tmp_path / "labels.csv", 6, "mask_web,missing.jpg,0,0,10,10,wear,male,<30,\n")
    oos = oos_check.load_set(labels, shared_data, CropSpec(64, 0.2))
    faces = read_labels(labels)
    assert oos.faces == faces[:6] and oos.unreadable == ["missing.jpg"]
    assert oos.crops.shape == (6, 64, 64, 3) and oos.crops.dtype == np.uint8
    for face, crop in zip(oos.faces, oos.crops):
        image = load_image(shared_data / face.path).image
        assert np.array_equal(crop, crop_face(image, face.box, 0.2, 64))
    assert "6 out-of-source faces" in oos.describe() and "1 photos unreadable" in oos.describe()
    with pytest.raises(ConfigError, match="--oos-data"):
        oos_check.load_set(labels, tmp_path / "nowhere", CropSpec(64, 0.2))


def test_verdicts_agree_with_the_bench_script_on_the_shipped_model(tmp_path, shared_data):
    classifier = Classifier(default_classifier_path())
    oos = oos_check.load_set(first_rows(tmp_path / "labels.csv", 20), shared_data, classifier.metadata.crop_spec)
    mine = oos_check.verdicts("x", oos_check.predict_onnx(classifier, oos.crops, batch_size=7))
    scored, theirs = bench.evaluate(oos.faces, shared_data, [bench.CoreModel(default_classifier_path())], None, progress=False)
    assert scored == oos.faces and len(scored) == 20
    assert (mine.mask, mine.gender, mine.age) == (theirs[0].mask, theirs[0].gender, theirs[0].age)


def test_verdicts_headline_and_selection_score():
    probs = {"mask": np.array([[0.1, 0.2, 0.7], [np.nan, 0.5, 0.5]]), "gender": np.array([[0.4, 0.6], [0.9, 0.1]]),
             "age": np.array([[0.2, 0.3, 0.5], [0.6, 0.3, 0.1]])}
    v = oos_check.verdicts("m", probs)
    assert (v.mask, v.gender, v.age) == (["not_wear", None], ["female", "male"], ["60+", "<30"])
    found = {name: Figure(name, None, 0) for name in oos_check.HEADLINE.values()}
    found["gender accuracy, all"] = Figure("gender accuracy, all", 0.8, 10)
    found["age macro-F1, all"] = Figure("age macro-F1, all", 0.5, 4)
    assert oos_check.selection_score(found, 0.9) == pytest.approx((0.8 + 0.5 + 0.9) / 3)
    assert oos_check.headline(found)["oos_gender_acc"] == 0.8 and oos_check.headline(found)["oos_age_f1_bare"] == ""
    found["age macro-F1, all"] = Figure("age macro-F1, all", None, 0)  # no face with an age: left out
    assert oos_check.selection_score(found, 0.9) == pytest.approx((0.8 + 0.9) / 2)


@pytest.fixture(scope="module")
def tiny_cache(tmp_path_factory, shared_data) -> Path:
    """UTKFace chips (gender, age, race from the name) and face_mask_853 boxes (mask), all with known
    boxes (no detection), prepared at 48 px and split in 2 folds."""
    root = tmp_path_factory.mktemp("oos")
    rows = []
    for i, face in enumerate(utk_faces(shared_data, 12)):
        age, gender = face.name.split("_")[:2]
        rows.append([str(face), face.name, ("wear", "not_wear", "incorrect")[i % 3], gender, age, 35, 35, 165, 175])
    with open(shared_data / "face_mask_853" / "boxes.csv", newline="") as handle:
        boxes = [r for r in csv.DictReader(handle) if int(r["xmax"]) - int(r["xmin"]) >= 30][:9]
    mask = {"with_mask": "wear", "without_mask": "not_wear", "mask_weared_incorrect": "incorrect"}
    for r in boxes:
        rows.append([str(shared_data / "face_mask_853" / r["path"]), r["path"], mask[r["label"]], "", "",
                     r["xmin"], r["ymin"], r["xmax"], r["ymax"]])
    with open(root / "list.csv", "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["path", "person_id", "mask", "gender", "age", "x1", "y1", "x2", "y2"])
        writer.writerows(rows)
    cache = root / "cache"
    assert main(["prepare", "--data", f"csv={root / 'list.csv'}", "--cache", str(cache), "--input-size", "48"]) == 0
    assert main(["split", "--cache", str(cache), "--folds", "2"]) == 0
    return cache


def _train(cache: Path, run: Path, labels: Path, shared_data: Path, *extra: str) -> int:
    return main(["train", "--cache", str(cache), "--run-dir", str(run), "--model", "mobilenetv3_small_050", "--epochs", "2",
                 "--batch-size", "8", "--workers", "0", "--threads", "2", "--device", "cpu", "--oos-labels", str(labels),
                 "--oos-data", str(shared_data), *extra])


def test_a_run_selects_on_out_of_source_faces_and_evaluate_reports_them(tiny_cache, tmp_path, shared_data):
    labels = first_rows(tmp_path / "labels.csv")
    run = tmp_path / "run"
    assert _train(tiny_cache, run, labels, shared_data, "--select-on", "out-of-source", "--sampler", "fair",
                  "--rotate", "0.5", "--jpeg", "0.5", "--occlusion", "0.5") == 0
    history = read_csv(run / "metrics.csv")
    assert len(history) == 2
    for row in history:
        assert row["oos_gender_acc"] != "" and row["score"] != ""
        terms = [float(row["oos_gender_acc"]), float(row["oos_age_f1"]), float(row["mask_f1"])]
        assert float(row["select_score"]) == pytest.approx(np.mean(terms), abs=2e-6)
    import torch

    best = torch.load(run / "checkpoints" / "best.pt", weights_only=False)
    by_select = max(history, key=lambda r: float(r["select_score"]))  # first of equals, as training keeps the first
    assert best["epoch"] == int(by_select["epoch"]) and best["score"] == pytest.approx(float(by_select["select_score"]), abs=2e-6)

    # evaluate the run with the out-of-source faces: the table, bare vs masked, with the counts of the labels file
    out = tmp_path / "eval"
    assert main(["evaluate", "--run-dir", str(run), "--out", str(out), "--out-of-source", "--oos-labels", str(labels),
                 "--oos-data", str(shared_data)]) == 0
    faces = read_labels(labels)
    table = (out / "out_of_source.md").read_text()
    lines = {line.split(" | ")[0].lstrip("| "): line for line in table.splitlines() if line.startswith("| ")}
    bare_gendered = sum(f.mask == "not_wear" and f.gender != "unclear" for f in faces)
    masked_aged = sum(f.mask != "not_wear" and f.age != "unclear" for f in faces)
    assert lines["gender accuracy, bare"].endswith(f"({bare_gendered}) |")
    assert lines["age macro-F1, masked"].endswith(f"({masked_aged}) |")
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["out_of_source"]["gender accuracy, all"]["n"] == sum(f.gender != "unclear" for f in faces)
    # several labels files are pooled: the real faces of the validation fold labelled by eye, beside these
    more = tmp_path / "more.csv"
    more.write_text("\n".join((REAL_VAL.read_text(encoding="utf-8").splitlines())[:7]) + "\n", encoding="utf-8")
    assert main(["evaluate", "--run-dir", str(run), "--out", str(tmp_path / "pooled"), "--out-of-source",
                 "--oos-labels", str(labels), str(more), "--oos-data", str(shared_data)]) == 0
    pooled = json.loads((tmp_path / "pooled" / "metrics.json").read_text())["out_of_source"]
    assert pooled["gender accuracy, all"]["n"] == sum(f.gender != "unclear" for f in faces + read_labels(more))
    assert "(labels.csv, more.csv)" in (tmp_path / "pooled" / "out_of_source.md").read_text()
    report = (out / "report.md").read_text()
    assert "## Out-of-source faces" in report and "## Fairness" in report
    # fairness: the validation fold's UTKFace faces by race (from their names) and by gender
    fair = read_csv(out / "fairness.csv")
    val = [f for f in read_csv(tiny_cache / "manifest.csv") if f["gender"]]
    assert {r["by"] for r in fair} <= {"race", "gender"} and sum(int(r["gender_n"]) for r in fair if r["by"] == "gender") <= len(val)
    assert sum(int(r["gender_n"]) for r in fair if r["by"] == "race") == sum(int(r["gender_n"]) for r in fair if r["by"] == "gender")
    assert [(g["by"], g["group"], g["gender_n"]) for g in metrics["fairness"]["groups"]] == \
        [(r["by"], r["group"], int(r["gender_n"])) for r in fair]


def test_select_on_val_keeps_the_validation_score_and_logs_both(tiny_cache, tmp_path, shared_data):
    labels = first_rows(tmp_path / "labels.csv")
    run = tmp_path / "run"
    assert _train(tiny_cache, run, labels, shared_data, "--out-of-source", "--epochs", "1") == 0
    (row,) = read_csv(run / "metrics.csv")
    assert row["select_score"] == row["score"] and row["oos_gender_acc"] != "" and row["oos_age_f1_bare"] != ""
    assert json.loads((run / "config.json").read_text())["select_on"] == "val"


def test_select_on_last_keeps_the_last_epoch_and_never_stops_early(tiny_cache, tmp_path, shared_data):
    """--select-on last: best.pt is the weights training ends with, whatever the scores did on the way."""
    labels = first_rows(tmp_path / "labels.csv")
    run = tmp_path / "run"
    assert _train(tiny_cache, run, labels, shared_data, "--select-on", "last", "--out-of-source", "--epochs", "4",
                  "--patience", "1") == 0
    history = read_csv(run / "metrics.csv")
    assert [int(r["epoch"]) for r in history] == [1, 2, 3, 4]
    import torch

    best = torch.load(run / "checkpoints" / "best.pt", weights_only=True)
    last = torch.load(run / "checkpoints" / "last.pt", weights_only=True)
    assert best["epoch"] == 4 and best["score"] == pytest.approx(float(history[-1]["select_score"]), abs=2e-6)
    assert all(torch.equal(best["model"][k], last["model"][k]) for k in last["model"])
