"""Issue 18, item 10: the memory one photo takes is bounded whatever its size.

A photo over BatchOptions.fit_pixels is analysed as a copy shrunk to that size would be; boxes
still come out in the photo's own pixels. Peak memory is measured on a real process.
"""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

from core.analyzer import FaceAnalyzer
from core.batch import DEFAULT_FIT_PIXELS, BatchJob, BatchOptions, ImageResult
from core.config import AnalyzerConfig
from core.imageio import load_image
from core.tracker import iou_matrix

REPO = Path(__file__).resolve().parents[1]


def run(path: Path, analyzer: FaceAnalyzer, fit_pixels: int | None) -> ImageResult:
    results: list[ImageResult] = []
    BatchJob(paths=[path], options=BatchOptions(fit_pixels=fit_pixels)).run(
        analyzer, progress=lambda result, summary: results.append(result)
    )
    (result,) = results
    return result


@pytest.mark.parametrize("suffix", [".jpg", ".png"])  # JPEG: decoded small by libjpeg; PNG: shrunk after
def test_a_large_photo_is_analysed_shrunk_with_boxes_in_its_own_pixels(tmp_path, samples_dir, random_classifier, suffix):
    scene = load_image(samples_dir / "scene_mixed.jpg").image
    big = cv2.resize(scene, None, fx=3, fy=3, interpolation=cv2.INTER_CUBIC)
    path = tmp_path / f"big{suffix}"
    cv2.imwrite(str(path), big)
    analyzer = FaceAnalyzer(AnalyzerConfig(classifier_path=random_classifier))
    full = run(path, analyzer, fit_pixels=None)
    shrunk = run(path, analyzer, fit_pixels=big.shape[0] * big.shape[1] // 4)
    assert full.scale == 1.0 and shrunk.scale == pytest.approx(0.5, abs=0.01)
    assert (shrunk.width, shrunk.height) == (full.width, full.height) == (big.shape[1], big.shape[0])
    assert len(full.faces) >= 2 and len(shrunk.faces) >= 2
    # The faces found on the shrunk copy are those found at full size, in the same pixels (MTCNN
    # is not scale-invariant: a face near its thresholds may come and go with the size).
    overlap = iou_matrix(np.stack([f.box for f in shrunk.faces]), np.stack([f.box for f in full.faces]))
    assert (overlap.max(axis=1) > 0.7).sum() >= max(2, len(shrunk.faces) - 2), overlap


def peak_mb(folder: Path, fit_pixels: int | None) -> float:
    """Peak RSS of a fresh process labelling `folder` with the shipped models (bench/batch_memory.py)."""
    done = subprocess.run(
        [sys.executable, "bench/batch_memory.py", "--child", str(folder), "--fit-pixels", str(fit_pixels or "none")],
        cwd=REPO, check=True, capture_output=True, text=True, timeout=600,
    )
    return json.loads(done.stdout.strip().splitlines()[-1])["peak_mb"]


def test_an_81_mpx_photo_takes_no_more_memory_than_a_16_mpx_one(tmp_path):
    """All-black 9000×9000 PNG, 250 KB on disk: 3.4 GB at its peak when analysed at full size."""
    big, small = tmp_path / "big", tmp_path / "small"
    big.mkdir(), small.mkdir()
    cv2.imwrite(str(big / "black.png"), np.zeros((9000, 9000, 3), np.uint8))
    cv2.imwrite(str(small / "black.png"), np.zeros((4000, 4000, 3), np.uint8))  # exactly 16 Mpx
    assert DEFAULT_FIT_PIXELS == 16_000_000
    reference = peak_mb(small, DEFAULT_FIT_PIXELS)
    assert peak_mb(big, DEFAULT_FIT_PIXELS) < 1.25 * reference
