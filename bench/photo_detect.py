"""Detector time per photo: MTCNN.detect_photo (the batch path: a second, deeper pass on small
photos, DetectorConfig.min_face_fraction) against the same detector with min_face_fraction=0
(the baseline: one pass at min_face_size), same photos, same run, taking turns round by round.

Prints seconds per round, faces found and the ratio to the baseline.

    .venv/bin/python bench/photo_detect.py [--photos 120] [--rounds 3] [--scenes]
"""
from __future__ import annotations

import argparse
import statistics
import sys
import time
from dataclasses import replace
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.frames import DATA, web_photos  # noqa: E402
from core.imageio import load_image  # noqa: E402
from core.mtcnn import MTCNN  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--photos", type=int, default=120, help="photos (default 120)")
    parser.add_argument("--rounds", type=int, default=3, help="rounds; the median is reported (default 3)")
    parser.add_argument("--scenes", action="store_true", help="face_mask_853 scenes instead of mask_web photos")
    args = parser.parse_args(argv)
    paths = (sorted((DATA / "face_mask_853" / "images").glob("*.jpg"))[: args.photos] if args.scenes
             else web_photos(args.photos))
    images = [load_image(p).image for p in paths]
    now = MTCNN()
    baseline = now.with_config(replace(now.config, min_face_fraction=0.0))
    seconds: dict[str, list[float]] = {"baseline": [], "now": []}
    faces: dict[str, int] = {}
    for _ in range(args.rounds):
        for name, detector in (("baseline", baseline), ("now", now)):
            start = time.perf_counter()
            faces[name] = sum(len(detector.detect_photo(image)) for image in images)
            seconds[name].append(time.perf_counter() - start)
    base = statistics.median(seconds["baseline"])
    print(f"{len(images)} {'scenes' if args.scenes else 'web photos'}, {args.rounds} rounds")
    for name, label in (("baseline", "one pass (min_face_fraction 0)"), ("now", f"detect_photo (min_face_fraction {now.config.min_face_fraction})")):
        med = statistics.median(seconds[name])
        print(f"{label:<40} {med:7.2f} s  {1000 * med / len(images):6.1f} ms/photo  {faces[name]:5d} faces  {med / base:5.2f}x")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
