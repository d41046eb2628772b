"""Finding the cameras without freezing the window: opening a device can take seconds."""
from __future__ import annotations

import logging
from collections.abc import Callable

from PySide6.QtCore import QObject, Qt, QThread, Signal, Slot

from app.sources import probe_cameras

log = logging.getLogger(__name__)

CameraProbe = Callable[[], list[int]]


class CameraProbeWorker(QObject):
    found = Signal(list)  # camera indices that open
    finished = Signal()

    def __init__(self, probe: CameraProbe = probe_cameras) -> None:
        super().__init__()
        self.probe = probe

    @Slot()
    def run(self) -> None:
        try:
            cameras = list(self.probe())
        except Exception:  # a driver error means "no camera", not a crash
            log.exception("camera probe failed")
            cameras = []
        self.found.emit(cameras)
        self.finished.emit()


class CameraScanner(QObject):
    """Runs one probe at a time in a short-lived thread; `found` reports the result."""

    found = Signal(list)

    def __init__(self, probe: CameraProbe = probe_cameras, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.probe = probe
        self._thread: QThread | None = None
        self._worker: CameraProbeWorker | None = None

    @property
    def busy(self) -> bool:
        return self._thread is not None

    def scan(self) -> None:
        if self._thread is not None:
            return
        thread = QThread(self)
        thread.setObjectName("camera-probe")
        worker = CameraProbeWorker(self.probe)
        worker.moveToThread(thread)
        thread.started.connect(worker.run)
        worker.found.connect(self.found)
        worker.finished.connect(thread.quit, Qt.ConnectionType.DirectConnection)
        thread.finished.connect(self._done)
        self._thread, self._worker = thread, worker
        thread.start()

    def wait(self) -> None:
        """Block until a running probe ends (on close: a QThread must not be destroyed running)."""
        if self._thread is not None:
            self._thread.wait()

    @Slot()
    def _done(self) -> None:
        if self._worker is not None:
            self._worker.deleteLater()
        if self._thread is not None:
            self._thread.deleteLater()
        self._thread = self._worker = None
