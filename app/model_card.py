"""What the user is told about the loaded classifier: the status-bar line and the About card."""
from __future__ import annotations

import html
from dataclasses import dataclass
from pathlib import Path

from core.classifier import Classifier
from core.config import default_classifier_path
from core.metadata import ModelMetadata


@dataclass(frozen=True)
class ModelInfo:
    """The classifier in use, or none (detection only). Immutable: safe to pass between threads."""

    path: Path | None = None
    metadata: ModelMetadata | None = None

    @classmethod
    def of(cls, classifier: Classifier | None) -> ModelInfo:
        return cls() if classifier is None else cls(classifier.path, classifier.metadata)

    @property
    def detection_only(self) -> bool:
        return self.metadata is None

    def status_text(self) -> str:
        if self.metadata is None:
            return (
                f"Detection only: no classifier model ({default_classifier_path().name} not found). "
                "Faces are found but not classified; load a model in Settings."
            )
        name = self.path.name if self.path else "model"
        return f"Model: {self.metadata.model_version} ({name})"

    def card_html(self) -> str:
        """The model card summary shown in About, from the ONNX metadata."""
        if self.metadata is None:
            return "<p><b>No classifier loaded</b>: faces are found but not classified.</p>"
        m = self.metadata
        rows = [
            ("Version", m.model_version),
            ("Architecture", m.architecture or "—"),
            ("Training data", m.training_data),
            ("Heads", "; ".join(f"{head}: {', '.join(labels)}" for head, labels in m.heads.items())),
            ("Input", f"{m.input_size}×{m.input_size} px, crop margin {m.crop_margin:g}"),
            ("Age groups", f"<30, 30–{m.age_boundary - 1}, {m.age_boundary}+"),
            ("File", str(self.path) if self.path else "—"),
        ]
        rows += sorted(m.extra.items())
        body = "".join(f"<tr><td><b>{html.escape(k)}</b></td><td>{html.escape(str(v))}</td></tr>" for k, v in rows)
        return f"<table cellspacing='4'>{body}</table>"
