"""Loading the batch preview image off the UI thread (a large photo takes a noticeable moment).

Only the newest request matters: clicking through rows quickly skips the ones left behind.
"""
from __future__ import annotations

import logging
from pathlib import Path

from PySide6.QtCore import QObject, QThread, Signal, Slot

from core.imageio import ImageReadError, load_image

log = logging.getLogger(__name__)


class _LoadWorker(QObject):
    loaded = Signal(int, object, str)  # request id, BGR image or None, reason if None

    def __init__(self) -> None:
        super().__init__()
        self.latest = 0  # written by the UI thread; an int assignment is atomic

    @Slot(int, str)
    def load(self, request: int, path: str) -> None:
        if request != self.latest:
            return  # a newer request is queued behind this one
        try:
            image, reason = load_image(Path(path)).image, ""
        except ImageReadError as exc:
            image, reason = None, exc.reason
        self.loaded.emit(request, image, reason)


class PreviewLoader(QObject):
    """`request(path)` returns an id; `loaded(id, image, reason)` answers the newest request only."""

    loaded = Signal(int, object, str)
    _load = Signal(int, str)

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._request = 0
        self._thread = QThread(self)
        self._thread.setObjectName("preview")
        self._worker = _LoadWorker()
        self._worker.moveToThread(self._thread)
        self._load.connect(self._worker.load)
        self._worker.loaded.connect(self._on_loaded)
        self._thread.finished.connect(self._worker.deleteLater)
        self._thread.start()

    def request(self, path: Path) -> int:
        self._request += 1
        self._worker.latest = self._request
        self._load.emit(self._request, str(path))
        return self._request

    @Slot(int, object, str)
    def _on_loaded(self, request: int, image, reason: str) -> None:
        if request == self._request:
            self.loaded.emit(request, image, reason)

    def shutdown(self) -> None:
        self._thread.quit()
        self._thread.wait()
