"""core.imageio on real encoded files made here (and one real photo): every odd case a user's
folder can hold comes out as an upright BGR uint8 picture or as a short ImageReadError reason."""
from __future__ import annotations

import io
import os
import struct
import warnings
import zlib
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image, ImageOps

from core.imageio import (
    DEFAULT_MAX_PIXELS,
    IMAGE_EXTENSIONS,
    TRUNCATED_WARNING,
    ImageReadError,
    LoadedImage,
    load_image,
    load_image_bytes,
)


def check_contract(loaded: LoadedImage) -> np.ndarray:
    """What every caller relies on: BGR uint8, H×W×3, C-contiguous."""
    img = loaded.image
    assert isinstance(img, np.ndarray)
    assert img.dtype == np.uint8
    assert img.ndim == 3 and img.shape[2] == 3
    assert img.flags["C_CONTIGUOUS"]
    return img


def encode(image: Image.Image, fmt: str, **kwargs) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, fmt, **kwargs)
    return buffer.getvalue()


def png_chunk(kind: bytes, payload: bytes) -> bytes:
    return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", zlib.crc32(kind + payload))


def png_claiming(width: int, height: int) -> bytes:
    """A valid-looking PNG whose header claims width×height but which holds almost no data."""
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + png_chunk(b"IHDR", ihdr)
        + png_chunk(b"IDAT", zlib.compress(b"\x00" * 16))
        + png_chunk(b"IEND", b"")
    )


def webp_claiming(width: int, height: int) -> bytes:
    """An extended-format (VP8X) WebP header claiming a canvas of width×height."""
    payload = bytes(4) + (width - 1).to_bytes(3, "little") + (height - 1).to_bytes(3, "little")
    body = b"WEBP" + b"VP8X" + struct.pack("<I", len(payload)) + payload
    return b"RIFF" + struct.pack("<I", len(body)) + body


@pytest.fixture
def real_photo(shared_data: Path) -> Path:
    photos = sorted((shared_data / "mask_web" / "with_mask").glob("*.jpg"))
    if not photos:
        pytest.skip(f"no photos in {shared_data / 'mask_web' / 'with_mask'}")
    return photos[0]


@pytest.fixture
def no_decoding(monkeypatch):
    """Fails the test if anything reaches OpenCV's decoder."""

    def refuse(*args, **kwargs):
        raise AssertionError("cv2.imdecode was called: the image should have been refused first")

    monkeypatch.setattr(cv2, "imdecode", refuse)


# --- files that are not pictures ---------------------------------------------------------------


def test_zero_byte_file(tmp_path: Path) -> None:
    path = tmp_path / "empty.jpg"
    path.write_bytes(b"")
    with pytest.raises(ImageReadError, match=r"^empty file \(0 bytes\)$"):
        load_image(path)


def test_text_file_named_jpg(tmp_path: Path) -> None:
    path = tmp_path / "notes.jpg"
    path.write_text("this is not a photo\n" * 20)
    with pytest.raises(ImageReadError, match="^not an image: unrecognised format$"):
        load_image(path)


def test_format_pillow_knows_but_we_do_not_read(tmp_path: Path) -> None:
    data = encode(Image.new("RGB", (16, 16), (1, 2, 3)), "ICO")
    with pytest.raises(ImageReadError, match="^unsupported image format: ICO$"):
        load_image_bytes(data)


def test_directory_named_like_an_image(tmp_path: Path) -> None:
    folder = tmp_path / "x.jpg"
    folder.mkdir()
    with pytest.raises(ImageReadError, match="^is a directory$"):
        load_image(folder)


def test_missing_file_and_broken_symlink(tmp_path: Path) -> None:
    with pytest.raises(ImageReadError, match="^file not found$"):
        load_image(tmp_path / "nope.jpg")
    link = tmp_path / "dangling.jpg"
    link.symlink_to(tmp_path / "gone.jpg")
    with pytest.raises(ImageReadError, match="^broken symlink"):
        load_image(link)


def test_fifo_is_refused_without_blocking(tmp_path: Path) -> None:
    fifo = tmp_path / "pipe.jpg"
    os.mkfifo(fifo)
    with pytest.raises(ImageReadError, match="^not a regular file$"):
        load_image(fifo)


