"""Benchmark material built from the real photos in ../shared/data (never copied into the repo)."""
from __future__ import annotations

import os
from pathlib import Path

import cv2
import numpy as np

REPO = Path(__file__).resolve().parents[1]
DATA = Path(os.environ.get("MASK_CHECKER_DATA", REPO.parent / "shared" / "data"))


def scene_frames(count: int, size: tuple[int, int] = (640, 480)) -> list[np.ndarray]:
    """`count` camera-sized BGR frames: face_mask_853 scenes scaled to fit and letterboxed."""
    width, height = size
    paths = sorted((DATA / "face_mask_853" / "images").glob("*.jpg"))[:count]
    frames = []
    for path in paths:
        image = cv2.imread(str(path))
        scale = min(width / image.shape[1], height / image.shape[0])
        resized = cv2.resize(image, None, fx=scale, fy=scale, interpolation=cv2.INTER_LINEAR)
        frame = np.zeros((height, width, 3), np.uint8)
        y, x = (height - resized.shape[0]) // 2, (width - resized.shape[1]) // 2
        frame[y : y + resized.shape[0], x : x + resized.shape[1]] = resized
        frames.append(frame)
    return frames


def web_photos(count: int) -> list[Path]:
    """Single-face web photos, alternately with and without a mask."""
    masked = sorted((DATA / "mask_web" / "with_mask").iterdir())
    bare = sorted((DATA / "mask_web" / "without_mask").iterdir())
    return [p for pair in zip(masked, bare) for p in pair][:count]
