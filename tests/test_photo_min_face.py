"""The batch path's per-photo minimum face (DetectorConfig.min_face_fraction, MTCNN.detect_photo):
small photos are also searched for small faces; large photos and live video are searched as before."""
from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

from core.analyzer import FaceAnalyzer
from core.batch import BatchJob
from core.config import AnalyzerConfig, DetectorConfig
from core.imageio import load_image
from core.live import LiveAnalyzer
from core.mtcnn import MTCNN, Detection, add_small_faces
from training.detector.evaluate import match
from training.detector.scenes import boxes_table, load_scenes

#: A face_mask_853 photo (400x225) with 18 labelled faces 20-40 px wide, 7 of them missed at min face 40.
SMALL_SCENE = "maksssksksss139.jpg"


def test_rule_arithmetic_on_small_and_large_photos():
    rule = DetectorConfig()  # 0.1 of the short side, within [20, 40]
    assert (rule.min_face_fraction, rule.min_face_floor, rule.min_face_size) == (0.1, 20, 40)
    assert rule.photo_min_face(267, 400) == 27
    assert rule.photo_min_face(400, 225) == 22  # the short side, whichever it is
    assert rule.photo_min_face(150, 150) == 20  # never below the floor
    assert rule.photo_min_face(399, 600) == 40
    assert rule.photo_min_face(3000, 4000) == 40  # a large photo: min_face_size, as before
    assert DetectorConfig(min_face_fraction=0.0).photo_min_face(200, 200) == 40  # off
    assert DetectorConfig(min_face_size=60).photo_min_face(300, 500) == 30
    assert DetectorConfig(min_face_size=15).photo_min_face(100, 100) == 15  # never above min_face_size
    assert DetectorConfig(min_face_fraction=0.05, min_face_floor=12).photo_min_face(100, 100) == 12
    with pytest.raises(ValueError):
        DetectorConfig(min_face_fraction=1.0)
    with pytest.raises(ValueError):
        DetectorConfig(min_face_floor=8)


def _det(box, score: float) -> Detection:
    return Detection(box=np.array(box, np.float32), score=score, landmarks=np.zeros((5, 2), np.float32))


def test_small_faces_are_added_only_outside_faces_already_found():
    big = _det([100, 100, 200, 220], 0.9)
    inside = _det([120, 150, 150, 180], 0.99)  # a mask inside the face: part of it, not another face
    apart = _det([10, 10, 35, 38], 0.8)  # a small face elsewhere
    large = _det([300, 100, 360, 170], 0.95)  # a box >= min face from the deeper pass: not a small face
    merged = add_small_faces([big], [inside, apart, large, big], max_side=40)
    assert merged == [big, apart]  # best score first
    assert add_small_faces([], [apart, large], max_side=40) == [apart]
    assert add_small_faces([big], [], max_side=40) == [big]


@pytest.fixture(scope="module")
def small_scene(shared_data: Path):
    (scene,) = [s for s in load_scenes(boxes_table(shared_data), "all") if s.path.name == SMALL_SCENE]
    return scene


def _found_small(scene, boxes: np.ndarray) -> int:
    truth_hit, _ = match(scene.boxes, np.asarray(boxes, np.float32).reshape(-1, 4))
    widths = scene.boxes[:, 2] - scene.boxes[:, 0]
    return int((truth_hit & (widths >= 20) & (widths < 40)).sum())


def test_detect_photo_keeps_every_face_of_the_fixed_search_and_adds_small_ones(small_scene):
    image = load_image(small_scene.path).image
    detector = MTCNN(config=DetectorConfig())
    fixed = np.array([d.box for d in detector.detect(image)]).reshape(-1, 4)
    photo = np.array([d.box for d in detector.detect_photo(image)]).reshape(-1, 4)
    assert all(any(np.array_equal(f, p) for p in photo) for f in fixed)
    assert _found_small(small_scene, photo) >= _found_small(small_scene, fixed) + 3
    # A photo large enough for the rule to reach min_face_size is searched as a video frame.
    large = np.ascontiguousarray(np.tile(image, (2, 1, 1)))  # 400x450: short side >= 400
    assert [d.box.tolist() for d in detector.detect_photo(large)] == [d.box.tolist() for d in detector.detect(large)]


def test_batch_finds_small_faces_that_min_face_40_alone_misses(small_scene, tmp_path: Path):
    folder = tmp_path / "photos"
    folder.mkdir()
    shutil.copy(small_scene.path, folder / SMALL_SCENE)

    def run(detector: DetectorConfig) -> np.ndarray:
        analyzer = FaceAnalyzer(AnalyzerConfig(detector=detector, classifier_path=None))
        results: list = []
        BatchJob(paths=[folder], out=tmp_path / f"r{detector.min_face_fraction}.csv").run(
            analyzer, progress=lambda result, summary: results.append(result))
        (result,) = results
        return np.array([f.box for f in result.faces]).reshape(-1, 4)

    per_photo, fixed = run(DetectorConfig()), run(DetectorConfig(min_face_fraction=0.0))
    assert _found_small(small_scene, per_photo) >= _found_small(small_scene, fixed) + 3
    assert len(per_photo) <= len(small_scene.boxes)  # the added boxes are faces, not clutter


def test_live_video_keeps_the_fixed_minimum_face(small_scene):
    """The fraction changes nothing live: the same frame gives the same tracks with or without it."""
    image = load_image(small_scene.path).image

    def live(detector: DetectorConfig) -> list[list[float]]:
        analyzer = FaceAnalyzer(AnalyzerConfig(detector=detector, classifier_path=None))
        return sorted(t.box.tolist() for t in LiveAnalyzer(analyzer).process(image))

    with_rule, without = live(DetectorConfig()), live(DetectorConfig(min_face_fraction=0.0))
    assert with_rule and with_rule == without  # (a photo search of this frame finds 4 faces more: see above)
