"""Does a candidate classifier beat the shipped one under issue 16's model-choice rule?

Every figure the rule reads, for every `--model` in the same run (the first is the baseline, by
default the shipped assets/models/classifier.onnx), on faces the test split never holds:

* gender: accuracy on the validation fold of the cache and on the pooled real faces labelled by
  eye (out_of_source.csv + real_val_by_eye.csv); their mean;
* age: macro-F1 on the same two sets; their mean;
* the validation fold's real photos, mask head, against the mask states checked by eye
  (training/labels/mask_val_by_eye.csv): faces right, macro-F1, wrongly worn found;
* the out-of-source faces (out_of_source.csv, 404), mask head: faces right against the dataset's
  states (rule 1) and against the checked mask states where mask_val_by_eye.csv or
  mask_test_by_eye.csv names the face (rule 2: out_of_source.csv keeps the dataset's states, and
  some of its mask_web faces filed "worn" show the nose out: a model that says so would lose a face).

A candidate passes rule 2 (the default; written down 2026-12-06 before any figure of the candidates
it first judged) when both means are >= the baseline's with at least one higher; the validation
fold's real-photo mask macro-F1 against the checked states (issue 16's target figure, on faces the
test split never holds) is >= the baseline's; its real faces right (checked) are not fewer by more
than 3; and the out-of-source mask answers right against the checked states are not fewer by more
than 1. Rule 1, which chose 0.9 to 0.12 (assets/models/MODEL_CARD.md, "Where the gain comes from"),
guarded faces right only (slack 1 each, out of source on the dataset's states): a candidate that
traded a few worn answers for found wrongly worn faces failed it while raising the target figure,
so rule 2 guards the macro-F1 and lets the counts move by a few faces. `--rule 1` still gives the
old verdict. Rule 3 (written 2026-12-06, session 31, before any figure of the candidates it is for)
judges a candidate that changes only the mask head (a member added with `export --member-heads
RUN=mask`): its gender and age figures are the baseline's by construction, so "one mean higher" can
never hold; instead both means must not drop and the validation fold's real-photo mask macro-F1
(checked) must be higher, with rule 2's slack on the counts. The script only does the counting that
was done by hand from `mask-train evaluate` and bench/out_of_source.py (same figures: 0.12's file
against itself gives 2,670 / 550, 0.7304 / 0.8087, 1,068 and 398, as its model card says). The test split is never read. Export each candidate with
its calibrated τ first (`mask-train export --ensemble ... --age-prior τ`).

Each model is scored on the crops cut as it takes them (its input size and crop margin): with models
of two crops (0.15 takes 112 px at margin 0.2, a candidate with a network trained on 160 px crops
takes 160, one with a network trained on wider crops 140 px at 0.375 around the 112 px crop nested in
it), give a cache of each (`--cache cache/robust_un --cache cache/robust_160`, the same faces and
folds cut two ways; `prepare --inner-crop` cuts nested ones).

    .venv/bin/python bench/candidate_rule.py --model CANDIDATE.onnx [--model ANOTHER.onnx]
        [--baseline FILE] [--cache DIR [--cache DIR]] [--fold K] [--rule 1|2|3] [--out report.md]
"""
from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

os.environ.setdefault("ORT_DISABLE_TELEMETRY", "1")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402

from bench.model_probe import POOLED, REPO  # noqa: E402
from core.atomic import atomic_open  # noqa: E402
from core.classifier import Classifier, ClassifierLoadError  # noqa: E402
from core.crop import CropSpec  # noqa: E402
from core.labels import HEADS, LABEL_NAMES, Mask  # noqa: E402
from training.classifier import oos_check  # noqa: E402
from training.classifier.dataset import is_synthetic, target_matrix  # noqa: E402
from training.classifier.evaluate import predict_onnx  # noqa: E402
from training.classifier.fixes import checked_mask_states, checked_masks  # noqa: E402
from training.classifier.folds import split_faces  # noqa: E402
from training.classifier.metrics import IGNORE, macro_f1  # noqa: E402
from training.classifier.out_of_source import DEFAULT_LABELS, LabelledFace, read_labels  # noqa: E402
from training.config import ConfigError  # noqa: E402
from training.data.cache import Cache, CachedFace  # noqa: E402

