"""Fine-tune MTCNN on masked faces: `mask-train finetune-detector`.

Stock MTCNN was trained on bare faces; a mask hides the nose and mouth its nets look for, so it
misses masked faces (and wrongly worn ones most). Here P-Net, R-Net and O-Net start from
facenet-pytorch's weights and are trained further, as in the MTCNN paper, on square crops
labelled by IoU with a face: positive (IoU >= 0.65: face score, box regression, landmarks when
known), part (0.4-0.65: box regression only), negative (< 0.3: face score only).

Faces come from
- synthetic masks on UTKFace chips (`mask-train synth`'s output: worn, nose out, chin out, none).
  Their box and five landmarks are stock MTCNN's on the bare chip (found again here exactly as
  synth found them), so box style and landmarks are the stock detector's: bare faces and
  landmarks are held to what they were. UTKFace chips whose name hashes into UTK_HOLDOUT are not
  used (they are the landmark check's);
- face_mask_853's training part (`detector_eval.load_scenes(..., "train")`: never the held-out
  part): every labelled box, all mask states, without landmarks. Its boxes are drawn in another
  style than MTCNN's (tighter on the chin, no forehead), so they are first mapped to MTCNN's
  style (`BoxStyle`, fitted on stock detections matched to those boxes) and the nets are trained
  towards that: training towards the raw boxes would move every box the detector draws;
- negatives from the same training scenes: random windows and, harder, the stock stages' own
  proposals that overlap no labelled face (< 0.3 IoU with the raw and the mapped box).

Crops are cut by core's own functions (integral image, torch-exact area resize, crop windows) so
the nets see at training what they see at runtime. Regression and landmark targets use the
runtime's conventions (core.mtcnn.regress, run_onet). The result is exported by
training.export_detector with an ORIGIN.md describing the run.
"""
from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import nn
from tqdm import tqdm

from core.atomic import atomic_open
from core.config import DetectorConfig
from core.imageio import ImageReadError, load_image
from core.labels import Mask
from core.mtcnn import (
    MTCNN,
    area_resize,
    crop_windows,
    integral_image,
    pyramid_scales,
    run_pnet,
    run_rnet,
    to_nchw,
    to_network_image,
)
from core.tracker import iou_matrix
from training import checkpoint
from training.detector_eval import (
    UTK_HOLDOUT,
    Scene,
    bare_landmarks,
    boxes_table,
    load_scenes,
    match_pairs,
    synth_pad_fraction,
    synth_rows,
)
from training.logfile import log_to_file

log = logging.getLogger(__name__)

SIZES = {"pnet": 12, "rnet": 24, "onet": 48}
POS_IOU, PART_IOU, NEG_IOU = 0.65, 0.4, 0.3
#: Loss weights (face/non-face, box, landmarks) per net, as in the MTCNN paper.
LOSS_WEIGHTS = {"pnet": (1.0, 0.5, 0.0), "rnet": (1.0, 0.5, 0.0), "onet": (1.0, 0.5, 1.0)}
#: Softmax module of each net's face/non-face head: bypassed while training (the loss takes logits).
_SOFTMAX = {"pnet": "softmax4_1", "rnet": "softmax5_1", "onet": "softmax6_1"}
MIN_TRAIN_BOX = 16  # labelled boxes narrower than this give no positive crops (too few pixels)
LABEL_POS, LABEL_PART, LABEL_NEG = 1, 2, 0


# ------------------------------------------------------------------------------ box style


@dataclass(frozen=True)
class BoxStyle:
    """How MTCNN's box for a face sits relative to a dataset's labelled box: centre offset and
    size, as fractions of the labelled box's width and height (medians over matched pairs)."""

    dx: float = 0.0
    dy: float = 0.0
    sw: float = 1.0
    sh: float = 1.0
    pairs: int = 0

    def apply(self, boxes: np.ndarray) -> np.ndarray:
        boxes = np.asarray(boxes, dtype=np.float32).reshape(-1, 4)
        w, h = boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1]
        cx = (boxes[:, 0] + boxes[:, 2]) / 2 + self.dx * w
        cy = (boxes[:, 1] + boxes[:, 3]) / 2 + self.dy * h
        nw, nh = w * self.sw, h * self.sh
        return np.stack([cx - nw / 2, cy - nh / 2, cx + nw / 2, cy + nh / 2], axis=1).astype(np.float32)


