"""Settings of the classifier jobs: `train`, `tune`, `evaluate`, `export`, `calibrate`, `soup`, `recover` and `predict`."""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from core.config import DetectorConfig, default_classifier_path
from core.labels import HEADS, OLD_AGE
from core.metadata import CLASS_HEAD
from training.config.base import ConfigError, coerce, setting


#: The out-of-source faces of issue 16 (training/labels/README.md): gender and age by eye, other sources than UTKFace.
OOS_LABELS = Path(__file__).resolve().parents[1] / "labels" / "out_of_source.csv"
OOS_LABELS_HELP = ("out-of-source labels CSV (training/labels/README.md); several are pooled, e.g. out_of_source.csv "
                   "real_val_by_eye.csv")
#: Where that file's photo paths start, as the recipes' ../shared/data (run from the repository root).
OOS_DATA = Path("../shared/data")
#: Where `make dlib-models` unpacks the dlib gender and age networks, the teacher (training.teacher).
DEFAULT_DLIB_DIR = Path(__file__).resolve().parents[2] / ".venv" / "dlib-models"
SAMPLERS = ("random", "weighted", "fair")
SELECT_ON = ("val", "out-of-source", "last")
#: The robust augmentations' probabilities (TrainConfig fields, training.classifier.augment).
ROBUST_PROBABILITIES = ("low_res", "blur", "jpeg", "grayscale", "color_shift", "rotate", "profile", "edge_cut", "occlusion")


def _default_loader_workers() -> int:
    return max(0, min(4, (os.cpu_count() or 1) - 1))


