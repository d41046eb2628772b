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
- face_mask_853's training part (`scenes.load_scenes(..., "train")`: never the held-out
  part): every labelled box, all mask states, without landmarks. Its boxes are drawn in another
  style than MTCNN's (tighter on the chin, no forehead), so they are first mapped to MTCNN's
  style (`BoxStyle`, fitted on stock detections matched to those boxes) and the nets are trained
  towards that: training towards the raw boxes would move every box the detector draws;
- negatives from the same training scenes: random windows and, harder, the stock stages' own
  proposals that overlap no labelled face (< 0.3 IoU with the raw and the mapped box).

The crops are built (and cached in the run folder) by training.detector.crops; this module
trains the nets on them and exports the result with training.detector.export, with an ORIGIN.md
describing the run. The stock detector used for proposals, box style and landmarks is the pinned
reference (training.detector.reference), never the folder the app ships.
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

from training import checkpoint
from training.detector.crops import (
    LABEL_NEG,
    LABEL_PART,
    LABEL_POS,
    NEG_IOU,
    PART_IOU,
    POS_IOU,
    SIZES,
    BoxStyle,
    BuildSummary,
    build_crops,
)
from training.detector.scenes import UTK_HOLDOUT
from training.logfile import log_to_file

log = logging.getLogger(__name__)

#: Loss weights (face/non-face, box, landmarks) per net, as in the MTCNN paper.
LOSS_WEIGHTS = {"pnet": (1.0, 0.5, 0.0), "rnet": (1.0, 0.5, 0.0), "onet": (1.0, 0.5, 1.0)}
#: Softmax module of each net's face/non-face head: bypassed while training (the loss takes logits).
_SOFTMAX = {"pnet": "softmax4_1", "rnet": "softmax5_1", "onet": "softmax6_1"}


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


def origin_markdown(config, summary: FinetuneSummary) -> str:
    from training.detector.export import origin_text

    build = summary.build
    style = build.box_style if build else BoxStyle()
    history = "\n".join(f"  - {net}: " + "; ".join(f"epoch {int(r['epoch'])}: " + ", ".join(f"{k} {v:.3f}" for k, v in r.items() if k != "epoch")
                                               for r in rows) for net, rows in summary.history.items())
    counts = "\n".join(f"  - {net}: {c}" for net, c in (build.counts.items() if build else []))
    return f"""# MTCNN face detector, fine-tuned on masked faces (ONNX)

Fine-tuned by `mask-train finetune-detector` (training/detector/finetune.py) from facenet-pytorch's
pretrained MTCNN weights (MIT licence, Tim Esler). Nets fine-tuned: {", ".join(config.nets)}; the others are stock.

## The run
- run folder: `{config.run_dir}`; epochs {config.epochs}, batch {config.batch_size}, Adam lr {config.lr:g},
  {config.neg_ratio:g} negatives per positive, seed {config.seed}
- face_mask_853, training part only ({build.scenes if build else 0} scenes, {build.scene_faces if build else 0} faces; the held-out part of
  `training/detector/evaluate.py` was not used); boxes mapped to MTCNN's style: centre {style.dx:+.3f}·w, {style.dy:+.3f}·h,
  size ×{style.sw:.3f} w, ×{style.sh:.3f} h ({style.pairs} matched pairs)
- synthetic masks on UTKFace (`{config.synth_dir}`): {build.synth_faces if build else 0} faces (landmarks from stock MTCNN on the bare chip);
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
    from training.detector.export import export_detector

    run_dir = Path(config.run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    torch.set_num_threads(config.torch_threads)
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

