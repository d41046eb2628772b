"""Reading a photo file into the BGR uint8 array the detector expects, or a short reason why not.

Why not just `cv2.imread`: it cannot open non-ASCII paths on every platform, it decodes a
200-megapixel "bomb" before anyone can refuse it, it clips 16-bit images instead of scaling them,
drops transparency onto whatever colour the hidden pixels happen to have, and says only "None"
when something is wrong. Here:

1. the file is read once, as bytes;
2. Pillow parses only the header (lazy) for the format, the pixel size and the EXIF orientation,
   and the size is checked against `max_pixels` before any pixel is decoded;
3. OpenCV decodes with IMREAD_UNCHANGED, which keeps depth and alpha and does not apply EXIF
   orientation (except TIFF, see `_DECODER_APPLIES_ORIENTATION`);
4. we convert to 8-bit BGR ourselves and apply the orientation ourselves, so the result is
   upright as a person would see the photo.

Transparency is composited on white: a cut-out face on a transparent background then looks like
it does in any viewer, instead of showing the (often black) colour stored under alpha = 0.

Memory: asked to, a picture over `fit_pixels` comes out shrunk to that many pixels (aspect kept).
A JPEG is then decoded at 1/2, 1/4 or 1/8 of its size by libjpeg's DCT scaling, so its full size
never exists in memory; other formats are decoded whole and shrunk at once, and only one such
large picture is decoded at a time in the process.
"""
from __future__ import annotations

import io
import logging
import math
import os
import re
import stat
import struct
import threading
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
from PIL import Image

logger = logging.getLogger(__name__)

#: Largest picture accepted, in pixels (width × height). 100 Mpx is beyond any phone or consumer
#: camera (a 100 Mpx BGR image is 300 MB decoded), while a crafted header claiming more would
#: make the decoder allocate gigabytes. Callers can pass their own `max_pixels`.
DEFAULT_MAX_PIXELS = 100_000_000

#: File suffixes (lower case) treated as photos when walking folders. Only formats that both
#: Pillow can identify (for the header check) and OpenCV can decode; tests keep this honest.
IMAGE_EXTENSIONS: frozenset[str] = frozenset(
    {
        ".jpg", ".jpeg", ".jpe", ".jfif",
        ".png",
        ".bmp",
        ".webp",
        ".tif", ".tiff",
        ".gif",
        ".jp2",
        ".avif",
    }
)

#: Photo suffixes that cameras and phones write but that this build cannot decode. A folder walk
#: lists them anyway, as error rows naming the format, so no photo is skipped without a word.
UNREADABLE_PHOTO_EXTENSIONS: frozenset[str] = frozenset(
    {".heic", ".heif", ".hif", ".jxl", ".psd", ".dng", ".cr2", ".cr3", ".nef", ".arw", ".orf", ".rw2", ".raf"}
)

#: Pillow format names we hand to OpenCV. Anything else Pillow recognises (PSD, ICO, EPS, ...)
#: is refused by name rather than fed to a decoder that may not support it. MPO is how Pillow
#: names the multi-picture JPEGs many cameras and phones write.
_SUPPORTED_FORMATS = frozenset(
    {"JPEG", "MPO", "PNG", "BMP", "WEBP", "TIFF", "GIF", "JPEG2000", "AVIF"}
)
_JPEG_FORMATS = frozenset({"JPEG", "MPO"})

#: OpenCV's TIFF reader (libtiff) applies the Orientation tag itself, even with
#: IMREAD_UNCHANGED / IMREAD_IGNORE_ORIENTATION (checked with OpenCV 5.0); for JPEG, PNG, WebP
#: and AVIF IMREAD_UNCHANGED leaves the pixels as stored and the orientation is ours to apply.
#: (Pillow 13 also keeps a TIFF's tags out of info["exif"], which `_exif_orientation` reads, so
#: TIFF is guarded twice; tests/test_imageio.py checks TIFF comes out upright either way.)
_DECODER_APPLIES_ORIENTATION = frozenset({"TIFF"})

