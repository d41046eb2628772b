"""`mask-train`: the training side's command line.

Each sub-command is a thin function over a library call; to add one, write `_cmd_x(args) -> int`
and register it in `_build_parser` with `set_defaults(func=_cmd_x)`. Heavy imports (torch)
happen inside the command, so `--help` stays fast.
"""
from __future__ import annotations

import argparse
import logging
from collections.abc import Sequence
from pathlib import Path

from core.config import default_detector_dir

log = logging.getLogger(__name__)

#: Libraries that log every graph pass at INFO; shown only with --verbose.
_CHATTY_LOGGERS = ("onnxscript", "onnx_ir", "torch.onnx", "torch.export", "torch._export")


def _cmd_export_detector(args: argparse.Namespace) -> int:
    from training.export_detector import export_detector

    paths = export_detector(args.out)
    log.info("exported %d detector models to %s", len(paths), args.out)
    return 0


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
    return int(args.func(args))


if __name__ == "__main__":
    raise SystemExit(main())
