"""`mask-train finetune-detector`: training targets in the runtime's conventions, and a tiny real
run (real weights, real scenes, real synthetic masks) that checkpoints, resumes and exports a
detector core loads."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from core.imageio import load_image
from core.mtcnn import MTCNN, regress
from core.ort import create_session

torch = pytest.importorskip("torch")

from training import checkpoint
from training.cli import main
from training.detector.scenes import boxes_table, load_scenes
from training.detector.crops import BoxStyle, fit_box_style, targets
from training.synth import synthesize


@pytest.mark.parametrize("net", ["pnet", "rnet", "onet"])
def test_regression_targets_undo_with_core_regress(net: str):
    cands = np.array([[10.0, 20.0, 60.0, 70.0], [5.5, 7.25, 30.5, 32.25]], np.float32)
    truth = np.array([12.0, 18.0, 58.0, 75.0], np.float32)
    reg, _ = targets(net, cands, truth, None)
    back = regress(cands, reg, inclusive=net != "pnet")
    np.testing.assert_allclose(back, np.repeat(truth[None], 2, axis=0), atol=1e-4)


def test_landmark_targets_match_run_onet_decoding():
    cand = np.array([[10.0, 20.0, 60.0, 70.0]], np.float32)
    marks = np.array([[20, 35], [45, 36], [33, 48], [22, 60], [44, 61]], np.float32)
    _, target = targets("onet", cand, cand[0], marks)
    # core.mtcnn.run_onet: x = (x2 - x1 + 1) * p + x1 - 1
    w = cand[0, 2] - cand[0, 0] + 1
    h = cand[0, 3] - cand[0, 1] + 1
    np.testing.assert_allclose(w * target[0, :5] + cand[0, 0] - 1, marks[:, 0], atol=1e-4)
    np.testing.assert_allclose(h * target[0, 5:] + cand[0, 1] - 1, marks[:, 1], atol=1e-4)


def test_box_style_fit_recovers_a_known_shift():
    truth = [np.array([[100, 100, 140, 150], [10, 10, 50, 40]], np.float32)]
    style = BoxStyle(dx=0.05, dy=-0.1, sw=0.9, sh=1.1)
    fitted = fit_box_style(truth, [style.apply(truth[0])])
    assert fitted.pairs == 2
    np.testing.assert_allclose([fitted.dx, fitted.dy, fitted.sw, fitted.sh], [0.05, -0.1, 0.9, 1.1], atol=1e-5)


def test_tiny_finetune_checkpoints_resumes_and_exports(shared_data: Path, tmp_path: Path):
    synth = tmp_path / "synth"
    synthesize(shared_data / "utkface", synth, per_face=3, limit=5, progress=False)
    run = tmp_path / "run"
    args = ["finetune-detector", "--data", str(shared_data), "--synth", str(synth), "--run-dir", str(run),
            "--scenes", "3", "--synth-faces", "15", "--steps", "2", "--batch-size", "16", "--threads", "1"]
    assert main(args + ["--epochs", "1"]) == 0
    for net in ("pnet", "rnet", "onet"):
        assert checkpoint.load(run / f"{net}.pt")["epoch"] == 1
    crops = run / "crops_onet.npz"
    data = np.load(crops)
    assert data["has_landmarks"].sum() > 0  # synthetic faces carry landmarks
    assert set(np.unique(data["labels"])) == {0, 1, 2}  # negatives, positives, parts
    built = crops.stat().st_mtime_ns
    first = create_session(run / "mtcnn" / "onet.onnx")

    assert main(args + ["--epochs", "2", "--resume"]) == 0
    state = checkpoint.load(run / "onet.pt")
    assert state["epoch"] == 2
    assert crops.stat().st_mtime_ns == built  # crops reused, not rebuilt
    assert (run / "finetune.log").read_text().count("onet epoch") == 2

    out = run / "mtcnn"
    origin = (out / "ORIGIN.md").read_text()
    assert "mask-train finetune-detector" in origin and str(run) in origin
    session = create_session(out / "onet.onnx")
    assert "fine-tuned" in session.get_modelmeta().custom_metadata_map["source"]
    x = np.random.default_rng(0).uniform(-1, 1, (4, 3, 48, 48)).astype(np.float32)
    assert np.abs(session.run(None, {"image": x})[0] - first.run(None, {"image": x})[0]).max() > 0  # epoch 2 trained on

    scene = load_scenes(boxes_table(shared_data), "heldout")[0]
    faces = MTCNN(out).detect(load_image(scene.path).image)
    assert all(f.landmarks.shape == (5, 2) and 0 <= f.score <= 1 for f in faces)


def test_mirrored_crops_get_mirrored_targets():
    """augment's flip gives the targets a mirrored photo would have had (landmarks within a pixel)."""
    from training.detector.finetune import augment

    width = 200.0
    cand = np.array([[40.0, 30.0, 88.0, 78.0]], np.float32)
    truth = np.array([44.0, 26.0, 90.0, 80.0], np.float32)
    marks = np.array([[55, 45], [75, 44], [66, 56], [57, 66], [74, 67]], np.float32)
    reg, target = targets("onet", cand, truth, marks)
    n = 32
    batch = {"images": torch.zeros(n, 3, 48, 48), "boxes": torch.from_numpy(np.repeat(reg, n, 0)),
             "landmarks": torch.from_numpy(np.repeat(target, n, 0))}
    out = augment(batch, torch.Generator().manual_seed(0))
    flipped = (out["boxes"][:, 0] != batch["boxes"][:, 0]).numpy()
    assert 0 < flipped.sum() < n
    mirror = lambda b: np.stack([width - b[..., 2], b[..., 1], width - b[..., 0], b[..., 3]], -1)
    m_marks = np.stack([width - marks[:, 0], marks[:, 1]], 1)[[1, 0, 2, 4, 3]]  # left and right swap
    m_reg, m_target = targets("onet", mirror(cand), mirror(truth), m_marks)
    np.testing.assert_allclose(out["boxes"][flipped].numpy(), np.repeat(m_reg, flipped.sum(), 0), atol=1e-5)
    w = cand[0, 2] - cand[0, 0] + 1
    np.testing.assert_allclose(out["landmarks"][flipped].numpy(), np.repeat(m_target, flipped.sum(), 0), atol=1.01 / w)
    np.testing.assert_allclose(out["landmarks"][~flipped].numpy(), np.repeat(target, n - flipped.sum(), 0))


def test_held_out_chips_never_train(shared_data: Path, tmp_path: Path):
    from training.detector.scenes import utk_heldout
    from training.detector.crops import synth_faces
    from training.synth import read_source

    faces = read_source(shared_data / "utkface")[:60]
    synthesize(faces, tmp_path / "synth", per_face=1, progress=False)
    rows = synth_faces(tmp_path / "synth", shared_data / "utkface" / "images", 1000, np.random.default_rng(0))
    held = sum(utk_heldout(f.person_id) for f in faces)
    assert 0 < held < len(faces)
    assert rows and not any(utk_heldout(r["person_id"]) for r in rows)
