"""`mask-checker`: the desktop app, and `mask-checker batch` for labelling photos headless."""
from __future__ import annotations

import argparse
import logging
import math
import signal
import sys
from pathlib import Path

from tqdm import tqdm
from tqdm.contrib.logging import logging_redirect_tqdm

from app import __version__
from core.config import DetectorConfig

log = logging.getLogger("mask_checker")


def _add_detector_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", type=Path, help="classifier ONNX file (default: the shipped model)")
    parser.add_argument("--no-classifier", action="store_true", help="only find faces, do not classify them")
    defaults = DetectorConfig()  # the defaults chosen by `mask-train eval-detector` (see its docstring)
    parser.add_argument(
        "--min-face", type=int, default=defaults.min_face_size, metavar="PX",
        help=f"smallest face to find, in pixels (default {defaults.min_face_size}); a small photo is also "
        "searched for smaller faces, see --min-face-fraction",
    )
    parser.add_argument(
        "--min-face-fraction", type=_fraction, default=defaults.min_face_fraction, metavar="F",
        help=f"also find faces down to F x a photo's short side, at least {defaults.min_face_floor} px, in photos "
        f"where that is below --min-face (default {defaults.min_face_fraction:g}: photos under "
        f"{defaults.min_face_size / defaults.min_face_fraction:.0f} px; 0: --min-face in every photo)",
    )
    parser.add_argument(
        "--thresholds", type=float, nargs=3, default=defaults.thresholds, metavar=("P", "R", "O"),
        help="MTCNN stage thresholds (default {} {} {})".format(*defaults.thresholds),
    )


def _fraction(text: str) -> float:
    """--min-face-fraction: a number in [0, 1)."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not 0.0 <= value < 1.0:
        raise argparse.ArgumentTypeError(f"must be in [0, 1), not {text}")
    return value


def _megapixels(text: str) -> float:
    """--max-mpx: a positive, finite number (inf or nan would make the limit meaningless)."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not (math.isfinite(value) and value > 0):
        raise argparse.ArgumentTypeError(f"must be a positive number of megapixels, not {text}")
    return value


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="mask-checker",
        description="Find every face and tell whether the mask is worn properly, wrongly or not at all, "
        "with gender and age group. With no command, opens the desktop app.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="log more detail")
    parser.add_argument(
        "--self-test", action="store_true",
        help="check this install headless (models, sample photos, video decoding, the window offscreen); exit 0 if all is well",
    )
    parser.add_argument(
        "--source", metavar="SOURCE",
        help="desktop app: start reading SOURCE at once (a video file, an rtsp:// or http:// URL, or a camera index)",
    )
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")

    batch = commands.add_parser(
        "batch", help="label photos in files and folders, headless",
        description="Label every face in the given photos and folders. One row per face, one per image "
        "with no face, one per unreadable file with the reason.",
        epilog="exit status: 0 done (unreadable files are rows, not failures); 2 nothing done (bad option, "
        "model or output path); 3 an output could not be written (disk full), earlier files kept; "
        "130 stopped by Ctrl-C, 143 by SIGTERM (the images done so far are written).",
    )
    batch.add_argument("paths", nargs="+", type=Path, metavar="PATH", help="image files or folders")
    batch.add_argument(
        "--out", type=Path,
        help="results file, .csv or .json (default: results.csv, unless only --submission or --annotate is asked for)",
    )
    batch.add_argument("--submission", type=Path, metavar="INFO_CSV", help="fill the competition's eval/info.csv (ImageID, ans)")
    batch.add_argument("--submission-out", type=Path, metavar="CSV", help="where the filled submission goes (default: submission.csv beside info.csv)")
    batch.add_argument("--fallback-class", type=int, default=4, metavar="ID", help="submission class for an unreadable image (default 4)")
    batch.add_argument("--annotate", type=Path, metavar="DIR", help="save copies with boxes and labels in DIR")
    batch.add_argument("-r", "--recursive", action="store_true", help="walk folders recursively")
    batch.add_argument("--max-mpx", type=_megapixels, default=100.0, metavar="MPX", help="refuse images over this many megapixels (default 100)")
    batch.add_argument("--workers", type=int, default=2, help="decoding threads (default 2)")
    _add_detector_options(batch)
    batch.set_defaults(func=run_batch)
    return parser