CHECKED_VAL = REPO / "training/labels/mask_val_by_eye.csv"
CHECKED_BOTH = (CHECKED_VAL, REPO / "training/labels/mask_test_by_eye.csv")


@dataclass(frozen=True)
class RuleFigures:
    """What the rule reads of one model (counts, so that "by more than one face" can be judged)."""

    name: str
    val_gender_right: int
    val_gender_n: int
    pooled_gender_right: int
    pooled_gender_n: int
    val_age_f1: float
    pooled_age_f1: float
    real_mask_right: int
    real_mask_n: int
    real_mask_f1: float
    wrongly_worn_found: int
    wrongly_worn_n: int
    oos_mask_right: int
    oos_mask_n: int
    oos_mask_right_checked: int = 0

    @property
    def gender_mean(self) -> float:
        return (self.val_gender_right / self.val_gender_n + self.pooled_gender_right / self.pooled_gender_n) / 2

    @property
    def age_mean(self) -> float:
        return (self.val_age_f1 + self.pooled_age_f1) / 2


@dataclass(frozen=True)
class Rule:
    """The guards of one model-choice rule besides "both means >=": what must rise, and what may fall how far."""

    val_slack: int  # validation real faces right (checked) may be fewer by this many
    oos_slack: int  # out-of-source mask answers right may be fewer by this many
    oos_checked: bool  # count the out-of-source answers against the checked states
    guard_f1: bool  # the validation real-photo mask macro-F1 (checked) may not drop
    gain_on_mask: bool = False  # that macro-F1 must rise (instead of one mean; a rise implies the guard)


RULES = {
    1: Rule(val_slack=1, oos_slack=1, oos_checked=False, guard_f1=False),  # 0.9 to 0.12
    2: Rule(val_slack=3, oos_slack=1, oos_checked=True, guard_f1=True),  # from 2026-12-06
    3: Rule(val_slack=3, oos_slack=1, oos_checked=True, guard_f1=False, gain_on_mask=True),  # mask-head members
}


def verdict(candidate: RuleFigures, baseline: RuleFigures, rule: int = 2) -> tuple[bool, list[str]]:
    """Whether `candidate` passes `rule` against `baseline`, and why not (empty when it passes)."""
    guards = RULES[rule]
    why: list[str] = []
    if candidate.gender_mean < baseline.gender_mean:
        why.append(f"gender mean {candidate.gender_mean:.5f} < {baseline.gender_mean:.5f}")
    if candidate.age_mean < baseline.age_mean:
        why.append(f"age mean {candidate.age_mean:.5f} < {baseline.age_mean:.5f}")
    if guards.gain_on_mask:
        if candidate.real_mask_f1 <= baseline.real_mask_f1:
            why.append(f"validation real photos mask macro-F1 (checked) {candidate.real_mask_f1:.4f} is not higher than {baseline.real_mask_f1:.4f}")
    elif candidate.gender_mean == baseline.gender_mean and candidate.age_mean == baseline.age_mean:
        why.append("neither mean is higher")
    if guards.guard_f1 and candidate.real_mask_f1 < baseline.real_mask_f1:
        why.append(f"validation real photos mask macro-F1 (checked) {candidate.real_mask_f1:.4f} < {baseline.real_mask_f1:.4f}")
    if candidate.real_mask_right < baseline.real_mask_right - guards.val_slack:
        why.append(f"validation real photos right (checked) {candidate.real_mask_right} < {baseline.real_mask_right} - {guards.val_slack}")
    oos, oos_base, states = ((candidate.oos_mask_right_checked, baseline.oos_mask_right_checked, "checked states")
                             if guards.oos_checked else (candidate.oos_mask_right, baseline.oos_mask_right, "dataset states"))
    if oos < oos_base - guards.oos_slack:
        why.append(f"out-of-source mask right ({states}) {oos} < {oos_base} - {guards.oos_slack}")
    return not why, why


def checked_states(faces: Sequence[LabelledFace], *paths: Path) -> list[str]:
    """Each out-of-source face's mask state name, the checked one where a check file names it
    (training.classifier.fixes.checked_mask_states, as evaluate's checked_masks)."""
    states = [face.mask for face in faces]
    for j, mask in checked_mask_states([(face.path, face.box) for face in faces], *paths).items():
        states[j] = LABEL_NAMES["mask"][mask]
    return states