def fit_box_style(truth: list[np.ndarray], found: list[np.ndarray]) -> BoxStyle:
    """Medians over one-to-one matches (IoU >= 0.5) of detections to labelled boxes, per scene."""
    rows = []
    for t, d in zip(truth, found):
        for i, j, _ in match_pairs(t, d, 0.5):
            tw, th = t[i, 2] - t[i, 0], t[i, 3] - t[i, 1]
            rows.append(((d[j, 0] + d[j, 2] - t[i, 0] - t[i, 2]) / 2 / tw, (d[j, 1] + d[j, 3] - t[i, 1] - t[i, 3]) / 2 / th,
                         (d[j, 2] - d[j, 0]) / tw, (d[j, 3] - d[j, 1]) / th))
    if not rows:
        return BoxStyle()
    m = np.median(np.array(rows), axis=0)
    return BoxStyle(float(m[0]), float(m[1]), float(m[2]), float(m[3]), len(rows))


# ------------------------------------------------------------------------------ crops


@dataclass
class CropSet:
    """Training crops of one net: images (N, 3, S, S) float16 in the nets' normalisation, label
    (LABEL_POS / LABEL_PART / LABEL_NEG), box regression targets (N, 4), landmark targets (N, 10:
    x1..x5, y1..y5 as fractions of the box) with a flag saying which crops have them."""

    images: list[np.ndarray] = field(default_factory=list)
    labels: list[np.ndarray] = field(default_factory=list)
    boxes: list[np.ndarray] = field(default_factory=list)
    landmarks: list[np.ndarray] = field(default_factory=list)
    has_landmarks: list[np.ndarray] = field(default_factory=list)

    def add(self, images, labels, boxes, landmarks, has_landmarks) -> None:
        if len(images):
            self.images.append(images.astype(np.float16))
            self.labels.append(labels.astype(np.int64))
            self.boxes.append(boxes.astype(np.float32))
            self.landmarks.append(landmarks.astype(np.float32))
            self.has_landmarks.append(has_landmarks.astype(bool))

    def arrays(self) -> dict[str, np.ndarray]:
        return {k: np.concatenate(getattr(self, k)) for k in ("images", "labels", "boxes", "landmarks", "has_landmarks")}


def square_candidates(box: np.ndarray, n: int, shift: float, scale: tuple[float, float], rng: np.random.Generator) -> np.ndarray:
    """n square windows around a box: side = the box's geometric mean side × U(scale), centre
    moved by U(-shift, shift) × side."""
    w, h = box[2] - box[0], box[3] - box[1]
    side = np.sqrt(w * h) * rng.uniform(*scale, size=n)
    cx = (box[0] + box[2]) / 2 + rng.uniform(-shift, shift, size=n) * side
    cy = (box[1] + box[3]) / 2 + rng.uniform(-shift, shift, size=n) * side
    return np.stack([cx - side / 2, cy - side / 2, cx + side / 2, cy + side / 2], axis=1).astype(np.float32)