@dataclass(frozen=True)
class TrainConfig:
    """One training run on the cache, validated on fold `fold`."""

    cache: Path = setting(Path("cache"), "cache folder", metavar="DIR")
    run_dir: Path | None = setting(None, "run folder (default: <cache>/runs/<model>_fold<K>)", metavar="DIR")
    fold: int = setting(0, "validation fold", metavar="K")
    run_folds: str = setting("", "train these folds in turn, each in its own run folder (<run-dir>/fold<K>, default "
                             "<cache>/runs/<model>_fold<K>); with --resume finished folds are kept",
                             flags=("--run-folds", "--folds"), metavar="all|K,K")
    model: str = setting("mobilenetv3_large_100", "timm architecture", metavar="NAME")
    weights: str | None = setting(None, "trunk weights: a pretrained trunk's name (efficientnet-lite0-imagenet with "
                                  "--model efficientnet_lite0, efficientnet-lite2-imagenet with --model efficientnet_lite2) "
                                  "or a .pt / .safetensors file; none: random init", metavar="NAME|FILE")
    trunk_input: int | None = setting(None, "enlarge the crop to this many pixels inside the network, before the trunk "
                                      "(the crop itself stays the cache's input size; default: not enlarged)", metavar="PX")
    single_head: bool = setting(False, "one 18-way head instead of three (fully labelled data only)")
    epochs: int = setting(20, "epochs")
    batch_size: int = setting(64, "batch size")
    lr: float = setting(1e-3, "peak learning rate (AdamW, cosine schedule)")
    weight_decay: float = setting(0.05, "AdamW weight decay")
    warmup_epochs: float = setting(1.0, "linear warm-up")
    drop_rate: float = setting(0.2, "dropout before the heads")
    label_smoothing: float = setting(0.1, "label smoothing")
    focal_gamma: float = setting(0.0, "focal loss gamma (0: plain cross-entropy)")
    class_weights: bool = setting(False, "inverse-frequency class weights in the loss")
    sampler: str = setting("random", "weighted: balance the mask·gender·age combinations; fair: draw each (gender, race) "
                           "group of the faces with both about equally, the others (mask-only, race unknown) "
                           "keeping their share", choices=SAMPLERS)
    real_incorrect_weight: float = setting(1.0, "draw each real (not synthetic) wrongly worn photo this many times as often "
                                           "as the sampler would", metavar="W")
    teacher: bool = setting(False, "fill the missing gender / age targets of training photos from <cache>/teacher.csv "
                            "(`mask-train teach`: the dlib networks' confident answers)")
    label_fixes: tuple[Path, ...] | None = setting(None, "CSV(s) of corrected labels for training photos "
                                                   "(training/labels/README.md), applied in turn; validation and test "
                                                   "photos keep the dataset's", metavar="CSV")
    eye_labels: Path | None = setting(None, "CSV of gender / age labels given by eye to training photos that have none "
                                      "(the format of --label-fixes; applied after them, before the teacher)", metavar="CSV")
    head_weights: dict[str, float] = setting(factory=lambda: {h: 1.0 for h in HEADS}, help="loss weight per head",
                                             metavar="HEAD=W")
    age_boundary: int = setting(OLD_AGE, "start of the oldest age group (58 moves 58-59 into 60+)", metavar="YEARS")
    # augmentation
    flip: bool = setting(True, "no horizontal flips", flags=("--no-flip",))
    color_jitter: float = setting(0.3, "brightness/contrast/saturation jitter")
    scale: tuple[float, float] = setting((0.85, 1.15), "random crop side relative to the runtime crop", metavar=("MIN", "MAX"))
    shift: float = setting(0.08, "random crop centre shift (fraction of the side)")
    cutout: float = setting(0.3, "probability of a cut-out square", metavar="P")
    # robust augmentation (issue 16): probabilities per crop, all off by default; training/recipes/robust.toml turns them on
    low_res: float = setting(0.0, "probability of a low-resolution view (shrunk to 0.15-0.5 of the side, enlarged back)", metavar="P")
    blur: float = setting(0.0, "probability of a Gaussian or motion blur", metavar="P")
    jpeg: float = setting(0.0, "probability of JPEG artefacts (quality 8-35)", metavar="P")
    grayscale: float = setting(0.0, "probability of a grayscale view", metavar="P")
    color_shift: float = setting(0.0, "probability of a strong colour cast (per-channel gains 0.6-1.4, gamma)", metavar="P")
    rotate: float = setting(0.0, "probability of an in-plane rotation up to --rotate-degrees", metavar="P")
    rotate_degrees: float = setting(25.0, "largest rotation of --rotate", metavar="DEG")
    profile: float = setting(0.0, "probability of a profile-like crop: face off-centre and narrower", metavar="P")
    edge_cut: float = setting(0.0, "probability of a face cut by the frame edge (a side black or edge-replicated)", metavar="P")
    occlusion: float = setting(0.0, "probability of a hand-like or random blob over the face (besides --cutout)", metavar="P")
    tight_crop: float = setting(0.0, "probability of a photo cut tight around the face: all but about the face box black "
                                "(no hair, ears or background)", metavar="P")
    mixup: float = setting(0.0, "mixup Beta alpha (0: off)", metavar="ALPHA")
    cutmix: float = setting(0.0, "cutmix Beta alpha (0: off)", metavar="ALPHA")
    # run
    patience: int = setting(5, "early stopping: epochs without a better selection score (--select-on)")
    select_on: str = setting("val", "what picks best.pt and stops early: val (the fold's mean macro-F1), out-of-source "
                             "(mean of the out-of-source gender accuracy, age macro-F1 and the fold's mask macro-F1) or last "
                             "(every epoch replaces best.pt, no early stop: the weights training ends with)", choices=SELECT_ON)
    out_of_source: bool = setting(False, "score the out-of-source faces (--oos-labels) after every epoch, logged in metrics.csv "
                                  "beside the validation scores (implied by --select-on out-of-source)")
    oos_labels: tuple[Path, ...] = setting(factory=lambda: (OOS_LABELS,), help=OOS_LABELS_HELP, metavar="CSV")
    oos_data: Path = setting(OOS_DATA, "folder the out-of-source CSV's photo paths are relative to", metavar="DIR")
    seed: int = setting(0, "seed")
    device: str = setting("auto", "device", choices=("auto", "cuda", "mps", "cpu"))
    amp: str = setting("auto", "mixed precision (auto: on CUDA)", choices=("auto", "on", "off"))
    loader_workers: int = setting(factory=_default_loader_workers, help="DataLoader worker processes",
                                  flags=("--loader-workers", "--workers"), metavar="N")
    torch_threads: int | None = setting(None, "torch CPU threads (default: torch's)", flags=("--torch-threads", "--threads"), metavar="N")
    resume: bool = setting(False, "continue the run in --run-dir from its last checkpoint")

    def __post_init__(self) -> None:
        coerce(self)
        if self.epochs < 1 or self.batch_size < 1:
            raise ConfigError("epochs and batch_size must be at least 1")
        if self.fold < 0:
            raise ConfigError("fold must be >= 0")
        if self.trunk_input is not None and not 32 <= self.trunk_input <= 512:
            raise ConfigError(f"trunk_input must be within [32, 512] pixels, not {self.trunk_input}")
        if self.run_folds not in ("", "all") and not all(k.strip().isdigit() for k in self.run_folds.split(",")):
            raise ConfigError(f"run_folds must be 'all' or fold numbers separated by commas, not {self.run_folds!r}")
        if self.patience < 1:
            raise ConfigError("patience must be at least 1")
        if self.teacher and self.single_head:
            raise ConfigError("--teacher fills single labels of three heads; it cannot go with --single-head")
        if self.real_incorrect_weight <= 0:
            raise ConfigError("real_incorrect_weight must be > 0")
        if self.sampler not in SAMPLERS:
            raise ConfigError(f"sampler must be one of {', '.join(SAMPLERS)}")
        if self.select_on not in SELECT_ON:
            raise ConfigError(f"select_on must be one of {', '.join(SELECT_ON)}")
        for name in ("cutout", "tight_crop", *ROBUST_PROBABILITIES):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ConfigError(f"{name} is a probability: it must be within [0, 1]")
        if not 0.0 <= self.rotate_degrees <= 90.0:
            raise ConfigError("rotate_degrees must be within [0, 90]")
        if self.device not in ("auto", "cuda", "mps", "cpu"):
            raise ConfigError("device must be auto, cuda, mps or cpu")
        if self.amp not in ("auto", "on", "off"):
            raise ConfigError("amp must be auto, on or off")
        if not 0.0 <= self.label_smoothing < 1.0:
            raise ConfigError("label_smoothing must be within [0, 1)")
        if not 0.0 < self.scale[0] <= self.scale[1]:
            raise ConfigError("scale must be two increasing positive numbers")
        unknown = set(self.head_weights) - {*HEADS, CLASS_HEAD}
        if unknown:
            raise ConfigError(f"head_weights has unknown heads {sorted(unknown)}")

    @property
    def resolved_run_dir(self) -> Path:
        return self.run_dir or self.cache / "runs" / f"{self.model}_fold{self.fold}"

    @property
    def checks_out_of_source(self) -> bool:
        """Whether each epoch scores the out-of-source faces."""
        return self.out_of_source or self.select_on == "out-of-source"


