"""`mask-train recover`: the networks inside an exported classifier come back as run folders that
compute what the file computes, so new runs can join the shipped ones in `export --ensemble`
without the original checkpoints."""
from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest

pytest.importorskip("torch")
pytest.importorskip("timm")

import torch  # noqa: E402

from core.classifier import Classifier  # noqa: E402
from core.labels import LABEL_NAMES  # noqa: E402
from core.metadata import ModelMetadata  # noqa: E402
from training.classifier.evaluate import load_best, model_from_state  # noqa: E402
from training.classifier.model import MaskClassifier  # noqa: E402
from training.cli import main  # noqa: E402
from training.config import PrepareConfig, SplitConfig  # noqa: E402
from training.data.prepare import prepare  # noqa: E402
from training.data.split import split  # noqa: E402
from training.export.onnx import export_classifier  # noqa: E402
from training.export.recover import check_parity, read_networks, rebuilt_graph  # noqa: E402
from tests.train_helpers import layout_competition, utk_faces  # noqa: E402

MODEL = "mobilenetv3_small_050"
SIZE = 64
SHIPPED = Path(__file__).resolve().parents[1] / "assets" / "models" / "classifier.onnx"


def _faces(shared_data: Path, size: int, count: int = 12) -> np.ndarray:
    return np.stack([cv2.resize(cv2.imread(str(p)), (size, size), interpolation=cv2.INTER_AREA) for p in utk_faces(shared_data, count)])


def _probabilities(model: torch.nn.Module, crops_bgr: np.ndarray, metadata: ModelMetadata) -> dict[str, np.ndarray]:
    from core.crop import to_input

    with torch.no_grad():
        logits = model(torch.from_numpy(to_input(crops_bgr, metadata.mean, metadata.std)))
    return {head: torch.softmax(value, dim=1).numpy() for head, value in logits.items()}


def test_a_recovered_network_computes_what_the_trained_one_did(tmp_path, shared_data):
    """BatchNorm with real statistics is folded by the export; the recovered network puts it back as
    "add the folded bias" and answers as the network that was trained, float32 or float16 storage."""
    faces = _faces(shared_data, SIZE)
    torch.manual_seed(3)
    model = MaskClassifier(MODEL)
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, torch.nn.BatchNorm2d):  # statistics as training leaves them, not the identity
                module.running_mean.normal_(0.0, 0.5)
                module.running_var.uniform_(0.5, 2.0)
                module.weight.uniform_(0.5, 1.5)
                module.bias.normal_(0.0, 0.3)
    model.eval()
    config = model.data_config()
    metadata = ModelMetadata(heads=dict(LABEL_NAMES), input_size=SIZE, mean=config["mean"], std=config["std"], crop_margin=0.2,
                             model_version="bn-test", training_data="none", architecture=MODEL, age_boundary=60)
    want = _probabilities(model, faces, metadata)
    for half, tolerance in ((False, 1e-5), (True, 2e-3)):
        path = export_classifier(model, metadata, tmp_path / f"half{half}.onnx", faces, half_weights=half)
        networks, _ = read_networks(path)
        assert len(networks) == 1
        got = _probabilities(networks[0].model, faces, metadata)
        for head in LABEL_NAMES:
            assert np.abs(got[head] - want[head]).max() <= tolerance, (half, head)


def test_the_shipped_classifier_recovers_to_what_it_computes(shared_data):
    networks, metadata = read_networks(SHIPPED)
    described = json.loads(metadata.extra["ensemble"])
    assert [n.name for n in networks] == [m["run"] for m in described]
    assert [n.epoch for n in networks] == [m["epoch"] for m in described]
    faces = _faces(shared_data, metadata.input_size, 16)
    graph = rebuilt_graph(networks, metadata)
    assert check_parity(SHIPPED, graph, metadata, faces) <= 1e-5
    # The check can fail: the same networks without the file's age prior correction do not match.
    graph.age_bias = None
    assert check_parity(SHIPPED, graph, metadata, faces) > 1e-3


def _train(cache: Path, run: Path, seed: int) -> None:
    assert main(["train", "--cache", str(cache), "--run-dir", str(run), "--fold", "0", "--model", MODEL, "--epochs", "1",
                 "--batch-size", "8", "--workers", "0", "--threads", "2", "--device", "cpu", "--seed", str(seed),
                 "--class-weights"]) == 0


