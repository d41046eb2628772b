"""Soak: the real main window plays a video of real scenes for 30 minutes (or any length).

The window runs offscreen with the shipped models and plays app/soak.py's clip (the bundled
sample scenes, panned and zoomed, 10 s at 30 fps) over and over, as a user watching a door would.
Every --sample-every seconds it prints resident memory, None's reference count, frames shown and
dropped, and frames/s; at the end the same figures as ratios against the baseline, the first
sample after warm-up (30 % of the run), and exit 0 when nothing went wrong (process alive, frames
still arriving, memory and None's count flat, a clean quit).

    .venv/bin/python bench/soak.py --minutes 30 [--sample-every 30] [--json soak.json]
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from pathlib import Path

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from app.soak import format_sample, run_soak  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--minutes", type=float, default=30.0, help="how long to play (default 30)")
    parser.add_argument("--sample-every", type=float, default=30.0, metavar="S", help="seconds between samples (default 30)")
    parser.add_argument("--json", type=Path, metavar="FILE", help="also write every sample as JSON")
    args = parser.parse_args(argv)

    print(f"soak: {args.minutes:g} min of video in the main window (offscreen), a sample every {args.sample_every:g} s", flush=True)
    with tempfile.TemporaryDirectory(prefix="mask-checker-soak-") as tmp:
        report = run_soak(args.minutes * 60, Path(tmp), args.sample_every, on_sample=lambda s: print(format_sample(s), flush=True))
    if args.json is not None:
        args.json.write_text(json.dumps(report.to_dict(), indent=1))

    kept = report.after_warm_up()
    if len(kept) >= 2:
        base, end = kept[0], kept[-1]
        shown = end.frames_shown - base.frames_shown
        dropped = end.frames_dropped - base.frames_dropped
        span = max(1e-6, end.seconds - base.seconds)
        print(f"baseline: the sample at {base.seconds:.0f} s (end of warm-up); end: {end.seconds:.0f} s")
        print(f"  RSS        {base.rss_mib:8.1f} -> {end.rss_mib:8.1f} MiB  = {end.rss_mib / base.rss_mib:.3f}x baseline")
        print(f"  None refs  {base.none_refs:8d} -> {end.none_refs:8d}      = {end.none_refs / base.none_refs:.3f}x baseline")
        print(f"  since baseline: {shown} frames shown ({shown / span:.1f}/s), {dropped} dropped "
              f"({dropped / max(1, shown + dropped):.1%} of those read)")
        peak = max(s.rss_mib for s in report.samples)
        print(f"  peak RSS {peak:.1f} MiB; {report.plays} plays of the clip")
    for problem in report.problems:
        print(f"PROBLEM: {problem}")
    print("soak passed: alive, flat, quit cleanly" if not report.problems else "soak FAILED")
    return 1 if report.problems else 0


if __name__ == "__main__":
    sys.exit(main())
