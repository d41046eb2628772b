"""`mask-checker`: the desktop app, and `mask-checker batch` for labelling photos headless."""
from __future__ import annotations

import argparse
import logging
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
        help=f"smallest face to find, in pixels (default {defaults.min_face_size})",
    )
    parser.add_argument(
        "--thresholds", type=float, nargs=3, default=defaults.thresholds, metavar=("P", "R", "O"),
        help="MTCNN stage thresholds (default {} {} {})".format(*defaults.thresholds),
    )


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
    batch.add_argument("--max-mpx", type=float, default=100.0, metavar="MPX", help="refuse images over this many megapixels (default 100)")
    batch.add_argument("--workers", type=int, default=2, help="decoding threads (default 2)")
    _add_detector_options(batch)
    batch.set_defaults(func=run_batch)
    return parser


def make_analyzer(args: argparse.Namespace):
    """The analyzer from command-line options; a bad model file ends the command with its reason."""
    from core.analyzer import FaceAnalyzer
    from core.config import AnalyzerConfig, default_classifier_path

    detector = DetectorConfig(min_face_size=args.min_face, thresholds=tuple(args.thresholds))
    classifier = None if args.no_classifier else (args.model or default_classifier_path())
    if classifier is not None and args.model is None and not classifier.exists():
        log.warning("no shipped classifier yet (%s): faces are found but not classified", classifier)
        classifier = None
    return FaceAnalyzer(AnalyzerConfig(detector=detector, classifier_path=classifier))


def run_batch(args: argparse.Namespace) -> int:
    from core.batch import BatchError, BatchJob, BatchOptions
    from core.classifier import ClassifierLoadError
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
                bar.total = summary.files
                bar.update(1)
                if result.error:
                    log.info("%s: %s", result.path, result.error)

            summary = job.run(analyzer, progress=progress)
    except (BatchError, ClassifierLoadError, DetectorLoadError, ValueError) as exc:
        log.error("%s", exc)
        return 2
    print(summary.describe())
    if summary.files == 0:
        log.warning("no images found in %s", ", ".join(map(str, args.paths)))
    return 130 if summary.interrupted else 0


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
