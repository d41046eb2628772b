"""`tune`: hyper-parameter search with Ray Tune: Optuna proposes, ASHA stops the weak trials early.

Each trial is an ordinary `train` run of one fold (training.classifier.train.train, reporting every epoch's
validation row to Ray), started from the [train] settings of the config file and overridden by
the values drawn from the search space. The space is TOML:

    [tune.space]
    lr = { loguniform = [1e-4, 3e-3] }
    label_smoothing = { uniform = [0.0, 0.2] }
    model = { choice = ["mobilenetv3_large_100", "efficientnet_b0"] }
    batch_size = { choice = [32, 64, 128] }
    augment = { uniform = [0.5, 1.5] }          # strength: scales jitter, crop scale/shift, cut-out
    cache = { choice = ["cache128", "cache224"] } # input size: one prepared cache per size (same people, same split seed)
    sampler = "weighted"                          # a plain value fixes a setting for every trial

Any TrainConfig field except the run's own bookkeeping (run_dir, fold, run_folds, epochs, resume,
device, loader_workers, torch_threads) may be searched. "Loss" is `focal_gamma` (0: cross-entropy) and
`class_weights`; "backbone" is `model` (with `weights` when the trunk has a local weights file).

Ray runs here (`ray.init()`, no dashboard, no usage stats) or on a cluster (`address`); every node
needs this project installed and the caches and output folder at the same paths (shared storage).
Writes <out>/results.csv (a row per trial, best first), <out>/best.toml (the best trial's [train]
table, for `mask-train train --config best.toml`) and <out>/ray/ (Ray's records; each trial's run
folder with its checkpoints is <out>/ray/<trial>/run).
"""
from __future__ import annotations

import csv
import json
import logging
import math
import os
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from core.atomic import atomic_open
from training.config import ConfigError, TrainConfig, TuneConfig, make_config, to_dict

log = logging.getLogger(__name__)

METRIC = "score"  # validation macro-F1 averaged over the heads (training.classifier.metrics.score)
DEFAULT_SPACE: dict[str, Any] = {
    "lr": {"loguniform": [1e-4, 3e-3]},
    "weight_decay": {"loguniform": [1e-3, 0.1]},
    "label_smoothing": {"uniform": [0.0, 0.2]},
    "focal_gamma": {"choice": [0.0, 2.0]},
    "batch_size": {"choice": [32, 64]},
    "augment": {"uniform": [0.5, 1.5]},
}
#: Distribution -> how many numbers it takes (None: a list of any length).
DISTRIBUTIONS = {"loguniform": 2, "uniform": 2, "randint": 2, "quniform": 3, "choice": None}
#: The run's bookkeeping: set by tune, never searched, and left out of best.toml where machine-bound.
NOT_SEARCHED = ("run_dir", "fold", "run_folds", "epochs", "resume", "device", "loader_workers", "torch_threads")
NOT_WRITTEN = tuple(n for n in NOT_SEARCHED if n not in ("fold", "epochs"))
AUGMENT = "augment"


@dataclass
class TuneResult:
    out: Path
    results: Path
    best_toml: Path
    trials: list[dict] = field(default_factory=list)  # results.csv's rows, best first

    def describe(self) -> str:
        best = self.trials[0] if self.trials else {}
        return (f"{len(self.trials)} trials; best {best.get('trial')} with validation score {best.get('best_score')} "
                f"at epoch {best.get('best_epoch')}; {self.results}, {self.best_toml}")


# ------------------------------------------------------------------------------------ search space


