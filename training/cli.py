"""`mask-train`: the training side's command line.

Each sub-command is a thin function over a library call; to add one, write `_cmd_x(args) -> int`
and register it in `_build_parser` with `set_defaults(func=_cmd_x)`. Heavy imports (torch)
happen inside the command, so `--help` stays fast.

Options map one to one onto the fields of the sub-command's dataclass in training/config.py;
`--config FILE.toml` supplies any of them (top-level keys or a `[command]` table) and the
command line overrides the file.
"""
from __future__ import annotations

import argparse
import dataclasses
import logging
from collections.abc import Sequence
from pathlib import Path

from tqdm.contrib.logging import logging_redirect_tqdm

from core.config import default_detector_dir
from training.config import (
    ConfigError,
    EdaConfig,
    EvalDetectorConfig,
    EvaluateConfig,
    ExportConfig,
    FinetuneDetectorConfig,
    PredictConfig,
    PrepareConfig,
    SplitConfig,
    TrainConfig,
    TuneConfig,
    load_toml,
    make_config,
)

log = logging.getLogger(__name__)

#: Libraries that log every graph pass at INFO; shown only with --verbose.
_CHATTY_LOGGERS = ("onnxscript", "onnx_ir", "torch.onnx", "torch.export", "torch._export")


def _config(cls: type, args: argparse.Namespace):
    """The sub-command's dataclass from its defaults, --config and the options given."""
    names = {f.name for f in dataclasses.fields(cls)}
    overrides = {k: v for k, v in vars(args).items() if k in names}
    return make_config(cls, load_toml(args.config), args.command, **overrides)


def _pairs(items: list[str], option: str, convert=str) -> dict:
    """["a=b", ...] -> {"a": b}."""
    out = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise ConfigError(f"{option} takes NAME=VALUE, not {item!r}")
        try:
            out[key] = convert(value)
        except ValueError as exc:
            raise ConfigError(f"{option} {item!r}: {exc}") from exc
    return out


# ------------------------------------------------------------------------------------ commands


def _cmd_export_detector(args: argparse.Namespace) -> int:
    from training.export_detector import export_detector

    paths = export_detector(args.out)
    log.info("exported %d detector models to %s", len(paths), args.out)
    return 0


def _cmd_prepare(args: argparse.Namespace) -> int:
    from training.prepare import prepare

    if "class_map" in args:
        args.class_map = _pairs(args.class_map, "--class-map")
    summary = prepare(_config(PrepareConfig, args))
    return 130 if summary.interrupted else 0 if summary.status["ok"] else 1


def _cmd_split(args: argparse.Namespace) -> int:
    from training.split import split

    split(_config(SplitConfig, args))
    return 0


def _cmd_train(args: argparse.Namespace) -> int:
    from training.train import train

    if "head_weights" in args:
        args.head_weights = _pairs(args.head_weights, "--head-weights", float)
    config = _config(TrainConfig, args)
    if config.folds:
        from training.train import train_folds

        return 130 if any(s.interrupted for s in train_folds(config)) else 0
    summary = train(config)
    return 130 if summary.interrupted else 0


def _cmd_eda(args: argparse.Namespace) -> int:
    from training.eda import eda

    if "class_map" in args:
        args.class_map = _pairs(args.class_map, "--class-map")
    log.info("wrote %s", eda(_config(EdaConfig, args)).report)
    return 0


def _cmd_tune(args: argparse.Namespace) -> int:
    from training.tune import tune

    config = _config(TuneConfig, args)
    # Every trial starts from the file's [train] settings (and top-level keys), on the tuned cache and fold.
    base = make_config(TrainConfig, load_toml(args.config), "train", cache=config.cache, fold=config.fold)
    result = tune(config, base)
    log.info("%s", result.describe())
    return 0


def _cmd_evaluate(args: argparse.Namespace) -> int:
    from training.evaluate import evaluate

    evaluate(_config(EvaluateConfig, args))
    return 0


def _cmd_export(args: argparse.Namespace) -> int:
    from training.export_run import export_run

    path = export_run(_config(ExportConfig, args))
    log.info("wrote %s", path)
    return 0


def _cmd_predict(args: argparse.Namespace) -> int:
    from training.predict import predict

    summary = predict(_config(PredictConfig, args))
    return 130 if summary.interrupted else 0


