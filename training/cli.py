"""`mask-train`: the training side's command line.

Each sub-command is one settings dataclass (training/config) and one function over a library
call. Its options are generated from the dataclass's fields (training.config.options), so a
setting is declared once, with its help; `--config FILE.toml` supplies any of them (top-level keys
or a `[command]` table) and the command line overrides the file. To add a sub-command: a
dataclass in training/config, its SECTIONS entry, a `_run_x(config, args) -> int` here, its RUN
entry and its help in training/cli_texts.py. Heavy imports (torch) happen inside the command, so
`--help` stays fast.

Bad input of any kind (settings, missing or broken model files, unwritable outputs) ends with one
line on stderr and exit status 2, never a traceback.
"""
from __future__ import annotations

import argparse
import logging
from collections.abc import Callable, Sequence
from pathlib import Path

from tqdm.contrib.logging import logging_redirect_tqdm

from core.config import default_detector_dir
from training.config import SECTIONS, ConfigError, TrainConfig, load_toml, make_config
from training.cli_texts import TEXTS
from training.config.options import add_options, from_args

log = logging.getLogger(__name__)

#: Libraries that log every graph pass at INFO; shown only with --verbose.
_CHATTY_LOGGERS = ("onnxscript", "onnx_ir", "torch.onnx", "torch.export", "torch._export")
#: Exit status of bad input (as argparse's own).
USAGE_ERROR = 2
INTERRUPTED = 130


def _status(interrupted: bool) -> int:
    return INTERRUPTED if interrupted else 0


# ------------------------------------------------------------------------------------ commands


def _run_export_detector(config, args) -> int:
    from training.detector.export import export_detector

    paths = export_detector(config.out)
    log.info("exported %d detector models to %s", len(paths), config.out)
    return 0


def _run_prepare(config, args) -> int:
    from training.data.prepare import prepare

    summary = prepare(config)
    if summary.interrupted:
        return INTERRUPTED
    return 0 if summary.status["ok"] else 1


def _run_split(config, args) -> int:
    from training.data.split import split

    split(config)
    return 0


def _run_train(config, args) -> int:
    from training.classifier.train import train, train_folds

    if config.run_folds:
        return _status(any(s.interrupted for s in train_folds(config)))
    return _status(train(config).interrupted)


def _run_teach(config, args) -> int:
    from training.teacher.pseudo import teach

    summary = teach(config)
    print(summary.check, end="")
    return 0


def _run_eda(config, args) -> int:
    from training.data.eda import eda

    log.info("wrote %s", eda(config).report)
    return 0


def _run_tune(config, args) -> int:
    from training.classifier.tune import tune

    # Every trial starts from the file's [train] settings (and top-level keys), on the tuned cache and fold.
    base = make_config(TrainConfig, load_toml(args.config), "train", cache=config.cache, fold=config.fold)
    log.info("%s", tune(config, base).describe())
    return 0


def _run_evaluate(config, args) -> int:
    from training.classifier.evaluate import evaluate

    evaluate(config)
    return 0


def _run_export(config, args) -> int:
    from training.export.single import export_run

    log.info("wrote %s", export_run(config))
    return 0


def _run_calibrate(config, args) -> int:
    from training.classifier.calibrate import calibrate

    calibrate(config)
    return 0


def _run_soup(config, args) -> int:
    from training.classifier.soup import make_soup

    log.info("wrote %s", make_soup(config))
    return 0


def _run_recover(config, args) -> int:
    from training.export.recover import recover

    # The run folders carry the recipe's [train] settings (cache, age boundary, ...), as tune's trials do.
    recipe = make_config(TrainConfig, load_toml(args.config), "train", **({"cache": config.cache} if config.cache else {}))
    for run_dir in recover(config, recipe):
        log.info("wrote %s", run_dir)
    return 0


def _run_predict(config, args) -> int:
    from training.classifier.predict import predict

    return _status(predict(config).interrupted)