def make_analyzer(args: argparse.Namespace):
    """The analyzer from command-line options; a bad model file ends the command with its reason."""
    from core.analyzer import FaceAnalyzer
    from core.config import AnalyzerConfig, shipped_classifier

    detector = DetectorConfig(min_face_size=args.min_face, thresholds=tuple(args.thresholds),
                              min_face_fraction=args.min_face_fraction)
    classifier = None if args.no_classifier else (args.model or shipped_classifier())
    return FaceAnalyzer(AnalyzerConfig(detector=detector, classifier_path=classifier))


class _StopSignals:
    """Ctrl-C and SIGTERM (a `kill`, `timeout`, a logout) both stop the batch as Ctrl-C does:
    the images done so far are written. Once stopping, or once the last image is done, a
    further signal is only noted, so writing the outputs is never cut short."""

    SIGNALS = (signal.SIGINT, signal.SIGTERM)

    def __init__(self) -> None:
        self.signum: int | None = None
        self.finishing = False
        self._previous: dict[int, object] = {}

    def __enter__(self) -> _StopSignals:
        for sig in self.SIGNALS:
            self._previous[sig] = signal.signal(sig, self._on_signal)
        return self

    def __exit__(self, *exc: object) -> None:
        # Once stopping, the process is on its way out: a late signal must not turn that exit
        # into a traceback. Otherwise (a run that ended by itself) the old handlers come back.
        for sig, handler in self._previous.items():
            signal.signal(sig, signal.SIG_IGN if self.signum is not None else handler)

    def _on_signal(self, signum: int, frame: object) -> None:
        if self.signum is not None or self.finishing:
            self.signum = self.signum or signum
            log.warning("stopping: the results are being written, please wait")
            return
        self.signum = signum
        raise KeyboardInterrupt

    @property
    def exit_code(self) -> int:
        return 128 + (self.signum or signal.SIGINT)


def run_batch(args: argparse.Namespace) -> int:
    with _StopSignals() as stop:
        try:
            return _run_batch(args, stop)
        except KeyboardInterrupt:  # during start-up, before any image: nothing was written
            log.warning("interrupted before the first image: nothing written")
            return stop.exit_code


def _run_batch(args: argparse.Namespace, stop: _StopSignals) -> int:
    from core.batch import BatchError, BatchJob, BatchOptions, BatchOutputError
    from core.classifier import ClassifierLoadError
    from core.files import path_text
    from core.mtcnn import DetectorLoadError

    out = args.out
    if out is None and args.submission is None and args.annotate is None:
        out = Path("results.csv")
    try:
        analyzer = make_analyzer(args)
        job = BatchJob(
            paths=args.paths, out=out, submission_info=args.submission, submission_out=args.submission_out,
            annotate_dir=args.annotate, recursive=args.recursive, fallback_class=args.fallback_class,
            options=BatchOptions(max_pixels=int(args.max_mpx * 1e6), decode_workers=args.workers),
        )
        with logging_redirect_tqdm(), tqdm(unit="img", desc="labelling", disable=None) as bar:

            def progress(result, summary) -> None:
                stop.finishing = summary.done == summary.files  # from here on, only writing is left
                bar.total = summary.files
                bar.update(1)
                log.debug("%s: %s", path_text(result.path), result.status)
                if result.error:
                    log.info("%s: %s", path_text(result.path), result.error)

            summary = job.run(analyzer, progress=progress)
    except (BatchError, ClassifierLoadError, DetectorLoadError, ValueError) as exc:
        log.error("%s", exc)
        return 2
    except BatchOutputError as exc:
        log.error("%s", exc)
        return 3
    print(summary.describe())
    if summary.files == 0:
        log.warning("no images found in %s", ", ".join(path_text(p) for p in args.paths))
    return stop.exit_code if summary.interrupted else 0


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO, format="%(levelname)s %(name)s: %(message)s"
    )
    if args.self_test:
        from app.self_test import run_self_test

        return run_self_test()
    if args.command is None:
        from app.gui import run_app  # Qt is imported only for the window, not for `batch`

        return run_app(args.source)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
