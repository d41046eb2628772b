"""The live view's analysis worker: it owns the FaceAnalyzer and is the only thread that uses it.

It lives in its own QThread and is driven by queued signals only: "a frame is waiting",
"use this detector config", "load this model", "new session". Between two frames its event loop
runs, so settings changes apply at the next frame without any lock. It always analyses the
newest frame in the `LatestFrame` slot; older ones were already dropped there. Frames go through
core's LiveAnalyzer (tracking, periodic full detection, smoothed labels), so a camera is followed
at its own rate on a small CPU and each face keeps a track id.
"""
from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
from PySide6.QtCore import QObject, Signal, Slot

from app.frames import LatestFrame
from app.model_card import ModelInfo
from app.tracking import AlertOptions, FrameNotes, LiveStats
from core.analyzer import FaceAnalyzer
from core.classifier import Classifier
from core.config import DetectorConfig, LiveConfig, shipped_classifier
from core.live import LiveAnalyzer, TrackedFace

log = logging.getLogger(__name__)


@dataclass(frozen=True, eq=False)
class FrameResult:
    """One analysed frame, as the window shows it."""

    session: int
    index: int
    image: np.ndarray  # BGR uint8
    faces: list[TrackedFace]
    notes: FrameNotes
    latency_s: float  # time spent analysing this frame
    captured_at: float  # time.monotonic() when it was read


AnalyzerFactory = Callable[[DetectorConfig], FaceAnalyzer]


class InferenceWorker(QObject):
    """Analyses the newest frame whenever it is free; reports results and model changes."""

    analyzed = Signal(object)  # FrameResult
    modelChanged = Signal(object)  # ModelInfo
    modelFailed = Signal(str, str)  # path, reason
    failed = Signal(str)  # the engine could not start or a frame could not be analysed

    def __init__(
        self,
        slot: LatestFrame,
        detector: DetectorConfig,
        model_path: str | None,
        alerts: AlertOptions,
        analyzer_factory: AnalyzerFactory = FaceAnalyzer.with_default_models,
        live: LiveConfig | None = None,
    ) -> None:
        super().__init__()
        self.slot = slot
        self._detector = detector
        self._model_path = model_path
        self._factory = analyzer_factory
        self._live = live or LiveConfig()
        self.pipeline: LiveAnalyzer | None = None
        self.stats = LiveStats(alerts)
        self._session = 0

    @property
    def analyzer(self) -> FaceAnalyzer | None:
        """The pipeline's analyzer: its models and detector settings are the pipeline's."""
        return self.pipeline.analyzer if self.pipeline is not None else None

    @Slot()
    def initialize(self) -> None:
        """Build the analyzer in this thread (loading the models takes a moment)."""
        try:
            analyzer = self._factory(self._detector)
        except Exception as exc:  # missing detector files: nothing live can work
            log.exception("cannot start the face analyzer")
            self.failed.emit(f"The face detector could not be loaded: {exc}")
            return
        self.pipeline = LiveAnalyzer(analyzer, self._live)
        if not self._model_path or not self.load_classifier(self._model_path):
            self.modelChanged.emit(ModelInfo.of(analyzer.classifier))

    @Slot(str)
    def load_classifier(self, path: str) -> bool:
        """Swap in the classifier at `path`; a file that does not load leaves the old one in use."""
        if self.analyzer is None:
            self.modelFailed.emit(path, "the face analyzer is not running")
            return False
        try:
            classifier = Classifier(Path(path))
        except Exception as exc:  # ClassifierLoadError carries the reason; anything else too
            log.warning("model %s refused: %s", path, exc)
            self.modelFailed.emit(path, str(exc))
            return False
        self._use(classifier)
        return True

    @Slot()
    def use_default_classifier(self) -> None:
        """Back to the shipped classifier, or detection only if none ships."""
        if self.analyzer is None:
            return
        path = shipped_classifier()
        if path is None:
            self._use(None)
        else:
            self.load_classifier(str(path))  # refused: the model in use stays, modelFailed says why

    def _use(self, classifier: Classifier | None) -> None:
        if self.analyzer is None:
            return
        self.analyzer.set_classifier(classifier)
        self.modelChanged.emit(ModelInfo.of(classifier))

    @Slot(object)
    def set_detector_config(self, config: DetectorConfig) -> None:
        self._detector = config
        if self.analyzer is not None:
            self.analyzer.detector.config = config

    @Slot(object)
    def set_live_thresholds(self, thresholds: tuple[float, float, float] | None) -> None:
        """The detector's thresholds in live video (LiveConfig.detector_thresholds), from the next frame."""
        self._live = replace(self._live, detector_thresholds=thresholds)
        if self.pipeline is not None:
            self.pipeline.config = replace(self.pipeline.config, detector_thresholds=thresholds)

    @Slot(object)
    def set_alert_options(self, options: AlertOptions) -> None:
        self.stats.options = options

    @Slot(int)
    def start_session(self, session: int) -> None:
        """A new source: counters and tracks start from zero; older frames are ignored."""
        self._session = session
        self.stats.reset()
        if self.pipeline is not None:
            self.pipeline.reset()

    @Slot()
    def process(self) -> None:
        frame = self.slot.take()
        if frame is None or self.pipeline is None or frame.session != self._session:
            return
        start = time.perf_counter()
        try:
            faces = self.pipeline.process(frame.image)
        except Exception as exc:  # one bad frame must not stop the feed
            log.exception("analysis failed on frame %d", frame.index)
            self.failed.emit(f"analysis failed: {exc}")
            return
        latency = time.perf_counter() - start
        faces = [face for face in faces if face.confirmed]  # a detector flicker is neither drawn nor counted
        notes = self.stats.update(faces)
        self.analyzed.emit(FrameResult(frame.session, frame.index, frame.image, faces, notes, latency, frame.captured_at))
