"""Robust augmentations (issue 16): the looks that break a classifier trained on studio-like chips
when faces come from elsewhere. Each takes and returns a BGR uint8 image (the shape kept) and
draws what it needs from the numpy Generator it is given, so a view stays a function of
(seed, epoch, index) (training.classifier.augment applies them, each with its probability).
"""
from __future__ import annotations

import cv2
import numpy as np

#: Skin tones (BGR) for the hand-like occluder, light to dark.
SKIN_TONES = np.array([[189, 211, 242], [160, 190, 230], [130, 165, 210], [100, 135, 190], [70, 100, 150], [45, 65, 100]], np.float32)


def low_res(image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Down to 0.15-0.5 of the side (at least 8 px), back up by nearest, linear or cubic: a far or
    small face the detector enlarged."""
    h, w = image.shape[:2]
    factor = rng.uniform(0.15, 0.5)
    small = cv2.resize(image, (max(8, round(w * factor)), max(8, round(h * factor))), interpolation=cv2.INTER_AREA)
    method = (cv2.INTER_NEAREST, cv2.INTER_LINEAR, cv2.INTER_CUBIC)[int(rng.integers(3))]
    return cv2.resize(small, (w, h), interpolation=method)


def blur(image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Out of focus (Gaussian, sigma 0.8-2.2 px) or moving (a 5-11 px line at any angle)."""
    if rng.random() < 0.6:
        return cv2.GaussianBlur(image, (0, 0), sigmaX=rng.uniform(0.8, 2.2))
    length = int(rng.integers(5, 12))
    kernel = np.zeros((length, length), np.float32)
    kernel[length // 2, :] = 1.0
    turn = cv2.getRotationMatrix2D(((length - 1) / 2.0, (length - 1) / 2.0), rng.uniform(0.0, 180.0), 1.0)
    kernel = cv2.warpAffine(kernel, turn, (length, length))
    kernel /= max(kernel.sum(), 1e-6)
    return cv2.filter2D(image, -1, kernel, borderType=cv2.BORDER_REFLECT_101)


def jpeg(image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Encoded and decoded as JPEG at quality 8-35: blocks and ringing of web photos and messengers."""
    quality = int(rng.integers(8, 36))
    ok, data = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, quality])
    if not ok:
        raise RuntimeError("cv2.imencode failed to write a JPEG")
    return cv2.imdecode(data, cv2.IMREAD_COLOR)


def grayscale(image: np.ndarray) -> np.ndarray:
    """Three equal channels: a black-and-white or infrared camera."""
    return cv2.cvtColor(cv2.cvtColor(image, cv2.COLOR_BGR2GRAY), cv2.COLOR_GRAY2BGR)


def color_shift(image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A strong cast: each channel scaled by 0.6-1.4, then a gamma of 0.6-1.6 (wrong white balance,
    coloured light, under- or over-exposure)."""
    gains = rng.uniform(0.6, 1.4, size=3).astype(np.float32)
    gamma = rng.uniform(0.6, 1.6)
    out = np.clip(image.astype(np.float32) * gains / 255.0, 0.0, 1.0) ** gamma
    return np.round(out * 255.0).astype(np.uint8)


def rotate(image: np.ndarray, degrees: float) -> np.ndarray:
    """Turned about the centre by `degrees` (counter-clockwise as seen), borders mirrored: a tilted head."""
    h, w = image.shape[:2]
    matrix = cv2.getRotationMatrix2D(((w - 1) / 2.0, (h - 1) / 2.0), degrees, 1.0)
    return cv2.warpAffine(image, matrix, (w, h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT_101)


def profile_view(cached: np.ndarray, size: int, rng: np.random.Generator) -> np.ndarray:
    """A profile-like view of a context crop: the face 1.2-1.5 × narrower and its centre moved
    sideways by 0.1-0.22 of the side, as in a turned head's crop. The window is wider than tall
    and squeezed to a square; where it leaves the cached crop, the crop's last column is repeated
    (mirroring would show a second half face)."""
    cache = cached.shape[0]
    h = min(cache, size * rng.uniform(0.92, 1.08))
    w = h * rng.uniform(1.2, 1.5)
    offset = rng.choice((-1.0, 1.0)) * rng.uniform(0.1, 0.22) * size
    cx, cy = cache / 2.0 + offset, cache / 2.0 + rng.uniform(-0.04, 0.04) * size
    x0, y0 = int(round(cx - w / 2.0)), int(round(np.clip(cy - h / 2.0, 0, cache - h)))
    w, h = int(round(w)), int(round(h))
    left, right = max(0, -x0), max(0, x0 + w - cache)
    padded = cv2.copyMakeBorder(cached, 0, 0, left, right, cv2.BORDER_REPLICATE) if left or right else cached
    window = padded[y0 : y0 + h, x0 + left : x0 + left + w]
    return cv2.resize(window, (size, size), interpolation=cv2.INTER_AREA)


def edge_cut(image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A face cut by the frame: 0.15-0.4 of the side, from one edge (mostly left or right), becomes
    black, as core.crop fills what lies outside the photo, or repeats the last row or column kept."""
    out = image.copy()
    side = int(rng.choice(4, p=(0.35, 0.35, 0.1, 0.2)))  # left, right, top, bottom
    n = image.shape[1] if side < 2 else image.shape[0]
    depth = int(round(n * rng.uniform(0.15, 0.4)))
    black = rng.random() < 0.7
    view = out if side < 2 else out.transpose(1, 0, 2)  # columns to cut along axis 1
    if side in (0, 2):
        view[:, :depth] = 0 if black else view[:, depth : depth + 1]
    else:
        view[:, n - depth :] = 0 if black else view[:, n - depth - 1 : n - depth]
    return out


def tight_crop(image: np.ndarray, crop_margin: float, rng: np.random.Generator) -> np.ndarray:
    """A photo cut tight around the face, as many web photos of masked faces are: hair, ears and
    background gone, so gender and age must come from the face itself. core.crop fills what lies
    outside such a photo with black, so all but a rectangle about the detector's box (its sides
    ±8 %, its top 0-20 % lower, through the forehead) becomes black; `crop_margin` says where the
    box lies in the view."""
    size = image.shape[0]
    inner = size / (1.0 + 2.0 * crop_margin)  # the face box's side in the view
    edge = (size - inner) / 2.0
    x0 = int(round(max(0.0, edge + rng.uniform(-0.08, 0.08) * inner)))
    x1 = int(round(min(size, size - edge + rng.uniform(-0.08, 0.08) * inner)))
    y0 = int(round(max(0.0, edge + rng.uniform(0.0, 0.2) * inner)))
    y1 = int(round(min(size, size - edge + rng.uniform(-0.05, 0.1) * inner)))
    out = np.zeros_like(image)
    out[y0:y1, x0:x1] = image[y0:y1, x0:x1]
    return out


def occlude(image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Something over the face: a hand-like shape (palm and fingers, in a skin tone) or a random
    blob (a polygon in a random colour or noise), both 0.12-0.3 of the side across or more."""
    out = image.copy()
    size = min(image.shape[:2])
    shape = np.zeros(image.shape[:2], np.uint8)
    centre = (int(rng.uniform(0.25, 0.75) * size), int(rng.uniform(0.35, 0.85) * size))
    if rng.random() < 0.5:
        colour = SKIN_TONES[int(rng.integers(len(SKIN_TONES)))] * rng.uniform(0.85, 1.1)
        _hand(shape, centre, size, rng)
        fill = np.broadcast_to(np.clip(colour, 0, 255), image.shape).astype(np.float32)
        fill = fill * rng.uniform(0.9, 1.05, size=image.shape[:2] + (1,)).astype(np.float32)  # uneven light
    else:
        radius = rng.uniform(0.12, 0.3) * size
        angles = np.sort(rng.uniform(0, 2 * np.pi, size=int(rng.integers(5, 10))))
        radii = radius * rng.uniform(0.6, 1.0, size=len(angles))
        points = np.stack([centre[0] + radii * np.cos(angles), centre[1] + radii * np.sin(angles)], axis=1)
        cv2.fillPoly(shape, [np.round(points).astype(np.int32)], 1)
        fill = (rng.uniform(0, 255, size=image.shape) if rng.random() < 0.3
                else np.broadcast_to(rng.uniform(0, 255, size=3), image.shape)).astype(np.float32)
    inside = shape.astype(bool)
    out[inside] = np.clip(fill[inside], 0, 255).astype(np.uint8)
    return out


def _hand(mask: np.ndarray, centre: tuple[int, int], size: int, rng: np.random.Generator) -> None:
    """Draw a palm (ellipse) and 3-4 fingers (long ellipses fanning out from it) into `mask`."""
    palm = rng.uniform(0.12, 0.2) * size
    tilt = rng.uniform(-40, 40)
    cv2.ellipse(mask, centre, (int(palm), int(palm * 1.2)), tilt, 0, 360, 1, -1)
    fingers = int(rng.integers(3, 5))
    for k in range(fingers):
        angle = np.deg2rad(tilt - 90 + (k - (fingers - 1) / 2) * 11 + rng.uniform(-3, 3))
        length = palm * rng.uniform(1.3, 1.8)
        reach = palm * 0.7 + length / 2
        tip = (int(centre[0] + np.cos(angle) * reach), int(centre[1] + np.sin(angle) * reach))
        cv2.ellipse(mask, tip, (int(length / 2), max(2, int(palm * 0.3))), float(np.rad2deg(angle)), 0, 360, 1, -1)
