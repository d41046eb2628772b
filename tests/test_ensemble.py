"""`train --folds all` then `export --ensemble --tta`: the fold models in ONE ONNX graph that core's
Classifier loads like any model, and that matches the members' averaged probabilities."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("torch")
pytest.importorskip("timm")

import torch  # noqa: E402

from core.classifier import Classifier, HeadProbabilities  # noqa: E402
from core.crop import to_input  # noqa: E402
from core.labels import LABEL_NAMES  # noqa: E402
from training.data.cache import Cache  # noqa: E402
from training.cli import main  # noqa: E402
from training.config import PrepareConfig, SplitConfig  # noqa: E402
from training.export.ensemble import Ensemble  # noqa: E402
from training.export.recover import check_parity, read_networks, rebuilt_graph  # noqa: E402
from training.classifier.evaluate import load_best, model_from_state, runtime_crops  # noqa: E402
from training.data.prepare import prepare  # noqa: E402
from training.data.split import split  # noqa: E402
from tests.train_helpers import layout_competition  # noqa: E402

MODEL = "mobilenetv3_small_050"
HEADS = ("mask", "gender", "age")


@pytest.fixture(scope="module")
def folds(tmp_path_factory, shared_data) -> tuple[Path, Path]:
    """A tiny cache split in two folds, and `train --folds all` over it: (cache, runs folder)."""
    root = tmp_path_factory.mktemp("ensemble")
    layout_competition(root / "competition", shared_data, people=6)
    cache = root / "cache"
    prepare(PrepareConfig(data=(f"competition={root / 'competition'}",), cache=cache, input_size=64), progress=False)
    split(SplitConfig(cache=cache, num_folds=2))
    runs = root / "runs"
    train = ["train", "--cache", str(cache), "--run-dir", str(runs), "--folds", "all", "--model", MODEL, "--epochs", "1",
             "--batch-size", "8", "--workers", "0", "--threads", "2", "--device", "cpu", "--seed", "1"]
    assert main(train) == 0
    for k in (0, 1):
        assert json.loads((runs / f"fold{k}" / "config.json").read_text())["fold"] == k
        assert (runs / f"fold{k}" / "checkpoints" / "best.pt").is_file()

    # A rerun must say --resume; with it, finished folds are kept as they are.
    assert main(train) == 2
    last = runs / "fold1" / "checkpoints" / "last.pt"
    before = last.stat().st_mtime_ns
    assert main([*train, "--resume"]) == 0
    assert last.stat().st_mtime_ns == before
    return cache, runs


def _probabilities(model: torch.nn.Module, inputs: torch.Tensor) -> dict[str, np.ndarray]:
    with torch.no_grad():
        logits = model(inputs)
    return {h: torch.softmax(logits[h], dim=1).numpy() for h in HEADS}


def _answers_as_its_members(classifier: Classifier, crops: np.ndarray, members) -> HeadProbabilities:
    """The file's answer on `crops` is the mean of each member's on its view of the file's input and
    on that view's mirror (flip TTA); members: (network, view). Returns the file's answer."""
    inputs = torch.from_numpy(to_input(crops, classifier.metadata.mean, classifier.metadata.std))
    views = []
    for model, view in members:
        seen = view(inputs)
        views += [_probabilities(model, x) for x in (seen, torch.flip(seen, dims=(3,)))]
    got = classifier.predict(crops)
    for head in HEADS:
        assert np.abs(getattr(got, head) - np.mean([v[head] for v in views], axis=0)).max() < 1e-4, head
    return got


def test_fold_ensemble_with_flip_tta_is_one_onnx_file_core_loads(folds, tmp_path):
    cache, runs = folds
    out = tmp_path / "ensemble.onnx"
    assert main(["export", "--ensemble", str(runs / "fold*"), "--tta", "--out", str(out)]) == 0

    classifier = Classifier(out)
    meta = classifier.metadata
    assert meta.heads == dict(LABEL_NAMES) and meta.input_size == 64 and meta.crop_margin == 0.2
    assert meta.extra["tta"] == "hflip" and meta.architecture == MODEL
    assert [m["fold"] for m in json.loads(meta.extra["ensemble"])] == [0, 1]
    assert meta.model_version == f"ensemble2-{MODEL}-hflip"
    assert "ensemble of 2 runs validated on folds 0, 1" in meta.training_data

    # The members' softmax outputs averaged over both models and both mirror images, computed
    # here from the checkpoints, are what the app gets from the one file.
    crops = runtime_crops(Cache(cache).read_faces()[:10])
    inputs = torch.from_numpy(to_input(crops, meta.mean, meta.std))
    members = [model_from_state(*load_best(runs / f"fold{k}")) for k in (0, 1)]
    plain = [_probabilities(m, inputs) for m in members]
    mirrored = [_probabilities(m, torch.flip(inputs, dims=(3,))) for m in members]
    got = classifier.predict(crops)
    for head in HEADS:
        want = np.mean([p[head] for p in plain + mirrored], axis=0)
        assert np.abs(getattr(got, head) - want).max() < 1e-4, head
        no_tta = np.mean([p[head] for p in plain], axis=0)
        assert np.abs(getattr(got, head) - no_tta).max() > 1e-5  # the mirror is really in the graph
        assert np.abs(getattr(got, head) - plain[0][head]).max() > 1e-5  # and so is the second model


def test_members_with_other_normalisation_see_their_own_input(folds):
    """A member trained with another mean/std gets the ensemble's input re-normalised to its own."""
    _, runs = folds
    model = model_from_state(*load_best(runs / "fold0"))
    own = ((0.5, 0.5, 0.5), (0.25, 0.5, 0.5))
    first = ((0.485, 0.456, 0.406), (0.229, 0.224, 0.225))
    ensemble = Ensemble([model, model], HEADS, normalisation=[first, own]).eval()
    image = torch.rand(2, 3, 64, 64)
    inputs = (image - torch.tensor(first[0]).view(1, 3, 1, 1)) / torch.tensor(first[1]).view(1, 3, 1, 1)
    theirs = (image - torch.tensor(own[0]).view(1, 3, 1, 1)) / torch.tensor(own[1]).view(1, 3, 1, 1)
    with torch.no_grad():
        got = ensemble(inputs)
    a, b = _probabilities(model, inputs), _probabilities(model, theirs)
    for head, probs in zip(HEADS, got):
        assert torch.allclose(probs, torch.from_numpy((a[head] + b[head]) / 2), atol=1e-6)


