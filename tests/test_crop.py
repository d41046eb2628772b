import numpy as np
import pytest

from core.crop import CropSpec, crop_face, square_box, to_input


def test_square_box_is_centred_and_grown_by_the_margin():
    box = square_box([10, 20, 30, 60], margin=0.25)  # 20 wide, 40 tall
    side = 40 * 1.5
    assert box[2] - box[0] == pytest.approx(side)
    assert box[3] - box[1] == pytest.approx(side)
    assert (box[0] + box[2]) / 2 == pytest.approx(20)
    assert (box[1] + box[3]) / 2 == pytest.approx(40)


def test_crop_takes_the_right_pixels():
    image = np.zeros((100, 100, 3), np.uint8)
    image[40:60, 40:60] = (0, 0, 255)  # a red square
    crop = crop_face(image, [40, 40, 60, 60], margin=0.0, size=20)
    assert crop.shape == (20, 20, 3)
    assert (crop == (0, 0, 255)).all()


def test_crop_at_the_edge_pads_with_black_and_keeps_scale():
    image = np.full((50, 50, 3), 200, np.uint8)
    crop = crop_face(image, [-10, -10, 10, 10], margin=0.0, size=20)
    assert crop.shape == (20, 20, 3)
    assert (crop[:10, :10] == 0).all()  # outside the image
    assert (crop[10:, 10:] == 200).all()  # inside


def test_a_spec_cuts_every_face_of_an_image_as_crop_face_does_one():
    image = np.random.default_rng(0).integers(0, 256, (90, 120, 3), dtype=np.uint8)
    boxes = [[10, 10, 40, 50], [60, 20, 100, 70], [-5, 60, 20, 95]]
    spec = CropSpec(32, 0.2)
    crops = spec.cut_all(image, boxes)
    assert crops.shape == (3, 32, 32, 3)
    for crop, box in zip(crops, boxes):
        assert np.array_equal(crop, crop_face(image, box, 0.2, 32))


def test_crop_fully_outside_is_black_not_an_error():
    crop = crop_face(np.full((20, 20, 3), 9, np.uint8), [100, 100, 120, 120], margin=0.1, size=8)
    assert crop.shape == (8, 8, 3) and not crop.any()


def test_to_input_is_rgb_normalised_nchw():
    crop = np.zeros((2, 4, 4, 3), np.uint8)
    crop[..., 2] = 255  # red in BGR
    out = to_input(crop, mean=(0.5, 0.5, 0.5), std=(0.5, 0.5, 0.5))
    assert out.shape == (2, 3, 4, 4) and out.dtype == np.float32
    assert np.allclose(out[:, 0], 1.0)  # R channel first
    assert np.allclose(out[:, 1:], -1.0)


def test_a_nested_crop_holds_the_narrow_crop_to_the_bit_and_the_wide_one_around_it():
    """A file of networks trained on two crop margins (core.metadata inner_crop): the narrow crop, cut
    on its own, sits in the centre of the wide one, so networks trained on it see exactly it."""
    rng = np.random.default_rng(0)
    image = rng.integers(0, 256, (240, 320, 3), dtype=np.uint8)
    for box in ([101.3, 57.8, 171.9, 140.2], [3.5, 10.2, 33.1, 48.7], [280.4, 200.3, 318.8, 239.9]):
        narrow = crop_face(image, box, 0.2, 112)
        plain = crop_face(image, box, 0.375, 140)
        nested = crop_face(image, box, 0.375, 140, inner=(112, 0.2))
        assert (nested[14:126, 14:126] == narrow).all()
        rim = np.ones((140, 140), bool)
        rim[14:126, 14:126] = False
        assert (nested[rim] == plain[rim]).all()
    # the centre of the plain wide crop is the narrow crop only up to the two squares' rounding
    assert not all((crop_face(image, b, 0.375, 140)[14:126, 14:126] == crop_face(image, b, 0.2, 112)).all()
                   for b in ([3.5, 10.2, 33.1, 48.7], [101.3, 57.8, 171.9, 140.2]))


def test_a_nested_crop_off_the_pixel_grid_is_refused():
    from core.crop import inner_offset

    assert inner_offset(140, 0.375, 112, 0.2) == 14
    with pytest.raises(ValueError, match="whole pixels"):
        inner_offset(140, 0.375, 112, 0.25)
    with pytest.raises(ValueError, match="whole pixels"):
        crop_face(np.zeros((50, 50, 3), np.uint8), [10, 10, 30, 30], 0.375, 140, inner=(111, 0.2))