def _run_synth(config, args) -> int:
    from training.detector.reference import reference_detector
    from training.synth import read_source, synthesize, write_contact_sheet

    faces = read_source(config.source)  # a bad source is reported before the detector loads
    detector = reference_detector(config.reference, config.min_face)
    summary = None
    if config.out is not None:
        summary = synthesize(faces, config.out, per_face=config.per_face, seed=config.seed, limit=config.limit,
                             workers=config.worker_threads, detector=detector, under_nose=config.under_nose)
    if config.contact_sheet is not None and not (summary and summary.interrupted):
        write_contact_sheet(faces, config.contact_sheet, seed=config.seed, limit=config.limit, detector=detector)
    return _status(bool(summary and summary.interrupted))


def _run_eval_detector(config, args) -> int:
    from training.detector.evaluate import evaluate_detectors, write_reports
    from training.detector.synth_check import synth_check, synth_check_table

    detectors = config.detectors or (default_detector_dir(),)
    labels = config.labels or tuple(str(d) for d in detectors)
    if config.closeup:  # a missing mask_web/ is reported before the scenes' work
        from training.detector.closeup import closeup_csv_rows, closeup_photos, closeup_table, evaluate_closeups

        photos = closeup_photos(config.data_dir, config.closeup_photos)
    reports = evaluate_detectors(config.data_dir, detectors, config.scene_split, config.min_faces, config.threshold_sets, labels,
                                 min_face_fractions=config.min_face_fractions, min_face_floor=config.min_face_floor)
    extra = ""
    if config.synth_dir is not None:
        checks = synth_check(list(detectors), list(labels), config.data_dir, config.synth_dir, config.synth_faces,
                             config.min_faces[0], reference=config.reference)
        extra = synth_check_table(checks)
    extra_rows: list[dict[str, object]] = []
    if config.closeup:
        closeups = evaluate_closeups(config.data_dir, detectors, labels, config.min_faces, config.threshold_sets,
                                     config.min_face_fractions, config.min_face_floor, photos=photos)
        extra = closeup_table(closeups) + ("\n" + extra if extra else "")
        extra_rows = closeup_csv_rows(closeups)
    for path in write_reports(reports, config.out, f"Face detector on face_mask_853 ({config.scene_split})", extra,
                              extra_rows):
        log.info("wrote %s", path)
    return 0


def _run_finetune_detector(config, args) -> int:
    from training.detector.finetune import finetune_detector

    return _status(finetune_detector(config).interrupted)


RUN: dict[str, Callable[..., int]] = {
    "export-detector": _run_export_detector, "prepare": _run_prepare, "eda": _run_eda, "split": _run_split,
    "train": _run_train, "teach": _run_teach, "tune": _run_tune, "evaluate": _run_evaluate, "export": _run_export,
    "calibrate": _run_calibrate, "soup": _run_soup, "recover": _run_recover, "predict": _run_predict,
    "synth": _run_synth, "eval-detector": _run_eval_detector, "finetune-detector": _run_finetune_detector,
}

# ------------------------------------------------------------------------------------ parser


def _build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="mask-train", description="Mask Checker training tools.")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, cls in SECTIONS.items():
        help_, description = TEXTS[name]
        sub = commands.add_parser(name, help=help_, description=description, formatter_class=argparse.RawDescriptionHelpFormatter)
        sub.add_argument("--config", type=Path, default=None, metavar="FILE.toml", help="settings file (the command line wins)")
        add_options(sub, cls)
    return parser


def _user_error(exc: BaseException) -> str | None:
    """The one-line message of an error that bad input causes, or None for a bug."""
    from core.classifier import ClassifierLoadError
    from core.metadata import ModelMetadataError
    from core.mtcnn import DetectorLoadError
    from training.export.onnx import ExportError
    from training.synth import SynthError

    if isinstance(exc, (ConfigError, ClassifierLoadError, DetectorLoadError, ModelMetadataError, ExportError, SynthError)):
        return str(exc)
    if isinstance(exc, OSError):  # a file or folder that cannot be read or written
        where = f"{exc.filename}: " if exc.filename else ""
        return f"{where}{exc.strerror or exc}" + (f" ({exc.filename2})" if exc.filename2 else "")
    return None


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
            config = from_args(SECTIONS[args.command], args, args.command)
            return int(RUN[args.command](config, args))
    except Exception as exc:
        message = _user_error(exc)
        if message is None:
            raise
        log.debug("details", exc_info=True)
        log.error("%s: %s", args.command, message)
        return USAGE_ERROR


if __name__ == "__main__":
    raise SystemExit(main())