def test_a_member_that_feeds_only_the_mask_head(folds, tmp_path):
    """--member-heads fold1=mask: the mask head averages both runs, gender and age are fold0's alone;
    the file says so and `recover` rebuilds the same graph from it."""
    cache, runs = folds
    out = tmp_path / "restricted.onnx"
    assert main(["export", "--ensemble", str(runs / "fold0"), str(runs / "fold1"), "--tta",
                 "--member-heads", f"{runs / 'fold1'}=mask", "--out", str(out)]) == 0
    classifier = Classifier(out)
    described = json.loads(classifier.metadata.extra["ensemble"])
    assert "heads" not in described[0] and described[1]["heads"] == ["mask"]

    crops = runtime_crops(Cache(cache).read_faces()[:10])
    inputs = torch.from_numpy(to_input(crops, classifier.metadata.mean, classifier.metadata.std))
    members = [model_from_state(*load_best(runs / f"fold{k}")) for k in (0, 1)]
    views = [[_probabilities(m, x) for x in (inputs, torch.flip(inputs, dims=(3,)))] for m in members]
    got = classifier.predict(crops)
    mask = np.mean([v["mask"] for pair in views for v in pair], axis=0)
    assert np.abs(got.mask - mask).max() < 1e-4
    for head in ("gender", "age"):
        alone = np.mean([v[head] for v in views[0]], axis=0)
        both = np.mean([v[head] for pair in views for v in pair], axis=0)
        assert np.abs(getattr(got, head) - alone).max() < 1e-4, head
        assert np.abs(getattr(got, head) - both).max() > 1e-5, head  # fold1 really is left out of it

    networks, metadata = read_networks(out)
    assert [n.heads for n in networks] == [None, ("mask",)]
    assert check_parity(out, rebuilt_graph(networks, metadata), metadata, crops) < 1e-4


