"""Batch labelling images/s: BatchJob (parallel decoding ahead of analysis) against a plain loop.

Baseline: decode one file, analyse it, next file, one thread. Both over the same web photos and
scenes from ../shared/data, with the same analyzer, in the same run.

    .venv/bin/python bench/batch.py [--images 200]
"""
from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.frames import DATA, web_photos  # noqa: E402
from core.analyzer import FaceAnalyzer  # noqa: E402
from core.batch import BatchJob  # noqa: E402
from core.config import AnalyzerConfig  # noqa: E402
from core.imageio import ImageReadError, load_image  # noqa: E402
from tests.conftest import build_random_classifier  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", type=int, default=200)
    args = parser.parse_args()

    scenes = sorted((DATA / "face_mask_853" / "images").glob("*.jpg"))[: args.images // 4]
    paths = web_photos(args.images - len(scenes)) + scenes
    workdir = Path(tempfile.mkdtemp())
    analyzer = FaceAnalyzer(AnalyzerConfig(classifier_path=build_random_classifier(workdir / "bench.onnx", input_size=128)))

    start = time.perf_counter()
    faces_plain = 0
    for path in paths:
        try:
            faces_plain += len(analyzer.analyze(load_image(path).image))
        except ImageReadError:
            pass
    plain = time.perf_counter() - start

    start = time.perf_counter()
    summary = BatchJob(paths=paths, out=workdir / "results.csv").run(analyzer)
    batch = time.perf_counter() - start

    print(f"{len(paths)} images ({len(paths) - len(scenes)} web photos, {len(scenes)} scenes), {summary.faces} faces")
    print(f"(a) baseline loop, decode then analyse: {len(paths) / plain:6.1f} images/s")
    print(f"(b) BatchJob with CSV output:           {len(paths) / batch:6.1f} images/s")
    print(f"speed-up (b)/(a): {plain / batch:.2f}x   (faces: loop {faces_plain}, batch {summary.faces})")


if __name__ == "__main__":
    main()
