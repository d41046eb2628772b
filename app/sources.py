"""What the live view can read from (camera, video file, network stream) and how it is opened.

Everything goes through `cv2.VideoCapture`. Opening is a plain function (`open_capture`) so a
test, or a future backend, can hand the capture worker another factory with the same shape.
"""
from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from enum import Enum
from pathlib import Path
from typing import Protocol
from urllib.parse import urlsplit, urlunsplit

import cv2
import numpy as np

log = logging.getLogger(__name__)

#: Camera indices probed at start-up (cv2.VideoCapture(i) for each).
CAMERA_INDICES = range(5)
#: How long a network stream may take to open or to deliver a frame before it counts as lost.
STREAM_TIMEOUT_MS = 5000


class SourceKind(Enum):
    CAMERA = "camera"
    FILE = "file"
    URL = "url"


@dataclass(frozen=True)
class Source:
    """A camera index, a video file path or an RTSP/HTTP URL."""

    kind: SourceKind
    target: str

    @classmethod
    def camera(cls, index: int) -> Source:
        return cls(SourceKind.CAMERA, str(index))

    @classmethod
    def file(cls, path: str | Path) -> Source:
        return cls(SourceKind.FILE, str(path))

    @classmethod
    def url(cls, url: str) -> Source:
        return cls(SourceKind.URL, url.strip())

    @property
    def is_file(self) -> bool:
        """A file can be paced, paused and resumed where it stopped; a live feed cannot."""
        return self.kind is SourceKind.FILE

    @property
    def label(self) -> str:
        if self.kind is SourceKind.CAMERA:
            return f"Camera {self.target}"
        if self.kind is SourceKind.FILE:
            return Path(self.target).name
        return _without_password(self.target)

    def to_setting(self) -> str:
        return f"{self.kind.value}:{self.target}"

    @classmethod
    def from_setting(cls, text: str) -> Source | None:
        kind, _, target = str(text).partition(":")
        try:
            return cls(SourceKind(kind), target) if target else None
        except ValueError:
            return None


def _without_password(url: str) -> str:
    """The URL as shown and logged: a password in it (rtsp://user:pass@host) is masked."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    host = parts.hostname or ""
    if parts.port is not None:
        host = f"{host}:{parts.port}"
    return urlunsplit(parts._replace(netloc=f"{parts.username}:***@{host}"))


class VideoCaptureLike(Protocol):
    """The part of cv2.VideoCapture the capture worker uses."""

    def isOpened(self) -> bool: ...
    def read(self) -> tuple[bool, np.ndarray | None]: ...
    def grab(self) -> bool: ...
    def get(self, prop: int) -> float: ...
    def set(self, prop: int, value: float) -> bool: ...
    def release(self) -> None: ...


CaptureFactory = Callable[[Source], VideoCaptureLike]


def open_capture(source: Source) -> VideoCaptureLike:
    """A cv2.VideoCapture for the source (may be not opened: the caller checks isOpened)."""
    if source.kind is SourceKind.CAMERA:
        capture = cv2.VideoCapture(int(source.target))
        if capture.isOpened():
            capture.set(cv2.CAP_PROP_BUFFERSIZE, 1)  # keep the driver from queueing stale frames
        return capture
    if source.kind is SourceKind.URL:
        params = [cv2.CAP_PROP_OPEN_TIMEOUT_MSEC, STREAM_TIMEOUT_MS, cv2.CAP_PROP_READ_TIMEOUT_MSEC, STREAM_TIMEOUT_MS]
        return cv2.VideoCapture(source.target, cv2.CAP_FFMPEG, params)
    return cv2.VideoCapture(source.target)


def probe_cameras(indices: Iterable[int] = CAMERA_INDICES) -> list[int]:
    """The camera indices that open. Slow on some systems: call it off the UI thread."""
    found = []
    level = cv2.utils.logging.getLogLevel()
    cv2.utils.logging.setLogLevel(cv2.utils.logging.LOG_LEVEL_ERROR)  # a missing index is not news
    try:
        for index in indices:
            capture = cv2.VideoCapture(index)
            try:
                if capture.isOpened():
                    found.append(index)
            finally:
                capture.release()
    finally:
        cv2.utils.logging.setLogLevel(level)
    log.info("cameras found: %s", found or "none")
    return found
