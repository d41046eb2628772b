"""`mask-train export --half-weights`: float16 weight storage halves the file, core loads it unchanged,
and its probabilities stay within the export's parity tolerance of the float32 file on real faces."""
from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

pytest.importorskip("torch")
pytest.importorskip("timm")

import onnx  # noqa: E402
from onnx import TensorProto, numpy_helper  # noqa: E402

from core.classifier import Classifier  # noqa: E402
from training.export import onnx as export_onnx  # noqa: E402
from training.export.half import MIN_ELEMENTS, SUFFIX, store_half  # noqa: E402
from tests.conftest import build_random_classifier  # noqa: E402
from tests.train_helpers import utk_faces  # noqa: E402

SIZE = 64


@pytest.fixture(scope="module")
def faces(shared_data: Path) -> np.ndarray:
    """Real UTKFace faces at the model's input size (BGR uint8)."""
    return np.stack([cv2.resize(cv2.imread(str(p)), (SIZE, SIZE), interpolation=cv2.INTER_AREA) for p in utk_faces(shared_data, 12)])


@pytest.fixture(scope="module")
def exported(tmp_path_factory, faces) -> tuple[Path, Path]:
    """The same network exported in float32 and with float16 weights: (full, half)."""
    root = tmp_path_factory.mktemp("half")
    full = build_random_classifier(root / "full.onnx", input_size=SIZE, check_crops_bgr=faces)
    half = build_random_classifier(root / "half.onnx", input_size=SIZE, check_crops_bgr=faces, half_weights=True)
    return full, half


def test_half_file_is_about_half_and_records_it(exported):
    full, half = exported
    assert half.stat().st_size < 0.6 * full.stat().st_size
    metadata = Classifier(half).metadata
    assert metadata.extra["weight_storage"].startswith("float16")
    assert "weight_storage" not in Classifier(full).metadata.extra


def test_half_file_answers_like_the_full_one(exported, faces):
    full, half = (Classifier(p) for p in exported)
    a, b = full.predict(faces), half.predict(faces)
    for head in ("mask", "gender", "age"):
        pa, pb = getattr(a, head), getattr(b, head)
        assert np.abs(pa - pb).max() <= export_onnx.HALF_PARITY_TOLERANCE
        assert not np.array_equal(pa, pb)  # the weights really were rounded


def test_only_large_float_tensors_are_stored_half(exported):
    full, half = (onnx.load(str(p)) for p in exported)
    before = {t.name: t for t in full.graph.initializer}
    after = {t.name: t for t in half.graph.initializer}
    converted = [name for name in before if name + SUFFIX in after]
    assert converted
    for name, tensor in before.items():
        large_float = tensor.data_type == TensorProto.FLOAT and numpy_helper.to_array(tensor).size >= MIN_ELEMENTS
        assert (name in converted) == large_float, name
        if name in converted:
            stored = numpy_helper.to_array(after[name + SUFFIX])
            assert stored.dtype == np.float16
            np.testing.assert_allclose(stored.astype(np.float32), numpy_helper.to_array(tensor), rtol=1e-3, atol=1e-4)
    onnx.checker.check_model(half)


def test_store_half_keeps_tensors_float16_cannot_hold():
    big = numpy_helper.from_array(np.full((MIN_ELEMENTS,), 1e6, np.float32), "big")
    normal = numpy_helper.from_array(np.ones((MIN_ELEMENTS,), np.float32), "normal")
    graph = onnx.helper.make_graph(
        [onnx.helper.make_node("Add", ["big", "normal"], ["out"])], "g", [],
        [onnx.helper.make_tensor_value_info("out", TensorProto.FLOAT, [MIN_ELEMENTS])], [big, normal])
    model = onnx.helper.make_model(graph)
    assert store_half(model) == 1
    names = {t.name for t in model.graph.initializer}
    assert names == {"big", "normal" + SUFFIX}
    onnx.checker.check_model(model)


def test_a_half_export_outside_tolerance_leaves_the_working_file(tmp_path, faces, monkeypatch):
    target = build_random_classifier(tmp_path / "classifier.onnx", input_size=SIZE, check_crops_bgr=faces)
    before = target.read_bytes()
    monkeypatch.setattr(export_onnx, "HALF_PARITY_TOLERANCE", 0.0)
    with pytest.raises(export_onnx.ExportError, match="differs from torch"):
        build_random_classifier(target, input_size=SIZE, check_crops_bgr=faces, half_weights=True)
    assert target.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["classifier.onnx"]


def test_onnxruntime_folds_the_casts_away(exported, tmp_path):
    """The float16 copies cost nothing at run time: once loaded, no Cast is left and every weight is float32."""
    from core.ort import ort, session_options

    options = session_options()
    options.optimized_model_filepath = str(tmp_path / "optimised.onnx")
    ort.InferenceSession(str(exported[1]), options, providers=["CPUExecutionProvider"])
    optimised = onnx.load(str(tmp_path / "optimised.onnx"))
    assert not [n for n in optimised.graph.node if n.op_type == "Cast"]
    assert not [t.name for t in optimised.graph.initializer if t.data_type == TensorProto.FLOAT16]
