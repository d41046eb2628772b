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
"""
from __future__ import annotations

import io
import logging
import os
import re
import stat
import struct
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


def load_image(path: Path, max_pixels: int = DEFAULT_MAX_PIXELS) -> LoadedImage:
    """Read `path` once and decode it; raises ImageReadError with a short reason on any failure."""
    path = Path(path)
    try:
        # stat before open: opening a FIFO named x.jpg would block forever.
        st = os.stat(path)
    except FileNotFoundError:
        if path.is_symlink():
            raise ImageReadError("broken symlink: its target does not exist") from None
        raise ImageReadError("file not found") from None
    except OSError as exc:
        raise ImageReadError(_os_reason(exc)) from None
    if stat.S_ISDIR(st.st_mode):
        raise ImageReadError("is a directory")
    if not stat.S_ISREG(st.st_mode):
        raise ImageReadError("not a regular file")
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ImageReadError(_os_reason(exc)) from None
    return load_image_bytes(data, max_pixels=max_pixels)


def load_image_bytes(data: bytes, max_pixels: int = DEFAULT_MAX_PIXELS) -> LoadedImage:
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

    warning: str | None = None
    raw = _decode(data)
    if raw is None and fmt in _JPEG_FORMATS:
        # OpenCV 5 returns nothing for a JPEG cut short; with the end-of-image marker put back,
        # libjpeg decodes what is there and fills the rest with grey.
        raw = _decode(data + _JPEG_EOI)
        if raw is not None:
            if np.all(raw == 128):
                raw = None  # only the grey fill: no picture data at all
            else:
                warning = TRUNCATED_WARNING
    if raw is None:
        raise ImageReadError("truncated or corrupt image data")

    image = _to_bgr8(raw)
    image = _apply_orientation(image, orientation)
    if warning:
        logger.debug("%s (%s, %dx%d)", warning, fmt, width, height)
    return LoadedImage(image=np.ascontiguousarray(image), warning=warning)


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


def _decode(data: bytes) -> np.ndarray | None:
    """OpenCV decode keeping depth and channels, EXIF orientation not applied."""
    try:
        return cv2.imdecode(np.frombuffer(data, dtype=np.uint8), cv2.IMREAD_UNCHANGED)
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


def _os_reason(exc: OSError) -> str:
    """A short lower-case reason from an OSError ("permission denied", "is a directory")."""
    if isinstance(exc, PermissionError):
        return "permission denied"
    if isinstance(exc, IsADirectoryError):
        return "is a directory"
    return (exc.strerror or str(exc) or type(exc).__name__).lower()
