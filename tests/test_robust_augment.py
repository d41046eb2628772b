"""The robust augmentations (issue 16): each changes a real face crop the way it says, keeps shape and
dtype, and is a function of the generator's seed; off, the training views are the ones of before."""
from __future__ import annotations

import dataclasses
from pathlib import Path

import cv2
import numpy as np
import pytest

from core.labels import Gender
from training.classifier import robust
from training.classifier.augment import AugmentConfig, augment, augment_config, color_jitter, cutout, random_resized_crop
from training.classifier.dataset import CropDataset
from training.config import ConfigError, TrainConfig, load_toml, make_config
from training.config.classifier import ROBUST_PROBABILITIES
from training.data.cache import CachedFace, CropGeometry
from training.data.records import ManifestRow
from tests.conftest import REPO

GEOMETRY = CropGeometry.from_context(64, 0.2, 1.25)  # 64 px input, 80 px context crop
FACES = ("23_0_0_20170104004006925.jpg.chip.jpg", "40_1_2_20170109003053046.jpg.chip.jpg")


@pytest.fixture(scope="module")
def cached(shared_data: Path) -> np.ndarray:
    """A real UTKFace chip at the context crop's size (BGR uint8)."""
    image = cv2.imread(str(shared_data / "utkface" / "images" / FACES[0]))
    assert image is not None
    return cv2.resize(image, (GEOMETRY.cache_size, GEOMETRY.cache_size), interpolation=cv2.INTER_AREA)


@pytest.fixture(scope="module")
def crop(cached: np.ndarray) -> np.ndarray:
    return GEOMETRY.centre(cached)


def sharpness(image: np.ndarray) -> float:
    return float(cv2.Laplacian(cv2.cvtColor(image, cv2.COLOR_BGR2GRAY), cv2.CV_64F).var())


def rng(seed: int) -> np.random.Generator:
    return np.random.default_rng([seed, 1, 2])


def test_blur_removes_detail(crop):
    for seed in range(8):
        view = robust.blur(crop, rng(seed))
        assert view.shape == crop.shape and view.dtype == np.uint8
        assert sharpness(view) < 0.7 * sharpness(crop)


def test_low_resolution_is_the_crop_through_a_small_image(crop):
    side = crop.shape[0]
    for seed in range(6):
        view = robust.low_res(crop, rng(seed))
        assert view.shape == crop.shape and view.dtype == np.uint8 and not np.array_equal(view, crop)
        matches = [(n, method) for n in range(8, round(0.5 * side) + 1)
                   for method in (cv2.INTER_NEAREST, cv2.INTER_LINEAR, cv2.INTER_CUBIC)
                   if np.array_equal(view, cv2.resize(cv2.resize(crop, (n, n), interpolation=cv2.INTER_AREA), (side, side),
                                                      interpolation=method))]
        assert matches, "not an enlarged copy of a 8 px to half-side image"


def test_jpeg_is_a_low_quality_encoding_of_the_crop(crop):
    view = robust.jpeg(crop, rng(0))
    assert view.shape == crop.shape and view.dtype == np.uint8 and not np.array_equal(view, crop)
    matches = [q for q in range(8, 36)
               if np.array_equal(view, cv2.imdecode(cv2.imencode(".jpg", crop, [cv2.IMWRITE_JPEG_QUALITY, q])[1], cv2.IMREAD_COLOR))]
    assert matches, "not the JPEG of the crop at any quality 8-35"


def test_grayscale_and_colour_shift(crop):
    grey = robust.grayscale(crop)
    assert grey.shape == crop.shape and np.array_equal(grey[..., 0], grey[..., 1]) and np.array_equal(grey[..., 1], grey[..., 2])
    assert np.abs(grey[..., 0].astype(int) - cv2.cvtColor(crop, cv2.COLOR_BGR2GRAY)).max() == 0
    before = crop.reshape(-1, 3).mean(axis=0)
    ratios = []
    for seed in range(10):
        shifted = robust.color_shift(crop, rng(seed))
        assert shifted.shape == crop.shape and shifted.dtype == np.uint8
        after = shifted.reshape(-1, 3).mean(axis=0)
        ratios.append(np.abs(np.log((after[0] / after[2]) / (before[0] / before[2]))))
    assert max(ratios) > np.log(1.3)  # strong casts happen: blue/red balance moved by more than 30 %


