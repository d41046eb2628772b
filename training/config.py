"""Every training setting in one place: one dataclass per sub-command, loadable from TOML.

A TOML file given with `--config` may hold top-level keys (shared by every sub-command that has
a field of that name, e.g. `cache`) and one table per sub-command (`[prepare]`, `[train]`, ...).
Precedence: dataclass default < top-level key < the command's table < command-line option.
Unknown keys in a table are refused, so a typo cannot silently fall back to a default.
"""
from __future__ import annotations

import dataclasses
import os
import tomllib
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from core.config import DetectorConfig, default_classifier_path
from core.labels import OLD_AGE


class ConfigError(ValueError):
    """A setting is missing, unknown or out of range; the message names it."""


def _default_workers() -> int:
    return max(0, min(4, (os.cpu_count() or 1) - 1))


@dataclass(frozen=True)
class PrepareConfig:
    """Face detection and cropping into the cache.

    The cached crop is `context` × the classifier's crop, at the same pixel scale: its centre
    input_size × input_size square is the crop the runtime makes (core.crop.crop_face with
    crop_margin at input_size), and the rim is room for the random-resized-crop augmentation.
    """

    data: tuple[str, ...] = ()  # dataset specs "KIND=PATH" (KIND: competition, utkface, folders, csv, boxes)
    cache: Path = Path("cache")
    input_size: int = 224
    crop_margin: float = 0.2
    context: float = 1.25
    min_face: int = DetectorConfig.min_face_size  # the app's default
    min_box: int = 10  # known face boxes (boxes layout, csv x1..y2) with a shorter side are skipped
    thresholds: tuple[float, float, float] = DetectorConfig.thresholds
    no_face: str = "pad"  # "pad": pad the border and detect again, then skip; "skip": skip at once
    workers: int = 2  # decoding threads
    class_map: dict[str, str] = field(default_factory=dict)  # folder name -> mask label (folders layout)
    strict: bool = False  # refuse to start when a reader reports an error

    def __post_init__(self) -> None:
        _coerce(self)
        if not self.data:
            raise ConfigError("prepare needs at least one dataset (--data KIND=PATH)")
        if self.input_size < 16:
            raise ConfigError("input_size must be at least 16")
        if not 0.0 <= self.crop_margin <= 1.0:
            raise ConfigError("crop_margin must be within 0..1")
        if not 1.0 <= self.context <= 2.0:
            raise ConfigError("context must be within 1..2")
        if self.no_face not in ("pad", "skip"):
            raise ConfigError("no_face must be 'pad' or 'skip'")
        if self.workers < 1:
            raise ConfigError("workers must be at least 1")
        if self.min_box < 1:
            raise ConfigError("min_box must be at least 1")


@dataclass(frozen=True)
class SplitConfig:
    """Person-level stratified k-fold (after an optional held-out test split), written once to <cache>/folds.csv."""

    cache: Path = Path("cache")
    folds: int = 5
    seed: int = 0
    age_boundary: int = OLD_AGE  # for the age group used in the strata
    holdout: float = 0.0  # fraction of people first put in the test split (fold "test"); 0 = none

    def __post_init__(self) -> None:
        _coerce(self)
        if self.folds < 2:
            raise ConfigError("folds must be at least 2")
        if not 0.0 <= self.holdout < 1.0:
            raise ConfigError("holdout must be within [0, 1)")


