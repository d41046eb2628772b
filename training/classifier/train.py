"""`train`: a timm trunk with the mask, gender and age heads (or one 18-way head) on the crop cache.

One run validates on one fold of <cache>/folds.csv and writes into its run folder:

    config.json               the settings it ran with
    metrics.csv               one row per epoch (TensorBoard events in tb/ when installed)
    checkpoints/last.pt       everything to resume: model, optimiser, scheduler, scaler, RNG, history
    checkpoints/best.pt       the model of the epoch with the best selection score (--select-on: val or out-of-source)
    train.log

`train_folds` trains several folds (`--folds all`) one after another, each in its own run folder.
Under torchrun the same code trains data-parallel (training.classifier.distributed); rank 0 writes the folder.

Every epoch is reproducible on its own: the sampler, augmentation and mixup draw from generators
seeded by (seed, epoch, ...), and the global RNG state is in the checkpoint, so a resumed run
continues exactly where the interrupted one stopped (tests/test_train_e2e.py checks it).
"""
from __future__ import annotations

import json
import logging
import math
import os
import time
from collections.abc import Callable
from contextlib import nullcontext
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader, RandomSampler, Subset, WeightedRandomSampler
from tqdm import tqdm

from core.atomic import atomic_open
from core.labels import marginals
from training import checkpoint
from training.classifier import distributed, oos_check
from training.classifier.augment import augment_config
from training.classifier.dataset import (
    CropDataset,
    balanced_weights,
    check_single_head,
    class_weights,
    fair_weights,
    target_matrix,
    weigh_real_incorrect,
)
from training.classifier.fixes import fix_training_faces
from training.classifier.folds import fold_configs, split_faces
from training.classifier.history import MetricsLog, epoch_row
from training.classifier.losses import MultiHeadLoss
from training.classifier.metrics import score
from training.classifier.mixing import mix_batch
from training.classifier.model import MaskClassifier, build_model, head_sizes
from training.classifier.optim import cosine_with_warmup, epoch_generator, param_groups, pick_device, seed_everything
from training.config import ConfigError, TrainConfig, load_saved, saved_dict, to_dict
from training.data.cache import Cache
from training.logfile import log_to_file
from training.teacher.pseudo import with_teacher

log = logging.getLogger(__name__)

#: Devices whose convolutions run faster on NHWC tensors (2 CPU cores: a step at 0.57x, bench/train_step.py).
CHANNELS_LAST_DEVICES = ("cuda", "cpu")

#: Settings a resumed run must share with the run it continues.
RESUME_MUST_MATCH = ("cache", "fold", "model", "single_head", "age_boundary", "seed", "batch_size", "select_on", "label_fixes", "eye_labels")
StopCheck = Callable[[int, int], bool]  # (epoch, step) -> stop now?
EpochHook = Callable[[dict], None]  # called with each finished epoch's metrics.csv row


class _Stop(Exception):
    pass


@dataclass
class TrainSummary:
    run_dir: Path
    epochs_run: list[int] = field(default_factory=list)
    best_epoch: int = 0
    best_score: float = -1.0
    stopped_early: bool = False
    interrupted: bool = False
    history: list[dict] = field(default_factory=list)

    def describe(self) -> str:
        state = " (stopped early)" if self.stopped_early else " (interrupted: --resume to go on)" if self.interrupted else ""
        return f"epochs run {self.epochs_run}{state}; best selection score {self.best_score:.4f} at epoch {self.best_epoch}; {self.run_dir}"


# ------------------------------------------------------------------------------------ the run


