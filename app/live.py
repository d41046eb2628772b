"""Runs the live pipeline's threads for the window: one capture thread per source, one inference thread.

No widgets here. The window calls start / pause / stop and listens to the signals; requests to
the inference worker go out as queued signals, so it is only ever touched from its own thread.
Each Start opens a new session number: anything still in flight from an older source is
recognised by its number and ignored.
"""
from __future__ import annotations

import logging

from PySide6.QtCore import QObject, Qt, QThread, Signal, Slot

from app.capture import CaptureState, CaptureWorker, RetryPolicy
from app.frames import LatestFrame
from app.inference import AnalyzerFactory, FrameResult, InferenceWorker
from app.sources import CaptureFactory, Source, open_capture
from app.tracking import AlertOptions
from core.analyzer import FaceAnalyzer
from core.config import DetectorConfig, LiveConfig

log = logging.getLogger(__name__)

#: After this long, closing the window logs that a capture read is slow to return (network reads
#: time out at 5 s), then keeps waiting: a QThread must not be destroyed while it runs.
SHUTDOWN_WAIT_MS = 6000


class LiveController(QObject):
    """Owns the capture and inference threads of the live view."""

    frameAnalyzed = Signal(object)  # FrameResult of the current session
    stateChanged = Signal(object, str)  # CaptureState, message
    modelChanged = Signal(object)  # ModelInfo
    modelFailed = Signal(str, str)  # path, reason
    engineFailed = Signal(str)

    # Requests to the inference worker (queued into its thread).
    _startSession = Signal(int)
    _detectorConfig = Signal(object)
    _liveThresholds = Signal(object)
    _loadClassifier = Signal(str)
    _defaultClassifier = Signal()
    _alertOptions = Signal(object)

    def __init__(
        self,
        detector: DetectorConfig,
        model_path: str | None,
        alerts: AlertOptions,
        capture_factory: CaptureFactory = open_capture,
        analyzer_factory: AnalyzerFactory = FaceAnalyzer.with_default_models,
        retry: RetryPolicy = RetryPolicy(),
        parent: QObject | None = None,
        live: LiveConfig | None = None,
    ) -> None:
        super().__init__(parent)
        self.capture_factory = capture_factory
        self.retry = retry
        self.slot = LatestFrame()
        self.session = 0
        self._showing = 0  # the session whose results are shown; 0 after Stop
        self.source: Source | None = None
        self.state = CaptureState.STOPPED
        self._capture: CaptureWorker | None = None
        self._threads: dict[QThread, CaptureWorker] = {}  # running capture threads, kept alive until done
        self._shut_down = False

        self._inference_thread = QThread(self)
        self._inference_thread.setObjectName("inference")
        self.worker = InferenceWorker(self.slot, detector, model_path, alerts, analyzer_factory, live)
        self.worker.moveToThread(self._inference_thread)
        self._inference_thread.started.connect(self.worker.initialize)
        self._inference_thread.finished.connect(self.worker.deleteLater)
        self.worker.analyzed.connect(self._on_analyzed)
        self.worker.modelChanged.connect(self.modelChanged)
        self.worker.modelFailed.connect(self.modelFailed)
        self.worker.failed.connect(self.engineFailed)
        self._startSession.connect(self.worker.start_session)
        self._detectorConfig.connect(self.worker.set_detector_config)
        self._liveThresholds.connect(self.worker.set_live_thresholds)
        self._loadClassifier.connect(self.worker.load_classifier)
        self._defaultClassifier.connect(self.worker.use_default_classifier)
        self._alertOptions.connect(self.worker.set_alert_options)
        self._inference_thread.start()

    # ---------------------------------------------------------------- requests from the window

    def start(self, source: Source) -> None:
        """Stop whatever plays and read `source` in a new session (none once shut down)."""
        if self._shut_down:
            log.warning("not starting %s: the live view is shutting down", source.label)
            return
        self.stop()
        self.session += 1
        self._showing = self.session
        self.source = source
        self.slot.clear()
        self._startSession.emit(self.session)
        thread = QThread(self)
        thread.setObjectName(f"capture-{self.session}")
        worker = CaptureWorker(source, self.session, self.slot, self.capture_factory, self.retry)
        worker.moveToThread(thread)
        thread.started.connect(worker.run)
        worker.frameAvailable.connect(self.worker.process)
        worker.stateChanged.connect(self._on_state)
        # Direct: quit from the capture thread, so it works even while the UI thread waits in shutdown.
        worker.finished.connect(thread.quit, Qt.ConnectionType.DirectConnection)
        thread.finished.connect(lambda: self._on_thread_done(thread))
        self._threads[thread] = worker
        self._capture = worker
        log.info("session %d: %s", self.session, source.label)
        thread.start()

    def set_paused(self, paused: bool) -> None:
        if self._capture is not None:
            self._capture.set_paused(paused)

    def stop(self) -> None:
        """Ask the current capture to end; it finishes on its own thread (the UI does not wait).

        Frames already read are dropped: after Stop the picture does not change any more.
        """
        self._showing = 0
        self.slot.clear()
        if self._capture is not None:
            self._capture.stop()
            self._capture = None

    @property
    def running(self) -> bool:
        return self._capture is not None

    def set_detector_config(self, config: DetectorConfig) -> None:
        self._detectorConfig.emit(config)

    def set_live_thresholds(self, thresholds: tuple[float, float, float] | None) -> None:
        self._liveThresholds.emit(thresholds)

    def load_classifier(self, path: str) -> None:
        self._loadClassifier.emit(path)

    def use_default_classifier(self) -> None:
        self._defaultClassifier.emit()

    def set_alert_options(self, options: AlertOptions) -> None:
        self._alertOptions.emit(options)

    def shutdown(self) -> None:
        """Stop every thread (on close). Waits, with a bound, so no thread outlives the window."""
        self._shut_down = True  # a Start queued behind the close would outlive the window's threads
        self.stop()
        for thread, worker in list(self._threads.items()):
            worker.stop()
            if not thread.wait(SHUTDOWN_WAIT_MS):
                log.warning("capture thread %s is still reading; waiting for it", thread.objectName())
                thread.wait()
        self._inference_thread.quit()
        self._inference_thread.wait()

    # ---------------------------------------------------------------- from the workers

    @Slot(object)
    def _on_analyzed(self, result: FrameResult) -> None:
        if result.session == self._showing:
            self.frameAnalyzed.emit(result)

    @Slot(int, object, str)
    def _on_state(self, session: int, state: CaptureState, message: str) -> None:
        if session != self.session:
            return
        self.state = state
        if state in (CaptureState.ENDED, CaptureState.FAILED, CaptureState.STOPPED):
            self._capture = None
        self.stateChanged.emit(state, message)

    def _on_thread_done(self, thread: QThread) -> None:
        """The capture thread has ended: dropping the last reference deletes its worker, here.

        Not worker.deleteLater(): sent after the thread finished it never runs (one worker leaked
        per Start), and tied to thread.finished it races this method's release (a double delete).
        """
        thread.wait()  # finished was emitted; let the thread's last clean-up end first
        self._threads.pop(thread, None)
        thread.deleteLater()