@dataclass(frozen=True)
class TrainConfig:
    """One training run on the cache, validated on fold `fold`."""

    cache: Path = Path("cache")
    run_dir: Path | None = None  # default <cache>/runs/<model>_fold<fold>
    fold: int = 0
    folds: str = ""  # "all" or "0,2": train these folds in turn, each in <run_dir>/fold<K> (default <cache>/runs/<model>_fold<K>)
    model: str = "mobilenetv3_large_100"
    weights: Path | None = None  # backbone weights (.pt state dict or .safetensors); none = random init
    single_head: bool = False  # one 18-way head (needs every label on every image)
    epochs: int = 20
    batch_size: int = 64
    lr: float = 1e-3
    weight_decay: float = 0.05
    warmup_epochs: float = 1.0
    drop_rate: float = 0.2
    label_smoothing: float = 0.1
    focal_gamma: float = 0.0  # > 0: focal loss
    class_weights: bool = False  # inverse-frequency weights in the loss
    sampler: str = "random"  # "random" or "weighted" (inverse frequency of the mask·gender·age combination)
    head_weights: dict[str, float] = field(default_factory=lambda: {"mask": 1.0, "gender": 1.0, "age": 1.0})
    age_boundary: int = OLD_AGE  # oldest group starts here (competitors used 58)
    # augmentation
    flip: bool = True
    color_jitter: float = 0.3
    scale: tuple[float, float] = (0.85, 1.15)  # random crop side, relative to the runtime crop
    shift: float = 0.08  # random crop centre shift, relative to the runtime crop side
    cutout: float = 0.3  # probability of one cut-out square
    mixup: float = 0.0  # Beta(alpha) of mixup; 0 = off
    cutmix: float = 0.0  # Beta(alpha) of cutmix; 0 = off
    # run
    patience: int = 5  # early stopping: epochs without a better validation macro-F1
    seed: int = 0
    device: str = "auto"  # auto, cuda, mps, cpu
    amp: str = "auto"  # auto (cuda only), on, off
    workers: int = field(default_factory=_default_workers)  # DataLoader processes
    threads: int | None = None  # torch CPU threads; none = torch's default
    resume: bool = False

    def __post_init__(self) -> None:
        _coerce(self)
        if self.epochs < 1 or self.batch_size < 1:
            raise ConfigError("epochs and batch_size must be at least 1")
        if self.fold < 0:
            raise ConfigError("fold must be >= 0")
        if self.folds not in ("", "all") and not all(k.strip().isdigit() for k in self.folds.split(",")):
            raise ConfigError(f"folds must be 'all' or fold numbers separated by commas, not {self.folds!r}")
        if self.patience < 1:
            raise ConfigError("patience must be at least 1")
        if self.sampler not in ("random", "weighted"):
            raise ConfigError("sampler must be 'random' or 'weighted'")
        if self.device not in ("auto", "cuda", "mps", "cpu"):
            raise ConfigError("device must be auto, cuda, mps or cpu")
        if self.amp not in ("auto", "on", "off"):
            raise ConfigError("amp must be auto, on or off")
        if not 0.0 <= self.label_smoothing < 1.0:
            raise ConfigError("label_smoothing must be within [0, 1)")
        if not 0.0 < self.scale[0] <= self.scale[1]:
            raise ConfigError("scale must be two increasing positive numbers")
        unknown = set(self.head_weights) - {"mask", "gender", "age", "class"}
        if unknown:
            raise ConfigError(f"head_weights has unknown heads {sorted(unknown)}")

    @property
    def resolved_run_dir(self) -> Path:
        return self.run_dir or self.cache / "runs" / f"{self.model}_fold{self.fold}"


@dataclass(frozen=True)
class EvaluateConfig:
    """Scores a run (its best checkpoint, or an exported ONNX file) on its validation fold or the test split."""

    run_dir: Path | None = None  # required
    cache: Path | None = None  # default: the run's cache
    onnx: Path | None = None  # evaluate this exported file through core instead of the checkpoint
    fold: int | None = None  # default: the run's validation fold
    split: str = "val"  # "val": the validation fold; "test": the held-out test split (split --holdout)
    out: Path | None = None  # default <run_dir>/eval (val) or <run_dir>/eval_test (test)
    batch_size: int = 64

    def __post_init__(self) -> None:
        _coerce(self)
        if self.run_dir is None:
            raise ConfigError("evaluate needs the run folder (--run-dir)")
        if self.split not in ("val", "test"):
            raise ConfigError("split must be 'val' or 'test'")
        if self.split == "test" and self.fold is not None:
            raise ConfigError("--fold picks a validation fold; it cannot go with --split test")


