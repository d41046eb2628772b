"""`mask-train soup`: runs of one recipe averaged weight by weight into one network, with BatchNorm's
statistics measured again, written as a run folder that export and evaluate take."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("torch")
pytest.importorskip("timm")

import torch  # noqa: E402

from core.classifier import Classifier  # noqa: E402
from training import checkpoint  # noqa: E402
from training.classifier.evaluate import load_best, model_from_state, runtime_crops  # noqa: E402
from training.classifier.folds import split_faces  # noqa: E402
from training.classifier.soup import recompute_batchnorm  # noqa: E402
from training.cli import main  # noqa: E402
from training.config import PrepareConfig, SplitConfig  # noqa: E402
from training.data.cache import Cache  # noqa: E402
from training.data.prepare import prepare  # noqa: E402
from training.data.split import split  # noqa: E402
from tests.train_helpers import layout_competition  # noqa: E402

MODEL = "mobilenetv3_small_050"


def _train(cache: Path, run: Path, epochs: int, seed: int, *extra: str) -> Path:
    assert main(["train", "--cache", str(cache), "--run-dir", str(run), "--fold", "0", "--model", MODEL, "--epochs", str(epochs),
                 "--patience", str(epochs), "--batch-size", "8", "--workers", "0", "--threads", "2", "--device", "cpu",
                 "--seed", str(seed), *extra]) == 0
    return run


@pytest.fixture(scope="module")
def runs(tmp_path_factory, shared_data) -> tuple[Path, list[Path], Path]:
    """A tiny cache; two runs of one recipe (seed 1, 1 and 2 epochs) and one with another seed."""
    root = tmp_path_factory.mktemp("soup")
    layout_competition(root / "competition", shared_data, people=6)
    cache = root / "cache"
    prepare(PrepareConfig(data=(f"competition={root / 'competition'}",), cache=cache, input_size=64), progress=False)
    split(SplitConfig(cache=cache, num_folds=2))
    same = [_train(cache, root / "a", 1, 1), _train(cache, root / "b", 2, 1)]
    return cache, same, _train(cache, root / "c", 1, 2)


def _weights(run: Path) -> dict[str, torch.Tensor]:
    return checkpoint.load(run / "checkpoints" / "best.pt")["model"]


def test_a_soup_is_the_mean_of_the_weights_with_batchnorm_measured_again(runs, tmp_path):
    cache, (a, b), _ = runs
    out = tmp_path / "soup"
    assert main(["soup", str(a), str(b), "--out", str(out), "--bn-crops", "24", "--batch-size", "8"]) == 0
    wa, wb, ws = _weights(a), _weights(b), _weights(out)
    convs = [k for k, v in ws.items() if v.ndim == 4]
    stats = [k for k in ws if k.endswith("running_var")]
    assert convs and stats
    for key in convs:
        assert torch.allclose(ws[key], (wa[key] + wb[key]) / 2, atol=1e-6), key
    assert any(not torch.allclose(ws[k], (wa[k] + wb[k]) / 2, atol=1e-4) for k in stats)  # measured, not averaged
    assert json.loads((out / "soup.json").read_text())["ingredients"][1]["run"] == str(b)

    # The running statistics are those of the training crops the soup sees: measured again here,
    # from the averaged weights, on the same crops, they come out the same.
    config, state = load_best(out)
    model = model_from_state(config, state)
    model.load_state_dict({k: ((wa[k] + wb[k]) / 2 if v.is_floating_point() else v) for k, v in ws.items()})
    train, _ = split_faces(Cache(cache), 0)
    picked = np.random.default_rng(0).permutation(len(train))[:24]
    recompute_batchnorm(model, runtime_crops([train[i] for i in picked]), 8, progress=False)
    for key in stats:
        assert torch.allclose(model.state_dict()[key], ws[key], atol=1e-5), key

    # export and evaluate take it like any run.
    onnx = tmp_path / "soup.onnx"
    assert main(["export", "--run-dir", str(out), "--out", str(onnx)]) == 0
    probs = Classifier(onnx).predict(runtime_crops(Cache(cache).read_faces()[:4]))
    assert np.allclose(probs.gender.sum(axis=1), 1, atol=1e-4)
    assert main(["evaluate", "--run-dir", str(out), "--out", str(tmp_path / "eval")]) == 0


def test_runs_that_started_apart_are_refused(runs, tmp_path):
    _, (a, _), other = runs
    out = tmp_path / "soup"
    assert main(["soup", str(a), str(other), "--out", str(out)]) == 2  # another seed: other random heads
    assert main(["soup", str(a), "--out", str(out)]) == 2
    assert main(["soup", str(a), str(a), "--out", str(a)]) == 2
    assert not out.exists()


def test_runs_that_saw_the_crop_at_other_sizes_are_refused(runs, tmp_path, caplog):
    cache, (a, _), _ = runs
    enlarged = _train(cache, tmp_path / "enlarged", 1, 1, "--trunk-input", "96")  # same seed, same start
    out = tmp_path / "soup"
    assert main(["soup", str(a), str(enlarged), "--out", str(out)]) == 2
    assert "trunk input size" in caplog.text
    assert not out.exists()
