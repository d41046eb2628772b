"""The mask / gender / age classifier: one ONNX file that describes itself."""
from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, fields
from pathlib import Path

import numpy as np

from core.config import CLASSIFIER_BATCH
from core.crop import to_input
from core.labels import Age, Gender, Mask, marginals
from core.metadata import CLASS_HEAD, ModelMetadata, ModelMetadataError
from core.ort import create_session

log = logging.getLogger(__name__)


@dataclass(frozen=True, eq=False)
class HeadProbabilities:
    """Per-face probabilities of the three heads; rows are faces."""

    mask: np.ndarray  # (N, 3)
    gender: np.ndarray  # (N, 2)
    age: np.ndarray  # (N, 3)

    @classmethod
    def concatenate(cls, parts: Sequence[HeadProbabilities]) -> HeadProbabilities:
        """The rows of `parts`, in order, one object (a crowd classified in several runs)."""
        return cls(*(np.concatenate([getattr(p, f.name) for p in parts]) for f in fields(cls)))


def valid_probabilities(probs: np.ndarray, tolerance: float = 1e-2) -> np.ndarray:
    """Per row of `probs`, whether it is a probability distribution (finite, 0..1, sum 1)."""
    probs = np.asarray(probs, dtype=np.float64)
    finite = np.isfinite(probs).all(axis=-1)
    with np.errstate(invalid="ignore"):
        in_range = ((probs >= -tolerance) & (probs <= 1 + tolerance)).all(axis=-1)
        sums = np.abs(probs.sum(axis=-1) - 1.0) <= tolerance
    return finite & in_range & sums


class ClassifierLoadError(RuntimeError):
    """The file cannot serve as a classifier; the message says why."""


class Classifier:
    """Runs the classifier on face crops: all faces of a frame in one call, `max_batch` faces
    per run of the network (bounded memory on crowds)."""

    def __init__(self, path: str | Path, max_batch: int = CLASSIFIER_BATCH) -> None:
        if max_batch < 1:
            raise ValueError(f"max_batch must be at least 1, not {max_batch}")
        self.path = Path(path)
        self.max_batch = max_batch
        try:
            data = self.path.read_bytes()
        except OSError as exc:
            raise ClassifierLoadError(f"cannot read classifier {self.path}: {exc.strerror or exc}") from exc
        try:
            self._session = create_session(data)
        except Exception as exc:  # onnxruntime raises its own exception types
            raise ClassifierLoadError(f"{self.path.name} is not a loadable ONNX model: {exc}") from exc
        props = dict(self._session.get_modelmeta().custom_metadata_map)
        try:
            self.metadata = ModelMetadata.from_props(props)
        except ModelMetadataError as exc:
            raise ClassifierLoadError(f"{self.path.name}: {exc}") from exc
        self._input_name = self._check_graph()
        self._check_probe()
        log.info("classifier %s (%s), input %d px", self.path.name, self.metadata.model_version, self.input_size)

    @property
    def input_size(self) -> int:
        return self.metadata.input_size

    @property
    def crop_margin(self) -> float:
        return self.metadata.crop_margin

    @property
    def inner_crop(self) -> tuple[int, float] | None:
        """(size, margin) of the narrower crop nested in the input crop, if the file takes one."""
        return self.metadata.inner_crop

    def _check_graph(self) -> str:
        inputs = self._session.get_inputs()
        if len(inputs) != 1 or len(inputs[0].shape) != 4:
            raise ClassifierLoadError(f"{self.path.name}: expected one N×3×H×W input")
        fixed = [d for d in inputs[0].shape[2:] if isinstance(d, int)]
        if any(d != self.input_size for d in fixed):
            raise ClassifierLoadError(
                f"{self.path.name}: the graph takes {inputs[0].shape[2:]} pixels but its metadata says input_size {self.input_size}"
            )
        outputs = {o.name: o for o in self._session.get_outputs()}
        for head, labels in self.metadata.heads.items():
            if head not in outputs:
                raise ClassifierLoadError(f"{self.path.name}: metadata names head '{head}' but the graph has no such output")
            width = outputs[head].shape[-1]
            if isinstance(width, int) and width != len(labels):
                raise ClassifierLoadError(
                    f"{self.path.name}: output '{head}' has {width} values, metadata lists {len(labels)} labels"
                )
        return inputs[0].name

    def _check_probe(self) -> None:
        """One inference on a grey crop: each head must give probabilities (finite, in 0..1,
        summing to 1), so a broken file is refused now rather than labelling every face."""
        try:
            probs = self.predict(np.full((1, self.input_size, self.input_size, 3), 128, np.uint8))
        except Exception as exc:  # onnxruntime raises its own exception types
            raise ClassifierLoadError(f"{self.path.name}: a test inference failed: {exc}") from exc
        for head, enum in (("mask", Mask), ("gender", Gender), ("age", Age)):
            p = np.asarray(getattr(probs, head))
            if p.shape != (1, len(enum)) or not valid_probabilities(p).all():
                raise ClassifierLoadError(
                    f"{self.path.name}: the '{head}' output of a test inference is not a probability "
                    f"distribution over {len(enum)} labels: {np.array2string(p, precision=3)}"
                )

    def predict(self, crops_bgr: np.ndarray) -> HeadProbabilities:
        """Probabilities for N crops (N×S×S×3 BGR uint8, S = input_size), `max_batch` at a time."""
        if len(crops_bgr) == 0:
            return HeadProbabilities(np.zeros((0, len(Mask))), np.zeros((0, len(Gender))), np.zeros((0, len(Age))))
        if len(crops_bgr) <= self.max_batch:
            return self._run(crops_bgr)
        parts = [self._run(crops_bgr[i : i + self.max_batch]) for i in range(0, len(crops_bgr), self.max_batch)]
        return HeadProbabilities.concatenate(parts)

    def _run(self, crops_bgr: np.ndarray) -> HeadProbabilities:
        """One run of the network on at most `max_batch` crops."""
        batch = to_input(crops_bgr, self.metadata.mean, self.metadata.std)
        names = list(self.metadata.heads)
        outputs = dict(zip(names, self._session.run(names, {self._input_name: batch})))
        if CLASS_HEAD in outputs:
            heads = marginals(outputs[CLASS_HEAD])
            return HeadProbabilities(heads["mask"], heads["gender"], heads["age"])
        return HeadProbabilities(
            np.asarray(outputs["mask"], dtype=np.float64),
            np.asarray(outputs["gender"], dtype=np.float64),
            np.asarray(outputs["age"], dtype=np.float64),
        )
