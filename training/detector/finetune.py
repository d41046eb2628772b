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
from training.detector.distill import distill_loss, load_nets, net_outputs as _forward
from training.detector.scenes import UTK_HOLDOUT
from training.logfile import log_to_file

log = logging.getLogger(__name__)

#: Loss weights (face/non-face, box, landmarks) per net, as in the MTCNN paper.
LOSS_WEIGHTS = {"pnet": (1.0, 0.5, 0.0), "rnet": (1.0, 0.5, 0.0), "onet": (1.0, 0.5, 1.0)}
#: Softmax module of each net's face/non-face head: bypassed while training (the loss takes logits).
_SOFTMAX = {"pnet": "softmax4_1", "rnet": "softmax5_1", "onet": "softmax6_1"}


def _logits_mode(name: str, net: nn.Module, on: bool) -> None:
    setattr(net, _SOFTMAX[name], nn.Identity() if on else nn.Softmax(dim=1))


def losses(name: str, net: nn.Module, batch: dict[str, torch.Tensor], distill: float = 0.0) -> tuple[torch.Tensor, dict[str, float]]:
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
    if distill > 0 and "teacher" in batch:
        held = distill_loss(logits, batch["teacher"], batch["bare"])
        total = total + distill * held
        stats["distill"] = held.item()
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


def epoch_indices(labels: np.ndarray, rng: np.random.Generator, neg_ratio: float = 3.0,
                  mined: np.ndarray | None = None, mined_share: float = 0.5) -> np.ndarray:
    """Every positive once, as many parts, `neg_ratio` negatives per positive (3: the paper's
    mix), shuffled. With `mined` (a flag per crop), up to `mined_share` of the negatives are
    mined ones: few next to the rest, they would hardly be drawn otherwise."""
    pos, part = (np.nonzero(labels == v)[0] for v in (LABEL_POS, LABEL_PART))
    n_neg = int(neg_ratio * len(pos))
    is_neg = labels == LABEL_NEG
    if mined is None or not (mined & is_neg).any():
        negs = rng.permutation(np.nonzero(is_neg)[0])[:n_neg]
    else:
        hard = rng.permutation(np.nonzero(is_neg & mined)[0])[: int(mined_share * n_neg)]
        negs = np.concatenate([hard, rng.permutation(np.nonzero(is_neg & ~mined)[0])[: n_neg - len(hard)]])
    return rng.permutation(np.concatenate([pos, rng.permutation(part)[: len(pos)], negs]))


@dataclass
class FinetuneSummary:
    run_dir: Path
    export_dir: Path | None = None
    history: dict[str, list[dict[str, float]]] = field(default_factory=dict)
    build: BuildSummary | None = None
    seconds: float = 0.0
    interrupted: bool = False


def train_net(name: str, net: nn.Module, data: dict[str, np.ndarray], config, run_dir: Path, progress: bool,
              epochs: int | None = None) -> list[dict[str, float]]:
    """Fine-tune one net up to epoch `epochs` (default config.epochs); a checkpoint after every
    epoch (and every 200 steps), resumable: a checkpoint already past `epochs` is loaded as it is."""
    epochs = epochs or config.epochs
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
    for epoch in range(start, epochs):
        rng = np.random.default_rng([config.seed, epoch, list(SIZES).index(name)])
        order = epoch_indices(data["labels"], rng, config.neg_ratio, data.get("mined"), config.mined_share)
        generator = torch.Generator().manual_seed(int(rng.integers(2**31)))
        steps = len(order) // config.batch_size
        if config.steps:
            steps = min(steps, config.steps)
        sums: dict[str, float] = {}
        bar = tqdm(range(step_in_epoch, steps), desc=f"{name} epoch {epoch + 1}/{epochs}", unit="step",
                   disable=not progress, initial=step_in_epoch, total=steps)
        for step in bar:
            idx = torch.from_numpy(order[step * config.batch_size:(step + 1) * config.batch_size])
            batch = augment({k: v[idx] for k, v in tensors.items()}, generator)
            loss, stats = losses(name, net, batch, config.distill)
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
- run folder: `{config.run_dir}`; epochs {config.epochs} (+ {config.mine_epochs} with the first round's own false
  positives mined on the training scenes, {config.mined_share:g} of the negatives), batch {config.batch_size}, Adam lr {config.lr:g},
  {config.neg_ratio:g} negatives per positive, distillation towards stock on bare-face crops (weight {config.distill:g}), seed {config.seed}
