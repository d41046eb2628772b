"""Captions name the age groups of the model in use: one trained with --age-boundary 58 reads
"30–57" / "58+", never the default "30–59" / "60+"."""
from __future__ import annotations

import cv2
import pytest

from core.analyzer import FaceAnalyzer
from core.config import AnalyzerConfig
from core.labels import Age, age_group_texts
from tests.conftest import build_random_classifier


def test_group_texts_follow_the_boundary():
    assert age_group_texts() == {Age.UNDER_30: "<30", Age.FROM_30_TO_59: "30–59", Age.OVER_60: "60+"}
    assert age_group_texts(58)[Age.FROM_30_TO_59] == "30–57" and age_group_texts(58)[Age.OVER_60] == "58+"


@pytest.mark.parametrize("boundary", [60, 58])
def test_captions_everywhere_use_the_models_boundary(tmp_path, samples_dir, boundary):
    pytest.importorskip("PySide6")
    from app.overlay import face_caption
    from core.draw import face_label
    from core.live import LiveAnalyzer

    model = build_random_classifier(tmp_path / f"age{boundary}.onnx", age_boundary=boundary)
    analyzer = FaceAnalyzer(AnalyzerConfig(classifier_path=model))
    assert analyzer.age_boundary == boundary
    image = cv2.imread(str(samples_dir / "scene_mixed.jpg"))
    faces = analyzer.analyze(image)
    tracked = LiveAnalyzer(analyzer).process(image)
    assert faces and tracked
    names = age_group_texts(boundary)
    for face in [*faces, *tracked]:
        assert face.age_boundary == boundary
        assert names[face.age.label] in face_caption(face)  # the window, previews, snapshots
        assert names[face.age.label].replace("–", "-") in face_label(face)  # annotated copies
