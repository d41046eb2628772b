"""Exporting finished batch results with core.batch's own writers, so files match the CLI's."""
from __future__ import annotations

from collections.abc import Iterable
from enum import Enum
from pathlib import Path

from app.model_card import ModelInfo
from core.batch import BatchError, CsvResults, ImageResult, JsonResults, ResultOutput, Submission


class ExportKind(Enum):
    CSV = "csv"
    JSON = "json"
    SUBMISSION = "submission"


def export_results(
    results: Iterable[ImageResult],
    kind: ExportKind,
    path: Path,
    model: ModelInfo,
    info_csv: Path | None = None,
) -> Path:
    """Write `results` to `path` (atomically, by the writers); BatchError says why it cannot."""
    output: ResultOutput
    if kind is ExportKind.CSV:
        output = CsvResults(path)
    elif kind is ExportKind.JSON:
        props = model.metadata.to_props() if model.metadata is not None else {}
        output = JsonResults(path, {k: props.get(k, "") for k in ("model_version", "architecture")})
    else:
        if info_csv is None:
            raise BatchError("a submission needs the competition's info.csv")
        if model.detection_only:
            raise BatchError("a submission needs a classifier model: these results were made with detection only")
        output = Submission(info_csv, path)
    for result in results:
        output.add(result, None)
    return output.close()