@pytest.mark.parametrize("entry, why", [
    ("{runs}/fold1=nose", "no head nose"),
    ("{runs}/elsewhere=mask", "is not one of the --ensemble members"),
    ("{runs}/fold1", "RUN_DIR=HEAD"),
])
def test_member_heads_refuses_what_names_no_member_or_head(folds, tmp_path, caplog, entry, why):
    _, runs = folds
    out = tmp_path / "x.onnx"
    args = ["export", "--ensemble", str(runs / "fold0"), str(runs / "fold1"), "--member-heads", entry.format(runs=runs)]
    assert main([*args, "--out", str(out)]) == 2
    assert why in caplog.text and not out.exists()


def test_every_head_needs_a_member(folds, tmp_path, caplog):
    _, runs = folds
    out = tmp_path / "x.onnx"
    assert main(["export", "--ensemble", str(runs / "fold0"), str(runs / "fold1"), "--member-heads",
                 f"{runs / 'fold0'}=mask", f"{runs / 'fold1'}=mask,age", "--out", str(out)]) == 2
    assert "no ensemble member feeds the gender head" in caplog.text and not out.exists()


def test_ensemble_refuses_a_pattern_that_matches_no_run(folds, tmp_path):
    _, runs = folds
    assert main(["export", "--ensemble", str(runs / "nothing*"), "--out", str(tmp_path / "x.onnx")]) == 2
    assert not (tmp_path / "x.onnx").exists()


def test_a_member_that_enlarges_its_input_keeps_it_in_the_onnx_graph(folds, tmp_path):
    """`train --trunk-input` enlarges the crop inside the network: evaluate and export rebuild the run
    with it (from the checkpoint's config), the ONNX file still takes the cache's crop size, and
    `recover` gets the network back with its enlargement, alone or in an ensemble."""
    cache, runs = folds
    run = tmp_path / "enlarged"
    assert main(["train", "--cache", str(cache), "--run-dir", str(run), "--model", MODEL, "--epochs", "1", "--batch-size", "8",
                 "--workers", "0", "--threads", "2", "--device", "cpu", "--seed", "1", "--trunk-input", "96"]) == 0
    model = model_from_state(*load_best(run))
    assert model.trunk_input == 96
    out = tmp_path / "enlarged.onnx"
    assert main(["export", "--run-dir", str(run), "--out", str(out)]) == 0
    classifier = Classifier(out)
    assert classifier.metadata.input_size == 64

    crops = runtime_crops(Cache(cache).read_faces()[:6])
    inputs = torch.from_numpy(to_input(crops, classifier.metadata.mean, classifier.metadata.std))
    want = _probabilities(model, inputs)
    got = classifier.predict(crops)
    model.trunk_input = None  # the same weights fed the crop as it is
    plain = _probabilities(model, inputs)
    for head in HEADS:
        assert np.abs(getattr(got, head) - want[head]).max() < 1e-4, head
    assert max(np.abs(getattr(got, h) - plain[h]).max() for h in HEADS) > 1e-4  # the enlargement is in the graph

    (recovered,), _ = read_networks(out)
    assert recovered.model.trunk_input == 96
    again = _probabilities(recovered.model, inputs)
    assert max(np.abs(again[h] - want[h]).max() for h in HEADS) < 1e-4
    mixed = tmp_path / "mixed.onnx"
    assert main(["export", "--ensemble", str(runs / "fold0"), str(run), "--out", str(mixed)]) == 0
    assert [n.model.trunk_input for n in read_networks(mixed)[0]] == [None, 96]