_EXIF_ORIENTATION_TAG = 0x0112
_JPEG_EOI = b"\xff\xd9"

TRUNCATED_WARNING = "truncated file: only part of the image was decoded"

#: The reductions OpenCV's JPEG decoder can apply while decoding, largest first.
_REDUCED_JPEG_FLAGS = {8: cv2.IMREAD_REDUCED_COLOR_8, 4: cv2.IMREAD_REDUCED_COLOR_4, 2: cv2.IMREAD_REDUCED_COLOR_2}
#: Held while a picture over `fit_pixels` is decoded: its full-size pixels (up to 8 bytes per
#: pixel for 16-bit RGBA) are then the only ones of their size in memory, whatever the threads.
#: A caller may hold it too while it analyses such a picture (core.batch does), so that work
#: and the next large decode never add up.
LARGE_PICTURES = threading.Lock()


class ImageReadError(Exception):
    """A file that cannot be turned into a picture; `reason` is short and meant for the user."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True, eq=False)
class LoadedImage:
    """image: BGR uint8, H×W×3, C-contiguous, upright. warning: set when the picture was usable
    but not complete (e.g. a truncated JPEG), so the caller can show it next to the results."""

    image: np.ndarray
    warning: str | None = None
    #: `image`'s side over the picture's (1.0: full size; below 1 when shrunk to `fit_pixels`).
    scale: float = 1.0
    #: The picture's upright size in pixels (width, height), whatever `scale`.
    full_size: tuple[int, int] = (0, 0)


def load_image(path: Path, max_pixels: int = DEFAULT_MAX_PIXELS, fit_pixels: int | None = None) -> LoadedImage:
    """Read `path` once and decode it; raises ImageReadError with a short reason on any failure.

    fit_pixels: a picture over this many pixels comes out shrunk to about that many, to bound
    the memory of decoding and analysing it; None: always full size.
    """
    path = Path(path)
    try:
        # stat before open: opening a FIFO named x.jpg would block forever.
        st = os.stat(path)
    except FileNotFoundError:
        if path.is_symlink():
            raise ImageReadError("broken symlink: its target does not exist") from None
        raise ImageReadError("file not found") from None
    except OSError as exc:
        raise ImageReadError(os_reason(exc)) from None
    if stat.S_ISDIR(st.st_mode):
        raise ImageReadError("is a directory")
    if not stat.S_ISREG(st.st_mode):
        raise ImageReadError("not a regular file")
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ImageReadError(os_reason(exc)) from None
    return load_image_bytes(data, max_pixels=max_pixels, fit_pixels=fit_pixels)


def load_image_bytes(data: bytes, max_pixels: int = DEFAULT_MAX_PIXELS, fit_pixels: int | None = None) -> LoadedImage:
    """Decode an encoded image held in memory (a file's bytes, a drag-and-drop payload)."""
    if max_pixels <= 0:
        raise ValueError("max_pixels must be positive")
    if not data:
        raise ImageReadError("empty file (0 bytes)")

    header = _open_header(data, max_pixels)
    if header is None:
        raise ImageReadError("not an image: unrecognised format")
    with header:
        fmt = header.format or "unknown"
        width, height = header.size
        orientation = 1 if fmt in _DECODER_APPLIES_ORIENTATION else _exif_orientation(header)
    if fmt not in _SUPPORTED_FORMATS:
        raise ImageReadError(f"unsupported image format: {fmt}")
    if width <= 0 or height <= 0:
        raise ImageReadError(f"image has no pixels ({width}×{height})")
    if width * height > max_pixels:
        raise ImageReadError(
            f"image is {width}×{height} = {width * height / 1e6:.1f} Mpx, "
            f"over the {max_pixels / 1e6:g} Mpx limit"
        )

    if fit_pixels is None or width * height <= fit_pixels:
        image, warning, stored = _decode_bgr8(data, fmt, 1.0, (width, height))
    else:
        with LARGE_PICTURES:
            image, warning, stored = _decode_bgr8(data, fmt, math.sqrt(fit_pixels / (width * height)), (width, height))
    image = _apply_orientation(image, orientation)
    full_size = (stored[1], stored[0]) if orientation >= 5 else stored
    if warning:
        logger.debug("%s (%s, %dx%d)", warning, fmt, width, height)
    return LoadedImage(np.ascontiguousarray(image), warning, image.shape[1] / full_size[0], full_size)


def _decode_bgr8(
    data: bytes, fmt: str, scale: float, header_size: tuple[int, int]
) -> tuple[np.ndarray, str | None, tuple[int, int]]:
    """BGR uint8 pixels shrunk by `scale` (≤ 1), a warning, and the stored (width, height) at full
    size (as decoded: a TIFF comes out already turned by its decoder)."""
    jpeg = fmt in _JPEG_FORMATS
    flags = cv2.IMREAD_UNCHANGED
    if jpeg:  # the largest DCT reduction that still decodes no smaller than asked
        reduction = next((f for f in _REDUCED_JPEG_FLAGS if f * scale <= 1.0), 1)
        if reduction > 1:
            flags = _REDUCED_JPEG_FLAGS[reduction] | cv2.IMREAD_IGNORE_ORIENTATION
    warning: str | None = None
    raw = _decode(data, flags)
    if raw is None and jpeg:
        # OpenCV 5 returns nothing for a JPEG cut short; with the end-of-image marker put back,
        # libjpeg decodes what is there and fills the rest with grey.
        raw = _decode(data + _JPEG_EOI, flags)
        if raw is not None:
            if np.all(raw == 128):
                raw = None  # only the grey fill: no picture data at all
            else:
                warning = TRUNCATED_WARNING
    if raw is None:
        raise ImageReadError("truncated or corrupt image data")
    stored = header_size if jpeg else (raw.shape[1], raw.shape[0])  # a reduced JPEG: the header has it
    size = (max(1, round(stored[0] * scale)), max(1, round(stored[1] * scale)))
    if scale < 1.0 and size != (raw.shape[1], raw.shape[0]):
        # Shrunk before converting, so the conversions work on the small copy only.
        raw = cv2.resize(raw, size, interpolation=cv2.INTER_AREA)
    return _to_bgr8(raw), warning, stored


def _open_header(data: bytes, max_pixels: int) -> Image.Image | None:
    """Identify the format and read the header with Pillow's plugins, without decoding pixels.

    This is `Image.open` minus its decompression-bomb check: above its own limit (~89 Mpx)
    Pillow warns, and above twice that it raises before telling the size, so its check would
    pre-empt ours with a different limit and message. Our check follows with `max_pixels`.
    A few plugins (WebP, GIF) still run Pillow's check while parsing; that error is turned
    into our message here.
    """
    Image.init()  # registers every plugin; cheap after the first call
    prefix = data[:16]
    damaged = False
    for fmt in Image.ID:
        factory, accept = Image.OPEN[fmt]
        accepted = accept(prefix) if accept else True
        if not accepted or isinstance(accepted, str):  # a str means "recognised, unsupported"
            continue
        try:
            return factory(io.BytesIO(data), "")
        except Image.DecompressionBombError as exc:
            raise ImageReadError(_bomb_reason(str(exc), max_pixels)) from None
        except (SyntaxError, IndexError, TypeError, ValueError, EOFError, OSError, struct.error):
            # Same as Image.open: a plugin that fails on the header means "not this format",
            # but if the magic bytes were those of a format we read, the header is damaged.
            damaged = damaged or (accept is not None and fmt in _SUPPORTED_FORMATS)
            continue
    if damaged:
        raise ImageReadError("truncated or corrupt image data")
    return None


def _bomb_reason(message: str, max_pixels: int) -> str:
    """Our wording for Pillow's DecompressionBombError, which gives a pixel count but no size."""
    match = re.search(r"\((\d+) pixels\)", message)
    if not match:
        return "image is too large to decode safely"
    pixels = int(match.group(1))
    # Pillow only raises at twice its own limit; if the caller allows more, Pillow's is the one hit.
    limit = max_pixels if pixels > max_pixels else 2 * (Image.MAX_IMAGE_PIXELS or 0)
    return f"image is {pixels / 1e6:.1f} Mpx, over the {limit / 1e6:g} Mpx limit"


def _exif_orientation(header: Image.Image) -> int:
    """The EXIF orientation (1–8) from the already-parsed header; 1 if absent or unreadable."""
    if "exif" not in header.info:
        # Only EXIF met while parsing the header counts: asking a PNG for EXIF stored after
        # its pixel data would make Pillow decode the whole image.
        return 1
    try:
        value = header.getexif().get(_EXIF_ORIENTATION_TAG, 1)
    except Exception:  # malformed EXIF must not cost the picture
        logger.debug("unreadable EXIF block; orientation ignored", exc_info=True)
        return 1
    return value if isinstance(value, int) and 1 <= value <= 8 else 1


def _decode(data: bytes, flags: int = cv2.IMREAD_UNCHANGED) -> np.ndarray | None:
    """OpenCV decode (by default keeping depth and channels, EXIF orientation not applied)."""
    try:
        return cv2.imdecode(np.frombuffer(data, dtype=np.uint8), flags)
    except cv2.error:
        logger.debug("cv2.imdecode raised", exc_info=True)
        return None


def _to_uint8(arr: np.ndarray) -> np.ndarray:
    """Scale any decoded depth to 0–255 (16-bit by /257 with rounding, so 65535 → 255)."""
    if arr.dtype == np.uint8:
        return arr
    if arr.dtype == np.uint16:
        return ((arr.astype(np.uint32) + 128) // 257).astype(np.uint8)
    if arr.dtype in (np.float32, np.float64):
        # Float TIFFs: nominal range 0–1.
        return np.rint(np.clip(np.nan_to_num(arr), 0.0, 1.0) * 255.0).astype(np.uint8)
    raise ImageReadError(f"unsupported pixel format ({arr.dtype})")


def _to_bgr8(raw: np.ndarray) -> np.ndarray:
    """Gray, gray+alpha, BGR or BGRA at any supported depth → BGR uint8, alpha over white."""
    img = _to_uint8(raw)
    if img.ndim == 2:
        img = img[:, :, np.newaxis]
    channels = img.shape[2]
    if channels == 2:  # gray + alpha
        img = np.concatenate([img[:, :, :1]] * 3 + [img[:, :, 1:]], axis=2)
        channels = 4
    if channels == 1:
        return cv2.cvtColor(img, cv2.COLOR_GRAY2BGR)
    if channels == 3:
        return img
    if channels == 4:
        alpha = img[:, :, 3:4].astype(np.float32) / 255.0
        colour = img[:, :, :3].astype(np.float32)
        return np.rint(colour * alpha + 255.0 * (1.0 - alpha)).astype(np.uint8)
    raise ImageReadError(f"unsupported number of channels ({channels})")


def _apply_orientation(img: np.ndarray, orientation: int) -> np.ndarray:
    """Turn the stored pixels upright per the EXIF orientation (same result as Pillow's
    ImageOps.exif_transpose)."""
    if orientation == 2:
        return cv2.flip(img, 1)
    if orientation == 3:
        return cv2.rotate(img, cv2.ROTATE_180)
    if orientation == 4:
        return cv2.flip(img, 0)
    if orientation == 5:
        return cv2.transpose(img)
    if orientation == 6:
        return cv2.rotate(img, cv2.ROTATE_90_CLOCKWISE)
    if orientation == 7:
        return cv2.rotate(cv2.transpose(img), cv2.ROTATE_180)
    if orientation == 8:
        return cv2.rotate(img, cv2.ROTATE_90_COUNTERCLOCKWISE)
    return img


def os_reason(exc: OSError) -> str:
    """A short lower-case reason from an OSError ("permission denied", "is a directory")."""
    if isinstance(exc, PermissionError):
        return "permission denied"
    if isinstance(exc, IsADirectoryError):
        return "is a directory"
    return (exc.strerror or str(exc) or type(exc).__name__).lower()