def _right(probs: np.ndarray, truth: np.ndarray) -> tuple[int, int]:
    known = truth != IGNORE
    return int((np.argmax(probs[known], axis=1) == truth[known]).sum()), int(known.sum())


@dataclass(frozen=True)
class RuleFaces:
    """The faces every model is scored on, read and cropped once per run."""

    val_faces: list[CachedFace]
    pooled: oos_check.OutOfSourceSet  # the real faces by eye, out_of_source.csv's among them
    oos_rows: list[int]  # the pooled faces that come from out_of_source.csv
    oos_checked: list[str]  # their mask states, checked where a check file names them

    @classmethod
    def read(cls, cache: Cache, fold: int, data_root: Path) -> RuleFaces:
        geometry = cache.read_info().geometry
        _, val_faces = split_faces(cache, fold)
        pooled = oos_check.load_set(POOLED, data_root, geometry.crop_spec)
        wanted = {(face.path, face.box) for face in read_labels(DEFAULT_LABELS)}
        rows = [i for i, face in enumerate(pooled.faces) if (face.path, face.box) in wanted]
        return cls(val_faces, pooled, rows, checked_states([pooled.faces[i] for i in rows], *CHECKED_BOTH))


def measure(path: Path, faces: RuleFaces, batch_size: int, progress: bool, classifier: Classifier | None = None) -> RuleFigures:
    """The rule's figures for one exported classifier (`classifier`: the file already opened)."""
    classifier = classifier or Classifier(path)
    boundary = classifier.metadata.age_boundary
    labels = target_matrix(faces.val_faces, boundary, False)
    probs = predict_onnx(classifier, faces.val_faces, batch_size, progress)
    gender, age, mask = (list(HEADS).index(h) for h in ("gender", "age", "mask"))
    val_gender_right, val_gender_n = _right(probs["gender"], labels[:, gender])
    aged = labels[:, age] != IGNORE
    val_age_f1 = macro_f1(labels[aged, age], np.argmax(probs["age"][aged], axis=1), len(LABEL_NAMES["age"]))

    checked = target_matrix(checked_masks(faces.val_faces, CHECKED_VAL)[0], boundary, False)[:, mask]
    real = np.array([not is_synthetic(f) for f in faces.val_faces], dtype=bool) & (checked != IGNORE)
    real_pred = np.argmax(probs["mask"][real], axis=1)
    real_truth = checked[real]
    wrongly = real_truth == Mask.INCORRECT

    pooled = faces.pooled
    said = oos_check.verdicts(path.name, oos_check.predict_onnx(classifier, pooled.crops, batch_size))
    pooled_figures = oos_check.figures(pooled, said)
    pooled_gender = pooled_figures["gender accuracy, all"]
    oos_said = [said.mask[i] for i in faces.oos_rows]
    return RuleFigures(
        name=path.name,
        val_gender_right=val_gender_right, val_gender_n=val_gender_n,
        pooled_gender_right=int(round((pooled_gender.value or 0.0) * pooled_gender.n)), pooled_gender_n=pooled_gender.n,
        val_age_f1=val_age_f1, pooled_age_f1=float(pooled_figures["age macro-F1, all"].value or 0.0),
        real_mask_right=int((real_pred == real_truth).sum()), real_mask_n=int(real.sum()),
        real_mask_f1=macro_f1(real_truth, real_pred, len(LABEL_NAMES["mask"])),
        wrongly_worn_found=int((real_pred[wrongly] == Mask.INCORRECT).sum()), wrongly_worn_n=int(wrongly.sum()),
        oos_mask_right=sum(pooled.faces[i].mask == m for i, m in zip(faces.oos_rows, oos_said)), oos_mask_n=len(faces.oos_rows),
        oos_mask_right_checked=sum(truth == m for truth, m in zip(faces.oos_checked, oos_said)),
    )


def caches_by_crop(caches: Sequence[Cache]) -> dict[CropSpec, Cache]:
    """The caches by the crop they were cut at; two cut alike are an error (which would count?)."""
    found: dict[CropSpec, Cache] = {}
    for cache in caches:
        key = cache.read_info().geometry.crop_spec
        if key in found:
            raise ConfigError(f"--cache {found[key].root} and {cache.root} are both cut at {key}: give one")
        found[key] = cache
    return found