def test_members_trained_at_two_crop_sizes_share_the_larger_input(folds, tmp_path):
    """A run trained on the same faces cut larger (a cache prepared with a larger --input-size) joins
    runs trained on the smaller crops: the file takes the larger crop and shrinks it, in the graph,
    for the smaller member; `recover` gets both back and names each the cache cut at its size, so
    that exporting them again gives the same file."""
    cache, runs = folds
    larger = tmp_path / "cache80"
    prepare(PrepareConfig(data=(f"competition={cache.parent / 'competition'}",), cache=larger, input_size=80), progress=False)
    split(SplitConfig(cache=larger, num_folds=2))
    run = tmp_path / "sharp"
    assert main(["train", "--cache", str(larger), "--run-dir", str(run), "--model", MODEL, "--epochs", "1", "--batch-size", "8",
                 "--workers", "0", "--threads", "2", "--device", "cpu", "--seed", "2"]) == 0
    out = tmp_path / "two_sizes.onnx"
    # --cache (or a recipe's top-level cache) names the small cache: each member still takes its own size
    assert main(["export", "--ensemble", str(runs / "fold0"), str(run), "--tta", "--cache", str(cache), "--out", str(out)]) == 0
    classifier = Classifier(out)
    assert classifier.metadata.input_size == 80
    described = json.loads(classifier.metadata.extra["ensemble"])
    assert described[0]["input_size"] == 64 and "input_size" not in described[1]

    crops = runtime_crops(Cache(larger).read_faces()[:8])
    small, sharp = (model_from_state(*load_best(r)) for r in (runs / "fold0", run))
    def shrink(x):
        return torch.nn.functional.interpolate(x, size=(64, 64), mode="bilinear", align_corners=False, antialias=True)
    got = _answers_as_its_members(classifier, crops, [(small, shrink), (sharp, lambda x: x)])

    networks, metadata = read_networks(out)
    assert [n.input_size for n in networks] == [64, None]
    assert check_parity(out, rebuilt_graph(networks, metadata), metadata, crops) < 1e-4
    _recovers_each_with_its_cache(out, tmp_path, {"fold0": cache, "sharp": larger}, crops, got)


def _recovers_each_with_its_cache(out: Path, tmp_path: Path, caches: dict[str, Path], crops: np.ndarray, got) -> None:
    """`recover` (--cache the file's crop, --member-caches the other) names each run the cache it was
    trained on, and exporting the runs again gives the file's probabilities."""
    file_cache, other = list(caches.values())[-1], list(caches.values())[0]
    recovered = tmp_path / "recovered"
    assert main(["recover", "--onnx", str(out), "--out", str(recovered), "--cache", str(file_cache),
                 "--member-caches", str(other)]) == 0
    back = [recovered / name for name in caches]
    assert [load_best(r)[0].cache for r in back] == list(caches.values())
    again = tmp_path / "again.onnx"
    assert main(["export", "--ensemble", *map(str, back), "--tta", "--out", str(again)]) == 0
    after = Classifier(again).predict(crops)
    for head in HEADS:
        assert np.abs(getattr(after, head) - getattr(got, head)).max() < 1e-5, head


def test_member_view_is_the_centre_square_a_narrower_crop_covers():
    from training.config import ConfigError
    from training.export.ensemble import View, file_geometry, member_view

    # 112 px at 0.2 sits in 140 px at 0.375 as its centre 112 (the same pixels per face)
    assert file_geometry([(112, 0.2), (140, 0.375)]) == (140, 0.375)
    assert member_view(140, 0.375, 112, 0.2) == View(14, 112, 112)
    assert member_view(140, 0.375, 140, 0.375) is None
    # a larger crop of the same margin: all of it, shrunk (the 160 px case)
    assert file_geometry([(112, 0.2), (160, 0.2)]) == (160, 0.2)
    assert member_view(160, 0.2, 112, 0.2) == View(0, 160, 112)
    # finer pixels in the narrow member: the wide crop is cut large enough to keep them, then the centre shrunk back
    assert file_geometry([(160, 0.2), (140, 0.375)]) == (200, 0.375)
    assert member_view(200, 0.375, 140, 0.375) == View(0, 200, 140)
    with pytest.raises(ConfigError, match="whole pixels"):
        member_view(140, 0.375, 112, 0.26)  # 121.6 px


