"""A run's history: one metrics.csv row per epoch (and TensorBoard events when installed)."""
from __future__ import annotations

import csv
import logging
from pathlib import Path

from core.atomic import atomic_open
from core.labels import HEADS
from core.metadata import CLASS_HEAD

log = logging.getLogger(__name__)

#: score: the validation fold's mean macro-F1; select_score: what picked best.pt (the same number with
#: --select-on val); oos_*: the out-of-source check (training.classifier.oos_check.HEADLINE), blank when off.
METRIC_COLUMNS = [
    "epoch", "lr", "train_loss", "val_loss", "score",
    "mask_f1", "mask_acc", "gender_f1", "gender_acc", "age_f1", "age_acc", "class_f1", "class_acc",
    "oos_gender_acc", "oos_gender_acc_bare", "oos_gender_acc_masked", "oos_age_f1", "oos_age_f1_bare", "oos_age_f1_masked",
    "oos_mask_f1", "select_score", "seconds",
]


class MetricsLog:
    """metrics.csv (rewritten atomically from the whole history) and TensorBoard when installed."""

    def __init__(self, run_dir: Path, first_epoch: int) -> None:
        self.path = run_dir / "metrics.csv"
        self.writer = None
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError:
            log.info("tensorboard is not installed: metrics go to %s only", self.path)
        else:
            self.writer = SummaryWriter(str(run_dir / "tb"), purge_step=first_epoch)

    def write(self, history: list[dict]) -> None:
        with atomic_open(self.path, "w", newline="", encoding="utf-8") as handle:
            writer = csv.DictWriter(handle, fieldnames=METRIC_COLUMNS, extrasaction="ignore")
            writer.writeheader()
            writer.writerows(history)
        if self.writer is not None and history:
            row = history[-1]
            for key, value in row.items():
                if key != "epoch" and value != "":
                    self.writer.add_scalar(key, float(value), int(row["epoch"]))
            self.writer.flush()

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()


def epoch_row(epoch: int, lr: float, train_loss: float, val_loss: float, metrics: dict, seconds: float) -> dict:
    row = {"epoch": epoch, "lr": lr, "train_loss": round(train_loss, 6), "val_loss": round(val_loss, 6), "score": round(metrics["score"], 6)}
    for head in (*HEADS, CLASS_HEAD):
        known = metrics[head]["n"] > 0
        row[f"{head}_f1"] = round(metrics[head]["f1"], 6) if known else ""
        row[f"{head}_acc"] = round(metrics[head]["accuracy"], 6) if known else ""
    row["seconds"] = round(seconds, 2)
    return row