def targets(net: str, cands: np.ndarray, truth: np.ndarray, landmarks: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
    """Regression (K, 4) and landmark (K, 10) targets of candidates towards one face, in the
    runtime's conventions: P-Net regresses by the width x2-x1, R-Net and O-Net by x2-x1+1, and
    O-Net's landmark x is (x - x1 + 1) / (x2 - x1 + 1)."""
    one = 0.0 if net == "pnet" else 1.0
    w = (cands[:, 2] - cands[:, 0] + one)[:, None]
    h = (cands[:, 3] - cands[:, 1] + one)[:, None]
    reg = (truth[None, :4] - cands[:, :4]) / np.concatenate([w, h, w, h], axis=1)
    marks = np.zeros((len(cands), 10), np.float32)
    if landmarks is not None:
        wi, hi = cands[:, 2:3] - cands[:, 0:1] + 1, cands[:, 3:4] - cands[:, 1:2] + 1
        marks[:, :5] = (landmarks[None, :, 0] - cands[:, 0:1] + 1) / wi
        marks[:, 5:] = (landmarks[None, :, 1] - cands[:, 1:2] + 1) / hi
    return reg.astype(np.float32), marks


def cut(table: np.ndarray, boxes: np.ndarray, size: int) -> tuple[np.ndarray, np.ndarray]:
    """Crops (N, 3, size, size) exactly as core cuts candidates, and which boxes kept pixels."""
    height, width = table.shape[0] - 1, table.shape[1] - 1
    windows, valid = crop_windows(boxes, width, height)
    if not valid.any():
        return np.zeros((0, 3, size, size), np.float32), valid
    return to_nchw(area_resize(table, windows[valid], size, size)), valid


def add_face_crops(crops: dict[str, CropSet], table: np.ndarray, face: np.ndarray, landmarks: np.ndarray | None,
                   others: np.ndarray, rng: np.random.Generator, n_pos: int, n_part: int) -> None:
    """Positive and part crops around one face (MTCNN-style box) for every net; candidates that
    land in neither band are dropped (and those under NEG_IOU with every face become negatives)."""
    cands = np.concatenate([square_candidates(face, 3 * n_pos, 0.08, (0.9, 1.12), rng),
                            square_candidates(face, 3 * n_part, 0.3, (0.75, 1.3), rng)])
    iou = iou_matrix(cands, face[None])[:, 0]
    worst_other = iou_matrix(cands, others).max(axis=1) if len(others) else np.zeros(len(cands))
    pos = np.nonzero(iou >= POS_IOU)[0][:n_pos]
    part = np.nonzero((iou >= PART_IOU) & (iou < POS_IOU) & (worst_other < PART_IOU))[0][:n_part]
    near = np.nonzero((iou < NEG_IOU) & (worst_other < NEG_IOU))[0][:n_part]  # negatives next to a face
    keep = np.concatenate([pos, part, near])
    labels = np.array([LABEL_POS] * len(pos) + [LABEL_PART] * len(part) + [LABEL_NEG] * len(near), dtype=np.int64)
    for net, crop_set in crops.items():
        images, valid = cut(table, cands[keep], SIZES[net])
        reg, marks = targets(net, cands[keep][valid], face, landmarks)
        reg[labels[valid] == LABEL_NEG] = 0.0
        flags = (labels[valid] == LABEL_POS) & (landmarks is not None)
        crop_set.add(images, labels[valid], reg, marks, flags)


def add_negatives(crops: CropSet, net: str, table: np.ndarray, cands: np.ndarray) -> None:
    if len(cands) == 0:
        return
    images, valid = cut(table, cands, SIZES[net])
    k = int(valid.sum())
    crops.add(images, np.full(k, LABEL_NEG), np.zeros((k, 4)), np.zeros((k, 10)), np.zeros(k, bool))


def random_windows(width: int, height: int, n: int, rng: np.random.Generator) -> np.ndarray:
    side = rng.uniform(16, max(17, min(width, height) / 2), size=n)
    x = rng.uniform(0, np.maximum(1, width - side))
    y = rng.uniform(0, np.maximum(1, height - side))
    return np.stack([x, y, x + side, y + side], axis=1).astype(np.float32)


def stock_proposals(detector: MTCNN, table: np.ndarray, threshold: tuple[float, float]) -> tuple[np.ndarray, np.ndarray]:
    """What stock P-Net hands R-Net, and what R-Net hands O-Net (square boxes, K × 5), at lenient
    thresholds: the windows the fine-tuned nets will be shown at runtime."""
    height, width = table.shape[0] - 1, table.shape[1] - 1
    pnet, rnet, _ = detector._sessions
    scales = pyramid_scales(height, width, detector.config.min_face_size, detector.config.scale_factor)
    if not scales:
        return np.zeros((0, 5), np.float32), np.zeros((0, 5), np.float32)
    first = run_pnet(pnet, table, scales, threshold[0])
    second = run_rnet(rnet, table, first, threshold[1]) if len(first) else first
    return first, second


@dataclass
class BuildSummary:
    scenes: int = 0
    scene_faces: int = 0
    synth_faces: int = 0
    synth_skipped: int = 0
    box_style: BoxStyle = field(default_factory=BoxStyle)
    counts: dict[str, dict[str, int]] = field(default_factory=dict)


def scene_crops(crops: dict[str, CropSet], scenes: list[Scene], detector: MTCNN,
                rng: np.random.Generator, summary: BuildSummary, progress: bool) -> BoxStyle:
    """Crops from face_mask_853 training scenes, after fitting the box style on them."""
    tables, proposals, found = [], [], []
    for scene in tqdm(scenes, desc="scenes: proposals", unit="img", disable=not progress):
        try:
            image = load_image(scene.path).image
        except ImageReadError as exc:
            log.warning("%s: %s (skipped)", scene.path, exc)
            continue
        table = integral_image(to_network_image(image))
        tables.append((scene, table))
        proposals.append(stock_proposals(detector, table, (0.5, 0.5)))
        found.append(np.array([d.box for d in detector.detect(image)]).reshape(-1, 4))
    style = fit_box_style([s.boxes for s, _ in tables], found)
    log.info("face_mask_853 boxes -> MTCNN style: %s", style)
    for (scene, table), (first, second) in tqdm(list(zip(tables, proposals)), desc="scenes: crops", unit="img",
                                                disable=not progress):
        height, width = table.shape[0] - 1, table.shape[1] - 1
        mapped = style.apply(scene.boxes)
        every = np.concatenate([scene.boxes, mapped])
        for i, (face, state) in enumerate(zip(mapped, scene.states)):
            if scene.boxes[i, 2] - scene.boxes[i, 0] < MIN_TRAIN_BOX:
                continue
            weight = 4 if state is Mask.INCORRECT else 1  # the rare state: more crops
            add_face_crops(crops, table, face, None, np.delete(mapped, i, axis=0), rng, 3 * weight, 2 * weight)
            summary.scene_faces += 1
        # Stage proposals: a positive / part when over a face, a hard negative when over nothing.
        for net, cands in (("rnet", first), ("onet", second)):
            if net not in crops or len(cands) == 0:
                continue
            overlap = iou_matrix(cands[:, :4], mapped)
            best, which = overlap.max(axis=1), overlap.argmax(axis=1)
            for label, chosen in ((LABEL_POS, best >= POS_IOU), (LABEL_PART, (best >= PART_IOU) & (best < POS_IOU))):
                idx = np.nonzero(chosen)[0]
                images, valid = cut(table, cands[idx, :4], SIZES[net])
                reg = np.concatenate([targets(net, cands[j:j + 1, :4], mapped[which[j]], None)[0] for j in idx[valid]] or [np.zeros((0, 4))])
                crops[net].add(images, np.full(len(reg), label), reg, np.zeros((len(reg), 10)), np.zeros(len(reg), bool))
            far = np.nonzero(iou_matrix(cands[:, :4], every).max(axis=1) < NEG_IOU)[0] if len(every) else np.arange(len(cands))
            add_negatives(crops[net], net, table, cands[rng.permutation(far)[:40], :4])
        for net, crop_set in crops.items():
            windows = random_windows(width, height, 60, rng)
            far = iou_matrix(windows, every).max(axis=1) < NEG_IOU if len(every) else np.ones(len(windows), bool)
            add_negatives(crop_set, net, table, windows[far][: 30 if net == "pnet" else 15])
        summary.scenes += 1
    return style


def synth_faces(synth_dir: Path, utk_dir: Path, limit: int, rng: np.random.Generator) -> list[dict[str, str]]:
    """Rows of synth's manifest whose UTKFace chip is not held out, `limit` of them at random."""
    rows = synth_rows(synth_dir, heldout=False)
    rows = [rows[i] for i in sorted(rng.permutation(len(rows))[:limit])]
    log.info("synth: %d faces from %s (chips in %s)", len(rows), synth_dir, utk_dir)
    return rows


def synth_crops(crops: dict[str, CropSet], rows: list[dict[str, str]], synth_dir: Path, utk_dir: Path, detector: MTCNN,
                rng: np.random.Generator, summary: BuildSummary, progress: bool) -> None:
    pad = synth_pad_fraction(synth_dir)
    for row in tqdm(rows, desc="synth crops", unit="face", disable=not progress):
        box = np.array([float(row[k]) for k in ("x1", "y1", "x2", "y2")], np.float32)
        marks = bare_landmarks(detector, utk_dir / row["person_id"], pad, box)
        try:
            image = load_image(synth_dir / row["path"]).image
        except ImageReadError:
            marks = None
        if marks is None:
            summary.synth_skipped += 1
            continue
        table = integral_image(to_network_image(image))
        add_face_crops(crops, table, box, marks, np.zeros((0, 4), np.float32), rng, 2, 1)
        summary.synth_faces += 1


# ------------------------------------------------------------------------------ training


def load_nets(names: tuple[str, ...]) -> dict[str, nn.Module]:
    from facenet_pytorch.models.mtcnn import ONet, PNet, RNet

    classes = {"pnet": PNet, "rnet": RNet, "onet": ONet}
    return {name: classes[name](pretrained=True) for name in names}


def _logits_mode(name: str, net: nn.Module, on: bool) -> None:
    setattr(net, _SOFTMAX[name], nn.Identity() if on else nn.Softmax(dim=1))


def _forward(name: str, net: nn.Module, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None, torch.Tensor]:
    """(box regression (N, 4), landmarks (N, 10) or None, face logits (N, 2))."""
    out = net(x)
    if name == "onet":
        return out[0], out[1], out[2]
    reg, logits = out
    if name == "pnet":
        reg, logits = reg[:, :, 0, 0], logits[:, :, 0, 0]
    return reg, None, logits


def losses(name: str, net: nn.Module, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, dict[str, float]]:
    reg, marks, logits = _forward(name, net, batch["images"].float())
    labels = batch["labels"]
    w_cls, w_box, w_mark = LOSS_WEIGHTS[name]
    scored = labels != LABEL_PART
    cls = nn.functional.cross_entropy(logits[scored], (labels[scored] == LABEL_POS).long()) if scored.any() else logits.sum() * 0
    boxed = labels != LABEL_NEG
    box = ((reg[boxed] - batch["boxes"][boxed]) ** 2).sum(1).mean() if boxed.any() else reg.sum() * 0
    total = w_cls * cls + w_box * box
    stats = {"cls": cls.item(), "box": box.item()}
    if marks is not None and w_mark > 0:
        marked = batch["has_landmarks"]
        mark = ((marks[marked] - batch["landmarks"][marked]) ** 2).sum(1).mean() if marked.any() else marks.sum() * 0
        total = total + w_mark * mark
        stats["landmarks"] = mark.item()
    with torch.no_grad():
        if scored.any():
            stats["acc"] = ((logits[scored].argmax(1) == 1) == (labels[scored] == LABEL_POS)).float().mean().item()
    return total, stats


#: Landmark order after a horizontal flip: the eyes and the mouth corners swap sides.
_FLIP_MARKS = [1, 0, 2, 4, 3]


def augment(batch: dict[str, torch.Tensor], generator: torch.Generator) -> dict[str, torch.Tensor]:
    """Half the crops mirrored (box and landmark targets mirrored with them), and every crop's
    contrast and brightness jittered: the scene faces are few, and the nets overfit them otherwise."""
    images, boxes, marks = batch["images"].float(), batch["boxes"].clone(), batch["landmarks"].clone()
    n = images.shape[0]
    flip = torch.rand(n, generator=generator) < 0.5
    images[flip] = images[flip].flip(-1)
    boxes[flip] = torch.stack([-boxes[flip, 2], boxes[flip, 1], -boxes[flip, 0], boxes[flip, 3]], dim=1)
    xs, ys = marks[flip, :5], marks[flip, 5:]
    marks[flip] = torch.cat([1.0 - xs[:, _FLIP_MARKS], ys[:, _FLIP_MARKS]], dim=1)
    contrast = 1.0 + (torch.rand(n, 1, 1, 1, generator=generator) - 0.5) * 0.4
    brightness = (torch.rand(n, 1, 1, 1, generator=generator) - 0.5) * 0.2
    images = (images * contrast + brightness).clamp(-1.0, 1.0)
    return {**batch, "images": images, "boxes": boxes, "landmarks": marks}


def epoch_indices(labels: np.ndarray, rng: np.random.Generator, neg_ratio: float = 3.0) -> np.ndarray:
    """Every positive once, as many parts, `neg_ratio` negatives per positive (3: the paper's
    mix), shuffled."""
    pos, part, neg = (np.nonzero(labels == v)[0] for v in (LABEL_POS, LABEL_PART, LABEL_NEG))
    chosen = [pos, rng.permutation(part)[: len(pos)], rng.permutation(neg)[: int(neg_ratio * len(pos))]]
    return rng.permutation(np.concatenate(chosen))


@dataclass
class FinetuneSummary:
    run_dir: Path
    export_dir: Path | None = None
    history: dict[str, list[dict[str, float]]] = field(default_factory=dict)
    build: BuildSummary | None = None
    seconds: float = 0.0
    interrupted: bool = False


def train_net(name: str, net: nn.Module, data: dict[str, np.ndarray], config, run_dir: Path, progress: bool) -> list[dict[str, float]]:
    """Fine-tune one net; a checkpoint after every epoch (and every 200 steps), resumable."""
    ckpt_path = run_dir / f"{name}.pt"
    opt = torch.optim.Adam(net.parameters(), lr=config.lr)
    history: list[dict[str, float]] = []
    start, step_in_epoch = 0, 0
    if config.resume and ckpt_path.is_file():
        state = checkpoint.load(ckpt_path)
        net.load_state_dict(state["net"])
        opt.load_state_dict(state["optimizer"])
        start, step_in_epoch = int(state["epoch"]), int(state["step"])
        history = json.loads(state["history"])
        checkpoint.set_rng_state(state["rng"])
        log.info("%s: resumed at epoch %d step %d", name, start, step_in_epoch)
    tensors = {k: torch.from_numpy(v) for k, v in data.items()}
    _logits_mode(name, net, True)
    net.train()
    for epoch in range(start, config.epochs):
        rng = np.random.default_rng([config.seed, epoch, list(SIZES).index(name)])
        order = epoch_indices(data["labels"], rng, config.neg_ratio)
        generator = torch.Generator().manual_seed(int(rng.integers(2**31)))
        steps = len(order) // config.batch_size
        if config.steps:
            steps = min(steps, config.steps)
        sums: dict[str, float] = {}
        bar = tqdm(range(step_in_epoch, steps), desc=f"{name} epoch {epoch + 1}/{config.epochs}", unit="step",
                   disable=not progress, initial=step_in_epoch, total=steps)
        for step in bar:
            idx = torch.from_numpy(order[step * config.batch_size:(step + 1) * config.batch_size])
            batch = augment({k: v[idx] for k, v in tensors.items()}, generator)
            loss, stats = losses(name, net, batch)
            opt.zero_grad()
            loss.backward()
            opt.step()
            for k, v in stats.items():
                sums[k] = sums.get(k, 0.0) + v
            bar.set_postfix({k: f"{v:.3f}" for k, v in stats.items()})
            if (step + 1) % 200 == 0 and step + 1 < steps:
                _save(ckpt_path, name, net, opt, epoch, step + 1, history)
        bar.close()
        done = max(1, steps - step_in_epoch)
        row = {"epoch": epoch + 1, **{k: v / done for k, v in sums.items()}}
        history.append(row)
        log.info("%s epoch %d: %s", name, epoch + 1, ", ".join(f"{k} {v:.4f}" for k, v in row.items() if k != "epoch"))
        step_in_epoch = 0
        _save(ckpt_path, name, net, opt, epoch + 1, 0, history)
    net.eval()
    _logits_mode(name, net, False)
    return history


def _save(path: Path, name: str, net: nn.Module, opt, epoch: int, step: int, history: list) -> None:
    _logits_mode(name, net, False)  # the state dict is the same; keep the module as shipped
    checkpoint.save(path, {"net": net.state_dict(), "optimizer": opt.state_dict(), "epoch": epoch, "step": step,
                           "history": json.dumps(history), "rng": checkpoint.rng_state()})
    _logits_mode(name, net, True)


def build_crops(config, progress: bool = True) -> tuple[dict[str, dict[str, np.ndarray]], BuildSummary]:
    """Every net's crops, cached in the run folder (crops_<net>.npz) so a resumed run reuses them."""
    run_dir = Path(config.run_dir)
    cached = {net: run_dir / f"crops_{net}.npz" for net in config.nets}
    summary_path = run_dir / "crops.json"
    settings = {"data": str(Path(config.data).resolve()), "synth": str(Path(config.synth).resolve()),
                "synth_faces": config.synth_faces, "scenes": config.scenes, "seed": config.seed}
    if all(p.is_file() for p in cached.values()) and summary_path.is_file():
        info = json.loads(summary_path.read_text(encoding="utf-8"))
        if info.pop("settings", None) == settings:
            log.info("reusing the crops in %s", run_dir)
            summary = BuildSummary(**{k: v for k, v in info.items() if k != "box_style"}, box_style=BoxStyle(**info["box_style"]))
            return {net: dict(np.load(p)) for net, p in cached.items()}, summary
        log.warning("the crops in %s were built with other settings: building them again", run_dir)
    rng = np.random.default_rng(config.seed)
    detector = MTCNN(config=DetectorConfig(min_face_size=20, thresholds=(0.6, 0.7, 0.7)))
    crops = {net: CropSet() for net in config.nets}
    summary = BuildSummary()
    scenes = load_scenes(boxes_table(config.data), "train")
    if config.scenes:
        scenes = scenes[: config.scenes]
    summary.box_style = scene_crops(crops, scenes, detector, rng, summary, progress)
    synth_dir = Path(config.synth)
    if config.synth_faces and synth_dir.is_dir():
        rows = synth_faces(synth_dir, Path(config.data) / "utkface" / "images", config.synth_faces, rng)
        synth_crops(crops, rows, synth_dir, Path(config.data) / "utkface" / "images",
                    detector.with_config(DetectorConfig(min_face_size=40)), rng, summary, progress)
    else:
        log.warning("no synthetic faces used (synth folder %s missing or synth_faces 0)", synth_dir)
    arrays = {net: crop_set.arrays() for net, crop_set in crops.items()}
    run_dir.mkdir(parents=True, exist_ok=True)
    for net, data in arrays.items():
        labels = data["labels"]
        summary.counts[net] = {"pos": int((labels == LABEL_POS).sum()), "part": int((labels == LABEL_PART).sum()),
                               "neg": int((labels == LABEL_NEG).sum()), "landmarks": int(data["has_landmarks"].sum())}
        with atomic_open(cached[net], "wb") as handle:
            np.savez(handle, **data)
    info = {k: v for k, v in vars(summary).items() if k != "box_style"} | {"box_style": vars(summary.box_style), "settings": settings}
    with atomic_open(summary_path, "w", encoding="utf-8") as handle:
        json.dump(info, handle, indent=2)
    log.info("crops: %s", summary.counts)
    return arrays, summary


def origin_markdown(config, summary: FinetuneSummary) -> str:
    from training.export_detector import origin_text

    build = summary.build
    style = build.box_style if build else BoxStyle()
    history = "\n".join(f"  - {net}: " + "; ".join(f"epoch {int(r['epoch'])}: " + ", ".join(f"{k} {v:.3f}" for k, v in r.items() if k != "epoch")
                                               for r in rows) for net, rows in summary.history.items())
    counts = "\n".join(f"  - {net}: {c}" for net, c in (build.counts.items() if build else []))
    return f"""# MTCNN face detector, fine-tuned on masked faces (ONNX)

Fine-tuned by `mask-train finetune-detector` (training/detector_finetune.py) from facenet-pytorch's
pretrained MTCNN weights (MIT licence, Tim Esler). Nets fine-tuned: {", ".join(config.nets)}; the others are stock.

## The run
- run folder: `{config.run_dir}`; epochs {config.epochs}, batch {config.batch_size}, Adam lr {config.lr:g},
  {config.neg_ratio:g} negatives per positive, seed {config.seed}
- face_mask_853, training part only ({build.scenes if build else 0} scenes, {build.scene_faces if build else 0} faces; the held-out part of
  `training/detector_eval.py` was not used); boxes mapped to MTCNN's style: centre {style.dx:+.3f}·w, {style.dy:+.3f}·h,
  size ×{style.sw:.3f} w, ×{style.sh:.3f} h ({style.pairs} matched pairs)
- synthetic masks on UTKFace (`{config.synth}`): {build.synth_faces if build else 0} faces (landmarks from stock MTCNN on the bare chip);
  UTKFace chips hashed into the {UTK_HOLDOUT:.0%} landmark check were not used. UTKFace's licence is non-commercial research only.
- crops (positive IoU ≥ {POS_IOU}, part {PART_IOU}–{POS_IOU}, negative < {NEG_IOU}):
{counts}
- training history:
{history}

## Measured
See `assets/models/MODEL_CARD.md` (Detector) and `mask-train eval-detector`.

---
The stock export's description follows; inputs, outputs and normalisation are unchanged.

""" + origin_text().replace("Nothing here was trained by this project.\n", "")


def finetune_detector(config, progress: bool = True) -> FinetuneSummary:
    """Build the crops, fine-tune each net in config.nets, export all three to config.out."""
    from training.export_detector import export_detector

    run_dir = Path(config.run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    torch.set_num_threads(config.threads)
    torch.manual_seed(config.seed)
    summary = FinetuneSummary(run_dir)
    started = time.perf_counter()
    with log_to_file(run_dir / "finetune.log"):
        data, summary.build = build_crops(config, progress)
        nets = load_nets(config.nets)
        try:
            for name in config.nets:
                summary.history[name] = train_net(name, nets[name], data[name], config, run_dir, progress)
        except KeyboardInterrupt:
            summary.interrupted = True
            log.warning("interrupted: resume with the same command and --resume")
            return summary
        out = Path(config.out) if config.out else run_dir / "mtcnn"
        export_detector(out, nets, source=f"fine-tuned by mask-train finetune-detector ({run_dir.name}) from facenet-pytorch "
                                          "MTCNN weights (MIT licence, Tim Esler)", origin=origin_markdown(config, summary))
        summary.export_dir = out
        summary.seconds = time.perf_counter() - started
        log.info("exported to %s after %.0f s", out, summary.seconds)
    return summary

