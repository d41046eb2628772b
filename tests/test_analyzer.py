"""FaceAnalyzer on real photos: the detector finds labelled faces, the classifier labels them."""
import shutil

import cv2
import numpy as np
import pytest

from core.analyzer import FaceAnalyzer
from core.config import AnalyzerConfig
from core.labels import encode_class
from core.tracker import iou
from tests.conftest import REPO

SCENE = "images/maksssksksss148.jpg"  # = assets/samples/scene_mixed.jpg


@pytest.fixture(scope="module")
def analyzer(random_classifier) -> FaceAnalyzer:
    return FaceAnalyzer(AnalyzerConfig(classifier_path=random_classifier))


@pytest.fixture(scope="module")
def scene(shared_data) -> np.ndarray:
    return cv2.imread(str(shared_data / "face_mask_853" / SCENE))


def test_faces_are_found_where_people_are_and_fully_labelled(analyzer, scene, scene_boxes):
    faces = analyzer.analyze(scene)
    truth = {
        tuple(float(r[k]) for k in ("xmin", "ymin", "xmax", "ymax")): r["label"] for r in scene_boxes[SCENE]
    }
    found = {box: max(iou(box, f.box) for f in faces) >= 0.4 for box in truth}
    bare = [box for box, label in truth.items() if label == "without_mask"]
    masked = [box for box, label in truth.items() if label == "with_mask"]
    assert len(bare) == 3 and all(found[box] for box in bare), found
    # Stock MTCNN misses some masked faces (the detector issue measures and fixes that).
    assert sum(found[box] for box in masked) >= 2, found
    assert len(faces) <= len(truth)
    for face in faces:
        assert face.box.shape == (4,) and face.landmarks.shape == (5, 2)
        assert 0.0 < face.det_score <= 1.0
        for head in (face.mask, face.gender, face.age):
            assert head is not None and abs(sum(head.probs) - 1.0) < 1e-4
            assert head.confidence == max(head.probs)
        assert face.class_id == encode_class(face.mask.label, face.gender.label, face.age.label)


def test_batched_classification_equals_one_face_at_a_time(analyzer, scene):
    detections = analyzer.detector.detect(scene)
    assert len(detections) >= 2
    together = analyzer.classify(scene, detections)
    alone = [analyzer.classify(scene, [d])[0] for d in detections]
    for a, b in zip(together, alone):
        assert np.allclose(a.mask.probs, b.mask.probs, atol=1e-5)
        assert np.allclose(a.age.probs, b.age.probs, atol=1e-5)


def test_detection_only_without_a_classifier(scene):
    analyzer = FaceAnalyzer(AnalyzerConfig(classifier_path=None))
    faces = analyzer.analyze(scene)
    assert faces and all(f.mask is None and f.class_id is None for f in faces)


def test_blank_and_tiny_images_have_no_faces(analyzer):
    assert analyzer.analyze(np.zeros((480, 640, 3), np.uint8)) == []
    assert analyzer.analyze(np.zeros((1, 1, 3), np.uint8)) == []


def test_default_models_without_a_shipped_classifier_still_detect(monkeypatch, tmp_path, scene):
    shutil.copytree(REPO / "assets" / "models" / "mtcnn", tmp_path / "models" / "mtcnn")
    monkeypatch.setenv("MASK_CHECKER_ASSETS", str(tmp_path))
    analyzer = FaceAnalyzer.with_default_models()
    assert analyzer.classifier is None and analyzer.analyze(scene)
