"""Finding the cameras without freezing the window: opening a device can take seconds."""
from __future__ import annotations

import logging
from collections.abc import Callable

from PySide6.QtCore import QObject, Signal, Slot

from app.one_shot import OneShotThread
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


class CameraScanner(OneShotThread):
    """Runs one probe at a time in a short-lived thread; `found` reports the result."""

    found = Signal(list)

    def __init__(self, probe: CameraProbe = probe_cameras, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.probe = probe

    def scan(self) -> None:
        if self.running:
            return
        worker = CameraProbeWorker(self.probe)
        worker.found.connect(self.found)
        self._launch(worker, "camera-probe", worker.run, [worker.finished])
