"""FaceAnalyzer: faces in, labelled faces out. The one class the app and the batch command use."""
from __future__ import annotations

import logging
from dataclasses import dataclass, replace
from enum import IntEnum

import numpy as np

from core.classifier import Classifier, HeadProbabilities, valid_probabilities
from core.config import AnalyzerConfig, DetectorConfig, shipped_classifier
from core.labels import LABEL_NAMES, OLD_AGE, Age, Gender, Mask, encode_class
from core.mtcnn import MTCNN, Detection

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class HeadResult:
    """One head's verdict: the most likely label and the whole distribution."""

    label: IntEnum
    probs: tuple[float, ...]

    @property
    def confidence(self) -> float:
        return self.probs[int(self.label)]

    @property
    def name(self) -> str:
        head = {Mask: "mask", Gender: "gender", Age: "age"}[type(self.label)]
        return LABEL_NAMES[head][int(self.label)]


@dataclass(frozen=True, eq=False)
class Face:
    """A detected face; the three heads are None when no classifier is loaded.

    eq=False: equal by identity (it holds arrays, which have no single truth value), so `==`,
    `in` and hashing work as for any object."""

    box: np.ndarray  # (4,) x1, y1, x2, y2 in pixels
    landmarks: np.ndarray  # (5, 2) eyes, nose, mouth corners
    det_score: float
    mask: HeadResult | None = None
    gender: HeadResult | None = None
    age: HeadResult | None = None
    age_boundary: int = OLD_AGE  # the classifier's start of the oldest group (its metadata)

    @property
    def class_id(self) -> int | None:
        """The competition's 18-class id (mask·6 + gender·3 + age)."""
        if self.mask is None or self.gender is None or self.age is None:
            return None
        return encode_class(self.mask.label, self.gender.label, self.age.label)

    @property
    def area(self) -> float:
        return float(max(0.0, self.box[2] - self.box[0]) * max(0.0, self.box[3] - self.box[1]))


def scaled(face: Face, factor: float) -> Face:
    """The same face with its box and landmarks multiplied by `factor` (to another image size)."""
    if factor == 1:
        return face
    return replace(face, box=face.box * np.float32(factor), landmarks=face.landmarks * np.float32(factor))


def _head(enum: type[IntEnum], probs: np.ndarray) -> HeadResult | None:
    """The head's verdict; None when the network gave no probabilities (NaN, inf): no label
    is better than the first label, which is what argmax makes of NaN."""
    if not valid_probabilities(probs):
        return None
    return HeadResult(enum(int(np.argmax(probs))), tuple(float(p) for p in probs))


def _labelled(box: np.ndarray, landmarks: np.ndarray, score: float, probs: HeadProbabilities, i: int, age_boundary: int) -> Face:
    """The Face of row i of a batched prediction (a head without valid probabilities: None)."""
    return Face(
        box, landmarks, score, _head(Mask, probs.mask[i]), _head(Gender, probs.gender[i]), _head(Age, probs.age[i]), age_boundary,
    )


class FaceAnalyzer:
    """MTCNN over ONNX plus the classifier; `analyze(image)` returns every face with its labels."""

    def __init__(self, config: AnalyzerConfig | None = None) -> None:
        self.config = config or AnalyzerConfig()
        self.detector = MTCNN(self.config.detector_dir, self.config.detector)
        self.classifier: Classifier | None = None
        if self.config.classifier_path is not None:
            self.classifier = Classifier(self.config.classifier_path)

    @classmethod
    def with_default_models(cls, detector: DetectorConfig | None = None) -> FaceAnalyzer:
        """The shipped detector and, when present, the shipped classifier (else detection only)."""
        return cls(AnalyzerConfig(detector=detector or DetectorConfig(), classifier_path=shipped_classifier()))

    def set_classifier(self, classifier: Classifier | None) -> None:
        """Swap the classifier; the caller loads (and so validates) the new one first."""
        self.classifier = classifier

    def analyze(self, image_bgr: np.ndarray) -> list[Face]:
        """Every face in a BGR uint8 photo, largest detection score first. The minimum face follows
        the photo's size (`MTCNN.detect_photo`); live video detects with the fixed one instead."""
        return self.classify(image_bgr, self.detector.detect_photo(image_bgr))

    def classify(self, image_bgr: np.ndarray, detections: list[Detection]) -> list[Face]:
        """Label given detections; all crops go through the classifier in one batched call."""
        if self.classifier is None or not detections:
            return [Face(d.box, d.landmarks, d.score) for d in detections]
        probs = self._predict(image_bgr, [d.box for d in detections])
        return [_labelled(d.box, d.landmarks, d.score, probs, i, self.age_boundary) for i, d in enumerate(detections)]

    def classify_box(self, image_bgr: np.ndarray, box: np.ndarray) -> Face:
        """A Face for a box that did not come from the detector (e.g. a fallback centre crop)."""
        probs = self._predict(image_bgr, [box])
        return _labelled(np.asarray(box, dtype=np.float32), np.zeros((5, 2), np.float32), 0.0, probs, 0, self.age_boundary)

    @property
    def age_boundary(self) -> int:
        """Where the loaded classifier's oldest age group starts (60 unless it was trained otherwise)."""
        return self.classifier.metadata.age_boundary if self.classifier is not None else OLD_AGE

    def _predict(self, image_bgr: np.ndarray, boxes: list[np.ndarray]) -> HeadProbabilities:
        classifier = self.classifier
        if classifier is None:
            raise RuntimeError("no classifier is loaded")
        return classifier.predict(classifier.metadata.crop_spec.cut_all(image_bgr, boxes))

