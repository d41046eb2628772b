"""`calibrate`: how much of the age prior correction (training.classifier.prior) an exported file
should get, chosen as the rest of issue 16's choices are: not on the training source alone.

The file's age probabilities are computed once on the validation fold (in source) and on the
out-of-source faces; each τ from 0 to 1 is scored by the mean of the two age macro-F1s. The
out-of-source figure moves in steps (a handful of its faces are over 60), so the τ to export with is
the one whose neighbourhood scores best: the mean score of the τs within --window of it (the smaller
τ on a tie). The report lists every τ with its in- and out-of-source figures (bare vs masked) side by
side. The test split is never read.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from core.atomic import atomic_open
from core.classifier import Classifier
from training.classifier import oos_check, prior
from training.classifier.evaluate import fold_head
from training.classifier.metrics import macro_f1
from training.config import CalibrateConfig, ConfigError
from training.data.cache import Cache

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Trial:
    """One τ's age macro-F1 on the validation fold and on the out-of-source faces."""

    tau: float
    val_f1: float
    oos_f1: float | None
    oos_bare: float | None
    oos_masked: float | None

    @property
    def score(self) -> float:
        return self.val_f1 if self.oos_f1 is None else (self.val_f1 + self.oos_f1) / 2


@dataclass(frozen=True)
class Calibration:
    trials: list[Trial]
    best: Trial
    prior: np.ndarray
    report: Path


def taus(step: float) -> list[float]:
    count = int(round(1.0 / step))
    return sorted({round(min(1.0, i * step), 4) for i in range(count + 1)} | {1.0})


def smoothed(trials: list[Trial], window: float) -> list[float]:
    """Each trial's score averaged with those of the τs within `window` of it (0: its own score)."""
    return [float(np.mean([o.score for o in trials if abs(o.tau - t.tau) <= window + 1e-9])) for t in trials]


def choose(trials: list[Trial], window: float = 0.0) -> Trial:
    """The best score over the τs within `window`; on a tie the smaller correction."""
    scores = smoothed(trials, window)
    return max(zip(trials, scores), key=lambda pair: (round(pair[1], 9), -pair[0].tau))[0]


def _figure(value: float | None) -> str:
    return "–" if value is None else f"{value:.4f}"


def _report(config: CalibrateConfig, calibration_prior: np.ndarray, trials: list[Trial], best: Trial, val_n: int, oos_text: str) -> str:
    lines = [f"# Age prior correction for {config.onnx.name}", "",
             f"Training prior of the age groups (<30, 30-59, 60+): {', '.join(f'{p:.3f}' for p in calibration_prior)}.",
             f"Validation fold {config.fold} ({val_n} faces with an age); {oos_text}.", "",
             f"Chosen: the best mean score of the τs within {config.window:g} of it (the smaller τ on a tie).", "",
             f"| τ | validation age F1 | out-of-source age F1 | bare | masked | score (mean) | score within {config.window:g} |",
             "|---|---|---|---|---|---|---|"]
    for t, near in zip(trials, smoothed(trials, config.window)):
        mark = " **chosen**" if t is best else ""
        lines.append(f"| {t.tau:g}{mark} | {t.val_f1:.4f} | {_figure(t.oos_f1)} | {_figure(t.oos_bare)} | {_figure(t.oos_masked)} "
                     f"| {t.score:.4f} | {near:.4f} |")
    lines += ["", f"Export with `mask-train export ... --age-prior {best.tau:g}`."]
    return "\n".join(lines) + "\n"


def calibrate(config: CalibrateConfig, progress: bool = True) -> Calibration:
    """Score every τ on the validation fold and the out-of-source faces; write the report."""
    classifier = Classifier(config.onnx)
    found = prior.read(classifier.metadata.extra)
    if found is None:
        raise ConfigError(f"{config.onnx.name} records no age prior: export it again with this version of mask-train "
                          "(runs trained with class weights or the weighted sampler)")
    training_prior, applied = found
    if applied:
        raise ConfigError(f"{config.onnx.name} is already corrected (τ = {applied:g}): calibrate the file exported with --age-prior 0")
    cache = Cache(config.cache)
    geometry = cache.geometry_for(classifier.metadata.crop_spec, config.onnx.name)
    val_probs, truth = fold_head(classifier, cache, config.fold, "age", config.batch_size, progress)
    oos = oos_check.load_set(config.oos_labels, config.oos_data, geometry.crop_spec, progress)
    oos_probs = oos_check.predict_onnx(classifier, oos.crops, config.batch_size)

    trials = []
    for tau in taus(config.step):
        bias = prior.logit_bias(training_prior, tau)
        val_f1 = macro_f1(truth, np.argmax(prior.adjust(val_probs, bias), axis=1), len(training_prior))
        figures = oos_check.figures(oos, oos_check.verdicts("", {**oos_probs, "age": prior.adjust(oos_probs["age"], bias)}))
        values = [figures[f"age macro-F1, {part}"].value for part in ("all", "bare", "masked")]
        trials.append(Trial(tau, val_f1, *values))
    best = choose(trials, config.window)
    out = config.out or config.onnx.with_suffix(".calibrate.md")
    with atomic_open(out, "w", encoding="utf-8") as handle:
        handle.write(_report(config, training_prior, trials, best, len(truth), oos.describe()))
    none = trials[0]
    log.info("age prior correction: τ = %g (age macro-F1 on the validation fold %.4f -> %.4f, out of source %s -> %s); report %s",
             best.tau, none.val_f1, best.val_f1, _figure(none.oos_f1), _figure(best.oos_f1), out)
    return Calibration(trials, best, training_prior, out)
