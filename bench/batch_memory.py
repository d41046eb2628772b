"""Peak memory (RSS) of a batch over huge photos: the old path (every photo decoded and analysed
at full size) against the default (photos over 16 Mpx analysed shrunk to 16 Mpx, decoded small
where the format allows, one large decode at a time).

Each run is a fresh process labelling 1 and then 4 all-black 9000×9000 RGB PNGs (81 Mpx, about
240 KB each on disk) with the shipped models; the peak RSS it reports covers everything: Python,
the models, decoding and analysis. "Idle" is the same process with the models loaded and no image.

    .venv/bin/python bench/batch_memory.py [--side 9000] [--counts 1 4]
"""
from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


def child(folder: Path, fit_pixels: str) -> None:
    """Label `folder` in this process and print its peak RSS in MB (as JSON on stdout)."""
    from core.analyzer import FaceAnalyzer
    from core.batch import BatchJob, BatchOptions

    analyzer = FaceAnalyzer.with_default_models()
    if fit_pixels != "idle":
        options = BatchOptions(fit_pixels=None if fit_pixels == "none" else int(fit_pixels))
        with tempfile.TemporaryDirectory() as out:
            BatchJob(paths=[folder], out=Path(out) / "r.csv", options=options).run(analyzer)
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KB
    print(json.dumps({"peak_mb": peak_mb}))


def peak(folder: Path, fit_pixels: str) -> float:
    done = subprocess.run(
        [sys.executable, __file__, "--child", str(folder), "--fit-pixels", fit_pixels],
        cwd=REPO, check=True, capture_output=True, text=True,
    )
    return json.loads(done.stdout.strip().splitlines()[-1])["peak_mb"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--side", type=int, default=9000, help="photo side in pixels (default 9000: 81 Mpx)")
    parser.add_argument("--counts", type=int, nargs="+", default=[1, 4], help="photos per run (default 1 4)")
    parser.add_argument("--child", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--fit-pixels", default="none", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child is not None:
        child(args.child, args.fit_pixels)
        return

    import cv2
    import numpy as np

    from core.batch import DEFAULT_FIT_PIXELS

    with tempfile.TemporaryDirectory() as work:
        ok, png = cv2.imencode(".png", np.zeros((args.side, args.side, 3), np.uint8))
        assert ok
        idle = peak(Path(work), "idle")
        print(f"{args.side}×{args.side} black RGB PNG ({args.side ** 2 / 1e6:.0f} Mpx, {len(png) / 1e3:.0f} KB); "
              f"idle process with the models: {idle:.0f} MB")
        print(f"{'photos':>6}  {'old path MB':>11}  {'default MB':>10}  {'ratio':>6}  {'above idle: old / default MB':>28}")
        for count in args.counts:
            folder = Path(work) / f"x{count}"
            folder.mkdir()
            for i in range(count):
                (folder / f"black{i}.png").write_bytes(png.tobytes())
            old, new = peak(folder, "none"), peak(folder, str(DEFAULT_FIT_PIXELS))
            print(f"{count:>6}  {old:>11.0f}  {new:>10.0f}  {new / old:>6.2f}  {old - idle:>15.0f} / {new - idle:.0f}")


if __name__ == "__main__":
    main()
