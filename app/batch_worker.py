"""Batch labelling in the background: the CLI's BatchJob.run in a worker thread, with Cancel.

The worker builds its own FaceAnalyzer (from the same detector settings and model file as the
live view), so no analyzer is ever shared between threads.
"""
from __future__ import annotations

import logging
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from PySide6.QtCore import QObject, Signal, Slot

from app.model_card import ModelInfo
from app.one_shot import OneShotThread
from core.analyzer import FaceAnalyzer
from core.batch import BatchJob, BatchOptions, BatchSummary, ImageResult
from core.config import AnalyzerConfig, DetectorConfig

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class AnalyzerSpec:
    """How to build an analyzer equal to the live one: detector settings and classifier file."""

    detector: DetectorConfig
    classifier_path: Path | None

    def build(self) -> FaceAnalyzer:
        return FaceAnalyzer(AnalyzerConfig(detector=self.detector, classifier_path=self.classifier_path))


class BatchWorker(QObject):
    modelInfo = Signal(object)  # ModelInfo of the analyzer this job runs with
    progress = Signal(object, int, int)  # ImageResult, done, files
    finished = Signal(object)  # BatchSummary
    failed = Signal(str)

    def __init__(self, paths: Sequence[Path], spec: AnalyzerSpec, recursive: bool) -> None:
        super().__init__()
        self.paths = list(paths)
        self.spec = spec
        self.recursive = recursive
        self._cancel = threading.Event()

    def cancel(self) -> None:
        """Thread-safe: the job stops after the image in progress, keeping what was done."""
        self._cancel.set()

    @Slot()
    def run(self) -> None:
        try:
            analyzer = self.spec.build()
            self.modelInfo.emit(ModelInfo.of(analyzer.classifier))
            # centre_fallback: a no-face image still gets a guess, for a submission export.
            options = BatchOptions(centre_fallback=analyzer.classifier is not None)
            job = BatchJob(paths=self.paths, recursive=self.recursive, options=options)
            summary = job.run(analyzer, progress=self._report, should_stop=self._cancel.is_set)
        except Exception as exc:  # a bad model or an unreadable folder list: say so, do not crash
            log.exception("batch failed")
            self.failed.emit(str(exc))
            return
        self.finished.emit(summary)

    def _report(self, result: ImageResult, summary: BatchSummary) -> None:
        self.progress.emit(result, summary.done, summary.files)


class BatchController(OneShotThread):
    """Starts one batch at a time in its own thread and relays its signals to the window."""

    started = Signal(int)  # number of paths given
    modelInfo = Signal(object)
    progress = Signal(object, int, int)
    finished = Signal(object)
    failed = Signal(str)

    def start(self, paths: Sequence[Path], spec: AnalyzerSpec, recursive: bool) -> bool:
        if self.running:
            return False
        worker = BatchWorker(paths, spec, recursive)
        worker.modelInfo.connect(self.modelInfo)
        worker.progress.connect(self.progress)
        worker.finished.connect(self.finished)
        worker.failed.connect(self.failed)
        self._launch(worker, "batch", worker.run, [worker.finished, worker.failed])
        self.started.emit(len(paths))
        return True

    def cancel(self) -> None:
        if isinstance(self._worker, BatchWorker):
            self._worker.cancel()

    def shutdown(self) -> None:
        if self.running:
            self.cancel()  # BatchJob checks after each image
            self.wait()