@dataclass(frozen=True)
class TuneConfig:
    """Hyper-parameter search with Ray Tune (training/classifier/tune.py): each trial trains `fold` for up to
    max_epochs with the [train] settings, overridden by the values the search draws from `space`."""

    cache: Path = setting(Path("cache"), "cache folder", metavar="DIR")
    fold: int = setting(0, "validation fold of every trial", metavar="K")
    out: Path | None = setting(None, "output folder (default: <cache>/tune)", metavar="DIR")
    num_samples: int = setting(16, "trials", metavar="N")
    max_epochs: int = setting(10, "epochs of a trial that is not stopped", metavar="N")
    grace_epochs: int = setting(2, "ASHA: epochs before a trial may be stopped", metavar="N")
    reduction_factor: int = setting(3, "ASHA: keep the best 1/N at each rung", metavar="N")
    cpus_per_trial: int = setting(2, "CPUs per trial (torch threads)", metavar="N")
    gpus_per_trial: float = setting(0.0, "GPUs per trial (fractions share a GPU)", metavar="N")
    max_concurrent: int = setting(0, "trials at once (0: as resources allow)", metavar="N")
    address: str = setting("", "connect to this Ray cluster (auto, ray://head:10001) instead of starting Ray here", metavar="ADDR")
    num_cpus: int | None = setting(None, "CPUs of the Ray started here (default: all)", metavar="N")
    seed: int = setting(0, "search seed")
    space: dict[str, Any] = setting(factory=dict, help="[tune.space] table: name -> {loguniform = [a, b]} etc.; "
                                    "empty: the default space", file_only=True)

    def __post_init__(self) -> None:
        coerce(self)
        if self.num_samples < 1 or self.max_epochs < 1 or self.grace_epochs < 1 or self.cpus_per_trial < 1:
            raise ConfigError("num_samples, max_epochs, grace_epochs and cpus_per_trial must be at least 1")
        if self.grace_epochs > self.max_epochs:
            raise ConfigError("grace_epochs cannot exceed max_epochs")
        if self.reduction_factor < 2 or self.gpus_per_trial < 0 or self.max_concurrent < 0:
            raise ConfigError("reduction_factor must be >= 2; gpus_per_trial and max_concurrent >= 0")


