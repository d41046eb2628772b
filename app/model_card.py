"""What the user is told about the loaded classifier: the status-bar line and the About card."""
from __future__ import annotations

import html
import json
import logging
from dataclasses import dataclass
from pathlib import Path

from core.classifier import Classifier
from core.config import default_classifier_path, models_dir
from core.metadata import ModelMetadata

log = logging.getLogger(__name__)

#: Human names of the heads' labels (the file's own names are code words: not_wear, incorrect).
LABEL_WORDS = {"wear": "mask worn", "incorrect": "mask worn wrongly", "not_wear": "no mask",
               "male": "male", "female": "female"}
#: The shipped detector's origin and licence (assets/models/mtcnn/ORIGIN.md says more).
DETECTOR_HTML = (
    "<p><b>Face detector</b>: MTCNN (P-, R- and O-Net), weights from facenet-pytorch 2.5.3 by Tim Esler, "
    "<b>MIT licence</b>; a port of Zhang et al., <i>Joint Face Detection and Alignment Using Multitask "
    "Cascaded Convolutional Networks</i>, 2016. Not trained by this project.</p>"
)
LICENCE_MARK = "**What the licences mean for the weights.**"


def shipped_licence() -> str:
    """The licence paragraph of assets/models/MODEL_CARD.md (the shipped classifier's), or ""."""
    try:
        text = (models_dir() / "MODEL_CARD.md").read_text(encoding="utf-8")
    except OSError as exc:
        log.warning("model card not readable: %s", exc)
        return ""
    start = text.find(LICENCE_MARK)
    if start < 0:
        return ""
    paragraph = text[start + len(LICENCE_MARK):].split("\n\n", 1)[0]
    return " ".join(paragraph.split()).replace("`", "")


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
        """The model card shown in About: what the classifier is, what it learnt from, and the
        licence its weights carry, in words (from the ONNX metadata and, for the shipped model,
        its MODEL_CARD.md)."""
        if self.metadata is None:
            return "<p><b>No classifier loaded</b>: faces are found but not classified.</p>"
        m = self.metadata
        heads = "; ".join(f"{head}: {', '.join(LABEL_WORDS.get(label, label) for label in labels)}"
                          for head, labels in m.heads.items())
        rows = [
            ("Version", m.model_version),
            ("Architecture", m.architecture or "not stated"),
            ("Tells", heads),
            ("Trained on", m.training_data),
            ("Input", f"{m.input_size}×{m.input_size} px face crop, grown by {m.crop_margin:g} of its side"
                      + ("" if m.inner_crop is None else
                         f", with the {m.inner_crop[0]} px crop grown by {m.inner_crop[1]:g} cut on its own at its centre")),
        ]
        if m.extra.get("tta") == "hflip":
            rows.append(("Each face", "judged twice, as seen and mirrored, and the two averaged"))
        score = _validation_score(m.extra.get("ensemble", ""))
        if score:
            rows.append(("Validation", score))
        rows.append(("File", str(self.path) if self.path else "—"))
        body = "".join(f"<tr><td><b>{html.escape(k)}</b></td><td>{html.escape(str(v))}</td></tr>" for k, v in rows)
        licence = m.extra.get("licence") or m.extra.get("license") or ""
        if not licence and self.path is not None and self.path.resolve() == default_classifier_path().resolve():
            licence = shipped_licence()
        licence_html = (f"<p><b>Licence of the weights.</b> {html.escape(licence)}</p>" if licence else
                        "<p><b>Licence of the weights</b>: not stated in this model file; ask whoever trained it.</p>")
        return f"<table cellspacing='4'>{body}</table>{licence_html}"


def _validation_score(ensemble: str) -> str:
    """"mean macro-F1 0.838 on its validation fold" from the exporter's ensemble record, or ""."""
    try:
        members = json.loads(ensemble) if ensemble else []
        scores = [float(member["validation_score"]) for member in members]
    except (ValueError, TypeError, KeyError):
        return ""
    if not scores:
        return ""
    return f"mean macro-F1 {sum(scores) / len(scores):.3f} on its validation fold" + ("s" if len(scores) > 1 else "")