def test_unreadable_file(tmp_path: Path) -> None:
    path = tmp_path / "secret.png"
    path.write_bytes(encode(Image.new("RGB", (4, 4)), "PNG"))
    path.chmod(0)
    try:
        try:
            path.read_bytes()
        except PermissionError:
            pass
        else:
            pytest.skip("running with privileges that read mode-000 files (root)")
        with pytest.raises(ImageReadError, match="^permission denied$"):
            load_image(path)
    finally:
        path.chmod(0o644)


# --- truncated data ----------------------------------------------------------------------------


def test_truncated_jpeg_gives_partial_picture_with_warning(real_photo: Path) -> None:
    data = real_photo.read_bytes()
    full = check_contract(load_image_bytes(data))
    assert load_image_bytes(data).warning is None

    half = load_image_bytes(data[: len(data) // 2])
    img = check_contract(half)
    assert half.warning == TRUNCATED_WARNING
    assert img.shape == full.shape
    # The top of the picture was in the first half of the file and decodes as in the full file.
    top = full.shape[0] // 5
    assert np.abs(img[:top].astype(int) - full[:top].astype(int)).mean() < 1.0
    # The missing end does not: the decoder fills it with grey.
    assert np.abs(img[-3:].astype(int) - full[-3:].astype(int)).mean() > 5.0


def test_truncated_jpeg_via_path(tmp_path: Path, real_photo: Path) -> None:
    data = real_photo.read_bytes()
    path = tmp_path / "cut.jpg"
    path.write_bytes(data[: len(data) // 2])
    assert load_image(path).warning == TRUNCATED_WARNING


def test_jpeg_cut_inside_its_header(real_photo: Path) -> None:
    data = real_photo.read_bytes()
    with pytest.raises(ImageReadError, match="^truncated or corrupt image data$"):
        load_image_bytes(data[:100])


def test_truncated_png_is_an_error() -> None:
    rng = np.random.default_rng(0)
    data = encode(Image.fromarray(rng.integers(0, 256, (64, 64, 3), dtype=np.uint8)), "PNG")
    with pytest.raises(ImageReadError, match="^truncated or corrupt image data$"):
        load_image_bytes(data[: len(data) // 2])


# --- pixel formats -----------------------------------------------------------------------------


@pytest.mark.parametrize("fmt", ["PNG", "JPEG", "BMP", "GIF"])
def test_one_pixel_image(fmt: str) -> None:
    img = check_contract(load_image_bytes(encode(Image.new("RGB", (1, 1), (200, 100, 50)), fmt)))
    assert img.shape == (1, 1, 3)
    assert np.abs(img[0, 0].astype(int) - [50, 100, 200]).max() <= 6


def test_grayscale_becomes_three_equal_channels() -> None:
    img = check_contract(load_image_bytes(encode(Image.new("L", (5, 3), 77), "PNG")))
    assert img.shape == (3, 5, 3)
    assert (img == 77).all()


def test_16bit_gray_png_is_scaled_not_clipped() -> None:
    values = np.array([[0, 128, 257, 1000, 32896, 40000, 65407, 65535]], dtype=np.uint16)
    ok, encoded = cv2.imencode(".png", values)
    assert ok
    img = check_contract(load_image_bytes(encoded.tobytes()))
    expected = np.rint(values.astype(float) / 257.0)
    for channel in range(3):
        assert np.abs(img[:, :, channel].astype(int) - expected).max() <= 1
    # Clipping would have turned every value above 255 into 255.
    assert img[0, 2, 0] == 1 and img[0, 3, 0] == 4 and img[0, 7, 0] == 255


def test_16bit_colour_png_keeps_channel_order() -> None:
    bgr16 = np.zeros((2, 2, 3), dtype=np.uint16)
    bgr16[..., 0] = 1000  # blue
    bgr16[..., 1] = 30000  # green
    bgr16[..., 2] = 65535  # red
    ok, encoded = cv2.imencode(".png", bgr16)
    assert ok
    img = check_contract(load_image_bytes(encoded.tobytes()))
    assert np.abs(img[0, 0].astype(int) - [4, 117, 255]).max() <= 1


def test_cmyk_jpeg_colours() -> None:
    rgb = (200, 60, 30)
    cmyk = Image.new("RGB", (16, 16), rgb).convert("CMYK")
    data = encode(cmyk, "JPEG", quality=100)
    assert Image.open(io.BytesIO(data)).mode == "CMYK"
    img = check_contract(load_image_bytes(data))
    assert np.abs(img[8, 8].astype(int) - list(rgb[::-1])).max() <= 6


def test_rgba_png_composited_on_white() -> None:
    rgba = np.zeros((1, 3, 4), dtype=np.uint8)
    rgba[0, 0] = (255, 0, 0, 255)  # opaque red
    rgba[0, 1] = (255, 0, 0, 128)  # half-transparent red
    rgba[0, 2] = (0, 0, 0, 0)  # fully transparent black
    img = check_contract(load_image_bytes(encode(Image.fromarray(rgba, "RGBA"), "PNG")))
    assert img[0, 0].tolist() == [0, 0, 255]
    assert np.abs(img[0, 1].astype(int) - [127, 127, 255]).max() <= 1
    assert img[0, 2].tolist() == [255, 255, 255]


def test_gray_alpha_png() -> None:
    img = check_contract(load_image_bytes(encode(Image.new("LA", (2, 2), (0, 0)), "PNG")))
    assert (img == 255).all()  # transparent black on white
    img = check_contract(load_image_bytes(encode(Image.new("LA", (2, 2), (40, 255)), "PNG")))
    assert (img == 40).all()


def test_palette_png_with_and_without_transparency() -> None:
    im = Image.new("P", (2, 1))
    im.putpalette([10, 20, 30, 200, 100, 50])
    im.putpixel((1, 0), 1)
    img = check_contract(load_image_bytes(encode(im, "PNG")))
    assert img[0].tolist() == [[30, 20, 10], [50, 100, 200]]
    img = check_contract(load_image_bytes(encode(im, "PNG", transparency=1)))
    assert img[0].tolist() == [[30, 20, 10], [255, 255, 255]]


# --- orientation -------------------------------------------------------------------------------


def asymmetric_rgb() -> np.ndarray:
    """40 wide × 20 tall: left half red, a blue block in the top-left corner, rest black."""
    rgb = np.zeros((20, 40, 3), dtype=np.uint8)
    rgb[:, :20] = (255, 0, 0)
    rgb[:6, :6] = (0, 0, 255)
    return rgb


def with_orientation(rgb: np.ndarray, fmt: str, orientation: int) -> bytes:
    exif = Image.Exif()
    exif[0x0112] = orientation
    extra = {"quality": 100} if fmt in ("JPEG", "WEBP", "AVIF") else {}
    return encode(Image.fromarray(rgb), fmt, exif=exif.tobytes(), **extra)


def is_blue(pixel: np.ndarray) -> bool:
    return pixel[0] > 180 and pixel[2] < 80


def is_red(pixel: np.ndarray) -> bool:
    return pixel[2] > 180 and pixel[0] < 80


@pytest.mark.parametrize("fmt", ["JPEG", "PNG", "WEBP", "TIFF"])
def test_exif_orientation_6_comes_out_upright(fmt: str) -> None:
    # Orientation 6: the camera was turned a quarter clockwise; the viewer rotates 90° clockwise.
    img = check_contract(load_image_bytes(with_orientation(asymmetric_rgb(), fmt, 6)))
    assert img.shape == (40, 20, 3)  # portrait now
    assert is_blue(img[2, 17])  # the stored top-left corner ends up top-right
    assert is_red(img[10, 5]) and not is_red(img[30, 5])  # the red left half is now the top half


@pytest.mark.parametrize("fmt", ["JPEG", "PNG", "WEBP", "TIFF"])
def test_exif_orientation_8_comes_out_upright(fmt: str) -> None:
    # Orientation 8: the viewer rotates 90° counter-clockwise.
    img = check_contract(load_image_bytes(with_orientation(asymmetric_rgb(), fmt, 8)))
    assert img.shape == (40, 20, 3)
    assert is_blue(img[37, 2])  # the stored top-left corner ends up bottom-left
    assert is_red(img[30, 10]) and not is_red(img[10, 10])  # red left half is now the bottom half


@pytest.mark.parametrize("fmt", ["JPEG", "PNG", "WEBP", "TIFF", "AVIF"])
@pytest.mark.parametrize("orientation", range(1, 9))
def test_every_orientation_matches_pillow_exif_transpose(fmt: str, orientation: int) -> None:
    if fmt == "AVIF" and "AVIF" not in Image.SAVE:
        pytest.skip("this Pillow cannot write AVIF")
    data = with_orientation(asymmetric_rgb(), fmt, orientation)
    expected = np.asarray(ImageOps.exif_transpose(Image.open(io.BytesIO(data))).convert("RGB"))[:, :, ::-1]
    img = check_contract(load_image_bytes(data))
    assert img.shape == expected.shape
    assert np.abs(img.astype(int) - expected.astype(int)).max() <= 40  # lossy formats differ a little


def test_real_photo_with_orientation_tag(real_photo: Path, tmp_path: Path) -> None:
    photo = Image.open(real_photo)
    width, height = photo.size
    exif = Image.Exif()
    exif[0x0112] = 6
    path = tmp_path / "rotated.jpg"
    photo.save(path, "JPEG", quality=95, exif=exif.tobytes())
    upright = check_contract(load_image(real_photo))
    img = check_contract(load_image(path))
    assert img.shape == (width, height, 3)
    turned_back = cv2.rotate(img, cv2.ROTATE_90_COUNTERCLOCKWISE)
    assert np.abs(turned_back.astype(int) - upright.astype(int)).mean() < 4.0


# --- size limit --------------------------------------------------------------------------------


def test_huge_header_refused_before_decoding(no_decoding) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a Pillow DecompressionBombWarning would fail the test
        with pytest.raises(ImageReadError) as info:
            load_image_bytes(png_claiming(30000, 20000))
    assert str(info.value) == "image is 30000×20000 = 600.0 Mpx, over the 100 Mpx limit"
    assert info.value.reason == str(info.value)


def test_pillow_warning_range_gets_our_check_instead(no_decoding) -> None:
    # 96 Mpx is over Pillow's ~89 Mpx warning threshold: our check must run instead of Pillow's.
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with pytest.raises(ImageReadError, match=r"^image is 12000×8000 = 96\.0 Mpx, over the 50 Mpx limit$"):
            load_image_bytes(png_claiming(12000, 8000), max_pixels=50_000_000)


def test_pillow_bomb_error_inside_a_plugin_becomes_ours(no_decoding) -> None:
    # Pillow's WebP plugin runs its own bomb check while reading the header.
    with pytest.raises(ImageReadError, match=r"^image is 400\.0 Mpx, over the 100 Mpx limit$"):
        load_image_bytes(webp_claiming(20000, 20000))


def test_small_limit_on_a_real_photo(real_photo: Path) -> None:
    width, height = Image.open(real_photo).size
    load_image(real_photo, max_pixels=width * height)  # exactly at the limit is fine
    with pytest.raises(ImageReadError, match="over the"):
        load_image(real_photo, max_pixels=width * height - 1)


def test_default_limit_and_bad_limit() -> None:
    assert DEFAULT_MAX_PIXELS == 100_000_000
    with pytest.raises(ValueError):
        load_image_bytes(b"x", max_pixels=0)


# --- names and extensions ----------------------------------------------------------------------


def test_unicode_file_name(tmp_path: Path, real_photo: Path) -> None:
    path = tmp_path / "фото 日本.jpg"
    path.write_bytes(real_photo.read_bytes())
    img = check_contract(load_image(path))
    assert img.shape[:2] == Image.open(real_photo).size[::-1]


# How each extension in IMAGE_EXTENSIONS is written by Pillow, to prove it reads back.
SAVE_FORMAT = {
    ".jpg": "JPEG", ".jpeg": "JPEG", ".jpe": "JPEG", ".jfif": "JPEG",
    ".png": "PNG", ".bmp": "BMP", ".webp": "WEBP", ".tif": "TIFF", ".tiff": "TIFF",
    ".gif": "GIF", ".jp2": "JPEG2000", ".avif": "AVIF",
}


def test_extension_list_is_lower_case_and_known() -> None:
    assert all(ext == ext.lower() and ext.startswith(".") for ext in IMAGE_EXTENSIONS)
    assert set(IMAGE_EXTENSIONS) <= set(SAVE_FORMAT), "add a writer for the new extension"


@pytest.mark.parametrize("ext", sorted(SAVE_FORMAT))
def test_every_listed_extension_decodes(tmp_path: Path, ext: str) -> None:
    if ext not in IMAGE_EXTENSIONS:
        pytest.skip(f"{ext} is not in IMAGE_EXTENSIONS")
    fmt = SAVE_FORMAT[ext]
    if fmt not in Image.SAVE:
        pytest.skip(f"this Pillow cannot write {fmt}")
    rgb = asymmetric_rgb()
    path = tmp_path / f"sample{ext}"
    Image.fromarray(rgb).save(path, fmt, **({"quality": 95} if fmt in ("JPEG", "WEBP", "AVIF") else {}))
    img = check_contract(load_image(path))
    assert img.shape == (20, 40, 3)
    assert is_blue(img[2, 2]) and is_red(img[10, 12]) and img[10, 30].max() < 60
