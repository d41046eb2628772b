"""`predict`: a folder through core with an exported model, the way the app's batch command runs it.

Nothing here knows about torch: this is core.batch.BatchJob with a FaceAnalyzer, so what it
writes is what a user of the app will get from the same model.
"""
from __future__ import annotations

import logging

from tqdm import tqdm

from core.analyzer import FaceAnalyzer
from core.batch import BatchJob, BatchSummary, ImageResult
from core.config import AnalyzerConfig, DetectorConfig
from training.config import PredictConfig

log = logging.getLogger(__name__)


def predict(config: PredictConfig, progress: bool = True) -> BatchSummary:
    """One CSV row per face (core's batch format) at config.out."""
    detector = DetectorConfig(min_face_size=config.min_face, thresholds=config.thresholds)
    analyzer = FaceAnalyzer(AnalyzerConfig(detector=detector, classifier_path=config.model_file))
    job = BatchJob(paths=[config.folder], out=config.out, recursive=config.recursive)
    bar = tqdm(desc="predict", unit="img", disable=not progress)

    def step(result: ImageResult, summary: BatchSummary) -> None:
        bar.total = summary.files
        bar.update(1)

    try:
        summary = job.run(analyzer, progress=step)
    finally:
        bar.close()
    log.info("%s", summary.describe())
    return summary