def _cmd_synth(args: argparse.Namespace) -> int:
    from training.synth import SynthError, synthesize, write_contact_sheet

    if args.out is None and args.contact_sheet is None:
        log.error("synth: give --out DIR, --contact-sheet FILE.png, or both")
        return 2
    try:
        summary = None
        if args.out is not None:
            summary = synthesize(args.source, args.out, per_face=args.per_face, seed=args.seed, limit=args.limit,
                                 workers=args.workers, min_face=args.min_face)
        if args.contact_sheet is not None and not (summary and summary.interrupted):
            write_contact_sheet(args.source, args.contact_sheet, seed=args.seed, limit=args.limit)
    except SynthError as exc:
        log.error("%s", exc)
        return 2
    return 130 if summary and summary.interrupted else 0


def _cmd_eval_detector(args: argparse.Namespace) -> int:
    from training.detector_eval import (
        evaluate_detectors,
        synth_check,
        synth_check_table,
        write_reports,
    )

    config = _config(EvalDetectorConfig, args)
    detectors = config.detectors or (default_detector_dir(),)
    labels = config.labels or tuple(str(d) for d in detectors)
    reports = evaluate_detectors(config.data, detectors, config.split, config.min_face, config.thresholds, labels)
    extra = ""
    if config.synth is not None:
        checks = synth_check(list(detectors), list(labels), config.data, config.synth, config.synth_faces, config.min_face[0])
        extra = synth_check_table(checks)
    for path in write_reports(reports, config.out, f"Face detector on face_mask_853 ({config.split})", extra):
        log.info("wrote %s", path)
    return 0


def _cmd_finetune_detector(args: argparse.Namespace) -> int:
    from training.detector_finetune import finetune_detector

    summary = finetune_detector(_config(FinetuneDetectorConfig, args))
    return 130 if summary.interrupted else 0


# ------------------------------------------------------------------------------------ parser


def _default(cls: type, name: str):
    f = next(f for f in dataclasses.fields(cls) if f.name == name)
    if f.default is not dataclasses.MISSING:
        return f.default
    if f.default_factory is not dataclasses.MISSING:
        return f.default_factory()
    return None


def _option(parser: argparse.ArgumentParser, cls: type, name: str, *flags: str, help: str, **kwargs) -> None:
    """An option for dataclass field `name`, absent from the namespace unless given (so the
    TOML file and the dataclass default apply), its help ending with the default."""
    default = _default(cls, name)
    shown = default
    if isinstance(default, (tuple, list)):
        shown = " ".join(str(v) for v in default)
    elif isinstance(default, dict):
        shown = " ".join(f"{k}={v}" for k, v in default.items())
    if kwargs.get("action") not in ("store_true", "store_false") and shown not in (None, "", ()):
        help = f"{help} (default: {shown})"
    parser.add_argument(*(flags or (f"--{name.replace('_', '-')}",)), dest=name, default=argparse.SUPPRESS, help=help, **kwargs)


