"""`mask-train finetune-detector`: training targets in the runtime's conventions, and a tiny real
run (real weights, real scenes, real synthetic masks) that checkpoints, resumes and exports a
detector core loads."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from core.config import DetectorConfig
from core.imageio import load_image
from core.mtcnn import MTCNN, regress
from core.ort import create_session
from core.tracker import iou_matrix

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
            "--scenes", "3", "--synth-faces", "15", "--steps", "2", "--batch-size", "16", "--threads", "1",
            "--scene-variants", "1", "--web-photos", "2", "--epochs", "1"]
    assert main(args + ["--mine-epochs", "1"]) == 0
    for net, epochs in (("pnet", 1), ("rnet", 2), ("onet", 2)):  # P-Net learns no mined negatives: no second round
        assert checkpoint.load(run / f"{net}.pt")["epoch"] == epochs
    crops = run / "crops_onet.npz"
    data = np.load(crops)
    assert data["has_landmarks"].sum() > 0  # synthetic faces carry landmarks
    assert set(np.unique(data["labels"])) == {0, 1, 2}  # negatives, positives, parts
    assert data["teacher"].shape == data["labels"].shape and 0 <= data["teacher"].min() <= data["teacher"].max() <= 1
    info = json.loads((run / "crops.json").read_text())
    assert info["in_context"]["web_bare"]["photos"] == 2 and info["in_context"]["dressed_scenes"]["pictures"] >= 0
    built = crops.stat().st_mtime_ns
    stamps = {p: p.stat().st_mtime_ns for p in [run / "round1" / "onet.onnx", *sorted((run / "parts").glob("*.npz"))]}
    assert run / "parts" / "mined.npz" in stamps
    first = create_session(run / "mtcnn" / "onet.onnx")

    assert main(args + ["--mine-epochs", "2", "--resume"]) == 0
    state = checkpoint.load(run / "onet.pt")
    assert state["epoch"] == 3  # went on from epoch 2, not from scratch
    assert crops.stat().st_mtime_ns == built  # crops reused, not rebuilt
    assert {p: p.stat().st_mtime_ns for p in stamps} == stamps  # first round and mined negatives reused
    assert (run / "finetune.log").read_text().count("onet epoch") == 3

    out = run / "mtcnn"
    origin = (out / "ORIGIN.md").read_text()
    assert "mask-train finetune-detector" in origin and str(run) in origin
    session = create_session(out / "onet.onnx")
    assert "fine-tuned" in session.get_modelmeta().custom_metadata_map["source"]
    x = np.random.default_rng(0).uniform(-1, 1, (4, 3, 48, 48)).astype(np.float32)
    assert np.abs(session.run(None, {"image": x})[0] - first.run(None, {"image": x})[0]).max() > 0  # epoch 3 trained on

    scene = load_scenes(boxes_table(shared_data), "heldout")[0]
    faces = MTCNN(out).detect(load_image(scene.path).image)
    assert all(f.landmarks.shape == (5, 2) and 0 <= f.score <= 1 for f in faces)


def test_an_interrupted_crop_build_rebuilds_only_the_missing_part(shared_data: Path, tmp_path: Path):
    from training.config import FinetuneDetectorConfig
    from training.detector.crops import build_crops

    config = FinetuneDetectorConfig(data_dir=shared_data, synth_dir=tmp_path / "none", run_dir=tmp_path / "run", scenes=2,
                                    scene_variants=0, web_photos=2, nets=("pnet",))
    first, _ = build_crops(config, progress=False)
    parts = {p.name: p.stat().st_mtime_ns for p in (tmp_path / "run" / "parts").glob("*.npz")}
    assert set(parts) == {"scenes.npz", "web_bare.npz", "web_masked.npz"}
    (tmp_path / "run" / "crops_pnet.npz").unlink()  # as if stopped before the merge ...
    (tmp_path / "run" / "parts" / "web_masked.npz").unlink()  # ... and during the last part
    again, _ = build_crops(config, progress=False)
    assert {p.name: p.stat().st_mtime_ns for p in (tmp_path / "run" / "parts").glob("*.npz") if p.name != "web_masked.npz"} == \
        {k: v for k, v in parts.items() if k != "web_masked.npz"}
    for key in ("labels", "boxes", "bare", "teacher"):
        np.testing.assert_array_equal(first["pnet"][key], again["pnet"][key])  # the same seed per part: the same crops


def test_dressed_scene_changes_pixels_only_round_its_bare_faces(shared_data: Path):
    from training.detector.incontext import dressed_scenes
    from training.detector.reference import reference_detector

    scenes = [s for s in load_scenes(boxes_table(shared_data), "train")
              if sum(st.name == "NOT_WEAR" for st in s.states) and len(s.states) >= 3][:4]
    detector = reference_detector(min_face=20)
    changed_any = False
    for scene in scenes:
        original = load_image(scene.path).image
        for sample in dressed_scenes([scene], detector, 2, np.random.default_rng(0), [scene.boxes]):
            changed = np.any(sample.image != original, axis=2)
            allowed = np.zeros_like(changed)
            for x1, y1, x2, y2 in sample.boxes:  # the face box, grown for a cap, hood or ear loops
                w, h = x2 - x1, y2 - y1
                allowed[max(0, int(y1 - 0.9 * h)):int(y2 + 0.5 * h) + 1, max(0, int(x1 - 0.5 * w)):int(x2 + 0.5 * w) + 1] = True
            assert not (changed & ~allowed).any()
            changed_any |= bool(changed.any())
            assert len(sample.others) and iou_matrix(sample.boxes, sample.others).max() < 0.4  # other faces are others
    assert changed_any


def test_letterbox_and_web_split(shared_data: Path):
    from training.detector.incontext import letterbox, web_photos
    from training.detector.scenes import web_heldout

    photos = web_photos(shared_data, "with_mask")
    assert photos and not any(web_heldout(p) for p in photos)
    assert len(photos) < len(list((shared_data / "mask_web" / "with_mask").iterdir()))
    image = load_image(photos[0]).image
    framed = letterbox(image, np.random.default_rng(0))
    assert framed.shape == (480, 640, 3)


def test_mined_negatives_overlap_no_labelled_face(shared_data: Path):
    from training.detector.crops import NEG_IOU, BoxStyle
    from training.detector.mining import false_boxes
    from training.detector.reference import reference_dir
    from training.detector.stages import stage_outputs

    labelled = np.array([[10, 10, 50, 50]], np.float32)
    boxes = np.array([[12, 12, 52, 52], [100, 100, 140, 140], [20, 20, 60, 60], [200, 10, 240, 50]], np.float32)
    stock = np.array([[201, 11, 241, 51]], np.float32)
    np.testing.assert_array_equal(false_boxes(boxes, labelled, stock), boxes[[1]])
    scene = max(load_scenes(boxes_table(shared_data), "train")[:40], key=lambda s: len(s.boxes))
    detector = MTCNN(reference_dir(), DetectorConfig(min_face_size=20, thresholds=(0.3, 0.3, 0.3)))
    labelled = np.concatenate([scene.boxes, BoxStyle(0.0, -0.1, 0.9, 1.05).apply(scene.boxes)])
    for boxes in stage_outputs(detector, load_image(scene.path).image):
        wrong = false_boxes(boxes, labelled, np.zeros((0, 4), np.float32))
        assert len(wrong) < len(boxes)
        assert not len(wrong) or iou_matrix(wrong, labelled).max() < NEG_IOU


def test_mined_share_of_an_epoch_and_distillation_target():
    from training.detector.distill import distill_loss
    from training.detector.finetune import epoch_indices

    labels = np.array([1] * 10 + [2] * 10 + [0] * 100)
    mined = np.zeros(120, bool)
    mined[-20:] = True
    order = epoch_indices(labels, np.random.default_rng(0), neg_ratio=2.0, mined=mined, mined_share=0.5)
    assert len(order) == 40 and mined[order].sum() == 10
    teacher = torch.tensor([0.9, 0.2])
    chosen = torch.tensor([True, True])
    at = lambda p: distill_loss(torch.log(torch.tensor([[1 - p[0], p[0]], [1 - p[1], p[1]]])), teacher, chosen)  # noqa: E731
    assert at([0.9, 0.2]) < at([0.99, 0.2]) and at([0.9, 0.2]) < at([0.5, 0.2]) and at([0.9, 0.2]) < at([0.9, 0.6])
    assert distill_loss(torch.zeros(2, 2), teacher, torch.tensor([False, False])) == 0


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
