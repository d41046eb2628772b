"""`mask-train export-detector`: three ONNX files with the promised names, dynamic shapes and
the torch nets' numbers; and the files shipped in assets/ are such an export."""
from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import onnx
import pytest

from core.config import default_detector_dir
from core.ort import create_session

torch = pytest.importorskip("torch")
mtcnn_nets = pytest.importorskip("facenet_pytorch.models.mtcnn")

from training.cli import main  # noqa: E402  (after the skips: needs torch)
from training.detector.export import export_detector  # noqa: E402

TOLERANCE = 1e-4
OUTPUTS = {
    "pnet": ["regression", "probability"],
    "rnet": ["regression", "probability"],
    "onet": ["regression", "landmarks", "probability"],
}
NETS = {"pnet": mtcnn_nets.PNet, "rnet": mtcnn_nets.RNet, "onet": mtcnn_nets.ONet}
CROP = {"rnet": 24, "onet": 48}


@pytest.fixture(scope="module")
def exported(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("mtcnn")
    paths = export_detector(out)
    assert [p.name for p in paths] == ["pnet.onnx", "rnet.onnx", "onet.onnx"]
    return out


@pytest.fixture(scope="module")
def torch_nets() -> dict[str, torch.nn.Module]:
    return {name: cls(pretrained=True).eval() for name, cls in NETS.items()}


def agree_with_torch(session, net: torch.nn.Module, x: np.ndarray) -> list[np.ndarray]:
    ours = session.run(None, {"image": x})
    with torch.no_grad():
        ref = [t.numpy() for t in net(torch.from_numpy(x))]
    assert len(ours) == len(ref)
    for a, b in zip(ours, ref):
        assert a.shape == b.shape
        assert np.abs(a - b).max() < TOLERANCE
    return ours


def test_files_and_origin(exported: Path):
    for name in OUTPUTS:
        assert (exported / f"{name}.onnx").stat().st_size > 10_000
    origin = (exported / "ORIGIN.md").read_text()
    for needed in ("facenet-pytorch", "MIT", "Tim Esler", "Zhang", "mask-train export-detector",
                   "127.5", "RGB", "regression", "probability", "landmarks"):
        assert needed in origin, f"ORIGIN.md does not mention {needed!r}"
    assert not list(exported.glob("*.tmp")), "temporary files left behind"


@pytest.mark.parametrize("name", list(OUTPUTS))
def test_names_and_metadata(exported: Path, name: str):
    session = create_session(exported / f"{name}.onnx")
    assert [i.name for i in session.get_inputs()] == ["image"]
    assert [o.name for o in session.get_outputs()] == OUTPUTS[name]
    props = session.get_modelmeta().custom_metadata_map
    assert props["stage"] == name
    assert "facenet-pytorch" in props["source"] and "MIT" in props["source"]
    model = onnx.load(exported / f"{name}.onnx")
    assert max(o.version for o in model.opset_import if o.domain in ("", "ai.onnx")) >= 17
    # No stack traces with this machine's paths inside the shipped files.
    assert not any(len(node.metadata_props) for node in model.graph.node)


def test_pnet_takes_any_image_size(exported: Path, torch_nets):
    session = create_session(exported / "pnet.onnx")
    rng = np.random.default_rng(1)
    shapes = {}
    for shape in [(1, 3, 12, 12), (1, 3, 145, 193), (2, 3, 31, 64)]:
        x = rng.uniform(-1, 1, size=shape).astype(np.float32)
        reg, prob = agree_with_torch(session, torch_nets["pnet"], x)
        shapes[shape] = (reg.shape, prob.shape)
    assert shapes[(1, 3, 12, 12)] == ((1, 4, 1, 1), (1, 2, 1, 1))
    assert shapes[(1, 3, 145, 193)] == ((1, 4, 68, 92), (1, 2, 68, 92))
    assert shapes[(2, 3, 31, 64)][1] == (2, 2, 11, 27)


@pytest.mark.parametrize("name", ["rnet", "onet"])
@pytest.mark.parametrize("batch", [1, 7])
def test_rnet_onet_take_any_batch(exported: Path, torch_nets, name: str, batch: int):
    session = create_session(exported / f"{name}.onnx")
    size = CROP[name]
    x = np.random.default_rng(batch).uniform(-1, 1, size=(batch, 3, size, size)).astype(np.float32)
    outputs = agree_with_torch(session, torch_nets[name], x)
    assert all(o.shape[0] == batch for o in outputs)
    probability = outputs[-1]
    np.testing.assert_allclose(probability.sum(axis=1), 1.0, atol=1e-5)


@pytest.mark.parametrize("name", list(OUTPUTS))
def test_shipped_models_are_this_export(exported: Path, name: str):
    """assets/models/mtcnn is what `mask-train export-detector` makes today (not a stale file)."""
    shipped = default_detector_dir() / f"{name}.onnx"
    if not shipped.exists():
        pytest.skip(f"{shipped} not present")
    fresh = create_session(exported / f"{name}.onnx")
    old = create_session(shipped)
    assert [o.name for o in old.get_outputs()] == OUTPUTS[name]
    size = (3, 57, 83) if name == "pnet" else (3, CROP[name], CROP[name])
    x = np.random.default_rng(2).uniform(-1, 1, size=(3, *size)).astype(np.float32)
    for a, b in zip(fresh.run(None, {"image": x}), old.run(None, {"image": x})):
        assert np.abs(a - b).max() < 1e-6


def test_cli_exports_to_a_folder(tmp_path: Path):
    out = tmp_path / "nested" / "mtcnn"
    assert main(["export-detector", "--out", str(out)]) == 0
    assert sorted(p.name for p in out.iterdir()) == ["ORIGIN.md", "onet.onnx", "pnet.onnx", "rnet.onnx"]


def test_cli_help(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["--help"])
    assert exit_info.value.code == 0
    assert "export-detector" in capsys.readouterr().out


def test_the_default_output_is_not_the_shipped_folder():
    """A plain `export-detector` must not overwrite assets/models/mtcnn (a fine-tune may ship there)."""
    from training.config import ExportDetectorConfig

    assert ExportDetectorConfig().out.resolve() != default_detector_dir().resolve()


def test_cli_out_naming_a_file_is_one_line(tmp_path: Path, caplog):
    taken = tmp_path / "a_file"
    taken.write_text("x")
    assert main(["export-detector", "--out", str(taken)]) == 2
    assert [r.getMessage() for r in caplog.records if r.levelname == "ERROR"] == [f"export-detector: {taken}: File exists"]
    assert taken.read_text() == "x"


def test_the_export_is_the_pinned_reference(exported: Path, tmp_path: Path, monkeypatch):
    """The stock export is byte-identical run to run, so the reference detector is pinned by hash;
    a folder holding anything else (a fine-tune shipped in assets/) is not taken for it."""
    from training.config import ConfigError
    from training.detector import reference

    assert reference.is_stock(exported)
    tuned = tmp_path / "assets" / "models" / "mtcnn"  # as if a fine-tune shipped
    shutil.copytree(exported, tuned)
    shutil.copy(exported / "rnet.onnx", tuned / "onet.onnx")
    assert not reference.is_stock(tuned)
    monkeypatch.setenv("MASK_CHECKER_ASSETS", str(tmp_path / "assets"))
    assert default_detector_dir() == tuned
    monkeypatch.chdir(tmp_path)  # STOCK_DIR (cache/detectors/stock) is relative: absent here
    with pytest.raises(ConfigError, match="export-detector"):
        reference.reference_dir()
    shutil.copytree(exported, tmp_path / reference.STOCK_DIR)
    assert reference.reference_dir() == reference.STOCK_DIR
    assert reference.reference_dir(tuned) == tuned  # given by hand: used as given (with a warning)
