"""Reading frames off the UI thread, and getting them back when the source drops out.

The worker's `run` loops in its own QThread: it reads with cv2.VideoCapture, drops each frame
into a `LatestFrame` slot (only the newest is kept) and tells the world how the source is doing
through signals. Stop and pause are thread-safe flags, since the loop does not return to the
thread's event loop until it ends. A lost source is reopened with growing delays (forever for a
camera or stream, a few times for a file, which resumes at the frame where it failed). A source
that never opened is tried `connect_attempts` times, then given up with the reason: "lost" and
"retrying" would promise a picture that was never there; the window offers Retry instead.
"""
from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass
from enum import Enum
from pathlib import Path

import cv2
from PySide6.QtCore import QObject, Signal, Slot

from app.frames import Frame, LatestFrame
from app.sources import CaptureFactory, Source, SourceKind, VideoCaptureLike, open_capture

log = logging.getLogger(__name__)


class CaptureState(Enum):
    CONNECTING = "connecting"
    PLAYING = "playing"
    PAUSED = "paused"
    LOST = "lost"  # retrying
    ENDED = "ended"  # end of a video file
    FAILED = "failed"  # gave up
    STOPPED = "stopped"


@dataclass(frozen=True)
class RetryPolicy:
    """Delays between reconnection attempts (the last repeats); a file gets `file_attempts`, and
    a source that has not given a single frame yet `connect_attempts` in all."""

    delays_s: tuple[float, ...] = (0.5, 1.0, 2.0, 5.0)
    file_attempts: int = 3
    connect_attempts: int = 3

    def delay(self, failures: int) -> float:
        return self.delays_s[min(failures, len(self.delays_s)) - 1]


#: Pace for a file that does not say its frame rate.
DEFAULT_FILE_FPS = 25.0


class _Outcome(Enum):
    ENDED = 1
    LOST = 2
    STOPPED = 3


def _not_opened_reason(source: Source) -> str:
    """Why a capture did not open, as far as can be told: OpenCV gives no reason of its own."""
    if source.kind is SourceKind.CAMERA:
        return "the camera did not open: is it plugged in, and not in use by another program?"
    if source.is_file:
        return "the file could not be opened as a video"
    return "no answer: check the address, the network and that the stream is running"