def _command(commands, name: str, help: str, description: str) -> argparse.ArgumentParser:
    parser = commands.add_parser(name, help=help, description=description, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", type=Path, default=None, metavar="FILE.toml", help="settings file (the command line wins)")
    return parser


def _add_prepare(commands) -> None:
    C = PrepareConfig
    p = _command(commands, "prepare", "detect faces in labelled photos and cache their crops",
                 "Read datasets, find each photo's face with core's MTCNN, save core's crop to the cache\n"
                 "with manifest.csv and problems.csv. Resumable: a rerun skips photos already done.\n\n"
                 "Dataset layouts (--data KIND=PATH, or PATH alone when recognisable):\n"
                 "  competition=DIR  DIR/train.csv (id,gender,race,age,path) + DIR/images/<path>/{mask1..5,incorrect_mask,normal}.*\n"
                 "  utkface=DIR      <age>_<gender>_<race>_<date>.jpg names (gender 0 male, 1 female)\n"
                 "  folders=DIR      DIR/<class>/*.jpg, class folder -> mask label (see --class-map)\n"
                 "  csv=FILE         columns path[,person_id,mask,gender,age,source,x1,y1,x2,y2]; empty cell = unknown;\n"
                 "                   x1..y2 = the face's known box in pixels (all four or none; `synth` writes them)\n"
                 "  boxes=FILE       labelled face boxes in scene photos (face_mask_853 boxes.csv): path,img_w,img_h,label,\n"
                 "                   xmin,ymin,xmax,ymax, one row per box, label through --class-map; person = the photo's\n"
                 "                   group in near_duplicate_groups.csv (group,path) beside FILE when present, else the photo\n\n"
                 "Rows with a known box are not detected: each box is cropped as a detected face would be\n"
                 "(boxes with a side under --min-box px are skipped and counted).")
    _option(p, C, "data", "--data", action="append", metavar="KIND=PATH", help="a dataset (repeatable)")
    _option(p, C, "cache", type=Path, metavar="DIR", help="cache folder")
    _option(p, C, "input_size", type=int, metavar="PX", help="classifier input size")
    _option(p, C, "crop_margin", type=float, metavar="M", help="crop margin (core.crop.square_box), as at runtime")
    _option(p, C, "context", type=float, metavar="X", help="cached crop = X × the runtime crop, for augmentation room")
    _option(p, C, "min_face", type=int, metavar="PX", help="smallest face the detector looks for")
    _option(p, C, "min_box", type=int, metavar="PX", help="known face boxes with a shorter side are skipped")
    _option(p, C, "thresholds", type=float, nargs=3, metavar=("P", "R", "O"), help="detector thresholds")
    _option(p, C, "no_face", choices=("pad", "skip"), help="no face found: pad the border and retry, or skip")
    _option(p, C, "workers", type=int, metavar="N", help="decoding threads")
    _option(p, C, "class_map", "--class-map", action="append", metavar="FOLDER=LABEL",
            help="folders layout: map a class folder to wear, incorrect, not_wear or skip (repeatable; "
                 "defaults: with_mask=wear without_mask=not_wear incorrect_mask=incorrect mask_weared_incorrect=incorrect)")
    _option(p, C, "strict", action="store_true", help="refuse to run when a dataset reports errors")
    p.set_defaults(func=_cmd_prepare)


def _add_eda(commands) -> None:
    C = EdaConfig
    p = _command(commands, "eda", "an HTML report on the training data: labels, ages, people, sizes, detection, samples",
                 "Read the datasets as prepare does (--data KIND=PATH; see `prepare --help`) or a prepared cache's\n"
                 "manifest (--cache alone), and write OUT/report.html (plots inlined: one file) and OUT/eda.json:\n"
                 "class counts per head and for the 18 classes, the age histogram with the group boundaries,\n"
                 "gender x age, photos per person, photo sizes, the face-detection outcome per source (with\n"
                 "--cache) and a grid of sample photos per class (the cached face crops with --cache).")
    _option(p, C, "data", "--data", action="append", metavar="KIND=PATH", help="a dataset (repeatable)")
    _option(p, C, "cache", type=Path, metavar="DIR", help="prepared cache: detection outcome and face crops")
    _option(p, C, "out", type=Path, metavar="DIR", help="output folder")
    _option(p, C, "class_map", "--class-map", action="append", metavar="FOLDER=LABEL", help="folders layout, as for prepare")
    _option(p, C, "age_boundary", type=int, metavar="YEARS", help="start of the oldest age group")
    _option(p, C, "samples", type=int, metavar="N", help="sample photos per class")
    _option(p, C, "size_sample", type=int, metavar="N", help="photos whose pixel size is read (0: all)")
    _option(p, C, "seed", type=int, help="which photos are sampled")
    _option(p, C, "open", action="store_true", help="open the report in the web browser")
    p.set_defaults(func=_cmd_eda)


def _add_tune(commands) -> None:
    C = TuneConfig
    p = _command(commands, "tune", "hyper-parameter search with Ray Tune (ASHA + Optuna) on one fold",
                 "Each trial trains --fold for up to --max-epochs with the settings of the --config file's [train]\n"
                 "table, overridden by values the Optuna search draws from [tune.space]; ASHA stops the weak\n"
                 "trials early. Writes OUT/results.csv (one row per trial, best first) and OUT/best.toml, a\n"
                 "[train] table for `mask-train train --config OUT/best.toml`. Search space (TOML):\n"
                 "  [tune.space]\n"
                 "  lr = { loguniform = [1e-4, 3e-3] }       # also uniform, randint, quniform = [a, b, q]\n"
                 "  model = { choice = [\"mobilenetv3_large_100\", \"efficientnet_b0\"] }\n"
                 "  augment = { uniform = [0.5, 1.5] }        # scales jitter, scale, shift and cut-out together\n"
                 "  cache = { choice = [\"cache128\", \"cache224\"] }  # input size: one prepared cache per size\n"
                 "Any train setting can be a key; a plain value fixes it. Without [tune.space]: lr, weight decay,\n"
                 "label smoothing, focal gamma, batch size and augmentation strength.")
    _option(p, C, "cache", type=Path, metavar="DIR", help="cache folder")
    _option(p, C, "fold", type=int, metavar="K", help="validation fold of every trial")
    _option(p, C, "out", type=Path, metavar="DIR", help="output folder (default: <cache>/tune)")
    _option(p, C, "num_samples", type=int, metavar="N", help="trials")
    _option(p, C, "max_epochs", type=int, metavar="N", help="epochs of a trial that is not stopped")
    _option(p, C, "grace_epochs", type=int, metavar="N", help="ASHA: epochs before a trial may be stopped")
    _option(p, C, "reduction_factor", type=int, metavar="N", help="ASHA: keep the best 1/N at each rung")
    _option(p, C, "cpus_per_trial", type=int, metavar="N", help="CPUs per trial (torch threads)")
    _option(p, C, "gpus_per_trial", type=float, metavar="N", help="GPUs per trial (fractions share a GPU)")
    _option(p, C, "max_concurrent", type=int, metavar="N", help="trials at once (0: as resources allow)")
    _option(p, C, "address", metavar="ADDR", help="connect to this Ray cluster (auto, ray://head:10001) instead of starting Ray here")
    _option(p, C, "num_cpus", type=int, metavar="N", help="CPUs of the Ray started here (default: all)")
    _option(p, C, "seed", type=int, help="search seed")
    p.set_defaults(func=_cmd_tune)


def _add_split(commands) -> None:
    C = SplitConfig
    p = _command(commands, "split", "person-level stratified k-fold into <cache>/folds.csv",
                 "Assign every person of the cache to one fold, stratified on the person's mask states,\n"
                 "gender and age group. Every later run reads the same folds.csv. --holdout F first sets a\n"
                 "stratified fraction F of the people aside as the test split (fold \"test\"), which train never\n"
                 "uses and `evaluate --split test` scores. People sharing an exact duplicate photo (same bytes)\n"
                 "are kept together.")
    _option(p, C, "cache", type=Path, metavar="DIR", help="cache folder")
    _option(p, C, "folds", type=int, metavar="K", help="number of folds")
    _option(p, C, "seed", type=int, help="shuffling seed")
    _option(p, C, "age_boundary", type=int, metavar="YEARS", help="start of the oldest age group, for the strata")
    _option(p, C, "holdout", type=float, metavar="F", help="fraction of people held out as the test split (0: none)")
    p.set_defaults(func=_cmd_split)


def _add_train(commands) -> None:
    C = TrainConfig
    p = _command(commands, "train", "train a classifier on the cache",
                 "Train a timm trunk with mask/gender/age heads (or one 18-way head) on the cached crops,\n"
                 "validating on --fold. Checkpoints every epoch; --resume continues an interrupted run.")
    _option(p, C, "cache", type=Path, metavar="DIR", help="cache folder")
    _option(p, C, "run_dir", type=Path, metavar="DIR", help="run folder (default: <cache>/runs/<model>_fold<K>)")
    _option(p, C, "fold", type=int, metavar="K", help="validation fold")
    _option(p, C, "folds", metavar="all|K,K", help="train these folds in turn, each in its own run folder "
            "(<run-dir>/fold<K>, default <cache>/runs/<model>_fold<K>); with --resume finished folds are kept")
    _option(p, C, "model", metavar="NAME", help="timm architecture")
    _option(p, C, "weights", type=Path, metavar="FILE", help="backbone weights (.pt state dict or .safetensors); none: random init")
    _option(p, C, "single_head", action="store_true", help="one 18-way head instead of three (fully labelled data only)")
    _option(p, C, "epochs", type=int, help="epochs")
    _option(p, C, "batch_size", type=int, help="batch size")
    _option(p, C, "lr", type=float, help="peak learning rate (AdamW, cosine schedule)")
    _option(p, C, "weight_decay", type=float, help="AdamW weight decay")
    _option(p, C, "warmup_epochs", type=float, help="linear warm-up")
    _option(p, C, "drop_rate", type=float, help="dropout before the heads")
    _option(p, C, "label_smoothing", type=float, help="label smoothing")
    _option(p, C, "focal_gamma", type=float, help="focal loss gamma (0: plain cross-entropy)")
    _option(p, C, "class_weights", action="store_true", help="inverse-frequency class weights in the loss")
    _option(p, C, "sampler", choices=("random", "weighted"), help="weighted: balance the mask·gender·age combinations")
    _option(p, C, "head_weights", nargs="+", metavar="HEAD=W", help="loss weight per head")
    _option(p, C, "age_boundary", type=int, metavar="YEARS", help="start of the oldest age group (58 moves 58-59 into 60+)")
    _option(p, C, "flip", "--no-flip", action="store_false", help="no horizontal flips")
    _option(p, C, "color_jitter", type=float, help="brightness/contrast/saturation jitter")
    _option(p, C, "scale", type=float, nargs=2, metavar=("MIN", "MAX"), help="random crop side relative to the runtime crop")
    _option(p, C, "shift", type=float, help="random crop centre shift (fraction of the side)")
    _option(p, C, "cutout", type=float, metavar="P", help="probability of a cut-out square")
    _option(p, C, "mixup", type=float, metavar="ALPHA", help="mixup Beta alpha (0: off)")
    _option(p, C, "cutmix", type=float, metavar="ALPHA", help="cutmix Beta alpha (0: off)")
    _option(p, C, "patience", type=int, help="early stopping: epochs without a better validation macro-F1")
    _option(p, C, "seed", type=int, help="seed")
    _option(p, C, "device", choices=("auto", "cuda", "mps", "cpu"), help="device")
    _option(p, C, "amp", choices=("auto", "on", "off"), help="mixed precision (auto: on CUDA)")
    _option(p, C, "workers", type=int, metavar="N", help="DataLoader worker processes")
    _option(p, C, "threads", type=int, metavar="N", help="torch CPU threads")
    _option(p, C, "resume", action="store_true", help="continue the run in --run-dir from its last checkpoint")
    p.set_defaults(func=_cmd_train)


def _add_evaluate(commands) -> None:
    C = EvaluateConfig
    p = _command(commands, "evaluate", "score a run on its validation fold or the test split",
                 "Per-head macro-F1 and accuracy (overall and per source; the mask head by gender and age\n"
                 "group), 18-class macro-F1, confusion matrices (PNG), errors by age, breakdown.csv and\n"
                 "report.md, for the run's best checkpoint or (--onnx) an exported model through core.")
    _option(p, C, "run_dir", type=Path, metavar="DIR", help="run folder")
    _option(p, C, "cache", type=Path, metavar="DIR", help="cache folder (default: the run's)")
    _option(p, C, "onnx", type=Path, metavar="FILE", help="evaluate this exported model instead of the checkpoint")
    _option(p, C, "fold", type=int, metavar="K", help="fold (default: the run's validation fold)")
    _option(p, C, "split", choices=("val", "test"), help="val: the validation fold; test: the held-out test split (split --holdout)")
    _option(p, C, "out", type=Path, metavar="DIR", help="output folder (default: <run>/eval, or <run>/eval_test for --split test)")
    _option(p, C, "batch_size", type=int, help="batch size")
    p.set_defaults(func=_cmd_evaluate)


def _add_export(commands) -> None:
    C = ExportConfig
    p = _command(commands, "export", "export a run's best checkpoint to the ONNX file the app loads",
                 "Write the classifier with its metadata (heads, input size, mean/std, crop margin, version,\n"
                 "training data, architecture, age boundary) after checking onnxruntime against torch on\n"
                 "real crops from the cache; a failing model is not written.\n\n"
                 "--ensemble RUN_DIR... (folders or glob patterns, e.g. 'cache/runs/m_fold*') writes ONE graph that\n"
                 "averages the runs' probabilities (with --tta, also over the mirrored crop); the app loads it like\n"
                 "any model, and its metadata lists the members.")
    _option(p, C, "run_dir", type=Path, metavar="DIR", help="run folder")
    _option(p, C, "ensemble", nargs="+", metavar="RUN_DIR", help="several runs averaged in one graph (instead of --run-dir)")
    _option(p, C, "tta", action="store_true", help="also average over the horizontally flipped crop")
    _option(p, C, "out", type=Path, metavar="FILE", help="output file (default: <run>/classifier.onnx)")
    _option(p, C, "cache", type=Path, metavar="DIR", help="cache folder (default: the run's)")
    _option(p, C, "model_version", metavar="TEXT", help="version string (default: <model>-fold<K>-e<epoch>)")
    _option(p, C, "check_crops", type=int, metavar="N", help="cached crops compared between torch and onnxruntime")
    p.set_defaults(func=_cmd_export)


def _add_predict(commands) -> None:
    C = PredictConfig
    p = _command(commands, "predict", "classify a folder through core with an exported model",
                 "Run core's batch path (FaceAnalyzer + BatchJob, as `mask-checker batch`) over DIR and\n"
                 "write one CSV row per face.")
    p.add_argument("folder", type=Path, metavar="DIR", help="folder of photos")
    _option(p, C, "model", type=Path, metavar="FILE", help="exported classifier")
    _option(p, C, "out", type=Path, metavar="FILE", help="CSV to write")
    _option(p, C, "recursive", "-r", "--recursive", action="store_true", help="walk subfolders")
    _option(p, C, "min_face", type=int, metavar="PX", help="smallest face the detector looks for")
    _option(p, C, "thresholds", type=float, nargs=3, metavar=("P", "R", "O"), help="detector thresholds")
    p.set_defaults(func=_cmd_predict)


def _add_synth(commands) -> None:
    p = commands.add_parser(
        "synth", help="render masks (correct, wrong, none) on unmasked faces",
        description="Draw masks on UTKFace-style face chips from MTCNN's landmarks: correct (nose bridge to chin),\n"
                    "incorrect (nose out or chin out) or none. Writes DIR/images/*.jpg and DIR/manifest.csv\n"
                    "(path, person_id, mask, gender, age, source, style, placement, x1..y2 = the bare face's box);\n"
                    "`prepare --data csv=DIR/manifest.csv` reads it. Same --seed, same bytes. Resumable.",
        formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("source", type=Path, metavar="SOURCE", help="labels.csv (path, age, gender), a folder holding one, or a folder of UTKFace-named files")
    p.add_argument("--out", type=Path, metavar="DIR", help="output folder")
    p.add_argument("--per-face", type=int, choices=(1, 3), default=1, help="1: one outcome per face, balanced; 3: all three (default: 1)")
    p.add_argument("--limit", type=int, metavar="N", help="first N faces only")
    p.add_argument("--seed", type=int, default=0, help="random seed (default: 0)")
    p.add_argument("--workers", type=int, default=1, metavar="N", help="threads (default: 1)")
    p.add_argument("--min-face", type=int, default=40, metavar="PX", help="smallest face the detector looks for (default: 40)")
    p.add_argument("--contact-sheet", type=Path, metavar="FILE.png", help="also write a style x placement sample sheet")
    p.set_defaults(func=_cmd_synth)


def _add_eval_detector(commands) -> None:
    C = EvalDetectorConfig
    p = _command(commands, "eval-detector", "score face detectors against face_mask_853's labelled boxes",
                 "Run core's MTCNN (onnxruntime, as the app does) over face_mask_853's photos for each detector\n"
                 "folder × --min-face × --thresholds, side by side. A labelled face is found when a detection\n"
                 "overlaps it at IoU >= 0.4 (one-to-one, greedy). Recall per mask state and per box-width band\n"
                 "(the >= 40 px columns are the shipping criterion), and detections matching no labelled face.\n"
                 "--split heldout (default) scores only the part a detector fine-tune never sees (chosen by a\n"
                 "stable hash of the near-duplicate group). Writes OUT.md and OUT.csv.")
    _option(p, C, "data", type=Path, metavar="DIR", help="data folder holding face_mask_853/")
    _option(p, C, "detectors", "--detector", type=Path, action="append", metavar="DIR",
            help="detector folder with pnet/rnet/onet.onnx (repeatable; default: the shipped one)")
    _option(p, C, "labels", "--label", action="append", metavar="NAME", help="name of each --detector in the report (repeatable)")
    _option(p, C, "split", choices=("heldout", "train", "all"), help="which photos")
    _option(p, C, "min_face", "--min-face", type=int, action="append", metavar="PX", help="smallest face looked for (repeatable)")
    _option(p, C, "thresholds", "--thresholds", type=float, nargs=3, action="append", metavar=("P", "R", "O"),
            help="stage thresholds (repeatable)")
    _option(p, C, "out", type=Path, metavar="FILE.md", help="report; the CSV is written beside it")
    _option(p, C, "synth", type=Path, metavar="DIR", help="also score the held-out faces of this `mask-train synth` "
            "output: found per placement and landmark error against stock MTCNN on the bare chip")
    _option(p, C, "synth_faces", type=int, metavar="N", help="at most N synthetic faces")
    p.set_defaults(func=_cmd_eval_detector)


def _add_finetune_detector(commands) -> None:
    C = FinetuneDetectorConfig
    p = _command(commands, "finetune-detector", "fine-tune MTCNN (P/R/O-Net) on masked faces and export it",
                 "Start from facenet-pytorch's MTCNN weights and train on crops labelled by IoU (positive >= 0.65,\n"
                 "part 0.4-0.65, negative < 0.3) from synthetic masks on UTKFace (`mask-train synth` output, with\n"
                 "landmarks) and face_mask_853's training part (real boxes of every mask state; stock proposals\n"
                 "over no face as hard negatives). Crops are cached and checkpoints written in --run-dir\n"
                 "(--resume continues); the result is exported like export-detector, with ORIGIN.md.\n"
                 "Score it with `mask-train eval-detector --detector RUN/mtcnn`.")
    _option(p, C, "data", type=Path, metavar="DIR", help="data folder holding face_mask_853/ and utkface/")
    _option(p, C, "synth", type=Path, metavar="DIR", help="`mask-train synth` output folder")
    _option(p, C, "run_dir", type=Path, metavar="DIR", help="run folder (crops, checkpoints, log)")
    _option(p, C, "out", type=Path, metavar="DIR", help="exported detector folder (default: <run-dir>/mtcnn)")
    _option(p, C, "nets", nargs="+", choices=("pnet", "rnet", "onet"), help="nets to fine-tune")
    _option(p, C, "synth_faces", type=int, metavar="N", help="synthetic faces used")
    _option(p, C, "scenes", type=int, metavar="N", help="face_mask_853 training scenes used (0: all)")
    _option(p, C, "epochs", type=int, help="epochs per net")
    _option(p, C, "steps", type=int, metavar="N", help="at most N steps per epoch (0: full epochs)")
    _option(p, C, "batch_size", type=int, help="batch size")
    _option(p, C, "lr", type=float, help="Adam learning rate")
    _option(p, C, "neg_ratio", type=float, metavar="R", help="negatives per positive in an epoch")
    _option(p, C, "seed", type=int, help="seed")
    _option(p, C, "threads", type=int, metavar="N", help="torch CPU threads")
    _option(p, C, "resume", action="store_true", help="continue from the run folder's checkpoints")
    p.set_defaults(func=_cmd_finetune_detector)


def _build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="mask-train", description="Mask Checker training tools.")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    export = commands.add_parser(
        "export-detector",
        help="export facenet-pytorch's MTCNN (P/R/O-Net) to ONNX",
        description="Export the pretrained MTCNN networks shipped in facenet-pytorch to ONNX, "
        "check them against torch, and write ORIGIN.md next to them.",
    )
    export.add_argument(
        "--out", type=Path, default=default_detector_dir(),
        help="output folder (default: %(default)s)",
    )
    export.set_defaults(func=_cmd_export_detector)
    for add in (_add_prepare, _add_eda, _add_split, _add_train, _add_tune, _add_evaluate, _add_export, _add_predict, _add_synth,
                _add_eval_detector, _add_finetune_detector):
        add(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = _build_parser().parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    if not args.verbose:
        for name in _CHATTY_LOGGERS:
            logging.getLogger(name).setLevel(logging.WARNING)
    try:
        with logging_redirect_tqdm():  # log lines above the progress bars, not through them
            return int(args.func(args))
    except ConfigError as exc:
        log.error("%s", exc)
        return 2


if __name__ == "__main__":
    raise SystemExit(main())