@dataclass(frozen=True)
class ExportConfig:
    """The run's best checkpoint to the ONNX classifier core loads."""

    run_dir: Path | None = None  # required, unless ensemble is given
    out: Path | None = None  # default <run_dir>/classifier.onnx (ensemble: ensemble.onnx beside the first run)
    cache: Path | None = None  # default: the run's cache
    model_version: str = ""  # default <model>-fold<K>-e<epoch>
    check_crops: int = 16  # real crops from the cache compared between torch and onnxruntime
    ensemble: tuple[str, ...] = ()  # run folders (or glob patterns) whose best checkpoints are averaged in one graph
    tta: bool = False  # also average over the horizontally flipped crop

    def __post_init__(self) -> None:
        _coerce(self)
        if self.run_dir is None and not self.ensemble:
            raise ConfigError("export needs the run folder (--run-dir) or the members of an ensemble (--ensemble)")
        if self.run_dir is not None and self.ensemble:
            raise ConfigError("give --run-dir or --ensemble, not both (a single run is --ensemble RUN_DIR)")
        if self.check_crops < 1:
            raise ConfigError("check_crops must be at least 1")


@dataclass(frozen=True)
class PredictConfig:
    """A folder through core's batch path with an exported model."""

    folder: Path = Path(".")
    model: Path = field(default_factory=default_classifier_path)
    out: Path = Path("predictions.csv")
    recursive: bool = False
    min_face: int = DetectorConfig.min_face_size  # the app's default
    thresholds: tuple[float, float, float] = DetectorConfig.thresholds

    def __post_init__(self) -> None:
        _coerce(self)


@dataclass(frozen=True)
class EvalDetectorConfig:
    """Face detectors scored against face_mask_853's boxes (training/detector_eval.py)."""

    data: Path = Path("../shared/data")  # holds face_mask_853/
    detectors: tuple[Path, ...] = ()  # detector folders (pnet/rnet/onet.onnx); default: the shipped one
    labels: tuple[str, ...] = ()  # a name per detector folder for the report (default: the folder)
    split: str = "heldout"  # heldout, train or all
    min_face: tuple[int, ...] = (DetectorConfig.min_face_size,)  # each value is a setting of its own
    thresholds: tuple[tuple[float, float, float], ...] = (DetectorConfig.thresholds,)  # each triple is a setting of its own
    out: Path = Path("detector_eval.md")  # the markdown report; the CSV goes beside it
    synth: Path | None = None  # also score held-out faces of this `mask-train synth` output (landmarks too)
    synth_faces: int = 600  # at most this many of them

    def __post_init__(self) -> None:
        _coerce(self)
        if self.split not in ("heldout", "train", "all"):
            raise ConfigError("split must be heldout, train or all")
        if self.labels and len(self.labels) != (len(self.detectors) or 1):  # none given: the shipped one
            raise ConfigError("give one label per detector folder")
        if not self.min_face or any(m < 12 for m in self.min_face):
            raise ConfigError("min_face values must be at least 12 px")
        if not self.thresholds or any(not 0.0 <= t <= 1.0 for triple in self.thresholds for t in triple):
            raise ConfigError("thresholds must be triples of numbers in [0, 1]")


