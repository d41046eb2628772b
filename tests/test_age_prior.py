"""The age prior correction (issue 16): `export --age-prior` puts the training photos' age
frequencies back into the age head of a run trained with class weights, inside the graph the app
loads; `calibrate` chooses how much, on the validation fold and the out-of-source faces."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("torch")
pytest.importorskip("timm")

from core.classifier import Classifier  # noqa: E402
from core.labels import age_group  # noqa: E402
from training.classifier import prior  # noqa: E402
from training.classifier.calibrate import Trial, choose, smoothed  # noqa: E402
from training.classifier.evaluate import runtime_crops  # noqa: E402
from training.cli import main  # noqa: E402
from training.config import PrepareConfig, SplitConfig  # noqa: E402
from training.data.cache import Cache  # noqa: E402
from training.data.prepare import prepare  # noqa: E402
from training.data.split import split  # noqa: E402
from tests.train_helpers import layout_competition  # noqa: E402

MODEL = "mobilenetv3_small_050"


def _train(cache: Path, run: Path, *extra: str) -> None:
    assert main(["train", "--cache", str(cache), "--run-dir", str(run), "--fold", "0", "--model", MODEL, "--epochs", "1",
                 "--batch-size", "8", "--workers", "0", "--threads", "2", "--device", "cpu", "--seed", "1", *extra]) == 0


@pytest.fixture(scope="module")
def runs(tmp_path_factory, shared_data) -> tuple[Path, Path, Path]:
    """A tiny cache, one run trained with class weights and one without: (cache, weighted, plain)."""
    root = tmp_path_factory.mktemp("age_prior")
    layout_competition(root / "competition", shared_data, people=6)
    cache = root / "cache"
    prepare(PrepareConfig(data=(f"competition={root / 'competition'}",), cache=cache, input_size=64), progress=False)
    split(SplitConfig(cache=cache, num_folds=2))
    _train(cache, root / "weighted", "--class-weights")
    _train(cache, root / "plain")
    return cache, root / "weighted", root / "plain"


def test_the_correction_multiplies_by_the_prior_and_renormalises():
    probs = np.array([[0.2, 0.3, 0.5], [0.6, 0.3, 0.1]])
    prior_ = np.array([0.5, 0.4, 0.1])
    full = prior.adjust(probs, prior.logit_bias(prior_, 1.0))
    want = probs * prior_ / (probs * prior_).sum(axis=1, keepdims=True)
    assert np.allclose(full, want)
    assert np.allclose(prior.adjust(probs, prior.logit_bias(prior_, 0.0)), probs)
    assert np.argmax(full[0]) == 1  # 60+ at 0.5 is rare enough in the photos to lose to 30-59


def test_calibrate_picks_the_best_mean_and_the_smaller_correction_on_a_tie():
    trials = [Trial(0.0, 0.70, 0.80, None, None), Trial(0.5, 0.74, 0.78, None, None), Trial(1.0, 0.78, 0.74, None, None)]
    assert choose(trials).tau == 0.5
    assert choose([Trial(1.0, 0.8, None, None, None), Trial(0.0, 0.7, None, None, None)]).tau == 1.0


def test_calibrate_with_a_window_prefers_a_plateau_to_a_lone_spike():
    # The out-of-source age F1 jumps when one of its few 60+ faces flips: a τ that is best alone,
    # between worse neighbours, loses to the middle of a slightly lower but steady plateau.
    oos = {0.0: 0.70, 0.1: 0.70, 0.2: 0.70, 0.3: 0.80, 0.4: 0.70, 0.5: 0.70, 0.6: 0.78, 0.7: 0.78, 0.8: 0.78, 0.9: 0.70, 1.0: 0.70}
    trials = [Trial(tau, 0.70, f1, None, None) for tau, f1 in oos.items()]
    assert choose(trials).tau == 0.3
    assert choose(trials, window=0.1).tau == 0.7
    assert smoothed(trials, 0.1)[0] == pytest.approx(0.70)  # the ends average over the neighbours they have


def test_export_bakes_the_correction_into_the_graph_and_records_it(runs, tmp_path):
    cache, weighted, _ = runs
    plain_file, corrected_file = tmp_path / "plain.onnx", tmp_path / "corrected.onnx"
    assert main(["export", "--run-dir", str(weighted), "--out", str(plain_file)]) == 0
    assert main(["export", "--run-dir", str(weighted), "--age-prior", "1", "--out", str(corrected_file)]) == 0
    plain, corrected = Classifier(plain_file), Classifier(corrected_file)

    # The prior is the age groups' share of the fold's training photos, counted here from the labels.
    folds = Cache(cache).read_folds()
    ages = [age_group(f.row.age) for f in Cache(cache).read_faces() if folds[f.row.person_id] == 1 and f.row.age is not None]
    counts = np.bincount(ages, minlength=3)
    want = (counts + 1) / (counts.sum() + 3)
    for classifier, tau in ((plain, 0.0), (corrected, 1.0)):
        recorded = json.loads(classifier.metadata.extra[prior.METADATA_KEY])
        assert np.allclose(recorded["training_prior"], want, atol=1e-5) and recorded["tau"] == tau

    crops = runtime_crops(Cache(cache).read_faces()[:12])
    before, after = plain.predict(crops), corrected.predict(crops)
    assert np.abs(after.age - prior.adjust(before.age, prior.logit_bias(want, 1.0))).max() < 1e-4
    assert np.abs(after.age - before.age).max() > 1e-3  # it really changed the answer
    assert np.abs(after.mask - before.mask).max() < 1e-4 and np.abs(after.gender - before.gender).max() < 1e-4


def test_calibrate_reports_every_tau_and_refuses_a_corrected_file(runs, tmp_path, shared_data):
    cache, weighted, _ = runs
    plain_file, corrected_file = tmp_path / "plain.onnx", tmp_path / "corrected.onnx"
    assert main(["export", "--run-dir", str(weighted), "--out", str(plain_file)]) == 0
    assert main(["export", "--run-dir", str(weighted), "--age-prior", "0.5", "--out", str(corrected_file)]) == 0
    common = ["--cache", str(cache), "--step", "0.25", "--oos-data", str(shared_data)]
    assert main(["calibrate", "--onnx", str(plain_file), *common]) == 0
    report = (tmp_path / "plain.calibrate.md").read_text()
    rows = [line for line in report.splitlines() if line.startswith("| ") and line[2].isdigit()]
    assert [row.split(" |")[0].split()[1] for row in rows] == ["0", "0.25", "0.5", "0.75", "1"]
    assert report.count("**chosen**") == 1 and "--age-prior" in report
    assert main(["calibrate", "--onnx", str(corrected_file), *common, "--out", str(tmp_path / "x.md")]) == 2
    assert not (tmp_path / "x.md").exists()


def test_runs_trained_without_class_weights_are_not_corrected(runs, tmp_path):
    _, weighted, plain = runs
    out = tmp_path / "x.onnx"
    assert main(["export", "--run-dir", str(plain), "--age-prior", "0.5", "--out", str(out)]) == 2
    assert main(["export", "--ensemble", str(weighted), str(plain), "--age-prior", "0.5", "--out", str(out)]) == 2
    assert not out.exists()
    assert main(["export", "--run-dir", str(weighted), "--age-prior", "1.5", "--out", str(out)]) == 2