- in context (synthetic masks drawn on real photos' bare faces; mask_web letterboxed into 640×480, training part only):
  {json.dumps(build.in_context if build else {})}
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


def _export(nets: dict[str, nn.Module], out: Path, config, summary: FinetuneSummary, run_name: str) -> None:
    from training.detector.export import export_detector

    export_detector(out, nets, source=f"fine-tuned by mask-train finetune-detector ({run_name}) from facenet-pytorch "
                                      "MTCNN weights (MIT licence, Tim Esler)", origin=origin_markdown(config, summary))


def mined_crops(config, round_dir: Path, progress: bool) -> dict[str, dict[str, np.ndarray]]:
    """The first round's own false positives on the training scenes, as negatives (cached in the run folder)."""
    from training.detector.crop_cache import load_part, save_part
    from training.detector.crops import BoxStyle
    from training.detector.mining import mine_negatives
    from training.detector.reference import reference_detector
    from training.detector.scenes import boxes_table, load_scenes

    settings = {"round": str(round_dir.resolve()), "epochs": config.epochs, "seed": config.seed, "scenes": config.scenes}
    cached = load_part(config.run_dir, "mined", settings)
    if cached is not None:
        return cached[0]
    scenes = load_scenes(boxes_table(config.data_dir), "train")
    scenes = scenes[: config.scenes] if config.scenes else scenes
    info = json.loads((Path(config.run_dir) / "crops.json").read_text(encoding="utf-8"))
    crops, found = mine_negatives(round_dir, scenes, BoxStyle(**info["box_style"]), reference_detector(config.reference),
                                  config.nets, np.random.default_rng([config.seed, 7]), progress=progress)
    arrays = {net: c.arrays() for net, c in crops.items()}
    save_part(config.run_dir, "mined", settings, arrays, {"found": found})
    return arrays


def with_mined(data: dict[str, np.ndarray], mined: dict[str, np.ndarray], teacher: np.ndarray) -> dict[str, np.ndarray]:
    """One net's crops with the mined negatives appended and flagged (`mined`)."""
    out = {k: np.concatenate([v, mined[k]]) if k in mined else v for k, v in data.items()}
    out["teacher"] = np.concatenate([data["teacher"], teacher]) if "teacher" in data else teacher
    out["mined"] = np.concatenate([np.zeros(len(data["labels"]), bool), np.ones(len(mined["labels"]), bool)])
    return out


def finetune_detector(config, progress: bool = True) -> FinetuneSummary:
    """Build the crops, fine-tune each net in config.nets, mine the first round's false
    positives and train on with them (config.mine_epochs), export all three to config.out."""
    from dataclasses import replace

    from training.detector.distill import teacher_scores

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
            if config.mine_epochs:
                round_dir = run_dir / "round1"
                if not (round_dir / "onet.onnx").is_file():
                    _export(nets, round_dir, config, summary, f"{run_dir.name}, first round")
                mined = mined_crops(config, round_dir, progress)
                stock = load_nets(config.nets)
                resumed = replace(config, resume=True)  # round 2 starts from round 1's checkpoints
                for name in [n for n in config.nets if len(mined[n]["labels"])]:  # P-Net learns from none
                    both = with_mined(data[name], mined[name], teacher_scores(stock[name], name, mined[name]["images"]))
                    log.info("%s: %d mined negatives added", name, len(mined[name]["labels"]))
                    summary.history[name] = train_net(name, nets[name], both, resumed, run_dir, progress,
                                                      epochs=config.epochs + config.mine_epochs)
        except KeyboardInterrupt:
            summary.interrupted = True
            log.warning("interrupted: resume with the same command and --resume")
            return summary
        out = Path(config.out) if config.out else run_dir / "mtcnn"
        _export(nets, out, config, summary, run_dir.name)
        summary.export_dir = out
        summary.seconds = time.perf_counter() - started
        log.info("exported to %s after %.0f s", out, summary.seconds)
    return summary