@dataclass
class _Run:
    config: TrainConfig
    device: torch.device
    model: MaskClassifier
    heads: tuple[str, ...]
    train_set: CropDataset
    val_set: CropDataset
    val_labels: np.ndarray  # (N, 3) for the scores
    criterion: MultiHeadLoss
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LambdaLR
    scaler: torch.amp.GradScaler
    amp_dtype: torch.dtype | None
    sample_weights: np.ndarray | None
    world: distributed.World
    net: torch.nn.Module  # what the training step calls: `model`, or DDP over it under torchrun
    oos: oos_check.OutOfSourceSet | None = None  # the out-of-source faces' crops, made once

    def selection(self, metrics: dict) -> tuple[float, dict]:
        """The score that picks best.pt (--select-on) and the out-of-source metrics.csv columns.
        Every rank scores all the faces with the same weights: the same decision everywhere."""
        if self.oos is None:
            return metrics["score"], {}
        probs = oos_check.predict_torch(self.model, self.oos.crops, self.config.batch_size, self.device)
        found = oos_check.figures(self.oos, oos_check.verdicts(self.config.model, probs))
        on_oos = self.config.select_on == "out-of-source"
        return (oos_check.selection_score(found, metrics["mask"]["f1"]) if on_oos else metrics["score"]), oos_check.headline(found)

    def autocast(self):
        if self.amp_dtype is None:
            return nullcontext()
        return torch.autocast(device_type=self.device.type, dtype=self.amp_dtype)

    def to_device(self, images: torch.Tensor) -> torch.Tensor:
        return images.to(self.device, non_blocking=True, memory_format=memory_format(self.device))

    def train_loader(self, epoch: int) -> DataLoader:
        self.train_set.set_epoch(epoch)
        generator = epoch_generator(self.config.seed, epoch)
        if self.world.distributed:
            sampler = distributed.train_sampler(self.world, len(self.train_set), self.sample_weights, self.config.seed, epoch, generator)
        elif self.sample_weights is not None:
            sampler = WeightedRandomSampler(self.sample_weights.tolist(), len(self.train_set), replacement=True, generator=generator)
        else:
            sampler = RandomSampler(self.train_set, generator=generator)
        return DataLoader(
            self.train_set, batch_size=self.config.batch_size, sampler=sampler, num_workers=self.config.loader_workers,
            drop_last=len(sampler) > self.config.batch_size, pin_memory=self.device.type == "cuda",
        )

    def train_epoch(self, epoch: int, progress: bool, should_stop: StopCheck | None) -> float:
        self.net.train()
        total, batches = 0.0, 0
        loader = self.train_loader(epoch)
        bar = tqdm(loader, desc=f"epoch {epoch}/{self.config.epochs}", unit="batch", disable=not progress, leave=False)
        for step, (images, targets) in enumerate(bar):
            images, targets = self.to_device(images), targets.to(self.device)
            rng = np.random.default_rng([self.config.seed, epoch, step])
            images, targets_a, targets_b, lam = mix_batch(images, targets, self.config, rng)
            with self.autocast():
                outputs = self.net(images)
            loss = self.criterion(outputs, targets_a)
            if lam < 1.0:
                loss = lam * loss + (1.0 - lam) * self.criterion(outputs, targets_b)
            self.optimizer.zero_grad(set_to_none=True)
            self.scaler.scale(loss).backward()
            self.scaler.step(self.optimizer)
            self.scaler.update()
            self.scheduler.step()
            total += float(loss.detach())
            batches += 1
            bar.set_postfix(loss=f"{total / batches:.4f}")
            if should_stop is not None and should_stop(epoch, step):
                raise _Stop
        bar.close()
        total, batches = distributed.all_sum(self.world, [total, batches], self.device)
        return total / max(1, batches)

    @torch.no_grad()
    def validate(self) -> tuple[float, dict[str, np.ndarray]]:
        """Validation loss and per-head probabilities (the 18-way head marginalised), over the
        whole fold: under torchrun each rank scores its shard and the shards are gathered."""
        self.model.eval()
        rows = distributed.shard(self.world, len(self.val_set))
        subset = Subset(self.val_set, rows) if self.world.distributed else self.val_set
        loader = DataLoader(subset, batch_size=self.config.batch_size, shuffle=False, num_workers=self.config.loader_workers)
        total, count = 0.0, 0
        chunks: dict[str, list[np.ndarray]] = {h: [] for h in self.heads}
        for images, targets in loader:
            images, targets = self.to_device(images), targets.to(self.device)
            with self.autocast():
                outputs = self.model(images)
            total += float(self.criterion(outputs, targets)) * len(images)
            count += len(images)
            for head in self.heads:
                chunks[head].append(torch.softmax(outputs[head].float(), dim=1).cpu().numpy())
        widths = {h: self.model.heads[f"{h}_head"].out_features for h in self.heads}
        probs = {h: np.concatenate(c) if c else np.zeros((0, widths[h]), np.float32) for h, c in chunks.items()}
        probs = distributed.gather_rows(self.world, probs, len(self.val_set))
        total, count = distributed.all_sum(self.world, [total, count], self.device)
        if "class" in probs:
            probs = marginals(probs["class"])
        return total / max(1, count), probs

    def state(self, epoch: int, best: float, best_epoch: int, bad_epochs: int, history: list[dict]) -> dict:
        return {
            "format": checkpoint.CHECKPOINT_FORMAT,
            "epoch": epoch,
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "scaler": self.scaler.state_dict(),
            "rng": checkpoint.rng_state(),
            "best_score": best,
            "best_epoch": best_epoch,
            "bad_epochs": bad_epochs,
            "history": json.dumps(history),
            "config": json.dumps(saved_dict(self.config)),
            "architecture": self.config.model,
            "heads": list(self.heads),
        }


