"""Training augmentation on cached BGR uint8 crops, before core's `to_input`.

Everything works on the uint8 crop, so the network's input still comes from core.crop.to_input
as at runtime. Each function takes a numpy Generator: the dataset seeds it from (seed, epoch,
index), so an epoch is the same whether run straight through or resumed, with any worker count.
"""
from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from training.data.cache import CropGeometry


@dataclass(frozen=True)
class AugmentConfig:
    flip: bool = True
    color_jitter: float = 0.3  # brightness, contrast and saturation factors in 1 ± this
    scale: tuple[float, float] = (0.85, 1.15)  # crop side relative to the runtime crop
    shift: float = 0.08  # crop centre moves up to this × the runtime crop side
    aspect: float = 0.1  # width/height ratio in 1 ± this
    cutout: float = 0.3  # probability of one grey square, 20–40 % of the side


def random_resized_crop(cached: np.ndarray, geometry: CropGeometry, config: AugmentConfig, rng: np.random.Generator) -> np.ndarray:
    """A square-ish window around the runtime crop, zoomed and shifted a little, resized to input_size.

    The window is clipped to the cached crop; what the cache does not hold is not invented.
    """
    size, cache_size = geometry.input_size, cached.shape[0]
    side = size * rng.uniform(*config.scale)
    ratio = rng.uniform(1.0 - config.aspect, 1.0 + config.aspect)
    w = min(cache_size, side * np.sqrt(ratio))
    h = min(cache_size, side / np.sqrt(ratio))
    cx = cache_size / 2.0 + rng.uniform(-config.shift, config.shift) * size
    cy = cache_size / 2.0 + rng.uniform(-config.shift, config.shift) * size
    x0 = int(round(np.clip(cx - w / 2.0, 0, cache_size - w)))
    y0 = int(round(np.clip(cy - h / 2.0, 0, cache_size - h)))
    window = cached[y0 : y0 + max(1, int(round(h))), x0 : x0 + max(1, int(round(w)))]
    shrink = window.shape[0] > size or window.shape[1] > size
    return cv2.resize(window, (size, size), interpolation=cv2.INTER_AREA if shrink else cv2.INTER_LINEAR)


def color_jitter(image: np.ndarray, strength: float, rng: np.random.Generator) -> np.ndarray:
    """Brightness, contrast and saturation, each by a random factor in 1 ± strength."""
    if strength <= 0:
        return image
    b, c, s = rng.uniform(1.0 - strength, 1.0 + strength, size=3)
    out = image.astype(np.float32) * b
    grey = cv2.cvtColor(np.clip(out, 0, 255).astype(np.uint8), cv2.COLOR_BGR2GRAY).astype(np.float32)
    out = (out - grey.mean()) * c + grey.mean()
    grey = cv2.cvtColor(np.clip(out, 0, 255).astype(np.uint8), cv2.COLOR_BGR2GRAY).astype(np.float32)[..., None]
    out = (out - grey) * s + grey
    return np.clip(out, 0, 255).astype(np.uint8)


def cutout(image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """One grey square (20–40 % of the side) somewhere: the model must not lean on one spot."""
    size = image.shape[0]
    side = int(size * rng.uniform(0.2, 0.4))
    y, x = rng.integers(0, size - side + 1, size=2)
    out = image.copy()
    out[y : y + side, x : x + side] = 127
    return out


def augment(cached: np.ndarray, geometry: CropGeometry, config: AugmentConfig, rng: np.random.Generator) -> np.ndarray:
    """The training view of a cached crop: input_size × input_size BGR uint8."""
    image = random_resized_crop(cached, geometry, config, rng)
    if config.flip and rng.random() < 0.5:
        image = np.ascontiguousarray(image[:, ::-1])
    image = color_jitter(image, config.color_jitter, rng)
    if rng.random() < config.cutout:
        image = cutout(image, rng)
    return image
