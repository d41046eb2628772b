"""A controller that runs one worker object at a time on its own QThread (PySide6's pattern)."""
from __future__ import annotations

from collections.abc import Callable

from PySide6.QtCore import QObject, Qt, QThread, SignalInstance, Slot


class OneShotThread(QObject):
    """Owns at most one worker and its thread; both are deleted when the thread ends."""

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._thread: QThread | None = None
        self._worker: QObject | None = None

    @property
    def running(self) -> bool:
        return self._thread is not None

    def _launch(self, worker: QObject, name: str, run: Callable[[], None], ends: list[SignalInstance]) -> None:
        """Move `worker` to a new thread, call `run` when it starts, quit on any of `ends`."""
        thread = QThread(self)
        thread.setObjectName(name)
        worker.moveToThread(thread)
        thread.started.connect(run)
        for signal in ends:
            # Direct: quit from the worker's thread, so it works even while the UI thread waits.
            signal.connect(thread.quit, Qt.ConnectionType.DirectConnection)
        thread.finished.connect(self._done)
        self._thread, self._worker = thread, worker
        thread.start()

    def wait(self) -> None:
        """Block until a running worker ends (on close: a QThread must not be destroyed running)."""
        if self._thread is not None:
            self._thread.wait()

    @Slot()
    def _done(self) -> None:
        """The thread has ended: dropping the last reference deletes the worker, here (a
        deleteLater() sent to a finished thread never runs: one worker leaked per run)."""
        if self._thread is not None:
            self._thread.wait()  # finished was emitted; let the thread's last clean-up end first
            self._thread.deleteLater()
        self._thread = self._worker = None
