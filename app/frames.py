"""The hand-over between capture and inference: one slot that always holds the newest frame.

The capture thread overwrites the slot; the inference worker takes whatever is there when it is
free. Frames it had no time for are dropped, so lag never builds up. `put` tells the producer
when to send a wake-up signal: at most one is outstanding, so the consumer's event queue does
not fill with notifications either.
"""
from __future__ import annotations

import threading
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True, eq=False)
class Frame:
    """A captured picture. index: its number in the source (file position, or count for a feed)."""

    session: int
    index: int
    image: np.ndarray  # BGR uint8
    captured_at: float  # time.monotonic()


class LatestFrame:
    """A thread-safe single-frame mailbox that keeps only the newest frame."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._frame: Frame | None = None
        self._signalled = False
        self.dropped = 0  # frames replaced before anyone took them

    def put(self, frame: Frame) -> bool:
        """Store `frame`, replacing any untaken one; True when the consumer needs a wake-up."""
        with self._lock:
            if self._frame is not None:
                self.dropped += 1
            self._frame = frame
            if self._signalled:
                return False
            self._signalled = True
            return True

    def take(self) -> Frame | None:
        """The newest frame, or None; the slot is empty afterwards."""
        with self._lock:
            frame, self._frame = self._frame, None
            self._signalled = False
            return frame

    def clear(self) -> None:
        self.take()