def memory_format(device: torch.device) -> torch.memory_format:
    return torch.channels_last if device.type in CHANNELS_LAST_DEVICES else torch.contiguous_format


def _build(config: TrainConfig, cache: Cache, world: distributed.World) -> _Run:
    device = distributed.place(world, pick_device(config.device))
    geometry = cache.read_info().geometry
    train_faces, val_faces = split_faces(cache, config.fold)
    train_faces = fix_training_faces(cache, train_faces, *(config.label_fixes or ()), config.eye_labels)  # training photos only
    if config.single_head:
        check_single_head(train_faces + val_faces, config.age_boundary)
    train_labels = target_matrix(train_faces, config.age_boundary, config.single_head)
    if config.teacher:
        train_faces, train_labels = with_teacher(train_faces, train_labels, cache.root, config.age_boundary)
    val_targets = target_matrix(val_faces, config.age_boundary, config.single_head)
    val_labels = target_matrix(val_faces, config.age_boundary, False)
    log.info("fold %d: %d training and %d validation photos (test split excluded); device %s", config.fold, len(train_faces), len(val_faces), device)
    if world.distributed:
        log.info("%d processes (%s): each trains on %d photos an epoch in batches of %d (global batch %d)",
                 world.size, world.backend, math.ceil(len(train_faces) / world.size), config.batch_size, config.batch_size * world.size)

    model = build_model(config.model, config.single_head, config.weights, config.drop_rate, config.trunk_input)
    data_config = model.data_config()
    mean, std = data_config["mean"], data_config["std"]
    heads = tuple(model.head_names)
    augmentation = augment_config(config)
    train_set = CropDataset(train_faces, train_labels, geometry, mean, std, augmentation, config.seed)
    val_set = CropDataset(val_faces, val_targets, geometry, mean, std, None, config.seed)

    sizes = head_sizes(config.single_head)
    weights = {h: class_weights(train_labels[:, i], sizes[h]) for i, h in enumerate(heads)} if config.class_weights else None
    criterion = MultiHeadLoss(heads, config.head_weights, config.label_smoothing, config.focal_gamma, weights)

    model = model.to(device, memory_format=memory_format(device))
    optimizer = torch.optim.AdamW(param_groups(model, config.weight_decay), lr=config.lr)
    per_rank = math.ceil(len(train_set) / world.size)
    steps = per_rank // config.batch_size if per_rank > config.batch_size else 1
    scheduler = cosine_with_warmup(optimizer, int(config.warmup_epochs * steps), config.epochs * steps)
    use_amp = device.type == "cuda" if config.amp == "auto" else config.amp == "on"
    amp_dtype = (torch.float16 if device.type == "cuda" else torch.bfloat16) if use_amp else None
    scaler = torch.amp.GradScaler(device.type, enabled=use_amp and device.type == "cuda")
    sample_weights = {"weighted": lambda: balanced_weights(train_labels), "fair": lambda: fair_weights(train_faces),
                      "random": lambda: None}[config.sampler]()
    sample_weights = weigh_real_incorrect(train_faces, sample_weights, config.real_incorrect_weight)
    oos = None
    if config.checks_out_of_source:
        oos = oos_check.load_set(config.oos_labels, config.oos_data, geometry.crop_spec, progress=world.is_main)
        log.info("select on %s; %s", config.select_on, oos.describe())
    return _Run(config, device, model, heads, train_set, val_set, val_labels, criterion, optimizer, scheduler, scaler, amp_dtype,
                sample_weights, world, distributed.wrap(world, model, device), oos)