@dataclass(frozen=True)
class FinetuneDetectorConfig:
    """MTCNN fine-tuned on masked faces (training/detector_finetune.py)."""

    data: Path = Path("../shared/data")  # holds face_mask_853/ and utkface/
    synth: Path = Path("cache/synth")  # `mask-train synth` output over UTKFace (none: no synthetic faces)
    run_dir: Path = Path("cache/detector_finetune")  # crops, checkpoints, log
    out: Path | None = None  # exported detector folder (default: <run_dir>/mtcnn)
    nets: tuple[str, ...] = ("pnet", "rnet", "onet")
    synth_faces: int = 4000  # synthetic faces used (0: none)
    scenes: int = 0  # face_mask_853 training scenes used (0: all)
    epochs: int = 4
    steps: int = 0  # at most this many steps per epoch (0: a full epoch)
    batch_size: int = 256
    lr: float = 1e-4
    neg_ratio: float = 3.0  # negatives per positive in an epoch (the MTCNN paper: 3)
    seed: int = 0
    threads: int = 2  # torch CPU threads
    resume: bool = False

    def __post_init__(self) -> None:
        _coerce(self)
        if not self.nets or any(n not in ("pnet", "rnet", "onet") for n in self.nets):
            raise ConfigError("nets must be some of pnet, rnet, onet")
        if self.epochs < 1 or self.batch_size < 2 or self.lr <= 0 or self.synth_faces < 0 or self.scenes < 0 or self.steps < 0:
            raise ConfigError("epochs >= 1, batch_size >= 2, lr > 0; synth_faces, scenes and steps >= 0")


@dataclass(frozen=True)
class EdaConfig:
    """The data report (training/eda.py): labels, ages, people, photo sizes, face detection, samples."""

    data: tuple[str, ...] = ()  # dataset specs "KIND=PATH", read as prepare reads them
    cache: Path | None = None  # a prepared cache: its rows when no data is given, detection outcomes, face crops
    out: Path = Path("eda")  # report.html and eda.json
    class_map: dict[str, str] = field(default_factory=dict)  # folders layout, as for prepare
    age_boundary: int = OLD_AGE  # start of the oldest age group
    samples: int = 6  # photos per class in the sample grids
    size_sample: int = 2000  # photos whose pixel size is read (0: every photo)
    seed: int = 0  # which photos the samples are
    open: bool = False  # open the report in the web browser

    def __post_init__(self) -> None:
        _coerce(self)
        if not self.data and self.cache is None:
            raise ConfigError("eda needs datasets (--data KIND=PATH) or a prepared cache (--cache)")
        if self.samples < 0 or self.size_sample < 0:
            raise ConfigError("samples and size_sample must be >= 0")


@dataclass(frozen=True)
class TuneConfig:
    """Hyper-parameter search with Ray Tune (training/tune.py): each trial trains `fold` for up to
    max_epochs with the [train] settings, overridden by the values the search draws from `space`."""

    cache: Path = Path("cache")
    fold: int = 0
    out: Path | None = None  # default <cache>/tune: results.csv, best.toml, ray/ (trials and their runs)
    num_samples: int = 16  # trials
    max_epochs: int = 10  # epochs of a trial that is never stopped
    grace_epochs: int = 2  # ASHA: epochs every trial runs before it may be stopped
    reduction_factor: int = 3  # ASHA: keep the best 1/reduction_factor at each rung
    cpus_per_trial: int = 2
    gpus_per_trial: float = 0.0
    max_concurrent: int = 0  # trials at once (0: as many as the resources allow)
    address: str = ""  # a running Ray cluster ("auto", "ray://head:10001"); empty: start Ray here
    num_cpus: int | None = None  # CPUs of the Ray started here (default: all)
    seed: int = 0  # the search's seed
    space: dict[str, Any] = field(default_factory=dict)  # name -> {loguniform = [a, b]} etc.; empty: the default space

    def __post_init__(self) -> None:
        _coerce(self)
        if self.num_samples < 1 or self.max_epochs < 1 or self.grace_epochs < 1 or self.cpus_per_trial < 1:
            raise ConfigError("num_samples, max_epochs, grace_epochs and cpus_per_trial must be at least 1")
        if self.grace_epochs > self.max_epochs:
            raise ConfigError("grace_epochs cannot exceed max_epochs")
        if self.reduction_factor < 2 or self.gpus_per_trial < 0 or self.max_concurrent < 0:
            raise ConfigError("reduction_factor must be >= 2; gpus_per_trial and max_concurrent >= 0")