@dataclass(frozen=True)
class TeachConfig:
    """The dlib networks label the cache's real faces that lack gender or age (training.teacher)."""

    cache: Path = setting(Path("cache"), "cache folder", metavar="DIR")
    dlib_dir: Path = setting(DEFAULT_DLIB_DIR, "folder with the dlib networks gender-v1.onnx and age-v1.onnx "
                             "(`make dlib-models` puts them in the default)", metavar="DIR")
    gender_confidence: float = setting(0.95, "give a gender only when the teacher's probability of it is at least P", metavar="P")
    age_confidence: float = setting(0.98, "give an age group only when the teacher's probability of it is at least P", metavar="P")
    min_face: int = setting(24, "faces whose box has a shorter side are not labelled", metavar="PX")
    age_boundary: int = setting(OLD_AGE, "start of the oldest age group (as train's)", metavar="YEARS")
    oos_labels: tuple[Path, ...] = setting(factory=lambda: (OOS_LABELS,), help="out-of-source labels CSV(s): their photos "
                                           "are never labelled, and the teacher is scored on their faces (teacher_check.md)",
                                           metavar="CSV")
    oos_data: Path = setting(OOS_DATA, "folder the out-of-source CSV's photo paths are relative to", metavar="DIR")
    twins: int = setting(0, "draw K synthetic masks on each bare face the teacher labels (masked twins; "
                         "train --teacher trains on those of its training photos)", metavar="K")
    under_nose: float = setting(0.5, "share of the wrongly worn twins drawn just under the nose tip (as synth --under-nose)",
                                metavar="SHARE")
    seed: int = setting(0, "seed of the twins' masks")

    def __post_init__(self) -> None:
        coerce(self)
        if self.twins < 0:
            raise ConfigError("twins must be 0 or more")
        if not 0.0 <= self.under_nose <= 1.0:
            raise ConfigError("under_nose is a share: it must be within [0, 1]")
        for name in ("gender_confidence", "age_confidence"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ConfigError(f"{name} is a probability: it must be within [0, 1]")
        if self.min_face < 1:
            raise ConfigError("min_face must be at least 1")


@dataclass(frozen=True)
class EvaluateConfig:
    """Scores a run (its best checkpoint, or an exported ONNX file) on its validation fold or the test split."""

    run_dir: Path | None = setting(None, "run folder", metavar="DIR")
    cache: Path | None = setting(None, "cache folder (default: the run's)", metavar="DIR")
    onnx: Path | None = setting(None, "evaluate this exported model instead of the checkpoint", metavar="FILE")
    fold: int | None = setting(None, "fold (default: the run's validation fold)", metavar="K")
    subset: str = setting("val", "val: the validation fold; test: the held-out test split (split --holdout)",
                          flags=("--subset", "--split"), choices=("val", "test"))
    out: Path | None = setting(None, "output folder (default: <run>/eval, or <run>/eval_test for --split test)", metavar="DIR")
    batch_size: int = setting(64, "batch size")
    out_of_source: bool = setting(False, "also score the out-of-source faces (--oos-labels): gender accuracy and age "
                                  "macro-F1, bare vs masked, with counts (out_of_source.md)")
    oos_labels: tuple[Path, ...] = setting(factory=lambda: (OOS_LABELS,), help=OOS_LABELS_HELP, metavar="CSV")
    oos_data: Path = setting(OOS_DATA, "folder the out-of-source CSV's photo paths are relative to", metavar="DIR")
    checked_masks: tuple[Path, ...] = setting((), "CSV(s) of mask states checked by eye for the scored real photos "
                                              "(training/labels/mask_val_by_eye.csv, mask_test_by_eye.csv): the real-photo "
                                              "mask head is also scored against them, next to the dataset's labels",
                                              metavar="CSV")

    def __post_init__(self) -> None:
        coerce(self)
        if self.run_dir is None:
            raise ConfigError("evaluate needs the run folder (--run-dir)")
        if self.subset not in ("val", "test"):
            raise ConfigError("subset must be 'val' or 'test'")
        if self.subset == "test" and self.fold is not None:
            raise ConfigError("--fold picks a validation fold; it cannot go with --split test")


@dataclass(frozen=True)
class ExportConfig:
    """The run's best checkpoint to the ONNX classifier core loads."""

    run_dir: Path | None = setting(None, "run folder", metavar="DIR")
    ensemble: tuple[str, ...] = setting((), "several runs averaged in one graph (instead of --run-dir)", metavar="RUN_DIR")
    tta: bool = setting(False, "also average over the horizontally flipped crop")
    out: Path | None = setting(None, "output file (default: <run>/classifier.onnx; ensemble: ensemble.onnx beside the first run)",
                               metavar="FILE")
    cache: Path | None = setting(None, "cache folder (default: the run's; an ensemble member's own cache wins where "
                                       "it is there, since it says the crop size the member takes)", metavar="DIR")
    model_version: str = setting("", "version string (default: <model>-fold<K>-e<epoch>)", metavar="TEXT")
    check_crops: int = setting(16, "cached crops compared between torch and onnxruntime", metavar="N")
    age_prior: float = setting(0.0, "correct the age head of runs trained with class weights towards the training photos' "
                                    "age frequencies: 0 off, 1 in full (mask-train calibrate chooses it)", metavar="TAU")
    half_weights: bool = setting(False, "store the weights as float16: half the file, same speed (onnxruntime computes in float32)")
    member_heads: tuple[str, ...] = setting((), "ensemble members that feed only some heads, e.g. runs/a=mask or runs/b=gender,age "
                                                "(members not named feed every head)", metavar="RUN_DIR=HEADS")

    def __post_init__(self) -> None:
        coerce(self)
        if self.member_heads and not self.ensemble:
            raise ConfigError("--member-heads restricts members of an ensemble: give them with --ensemble")
        if not 0.0 <= self.age_prior <= 1.0:
            raise ConfigError(f"age_prior must be in 0..1, got {self.age_prior}")
        if self.run_dir is None and not self.ensemble:
            raise ConfigError("export needs the run folder (--run-dir) or the members of an ensemble (--ensemble)")
        if self.run_dir is not None and self.ensemble:
            raise ConfigError("give --run-dir or --ensemble, not both (a single run is --ensemble RUN_DIR)")
        if self.check_crops < 1:
            raise ConfigError("check_crops must be at least 1")


@dataclass(frozen=True)
class CalibrateConfig:
    """Chooses --age-prior for an exported file on the validation fold and the out-of-source faces."""

    onnx: Path | None = setting(None, "an exported classifier without the correction (export --age-prior 0)", metavar="FILE")
    cache: Path | None = setting(None, "cache folder of the runs behind the file", metavar="DIR")
    fold: int = setting(0, "validation fold (the runs' own)", metavar="K")
    step: float = setting(0.05, "τ is tried from 0 to 1 in these steps", metavar="D")
    window: float = setting(0.1, "choose the τ whose neighbours within this distance score best on average "
                                 "(0: the best τ alone)", metavar="D")
    out: Path | None = setting(None, "report (default: <file>.calibrate.md beside the file)", metavar="FILE")
    batch_size: int = setting(64, "batch size")
    oos_labels: tuple[Path, ...] = setting(factory=lambda: (OOS_LABELS,), help=OOS_LABELS_HELP, metavar="CSV")
    oos_data: Path = setting(OOS_DATA, "folder the out-of-source CSV's photo paths are relative to", metavar="DIR")

    def __post_init__(self) -> None:
        coerce(self)
        if self.onnx is None or self.cache is None:
            raise ConfigError("calibrate needs the exported file (--onnx) and the runs' cache (--cache, or cache in --config)")
        if not 0.0 < self.step <= 1.0:
            raise ConfigError(f"step must be in (0, 1], got {self.step}")
        if not 0.0 <= self.window <= 1.0:
            raise ConfigError(f"window must be in [0, 1], got {self.window}")


@dataclass(frozen=True)
class SoupConfig:
    """Runs of one recipe (same trunk, same seed) averaged weight by weight into one network."""

    runs: tuple[str, ...] = setting((), "run folders to average (their best checkpoints)", metavar="RUN_DIR", positional=True)
    out: Path | None = setting(None, "run folder to write the soup to", metavar="DIR")
    cache: Path | None = setting(None, "cache folder (default: the first run's)", metavar="DIR")
    bn_crops: int = setting(3000, "training crops that measure the BatchNorm statistics again", metavar="N")
    batch_size: int = setting(64, "batch size")
    seed: int = setting(0, "which training crops are drawn")

    def __post_init__(self) -> None:
        coerce(self)
        if len(self.runs) < 2:
            raise ConfigError("a soup needs at least two runs")
        if self.out is None:
            raise ConfigError("soup needs the folder to write to (--out)")
        if any(Path(self.out).resolve() == Path(r).resolve() for r in self.runs):
            raise ConfigError("--out must not be one of the runs")
        if self.bn_crops < 1:
            raise ConfigError("bn_crops must be at least 1")


@dataclass(frozen=True)
class RecoverConfig:
    """The networks of an exported classifier written back as run folders (the recipe's [train] settings)."""

    onnx: Path | None = setting(None, "classifier file written by `mask-train export` (e.g. assets/models/classifier.onnx)",
                                metavar="FILE")
    out: Path | None = setting(None, "folder to write one run folder per network into", metavar="DIR")
    cache: Path | None = setting(None, "cache folder the run folders name (default: the recipe's)", metavar="DIR")
    member_caches: tuple[Path, ...] = setting((), "caches cut at other crop sizes or margins (mask-train prepare --input-size, "
                                              "--crop-margin): a network trained on one of them names it (by the geometry its "
                                              "prepare.json records)",
                                              metavar="DIR")
    check_crops: int = setting(32, "cached crops compared between the file and the recovered networks", metavar="N")

    def __post_init__(self) -> None:
        coerce(self)
        if self.onnx is None or self.out is None:
            raise ConfigError("recover needs the file (--onnx) and the folder to write to (--out)")
        if not Path(self.onnx).is_file():
            raise ConfigError(f"--onnx {self.onnx}: no such file")
        if self.check_crops < 1:
            raise ConfigError("check_crops must be at least 1")


@dataclass(frozen=True)
class PredictConfig:
    """A folder through core's batch path with an exported model."""

    folder: Path = setting(Path("."), "folder of photos", metavar="DIR", positional=True)
    model_file: Path = setting(factory=default_classifier_path, help="exported classifier", flags=("--model-file", "--model"),
                               metavar="FILE")
    out: Path = setting(Path("predictions.csv"), "CSV to write", metavar="FILE")
    recursive: bool = setting(False, "walk subfolders", flags=("-r", "--recursive"))
    min_face: int = setting(DetectorConfig.min_face_size, "smallest face the detector looks for", metavar="PX")
    thresholds: tuple[float, float, float] = setting(DetectorConfig.thresholds, "detector thresholds", metavar=("P", "R", "O"))

    def __post_init__(self) -> None:
        coerce(self)