def _oos_text(selected: float, columns: dict) -> str:
    if not columns:
        return ""
    return (f"; out-of-source gender acc {columns['oos_gender_acc']}, age F1 {columns['oos_age_f1']}; "
            f"selection score {selected:.4f}")


def _resume(run: _Run, path: Path) -> tuple[int, float, int, int, list[dict]]:
    if not path.exists():
        raise ConfigError(f"--resume: no checkpoint at {path}")
    state = checkpoint.load(path)
    saved = to_dict(load_saved(TrainConfig, json.loads(state["config"]), str(path)))  # in today's types and defaults
    now = to_dict(run.config)
    saved["cache"], now["cache"] = os.path.abspath(saved["cache"]), os.path.abspath(now["cache"])
    different = [f"{k}: {saved[k]!r} -> {now[k]!r}" for k in RESUME_MUST_MATCH if saved[k] != now[k]]
    if different:
        raise ConfigError("cannot resume with other settings: " + "; ".join(different))
    run.model.load_state_dict(state["model"])
    run.optimizer.load_state_dict(state["optimizer"])
    run.scheduler.load_state_dict(state["scheduler"])
    if state["scaler"]:
        run.scaler.load_state_dict(state["scaler"])
    checkpoint.set_rng_state(state["rng"])
    log.info("resuming %s after epoch %d", path.parent.parent, state["epoch"])
    return state["epoch"] + 1, state["best_score"], state["best_epoch"], state["bad_epochs"], json.loads(state["history"])


def train(
    config: TrainConfig, progress: bool = True, should_stop: StopCheck | None = None, on_epoch: EpochHook | None = None,
) -> TrainSummary:
    """Run (or with config.resume, continue) the training; returns what happened. `on_epoch`
    sees each finished epoch's metrics row (after its checkpoint is written)."""
    run_dir = config.resolved_run_dir
    last_path, best_path = run_dir / "checkpoints" / "last.pt", run_dir / "checkpoints" / "best.pt"
    if not config.resume and last_path.exists():
        raise ConfigError(f"{run_dir} already holds a run: pass --resume to continue it, or choose another --run-dir")
    if config.torch_threads:
        torch.set_num_threads(config.torch_threads)
    with distributed.session(config.device) as world:
        if not world.is_main:  # rank 0 alone writes the run folder
            return _train(config, Cache(config.cache), run_dir, last_path, best_path, False, should_stop, None, world)
        run_dir.mkdir(parents=True, exist_ok=True)
        with log_to_file(run_dir / "train.log"):
            return _train(config, Cache(config.cache), run_dir, last_path, best_path, progress, should_stop, on_epoch, world)


