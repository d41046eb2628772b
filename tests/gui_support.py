"""Helpers for the GUI tests: a scene video made from real photos, and captures that misbehave."""
from __future__ import annotations

import threading
import time
from pathlib import Path

import cv2
import numpy as np

#: A real scene with several bare and masked faces (face_mask_853; also assets/samples/scene_mixed.jpg).
SCENE = "maksssksksss148.jpg"
STAMP = (slice(2, 14), slice(2, 14))  # top-left block whose grey level encodes the frame number
STAMP_STEP = 8


def make_scene_video(
    path: Path, image_path: Path, frames: int = 30, fps: float = 10.0, size=(640, 480), stamp: bool = True
) -> Path:
    """An MJPG .avi of the scene at `size`; with `stamp`, each frame carries its number in a corner block."""
    if stamp and STAMP_STEP * (frames - 1) > 255:
        raise ValueError(f"at most {255 // STAMP_STEP + 1} frames can be stamped")
    base = cv2.resize(cv2.imread(str(image_path)), size, interpolation=cv2.INTER_CUBIC)
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), fps, size)
    assert writer.isOpened(), "OpenCV cannot write MJPG video here"
    try:
        for i in range(frames):
            frame = base.copy()
            if stamp:
                frame[STAMP] = STAMP_STEP * i
            writer.write(frame)
    finally:
        writer.release()
    return path


def frame_stamp(image: np.ndarray) -> int:
    """The frame number written by make_scene_video (JPEG keeps a flat block within ±2 levels)."""
    return int(round(float(image[STAMP].mean()) / STAMP_STEP))


class FailingCapture:
    """A real cv2.VideoCapture whose read() starts failing after `fail_after` frames."""

    def __init__(self, path: str, fail_after: int) -> None:
        self._capture = cv2.VideoCapture(path)
        self._left = fail_after

    def read(self):
        if self._left <= 0:
            return False, None
        self._left -= 1
        return self._capture.read()

    def __getattr__(self, name: str):
        return getattr(self._capture, name)


class FakeCamera:
    """Stands in for a webcam: a still picture at ~30 fps, with read() blocking like a camera does."""

    def __init__(self, image: np.ndarray, fps: float = 30.0) -> None:
        self.image = image
        self.period = 1.0 / fps
        self._open = True

    def isOpened(self) -> bool:
        return self._open

    def read(self):
        if not self._open:
            return False, None
        time.sleep(self.period)
        return True, self.image.copy()

    def grab(self) -> bool:
        time.sleep(self.period)
        return self._open

    def get(self, prop: int) -> float:
        return 0.0

    def set(self, prop: int, value: float) -> bool:
        return False

    def release(self) -> None:
        self._open = False


class ClosedCapture(FakeCamera):
    """A camera that is not there (unplugged): never opens."""

    def __init__(self) -> None:
        super().__init__(np.zeros((1, 1, 3), np.uint8))
        self._open = False


class CallLog:
    """Thread-safe list of what a factory was asked for (factories run in capture threads)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.items: list = []

    def add(self, item) -> int:
        with self._lock:
            self.items.append(item)
            return len(self.items)