SECTIONS: dict[str, type] = {
    "eval-detector": EvalDetectorConfig,
    "finetune-detector": FinetuneDetectorConfig,
    "prepare": PrepareConfig,
    "split": SplitConfig,
    "train": TrainConfig,
    "evaluate": EvaluateConfig,
    "export": ExportConfig,
    "predict": PredictConfig,
    "eda": EdaConfig,
    "tune": TuneConfig,
}


def load_toml(path: str | Path | None) -> dict[str, Any]:
    if path is None:
        return {}
    try:
        with open(path, "rb") as handle:
            return tomllib.load(handle)
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError(f"cannot read config {path}: {exc}") from exc


def make_config(cls: type, toml: dict[str, Any] | None = None, section: str | None = None, **overrides: Any):
    """`cls` from its defaults, the TOML file's top-level keys and `[section]`, then `overrides`."""
    names = {f.name for f in dataclasses.fields(cls)}
    values: dict[str, Any] = {}
    toml = toml or {}
    values.update({k: v for k, v in toml.items() if k in names and k not in SECTIONS})
    if section is not None and isinstance(toml.get(section), dict):
        table = toml[section]
        unknown = sorted(set(table) - names)
        if unknown:
            raise ConfigError(f"[{section}] has unknown settings: {', '.join(unknown)}")
        values.update(table)
    unknown = sorted(set(overrides) - names)
    if unknown:
        raise ConfigError(f"unknown settings: {', '.join(unknown)}")
    values.update(overrides)
    try:
        return cls(**values)
    except TypeError as exc:
        raise ConfigError(str(exc)) from exc


def to_dict(config: Any) -> dict[str, Any]:
    """JSON-friendly: paths as strings, tuples as lists."""
    def plain(value: Any) -> Any:
        if isinstance(value, Path):
            return str(value)
        if isinstance(value, (tuple, list)):
            return [plain(v) for v in value]
        if isinstance(value, dict):
            return {k: plain(v) for k, v in value.items()}
        return value

    return {f.name: plain(getattr(config, f.name)) for f in dataclasses.fields(config)}


def _coerce(config: Any) -> None:
    """Turn TOML/JSON values into the declared types (str -> Path, list -> tuple, int -> float)."""
    hints = typing.get_type_hints(type(config))
    for f in dataclasses.fields(config):
        value = getattr(config, f.name)
        new = _coerce_value(f.name, value, hints[f.name])
        if new is not value:
            object.__setattr__(config, f.name, new)


def _coerce_value(name: str, value: Any, hint: Any) -> Any:
    if value is None:
        return None
    origin = typing.get_origin(hint)
    args = typing.get_args(hint)
    if origin in (types.UnionType, typing.Union):
        inner = [a for a in args if a is not type(None)]
        return _coerce_value(name, value, inner[0])
    try:
        if hint is Path:
            return value if isinstance(value, Path) else Path(value)
        if hint is float and isinstance(value, int) and not isinstance(value, bool):
            return float(value)
        if hint in (int, str) and not isinstance(value, hint):
            raise ConfigError(f"{name} must be of type {hint.__name__}, not {value!r}")
        if hint is bool and not isinstance(value, bool):
            raise ConfigError(f"{name} must be true or false, not {value!r}")
        if origin is tuple:
            items = tuple(value) if not isinstance(value, str) else (value,)
            if args and args[-1] is not Ellipsis:
                if len(items) != len(args):
                    raise ConfigError(f"{name} needs {len(args)} values, got {len(items)}")
                return tuple(_coerce_value(name, v, a) for v, a in zip(items, args))
            return tuple(_coerce_value(name, v, args[0]) for v in items) if args else items
        if origin is dict:
            if not isinstance(value, dict):
                raise ConfigError(f"{name} must be a table, not {value!r}")
            return {str(k): _coerce_value(name, v, args[1]) for k, v in value.items()}
    except (TypeError, ValueError) as exc:
        if isinstance(exc, ConfigError):
            raise
        raise ConfigError(f"{name}: {exc}") from exc
    return value