def train_folds(config: TrainConfig, progress: bool = True, should_stop: StopCheck | None = None) -> list[TrainSummary]:
    """Train config.run_folds one after another (the k models of a k-fold ensemble). With resume,
    finished folds stay as they are and an interrupted one continues; without it, nothing starts
    while any fold's folder already holds a run."""
    configs = fold_configs(config)

    def started(c: TrainConfig) -> bool:
        return (c.resolved_run_dir / "checkpoints" / "last.pt").exists()

    if not config.resume and any(started(c) for c in configs):
        taken = ", ".join(str(c.resolved_run_dir) for c in configs if started(c))
        raise ConfigError(f"{taken} already hold runs: pass --resume to continue the folds, or choose another --run-dir")
    summaries = []
    with distributed.session(config.device):  # one process group for all the folds
        for c in configs:
            summary = train(replace(c, resume=started(c)), progress, should_stop)
            summaries.append(summary)
            if summary.interrupted:
                break
        for c, summary in zip(configs, summaries):  # inside the session: rank 0 alone logs
            log.info("fold %d: %s", c.fold, summary.describe())
    return summaries


def _train(
    config: TrainConfig, cache: Cache, run_dir: Path, last_path: Path, best_path: Path,
    progress: bool, should_stop: StopCheck | None, on_epoch: EpochHook | None, world: distributed.World,
) -> TrainSummary:
    seed_everything(config.seed)
    run = _build(config, cache, world)
    summary = TrainSummary(run_dir)
    start, best, best_epoch, bad_epochs, history = 1, -1.0, 0, 0, []
    if config.resume:
        start, best, best_epoch, bad_epochs, history = _resume(run, last_path)
    if world.is_main:
        with atomic_open(run_dir / "config.json", "w", encoding="utf-8") as handle:
            json.dump(saved_dict(config), handle, indent=1)
    metrics_log = MetricsLog(run_dir, start) if world.is_main else None
    summary.best_score, summary.best_epoch, summary.history = best, best_epoch, history
    try:
        for epoch in range(start, config.epochs + 1):
            if bad_epochs >= config.patience:
                summary.stopped_early = True
                break
            began = time.perf_counter()
            lr = run.optimizer.param_groups[0]["lr"]
            train_loss = run.train_epoch(epoch, progress, should_stop)
            val_loss, probs = run.validate()
            metrics = score(probs, run.val_labels)
            selected, oos_columns = run.selection(metrics)
            history.append({**epoch_row(epoch, lr, train_loss, val_loss, metrics, time.perf_counter() - began),
                            **oos_columns, "select_score": round(selected, 6)})
            if metrics_log is not None:
                metrics_log.write(history)
            if selected > best or config.select_on == "last":  # every rank scores the same gathered outputs: same decision
                best, best_epoch, bad_epochs = selected, epoch, 0
                if world.is_main:
                    checkpoint.save(best_path, checkpoint.best_model(
                        run.model, epoch, best, json.dumps(saved_dict(config)), config.model, run.heads,
                        metrics=json.dumps(history[-1])))
            else:
                bad_epochs += 1
            if world.is_main:
                checkpoint.save(last_path, run.state(epoch, best, best_epoch, bad_epochs, history))
            summary.epochs_run.append(epoch)
            summary.best_score, summary.best_epoch = best, best_epoch
            log.info(
                "epoch %d: train loss %.4f, val loss %.4f, score %.4f (mask %.3f, gender %.3f, age %.3f, 18-class %.3f)%s%s",
                epoch, train_loss, val_loss, metrics["score"], metrics["mask"]["f1"], metrics["gender"]["f1"],
                metrics["age"]["f1"], metrics["class"]["f1"], _oos_text(selected, oos_columns), " *" if best_epoch == epoch else "",
            )
            if on_epoch is not None:
                on_epoch(history[-1])
    except (_Stop, KeyboardInterrupt):
        summary.interrupted = True
        log.warning("interrupted; the checkpoint of the last finished epoch is kept: --resume to continue")
    finally:
        if metrics_log is not None:
            metrics_log.close()
    if summary.stopped_early:
        log.info("early stop: no better selection score (%s) for %d epochs", config.select_on, config.patience)
    log.info("%s", summary.describe())
    return summary
