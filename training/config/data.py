"""Settings of the data jobs: `prepare`, `split` and `eda` (training.data)."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from core.config import DetectorConfig
from core.crop import inner_offset
from core.labels import OLD_AGE
from training.config.base import ConfigError, coerce, setting

DATA_HELP = "a dataset (repeatable)"
CLASS_MAP_HELP = ("folders layout: map a class folder to wear, incorrect, not_wear or skip (repeatable; defaults: "
                  "with_mask=wear without_mask=not_wear incorrect_mask=incorrect mask_weared_incorrect=incorrect)")


@dataclass(frozen=True)
class PrepareConfig:
    """Face detection and cropping into the cache.

    The cached crop is `context` × the classifier's crop, at the same pixel scale: its centre
    input_size × input_size square is the crop the runtime makes (core.crop.crop_face with
    crop_margin at input_size), and the rim is room for the random-resized-crop augmentation.
    """

    data: tuple[str, ...] = setting((), DATA_HELP, flags=("--data",), metavar="KIND=PATH", repeat=True)
    cache: Path = setting(Path("cache"), "cache folder", metavar="DIR")
    input_size: int = setting(224, "classifier input size", metavar="PX")
    crop_margin: float = setting(0.2, "crop margin (core.crop.square_box), as at runtime", metavar="M")
    context: float = setting(1.25, "cached crop = X × the runtime crop, for augmentation room", metavar="X")
    inner_crop: tuple[float, float] | None = setting(None, "nest a narrower crop (PX at margin M, the same pixels per face) in "
                                                   "the centre of each runtime crop, cut on its own as the app cuts it for a "
                                                   "file whose metadata names it (core.crop.crop_face inner): the cache of a "
                                                   "network trained on wider crops, to judge it in an ensemble with networks "
                                                   "trained on the narrower ones", metavar=("PX", "M"))
    min_face: int = setting(DetectorConfig.min_face_size, "smallest face the detector looks for", metavar="PX")
    min_box: int = setting(10, "known face boxes with a shorter side are skipped", metavar="PX")
    thresholds: tuple[float, float, float] = setting(DetectorConfig.thresholds, "detector thresholds", metavar=("P", "R", "O"))
    no_face: str = setting("pad", "no face found: pad the border and retry, or skip", choices=("pad", "skip"))
    worker_threads: int = setting(2, "decoding and detection threads", flags=("--worker-threads", "--workers"), metavar="N")
    class_map: dict[str, str] = setting(factory=dict, help=CLASS_MAP_HELP, flags=("--class-map",), metavar="FOLDER=LABEL", repeat=True)
    strict: bool = setting(False, "refuse to run when a dataset reports errors")

    def __post_init__(self) -> None:
        coerce(self)
        if not self.data:
            raise ConfigError("prepare needs at least one dataset (--data KIND=PATH)")
        if self.input_size < 16:
            raise ConfigError("input_size must be at least 16")
        if not 0.0 <= self.crop_margin <= 1.0:
            raise ConfigError("crop_margin must be within 0..1")
        if self.inner_crop is not None:
            size, margin = self.inner_crop
            if size != int(size):
                raise ConfigError(f"inner_crop: the size must be whole pixels, not {size}")
            object.__setattr__(self, "inner_crop", (int(size), margin))  # (PX, M) as core.crop takes it
            try:
                inner_offset(self.input_size, self.crop_margin, *self.inner_crop)
            except ValueError as exc:
                raise ConfigError(f"inner_crop: {exc}") from exc
        if not 1.0 <= self.context <= 2.0:
            raise ConfigError("context must be within 1..2")
        if self.no_face not in ("pad", "skip"):
            raise ConfigError("no_face must be 'pad' or 'skip'")
        if self.worker_threads < 1:
            raise ConfigError("worker_threads must be at least 1")
        if self.min_box < 1:
            raise ConfigError("min_box must be at least 1")


@dataclass(frozen=True)
class SplitConfig:
    """Person-level stratified k-fold (after an optional held-out test split), written once to <cache>/folds.csv."""

    cache: Path = setting(Path("cache"), "cache folder", metavar="DIR")
    num_folds: int = setting(5, "number of folds", flags=("--num-folds", "--folds"), metavar="K")
    seed: int = setting(0, "shuffling seed")
    age_boundary: int = setting(OLD_AGE, "start of the oldest age group, for the strata", metavar="YEARS")
    holdout: float = setting(0.0, "fraction of people held out as the test split (0: none)", metavar="F")

    def __post_init__(self) -> None:
        coerce(self)
        if self.num_folds < 2:
            raise ConfigError("num_folds must be at least 2")
        if not 0.0 <= self.holdout < 1.0:
            raise ConfigError("holdout must be within [0, 1)")


@dataclass(frozen=True)
class EdaConfig:
    """The data report (training/data/eda.py): labels, ages, people, photo sizes, face detection, samples."""

    data: tuple[str, ...] = setting((), DATA_HELP, flags=("--data",), metavar="KIND=PATH", repeat=True)
    cache: Path | None = setting(None, "prepared cache: detection outcome and face crops", metavar="DIR")
    out: Path = setting(Path("eda"), "output folder (report.html, eda.json)", metavar="DIR")
    class_map: dict[str, str] = setting(factory=dict, help="folders layout, as for prepare", flags=("--class-map",),
                                        metavar="FOLDER=LABEL", repeat=True)
    age_boundary: int = setting(OLD_AGE, "start of the oldest age group", metavar="YEARS")
    samples: int = setting(6, "sample photos per class", metavar="N")
    size_sample: int = setting(2000, "photos whose pixel size is read (0: all)", metavar="N")
    seed: int = setting(0, "which photos are sampled")
    open: bool = setting(False, "open the report in the web browser")

    def __post_init__(self) -> None:
        coerce(self)
        if not self.data and self.cache is None:
            raise ConfigError("eda needs datasets (--data KIND=PATH) or a prepared cache (--cache)")
        if self.samples < 0 or self.size_sample < 0:
            raise ConfigError("samples and size_sample must be >= 0")