def test_members_trained_with_two_crop_margins_share_the_wider_crop(folds, tmp_path):
    """A run trained on the same faces cut wider (prepare --crop-margin 0.375, at the size that keeps the
    pixel scale) joins runs trained on the narrower crops: the file takes the wide crop and each narrow
    member sees its centre, the square its own crop covers; `recover` gets both back with their caches."""
    cache, runs = folds
    wide = tmp_path / "cache_wide"
    prepare(PrepareConfig(data=(f"competition={cache.parent / 'competition'}",), cache=wide, input_size=80, crop_margin=0.375),
            progress=False)
    split(SplitConfig(cache=wide, num_folds=2))
    run = tmp_path / "wide_run"
    assert main(["train", "--cache", str(wide), "--run-dir", str(run), "--model", MODEL, "--epochs", "1", "--batch-size", "8",
                 "--workers", "0", "--threads", "2", "--device", "cpu", "--seed", "3"]) == 0
    out = tmp_path / "two_margins.onnx"
    assert main(["export", "--ensemble", str(runs / "fold0"), str(run), "--tta", "--out", str(out)]) == 0
    classifier = Classifier(out)
    assert (classifier.metadata.input_size, classifier.metadata.crop_margin) == (80, 0.375)
    described = json.loads(classifier.metadata.extra["ensemble"])
    assert (described[0]["input_size"], described[0]["crop_margin"]) == (64, 0.2) and "crop_margin" not in described[1]
    # the narrow member sees its centre 64 px as a slice: the file names that crop, and core nests it there
    assert classifier.inner_crop == (64, 0.2)

    # The app's path: FaceAnalyzer cuts the wide crop with the narrow one nested in its centre, to the bit the
    # narrow cache's runtime crop; a cache prepared with --inner-crop holds the same crops (how candidates are judged).
    nested = tmp_path / "cache_nested"
    assert main(["prepare", "--data", f"competition={cache.parent / 'competition'}", "--cache", str(nested),
                 "--input-size", "80", "--crop-margin", "0.375", "--inner-crop", "64", "0.2"]) == 0
    assert Cache(nested).read_info().geometry.inner_crop == (64, 0.2)
    split(SplitConfig(cache=nested, num_folds=2))
    # judged on crops cut otherwise (the narrow cache, or the wide one without the nesting), it is refused
    assert main(["evaluate", "--run-dir", str(runs / "fold0"), "--onnx", str(out)]) == 2
    assert main(["evaluate", "--run-dir", str(run), "--onnx", str(out)]) == 2
    assert main(["evaluate", "--run-dir", str(run), "--cache", str(nested), "--onnx", str(out)]) == 0
    narrow_by_face = {(str(f.row.path), f.row.box): f for f in Cache(cache).read_faces()}
    matched = [(f, narrow_by_face[(str(f.row.path), f.row.box)]) for f in Cache(nested).read_faces()
               if (str(f.row.path), f.row.box) in narrow_by_face]
    assert len(matched) >= 8
    for face, narrow_face in matched:
        assert (face.load_runtime()[8:72, 8:72] == narrow_face.load_runtime()).all()
    from core.analyzer import AnalyzerConfig, FaceAnalyzer
    from core.crop import crop_face
    from core.imageio import load_image
    face, _ = matched[0]
    image = load_image(face.row.path).image
    box = np.array(face.row.box if face.row.box is not None else [0, 0, image.shape[1], image.shape[0]], np.float32)
    analyzer = FaceAnalyzer(AnalyzerConfig(classifier_path=out))
    want = classifier.predict(crop_face(image, box, 0.375, 80, (64, 0.2))[None])
    got_face = analyzer.classify_box(image, box)
    for head in HEADS:
        assert np.abs(np.array(getattr(got_face, head).probs) - getattr(want, head)[0]).max() < 1e-6, head

    crops = runtime_crops(Cache(wide).read_faces()[:8])
    narrow, wide_model = (model_from_state(*load_best(r)) for r in (runs / "fold0", run))
    got = _answers_as_its_members(classifier, crops, [(narrow, lambda x: x[:, :, 8:72, 8:72]), (wide_model, lambda x: x)])

    networks, metadata = read_networks(out)
    assert [(n.input_size, n.crop_margin) for n in networks] == [(64, 0.2), (None, None)]
    _recovers_each_with_its_cache(out, tmp_path, {"fold0": cache, "wide_run": wide}, crops, got)