def check_space(space: dict[str, Any]) -> dict[str, Any]:
    """The space (DEFAULT_SPACE when empty), refused with a message naming the bad entry."""
    space = dict(space or DEFAULT_SPACE)
    names = set(to_dict(TrainConfig()))
    for name, spec in space.items():
        if name != AUGMENT and name not in names:
            raise ConfigError(f"[tune.space] {name}: not a train setting")
        if name in NOT_SEARCHED:
            raise ConfigError(f"[tune.space] {name}: set by tune itself (--fold, --max-epochs, the trial's folder)")
        if not isinstance(spec, dict):
            continue  # a fixed value
        if len(spec) != 1 or next(iter(spec)) not in DISTRIBUTIONS:
            raise ConfigError(f"[tune.space] {name}: write one of {', '.join(DISTRIBUTIONS)}, e.g. {{ uniform = [0, 1] }}")
        kind, values = next(iter(spec.items()))
        if not isinstance(values, list) or not values or (DISTRIBUTIONS[kind] and len(values) != DISTRIBUTIONS[kind]):
            raise ConfigError(f"[tune.space] {name}: {kind} takes {DISTRIBUTIONS[kind] or 'a list of'} values, not {values!r}")
        if name == "cache" and kind != "choice":
            raise ConfigError("[tune.space] cache: a choice of prepared caches, e.g. { choice = [\"cache128\", \"cache224\"] }")
        if kind == "loguniform" and min(values) <= 0:
            raise ConfigError(f"[tune.space] {name}: loguniform bounds must be > 0")
    return space


def ray_space(space: dict[str, Any]) -> dict[str, Any]:
    """The TOML space as Ray Tune's sampling objects (OptunaSearch converts them)."""
    from ray import tune

    out = {}
    for name, spec in space.items():
        if not isinstance(spec, dict):
            out[name] = spec
            continue
        kind, values = next(iter(spec.items()))
        out[name] = tune.choice(values) if kind == "choice" else getattr(tune, kind)(*values)
    return out


def scaled_augmentation(base: TrainConfig, strength: float) -> dict[str, Any]:
    """The augmentation settings at `strength` × the base ones (0: none but flips; 1: the base)."""
    low, high = base.scale
    return {
        "color_jitter": base.color_jitter * strength,
        "shift": base.shift * strength,
        "cutout": min(1.0, base.cutout * strength),
        "scale": (max(0.1, 1.0 - (1.0 - low) * strength), 1.0 + (high - 1.0) * strength),
    }


def trial_config(base: TrainConfig, params: dict[str, Any]) -> TrainConfig:
    """The base settings with a trial's drawn values (the augmentation strength expanded)."""
    values = dict(params)
    strength = values.pop(AUGMENT, None)
    if strength is not None:
        values.update(scaled_augmentation(base, float(strength)))
    return make_config(TrainConfig, None, None, **{**to_dict(base), **values})


# ------------------------------------------------------------------------------------ trial


def _trial(params: dict[str, Any], base: TrainConfig) -> None:
    """One trial, in a Ray worker: train the fold, reporting every epoch's validation row."""
    from ray import tune

    from training.classifier.train import train

    config = replace(trial_config(base, params), run_dir=Path(tune.get_context().get_trial_dir()) / "run", resume=False)

    def report(row: dict) -> None:
        tune.report({k: float(v) for k, v in row.items() if v != ""})

    train(config, progress=False, on_epoch=report)


# ------------------------------------------------------------------------------------ results


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        if isinstance(value, float) and not math.isfinite(value):
            raise ValueError(f"{value} has no TOML form here")
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value)  # a TOML basic string
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{ " + ", ".join(f"{json.dumps(str(k))} = {_toml_value(v)}" for k, v in value.items()) + " }"
    raise ValueError(f"{value!r} has no TOML form here")


def train_table(config: TrainConfig, comment: str) -> str:
    """A [train] table that `mask-train train --config` reads back into `config` (machine-bound
    settings left to the machine that trains)."""
    lines = [f"# {line}" for line in comment.splitlines()] + ["[train]"]
    for name, value in to_dict(config).items():
        if name not in NOT_WRITTEN and value is not None:
            lines.append(f"{name} = {_toml_value(value)}")
    return "\n".join(lines) + "\n"


def _trial_rows(grid, space: dict[str, Any]) -> list[dict]:
    rows = []
    for result in grid:
        history = result.metrics_dataframe
        row: dict[str, Any] = {"trial": Path(result.path).name, "status": "error" if result.error else "done"}
        if history is not None and METRIC in history and len(history):
            best = history[METRIC].idxmax()
            row.update(epochs=len(history), best_score=round(float(history[METRIC][best]), 6),
                       best_epoch=int(history["epoch"][best]), last_score=round(float(history[METRIC].iloc[-1]), 6))
        else:
            row.update(epochs=0, best_score="", best_epoch="", last_score="")
        row.update({name: result.config.get(name, "") for name in space})
        row["run_dir"] = str(Path(result.path) / "run")
        row["_config"] = result.config
        rows.append(row)
    rows.sort(key=lambda r: -1.0 if r["best_score"] == "" else r["best_score"], reverse=True)
    return rows