def table(models: list[RuleFigures], rule: int = 2) -> str:
    baseline = models[0]
    rows = [
        ("gender, validation fold", lambda m: f"{m.val_gender_right} / {m.val_gender_n}"),
        ("gender, pooled real faces by eye", lambda m: f"{m.pooled_gender_right} / {m.pooled_gender_n}"),
        ("gender mean", lambda m: f"{m.gender_mean:.5f}"),
        ("age macro-F1, validation fold / pooled", lambda m: f"{m.val_age_f1:.4f} / {m.pooled_age_f1:.4f}"),
        ("age mean", lambda m: f"{m.age_mean:.5f}"),
        ("validation real photos, mask right (checked)", lambda m: f"{m.real_mask_right} / {m.real_mask_n}"),
        ("  mask macro-F1 (checked), wrongly worn found", lambda m: f"{m.real_mask_f1:.3f}, {m.wrongly_worn_found} / {m.wrongly_worn_n}"),
        ("out of source, mask right (dataset states; rule 1)", lambda m: f"{m.oos_mask_right} / {m.oos_mask_n}"),
        ("  the same, checked states where checked (rule 2)", lambda m: f"{m.oos_mask_right_checked} / {m.oos_mask_n}"),
    ]
    lines = ["| | " + " | ".join(f"{m.name}{' (baseline)' if i == 0 else ''}" for i, m in enumerate(models)) + " |",
             "|---|" + "---|" * len(models)]
    lines += [f"| {label} | " + " | ".join(cell(m) for m in models) + " |" for label, cell in rows]
    lines.append("")
    for m in models[1:]:
        passed, why = verdict(m, baseline, rule)
        lines.append(f"- {m.name}, rule {rule}: {'PASSES' if passed else 'fails: ' + '; '.join(why)}")
    return "\n".join(lines) + "\n"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="bench/candidate_rule.py", description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", action="append", type=Path, required=True, metavar="FILE", help="a candidate .onnx (repeatable)")
    parser.add_argument("--baseline", type=Path, default=REPO / "assets/models/classifier.onnx", help="the baseline (default: the shipped model)")
    parser.add_argument("--cache", type=Path, action="append", metavar="DIR",
                        help="prepared and split cache; repeat for caches cut at other sizes or margins, one per model crop "
                             "(default: cache/robust_un)")
    parser.add_argument("--fold", type=int, default=0, help="validation fold (default: 0)")
    parser.add_argument("--oos-data", type=Path, default=REPO.parent / "shared/data", help="root of the labelled photos")
    parser.add_argument("--rule", type=int, choices=sorted(RULES), default=2,
                        help="2: macro-F1 guard, checked out-of-source states (default); 1: the rule of 0.9 to 0.12; "
                             "3: for mask-head members, the mask macro-F1 must rise and neither mean drop")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--out", type=Path, metavar="FILE", help="also write the table to this Markdown file (atomically)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    caches = args.cache or [REPO / "cache/robust_un"]
    absent = [str(c) for c in caches if not c.is_dir()]
    if absent:
        print(f"error: cache {', '.join(absent)} does not exist (--cache)", file=sys.stderr)
        return 2
    paths = [args.baseline, *args.model]
    missing = [str(p) for p in paths if not p.is_file()]
    if missing:  # before the minutes the first model takes
        print(f"error: no such model file: {', '.join(missing)}", file=sys.stderr)
        return 2
    try:
        by_crop = caches_by_crop([Cache(c) for c in caches])
        opened = {p: Classifier(p) for p in paths}
        crops = {p: c.metadata.crop_spec for p, c in opened.items()}
        uncut = sorted({f"{p.name} ({crop})" for p, crop in crops.items() if crop not in by_crop})
        if uncut:  # also before the minutes the first model takes
            raise ConfigError(f"no --cache is cut as the crops of {', '.join(uncut)} take "
                              f"(given: {', '.join(sorted(str(crop) for crop in by_crop))})")
        faces = {crop: RuleFaces.read(by_crop[crop], args.fold, args.oos_data) for crop in set(crops.values())}
        models = [measure(p, faces[crops[p]], args.batch_size, not args.no_progress, opened[p]) for p in paths]
    except (ClassifierLoadError, ConfigError, FileNotFoundError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    report = table(models, args.rule)
    print(report, end="")
    if args.out is not None:
        with atomic_open(args.out, "w", encoding="utf-8") as handle:
            handle.write(report)
    return 0


if __name__ == "__main__":
    sys.exit(main())