def test_rotation_turns_about_the_centre():
    image = np.zeros((81, 81, 3), np.uint8)
    cv2.circle(image, (70, 40), 3, (255, 255, 255), -1)  # 30 px right of the centre (40, 40)
    turned = robust.rotate(image, 20.0)
    ys, xs = np.nonzero(turned[..., 0] > 128)
    angle = np.deg2rad(20.0)
    expected = (40 + 30 * np.cos(angle), 40 - 30 * np.sin(angle))  # counter-clockwise as seen: up
    assert abs(xs.mean() - expected[0]) < 1.0 and abs(ys.mean() - expected[1]) < 1.0


def test_profile_view_is_narrower_and_off_centre():
    size, cache = GEOMETRY.input_size, GEOMETRY.cache_size
    image = np.zeros((cache, cache, 3), np.uint8)
    cv2.circle(image, (cache // 2, cache // 2), 20, (255, 255, 255), -1)  # a round "face" at the centre
    for seed in range(8):
        view = robust.profile_view(image, size, rng(seed))
        assert view.shape == (size, size, 3) and view.dtype == np.uint8
        ys, xs = np.nonzero(view[..., 0] > 128)
        width, height = np.ptp(xs) + 1, np.ptp(ys) + 1
        assert width / height < 0.86  # 1.2-1.5 x narrower than tall
        assert abs(xs.mean() - (size - 1) / 2) >= 0.05 * size  # off-centre


def test_edge_cut_fills_one_side(crop):
    size = crop.shape[0]
    for seed in range(12):
        view = robust.edge_cut(crop, rng(seed))
        changed = np.any(view != crop, axis=2)
        cols, rows = np.nonzero(changed.any(axis=0))[0], np.nonzero(changed.any(axis=1))[0]
        assert changed.any()
        touches = [cols.min() == 0, cols.max() == size - 1, rows.min() == 0, rows.max() == size - 1]
        horizontal = len(rows) == size  # a left/right band changes every row
        band = view[:, cols.min() : cols.max() + 1] if horizontal else view[rows.min() : rows.max() + 1]
        depth = band.shape[1] if horizontal else band.shape[0]
        assert 0.1 * size <= depth <= 0.4 * size + 1 and sum(touches) >= 3
        # the band is black, or one column (row) repeated: flat along the cut direction
        assert (band == 0).all() or (np.ptp(band.astype(int), axis=1 if horizontal else 0) == 0).all()


def test_occlusion_covers_part_of_the_face_and_nothing_else(crop):
    for seed in range(10):
        view = robust.occlude(crop, rng(seed))
        changed = np.any(view != crop, axis=2).mean()
        assert view.shape == crop.shape and view.dtype == np.uint8
        assert 0.02 < changed < 0.6
        count, _ = cv2.connectedComponents(np.any(view != crop, axis=2).astype(np.uint8))
        assert count - 1 <= 6  # one shape (a hand's fingers may touch or not), not noise all over


def test_tight_crop_keeps_about_the_face_box_and_blacks_out_the_rest(crop):
    size, margin = crop.shape[0], GEOMETRY.crop_margin
    inner = size / (1 + 2 * margin)  # the face box's side in the view
    edge = (size - inner) / 2
    tops = []
    for seed in range(12):
        view = robust.tight_crop(crop, margin, rng(seed))
        assert view.shape == crop.shape and view.dtype == np.uint8
        kept = np.any(view != 0, axis=2) | np.all(crop == 0, axis=2)
        ys, xs = np.nonzero(kept)
        y0, y1, x0, x1 = ys.min(), ys.max() + 1, xs.min(), xs.max() + 1
        assert np.array_equal(view[y0:y1, x0:x1], crop[y0:y1, x0:x1])  # one rectangle kept as it was
        assert not view[:y0].any() and not view[y1:].any() and not view[:, :x0].any() and not view[:, x1:].any()
        assert edge - 0.1 * inner <= x0 and x1 <= size - edge + 0.1 * inner + 1  # about the box's sides
        assert edge - 1 <= y0 <= edge + 0.2 * inner + 1  # the hair above the box is always gone
        assert 0.35 < (y1 - y0) * (x1 - x0) / size**2 < 0.65
        tops.append(y0)
    assert len(set(tops)) > 3  # the top edge moves through the forehead


ALL_ON = AugmentConfig(**{name: 1.0 for name in ROBUST_PROBABILITIES}, tight_crop=1.0)


def test_every_robust_view_keeps_shape_and_is_a_function_of_the_seed(cached):
    views = [augment(cached, GEOMETRY, ALL_ON, rng(seed)) for seed in range(4)]
    for view in views:
        assert view.shape == (64, 64, 3) and view.dtype == np.uint8
    assert np.array_equal(views[0], augment(cached, GEOMETRY, ALL_ON, rng(0)))
    assert not np.array_equal(views[0], views[1])


def test_off_the_views_are_those_of_before(cached):
    """With every robust probability 0, augment draws exactly what it drew before they existed."""
    config = AugmentConfig()
    for seed in range(5):
        old = rng(seed)
        image = random_resized_crop(cached, GEOMETRY, config, old)
        if old.random() < 0.5:
            image = np.ascontiguousarray(image[:, ::-1])
        image = color_jitter(image, config.color_jitter, old)
        if old.random() < config.cutout:
            image = cutout(image, old)
        assert np.array_equal(augment(cached, GEOMETRY, config, rng(seed)), image)


def test_the_dataset_view_is_seeded_by_seed_epoch_and_index(tmp_path, cached):
    path = tmp_path / "crop.png"
    cv2.imwrite(str(path), cached)
    face = CachedFace(ManifestRow(Path(FACES[0]), "p", None, Gender.MALE, 23.0, None, "utk"), path)
    labels = np.zeros((2, 3), np.int64)
    data = CropDataset([face, face], labels, GEOMETRY, (0.5,) * 3, (0.5,) * 3, ALL_ON, seed=7)
    data.set_epoch(3)
    first, other_index = data.view(0), data.view(1)
    again = CropDataset([face, face], labels, GEOMETRY, (0.5,) * 3, (0.5,) * 3, ALL_ON, seed=7)
    again.set_epoch(3)
    assert np.array_equal(first, again.view(0))
    assert not np.array_equal(first, other_index)
    again.set_epoch(4)
    assert not np.array_equal(first, again.view(0))


def test_train_settings_reach_the_augmentation_and_are_checked():
    config = TrainConfig(blur=0.5, rotate=0.2, rotate_degrees=10.0)
    made = augment_config(config)
    assert (made.blur, made.rotate, made.rotate_degrees, made.jpeg) == (0.5, 0.2, 10.0, 0.0)
    assert {f.name for f in dataclasses.fields(AugmentConfig)} - {"aspect"} <= {f.name for f in dataclasses.fields(TrainConfig)}
    with pytest.raises(ConfigError, match="jpeg is a probability"):
        TrainConfig(jpeg=1.5)
    with pytest.raises(ConfigError, match="tight_crop is a probability"):
        TrainConfig(tight_crop=-0.1)
    assert augment_config(TrainConfig(tight_crop=0.3)).tight_crop == 0.3
    with pytest.raises(ConfigError, match="rotate_degrees"):
        TrainConfig(rotate_degrees=120.0)


def test_the_robust_recipe_turns_them_on():
    toml = load_toml(REPO / "training" / "recipes" / "robust.toml")
    train = make_config(TrainConfig, toml, "train")
    assert all(0.0 < getattr(train, name) <= 0.5 for name in ROBUST_PROBABILITIES)
    assert train.sampler == "fair" and train.select_on == "out-of-source" and train.checks_out_of_source
    default = make_config(TrainConfig, load_toml(REPO / "training" / "recipes" / "default.toml"), "train")
    assert all(getattr(default, name) == 0.0 for name in ROBUST_PROBABILITIES)