def _trial_name(trial) -> str:
    return f"trial_{trial.trial_id}"


def tune(config: TuneConfig, base: TrainConfig | None = None, verbose: int = 1) -> TuneResult:
    """Run the search and write results.csv and best.toml; returns the trials, best first."""
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")  # no usage reports from a training box
    import ray
    from ray import tune as ray_tune
    from ray.tune.schedulers import ASHAScheduler
    from ray.tune.search.optuna import OptunaSearch

    space = check_space(config.space)
    base = base or TrainConfig()
    cache = Path(config.cache).resolve()  # trials run in other processes, maybe on other machines
    caches = [Path(c).resolve() for c in space["cache"]["choice"]] if isinstance(space.get("cache"), dict) else [cache]
    for folder in caches:
        if not (folder / "folds.csv").is_file():
            raise ConfigError(f"{folder} has no folds.csv: run `mask-train prepare` and `mask-train split` first")
    if isinstance(space.get("cache"), dict):
        space["cache"] = {"choice": [str(c) for c in caches]}
    base = replace(base, cache=cache, fold=config.fold, epochs=config.max_epochs, run_folds="", run_dir=None, resume=False,
                   torch_threads=config.cpus_per_trial, loader_workers=min(base.loader_workers, config.cpus_per_trial - 1))
    out = Path(config.out or cache / "tune").resolve()
    out.mkdir(parents=True, exist_ok=True)

    started = False
    if not ray.is_initialized():
        if config.address:
            ray.init(address=config.address, log_to_driver=verbose > 0)
        else:
            ray.init(num_cpus=config.num_cpus, include_dashboard=False, log_to_driver=verbose > 0)
        started = True
    try:
        trainable = ray_tune.with_resources(ray_tune.with_parameters(_trial, base=base),
                                            {"cpu": config.cpus_per_trial, "gpu": config.gpus_per_trial})
        tuner = ray_tune.Tuner(
            trainable,
            param_space=ray_space(space),
            tune_config=ray_tune.TuneConfig(
                metric=METRIC, mode="max", num_samples=config.num_samples,
                search_alg=OptunaSearch(seed=config.seed),
                scheduler=ASHAScheduler(time_attr="training_iteration", max_t=config.max_epochs,
                                        grace_period=config.grace_epochs, reduction_factor=config.reduction_factor),
                max_concurrent_trials=config.max_concurrent or None,
                trial_name_creator=_trial_name, trial_dirname_creator=_trial_name,
            ),
            run_config=ray_tune.RunConfig(name="ray", storage_path=str(out), verbose=verbose),
        )
        grid = tuner.fit()
        rows = _trial_rows(grid, space)
    finally:
        if started:
            ray.shutdown()

    result = TuneResult(out, out / "results.csv", out / "best.toml")
    columns = ["rank", "trial", "status", "epochs", "best_score", "best_epoch", "last_score", *space, "run_dir"]
    with atomic_open(result.results, "w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=columns, extrasaction="ignore")
        writer.writeheader()
        for rank, row in enumerate(rows, 1):
            writer.writerow({**row, "rank": rank})
    scored = [r for r in rows if r["best_score"] != ""]
    if not scored:
        raise ConfigError(f"no trial finished an epoch: see {out / 'ray'}")
    best = scored[0]
    comment = (f"mask-train tune: best of {len(rows)} trials on fold {config.fold} ({best['trial']}): validation score "
               f"{best['best_score']} at epoch {best['best_epoch']} of at most {config.max_epochs}\n"
               f"its run (checkpoints) is {best['run_dir']}")
    with atomic_open(result.best_toml, "w", encoding="utf-8") as handle:
        handle.write(train_table(trial_config(base, best["_config"]), comment))
    result.trials = [{k: v for k, v in r.items() if k != "_config"} for r in rows]
    return result