class CaptureWorker(QObject):
    """Reads one source until stopped; emits `frameAvailable` when the slot needs a look."""

    frameAvailable = Signal()
    stateChanged = Signal(int, object, str)  # session, CaptureState, message for the user
    finished = Signal(int)  # session

    def __init__(
        self,
        source: Source,
        session: int,
        slot: LatestFrame,
        factory: CaptureFactory = open_capture,
        retry: RetryPolicy = RetryPolicy(),
        pace_files: bool = True,
    ) -> None:
        super().__init__()
        self.source = source
        self.session = session
        self.slot = slot
        self.factory = factory
        self.retry = retry
        self.pace_files = pace_files
        self._stop = threading.Event()
        self._paused = threading.Event()
        self.position = 0  # frames read so far (for a file: where to resume)
        self.state = CaptureState.STOPPED  # the last state announced
        self._reason = "it did not open"  # why the last open failed (for "could not connect")

    # Called from the UI thread: plain thread-safe flags.
    def stop(self) -> None:
        self._stop.set()

    def set_paused(self, paused: bool) -> None:
        if paused:
            self._paused.set()
        else:
            self._paused.clear()
        if not self._stop.is_set() and self.state in (CaptureState.PLAYING, CaptureState.PAUSED):
            self._emit(CaptureState.PAUSED if paused else CaptureState.PLAYING, "Paused" if paused else "")

    @Slot()
    def run(self) -> None:
        try:
            self._run()
        except Exception as exc:  # a crash here must end the session, not the app
            log.exception("capture of %s failed", self.source.label)
            self._emit(CaptureState.FAILED, f"{self.source.label}: {exc}")
        finally:
            self.finished.emit(self.session)

    def _emit(self, state: CaptureState, message: str) -> None:
        self.state = state
        self.stateChanged.emit(self.session, state, message)

    def _run(self) -> None:
        failures = 0
        connected = False  # a frame was read since Start
        if self.source.is_file and not Path(self.source.target).is_file():
            self._emit(CaptureState.FAILED, f"{self.source.target}: file not found")
            return
        self._emit(CaptureState.CONNECTING, f"Opening {self.source.label}…")
        while not self._stop.is_set():
            capture = self._open()
            if capture is not None:
                try:
                    outcome, read_any = self._read(capture, reconnected=connected)
                finally:
                    capture.release()
                if outcome is _Outcome.ENDED:
                    self._emit(CaptureState.ENDED, f"{self.source.label}: end of video")
                    return
                if outcome is _Outcome.STOPPED:
                    break
                if read_any:
                    failures = 0
                    connected = True
                elif not connected:
                    self._reason = "it opened but sent no picture"
            failures += 1
            if not connected:
                if failures >= self.retry.connect_attempts:
                    verb = "open" if self.source.is_file else "connect to"
                    self._emit(CaptureState.FAILED, f"Could not {verb} {self.source.label} ({self._reason}).")
                    return
                delay = self.retry.delay(failures)
                self._emit(CaptureState.CONNECTING,
                           f"Connecting to {self.source.label}… (attempt {failures + 1} of {self.retry.connect_attempts})")
                if self._stop.wait(delay):
                    break
                continue
            if self.source.is_file and failures > self.retry.file_attempts:
                self._emit(CaptureState.FAILED, f"{self.source.label} cannot be read (gave up after {failures - 1} retries)")
                return
            delay = self.retry.delay(failures)
            what = "Camera" if self.source.kind is SourceKind.CAMERA else "Source"
            self._emit(
                CaptureState.LOST,
                f"{what} lost: {self.source.label}. Retrying in {delay:g} s (attempt {failures})…",
            )
            log.warning("%s lost; retry %d in %.1f s", self.source.label, failures, delay)
            if self._stop.wait(delay):
                break
        self._emit(CaptureState.STOPPED, "Stopped")

    def _open(self) -> VideoCaptureLike | None:
        """The opened capture, or None; `_reason` then says why, in the user's words."""
        try:
            capture = self.factory(self.source)
        except Exception as exc:
            log.exception("opening %s raised", self.source.label)
            self._reason = str(exc) or type(exc).__name__
            return None
        if not capture.isOpened():
            capture.release()
            self._reason = _not_opened_reason(self.source)
            return None
        if self.source.is_file and self.position > 0:
            capture.set(cv2.CAP_PROP_POS_FRAMES, self.position)
        return capture

    def _read(self, capture: VideoCaptureLike, reconnected: bool) -> tuple[_Outcome, bool]:
        """Read until the source ends, fails or we are stopped; also says if any frame came."""
        is_file = self.source.is_file
        fps = capture.get(cv2.CAP_PROP_FPS) if is_file else 0.0
        period = 1.0 / (fps if 1.0 <= fps <= 240.0 else DEFAULT_FILE_FPS)
        frame_count = capture.get(cv2.CAP_PROP_FRAME_COUNT) if is_file else 0.0
        next_due = time.monotonic()
        read_any = False
        while not self._stop.is_set():
            if self._paused.is_set():
                if is_file:
                    self._stop.wait(0.05)
                    next_due = time.monotonic()
                    continue
                if not capture.grab():  # a live feed keeps flowing so Resume shows "now"
                    return _Outcome.LOST, read_any
                continue
            ok, image = capture.read()
            if not ok or image is None:
                # FFmpeg may overstate a file's frame count; a file reopened at its position that
                # gives nothing more has ended, it is not lost.
                at_end = frame_count <= 0 or self.position >= frame_count - 1 or (reconnected and not read_any)
                if is_file and at_end:
                    return _Outcome.ENDED, read_any
                return _Outcome.LOST, read_any
            if not read_any:
                read_any = True
                message = "Reconnected" if reconnected else ""
                self._emit(CaptureState.PAUSED if self._paused.is_set() else CaptureState.PLAYING, message)
            frame = Frame(self.session, self.position, image, time.monotonic())
            self.position += 1
            if self.slot.put(frame):
                self.frameAvailable.emit()
            if is_file and self.pace_files:
                next_due += period
                wait = next_due - time.monotonic()
                if wait > 0:
                    self._stop.wait(wait)
                elif wait < -1.0:
                    next_due = time.monotonic()  # after a stall, do not rush to catch up
        return _Outcome.STOPPED, read_any
