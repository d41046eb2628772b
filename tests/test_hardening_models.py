"""Issue 18: a broken model file is refused when it loads, NaN never becomes a label, telemetry
stays off, and result dataclasses holding arrays compare by identity.

The files are the real shipped detector and a real exported classifier, edited with `onnx`
the way a broken export or a wrong copy would leave them.
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper

from core.analyzer import Face, FaceAnalyzer
from core.batch import BatchJob
from core.classifier import Classifier, ClassifierLoadError
from core.config import AnalyzerConfig, default_detector_dir
from core.imageio import load_image
from core.live import TrackedFace
from core.metadata import ModelMetadata, ModelMetadataError
from core.mtcnn import MTCNN, Detection, DetectorLoadError
from core.tracker import Track

REPO = Path(__file__).resolve().parents[1]


# ------------------------------------------------------------------------------ detector (8)


@pytest.fixture
def detector_copy(tmp_path: Path) -> Path:
    folder = tmp_path / "mtcnn"
    shutil.copytree(default_detector_dir(), folder)
    return folder


@pytest.mark.parametrize("source, target", [("pnet", "onet"), ("rnet", "pnet"), ("onet", "rnet")])
def test_a_stage_copied_over_another_is_refused_at_load(detector_copy, source, target):
    shutil.copy(detector_copy / f"{source}.onnx", detector_copy / f"{target}.onnx")
    with pytest.raises(DetectorLoadError, match=f"{target}.onnx is not an MTCNN {target}"):
        MTCNN(detector_copy)


def test_the_shipped_detector_passes_the_load_check():
    assert MTCNN().detect(np.zeros((64, 64, 3), np.uint8)) == []


# ----------------------------------------------------------------------------- classifier (9)


def with_props(source: Path, target: Path, **changes: str) -> Path:
    model = onnx.load(str(source))
    props = {p.key: p.value for p in model.metadata_props}
    props.update(changes)
    onnx.helper.set_model_props(model, props)
    onnx.save(model, str(target))
    return target


@pytest.mark.parametrize(
    "changes",
    [{"mean": "[NaN, 0.456, 0.406]"}, {"std": "[0.229, Infinity, 0.225]"}, {"std": "[0.229, 0.224, -Infinity]"}],
)
def test_non_finite_mean_or_std_is_refused(random_classifier, tmp_path, changes):
    path = with_props(random_classifier, tmp_path / "bad.onnx", **changes)
    with pytest.raises(ClassifierLoadError, match="finite"):
        Classifier(path)


def test_absurd_input_size_is_refused(random_classifier):
    props = {k: v for k, v in Classifier(random_classifier).metadata.to_props().items()}
    props["input_size"] = "30000"  # 30000² × 3 float32: 10 GB per face
    with pytest.raises(ModelMetadataError, match="input_size"):
        ModelMetadata.from_props(props)


def nan_when_dark(source: Path, target: Path, dark_below: float) -> Path:
    """The classifier with its mask output multiplied by sqrt(min(input) - dark_below) / itself:
    1 for a bright crop, NaN (sqrt of a negative) for one with a pixel darker than that."""
    model = onnx.load(str(source))
    graph = model.graph
    mask = next(o for o in graph.output if o.name == "mask")
    for node in graph.node:
        node.output[:] = ["mask_raw" if name == "mask" else name for name in node.output]
    image = graph.input[0].name
    graph.initializer.append(helper.make_tensor("shift", TensorProto.FLOAT, [], [-dark_below]))
    graph.node.extend([
        helper.make_node("ReduceMin", [image], ["lowest"], keepdims=0),
        helper.make_node("Add", ["lowest", "shift"], ["shifted"]),
        helper.make_node("Sqrt", ["shifted"], ["root"]),
        helper.make_node("Div", ["root", "root"], ["one_or_nan"]),
        helper.make_node("Mul", ["mask_raw", "one_or_nan"], [mask.name]),
    ])
    onnx.save(model, str(target))
    return target


def normalised_grey(classifier: Classifier) -> float:
    """The lowest network input value of a mid-grey crop (the load check's probe)."""
    meta = classifier.metadata
    return min((128 / 255 - m) / s for m, s in zip(meta.mean, meta.std))


def test_a_network_that_outputs_nan_is_refused_at_load(random_classifier, tmp_path):
    grey = normalised_grey(Classifier(random_classifier))
    path = nan_when_dark(random_classifier, tmp_path / "nan.onnx", dark_below=grey + 0.5)  # NaN on grey too
    with pytest.raises(ClassifierLoadError, match="'mask' output of a test inference"):
        Classifier(path)


def test_nan_outputs_never_become_a_label(random_classifier, tmp_path, samples_dir):
    """A network that passes the load check but gives NaN on real faces (dark pixels)."""
    grey = normalised_grey(Classifier(random_classifier))
    path = nan_when_dark(random_classifier, tmp_path / "nan_dark.onnx", dark_below=grey - 0.5)
    analyzer = FaceAnalyzer(AnalyzerConfig(classifier_path=path))  # loads: grey gives numbers
    photo = samples_dir / "scene_mixed.jpg"
    faces = analyzer.analyze(load_image(photo).image)
    assert faces
    assert all(f.mask is None and f.class_id is None for f in faces)
    assert all(f.gender is not None and f.age is not None for f in faces)  # the finite heads stay
    out = tmp_path / "r.json"
    BatchJob(paths=[photo], out=out).run(analyzer)
    (image,) = json.loads(out.read_text(encoding="utf-8"))["images"]
    assert "no valid probabilities" in image["message"]
    assert all("mask" not in f and f["class_id"] is None for f in image["faces"])


# ------------------------------------------------------------------------------ telemetry (11)


def test_an_empty_ort_disable_telemetry_does_not_turn_telemetry_on(tmp_path):
    home = tmp_path / "home"
    home.mkdir()
    env = {**os.environ, "HOME": str(home), "ORT_DISABLE_TELEMETRY": ""}
    code = "from core.mtcnn import MTCNN; MTCNN()"
    subprocess.run([sys.executable, "-c", code], cwd=REPO, env=env, check=True, timeout=120)
    assert [str(p.relative_to(home)) for p in home.rglob("*")] == []


# ------------------------------------------------------------------ dataclass equality (14)


@pytest.mark.parametrize("cls, extra", [(Face, {}), (Detection, {}), (TrackedFace, {"track_id": 1})])
def test_results_holding_arrays_compare_by_identity(cls, extra):
    score = "score" if cls is Detection else "det_score"

    def make():
        return cls(box=np.zeros(4, np.float32), landmarks=np.zeros((5, 2), np.float32), **{score: 0.9}, **extra)

    a, b = make(), make()
    assert a == a and a != b
    assert a in [b, a] and b not in [a]
    assert len({a, b, a}) == 2 and hash(a) != hash(b)


def test_tracks_compare_by_identity():
    a, b = Track(1, np.zeros(4)), Track(2, np.zeros(4))
    assert a in [b, a] and len({a, b}) == 2