@pytest.fixture(scope="module")
def ensemble_file(tmp_path_factory, shared_data) -> tuple[Path, Path, Path]:
    """Two tiny runs exported as one ensemble with flip TTA, the age prior correction and float16
    weights, then their checkpoints deleted: (cache, file, root)."""
    root = tmp_path_factory.mktemp("recover")
    layout_competition(root / "competition", shared_data, people=6)
    cache = root / "cache"
    prepare(PrepareConfig(data=(f"competition={root / 'competition'}",), cache=cache, input_size=SIZE), progress=False)
    split(SplitConfig(cache=cache, num_folds=2))
    runs = [root / "runs" / "first", root / "runs" / "second"]
    for seed, run in enumerate(runs, start=1):
        _train(cache, run, seed)
    file = root / "shipped.onnx"
    assert main(["export", "--ensemble", *map(str, runs), "--tta", "--age-prior", "0.5", "--half-weights",
                 "--model-version", "tiny-1", "--out", str(file)]) == 0
    for run in runs:
        (run / "checkpoints" / "best.pt").unlink()
    return cache, file, root


def test_recovered_runs_export_back_to_the_same_classifier(ensemble_file, shared_data):
    cache, file, root = ensemble_file
    out = root / "recovered"
    recipe = root / "recipe.toml"  # what the runs were trained with: the age prior correction needs class weights
    recipe.write_text("[train]\nclass_weights = true\n", encoding="utf-8")
    assert main(["recover", "--config", str(recipe), "--onnx", str(file), "--out", str(out), "--cache", str(cache)]) == 0
    runs = sorted(p.parent.parent for p in out.glob("*/checkpoints/best.pt"))
    assert [r.name for r in runs] == ["first", "second"]
    config, state = load_best(runs[0])
    assert (config.cache, config.model, config.fold) == (cache, MODEL, 0)
    assert isinstance(model_from_state(config, state), MaskClassifier)

    again = root / "again.onnx"
    assert main(["export", "--ensemble", *map(str, runs), "--tta", "--age-prior", "0.5", "--out", str(again)]) == 0
    faces = _faces(shared_data, SIZE)
    before, after = Classifier(file).predict(faces), Classifier(again).predict(faces)
    for head in LABEL_NAMES:
        assert np.abs(getattr(before, head) - getattr(after, head)).max() <= 1e-5
    assert json.loads(Classifier(again).metadata.extra["ensemble"]) == json.loads(Classifier(file).metadata.extra["ensemble"])

    # Their BatchNorm is folded: a soup (which measures its statistics again) refuses them.
    assert main(["soup", *map(str, runs), "--out", str(root / "soup")]) == 2
    assert not (root / "soup").exists()

    # A second recover into the same folder would overwrite those runs: refused, nothing touched.
    stamp = (runs[0] / "checkpoints" / "best.pt").stat().st_mtime_ns
    assert main(["recover", "--config", str(recipe), "--onnx", str(file), "--out", str(out), "--cache", str(cache)]) == 2
    assert (runs[0] / "checkpoints" / "best.pt").stat().st_mtime_ns == stamp


def test_a_file_that_is_not_a_classifier_is_refused_in_one_line(tmp_path, capsys):
    pnet = SHIPPED.parent / "mtcnn" / "pnet.onnx"
    assert main(["recover", "--onnx", str(pnet), "--out", str(tmp_path / "out")]) == 2
    broken = tmp_path / "broken.onnx"
    broken.write_bytes(SHIPPED.read_bytes()[:4096])
    assert main(["recover", "--onnx", str(broken), "--out", str(tmp_path / "out")]) == 2
    assert not (tmp_path / "out").exists()


def test_a_recipe_with_another_age_boundary_is_refused(tmp_path):
    recipe = tmp_path / "recipe.toml"
    recipe.write_text("[train]\nage_boundary = 58\n", encoding="utf-8")
    assert main(["recover", "--config", str(recipe), "--onnx", str(SHIPPED), "--out", str(tmp_path / "out")]) == 2
    assert not (tmp_path / "out").exists()
