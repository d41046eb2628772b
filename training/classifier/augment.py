"""Training augmentation on cached BGR uint8 crops, before core's `to_input`.

Everything works on the uint8 crop, so the network's input still comes from core.crop.to_input
as at runtime. Each function takes a numpy Generator: the dataset seeds it from (seed, epoch,
index), so an epoch is the same whether run straight through or resumed, with any worker count.

The robust augmentations (issue 16: what breaks on faces from other sources: low resolution,
blur, compression, grayscale, colour casts, tilted heads, profiles, faces cut by the frame,
hands over the face, photos cut tight around the face) are in training.classifier.robust; each
has a probability, 0 by default, and draws from the generator only when it is on, so a run
without them sees exactly the views it saw before they existed.
"""
from __future__ import annotations

from dataclasses import dataclass, fields

import cv2
import numpy as np

from training.classifier import robust
from training.data.cache import CropGeometry


@dataclass(frozen=True)
class AugmentConfig:
    flip: bool = True
    color_jitter: float = 0.3  # brightness, contrast and saturation factors in 1 ± this
    scale: tuple[float, float] = (0.85, 1.15)  # crop side relative to the runtime crop
    shift: float = 0.08  # crop centre moves up to this × the runtime crop side
    aspect: float = 0.1  # width/height ratio in 1 ± this
    cutout: float = 0.3  # probability of one grey square, 20–40 % of the side
    # robust augmentations: probabilities (training.classifier.robust)
    low_res: float = 0.0
    blur: float = 0.0
    jpeg: float = 0.0
    grayscale: float = 0.0
    color_shift: float = 0.0
    rotate: float = 0.0
    rotate_degrees: float = 25.0
    profile: float = 0.0
    edge_cut: float = 0.0
    occlusion: float = 0.0
    tight_crop: float = 0.0


def augment_config(config) -> AugmentConfig:
    """The augmentation of a TrainConfig (its fields of the same names)."""
    names = [f.name for f in fields(AugmentConfig) if f.name != "aspect"]
    return AugmentConfig(**{name: getattr(config, name) for name in names})


def _happens(p: float, rng: np.random.Generator) -> bool:
    """Whether an augmentation of probability p is applied; draws nothing when it is off."""
    return p > 0 and rng.random() < p


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
    """The training view of a cached crop: input_size × input_size BGR uint8.

    Order: the tilt (on the context crop, so corners come from real pixels), the window, the flip,
    the frame edge, the tight photo; colours; occluders; then what a camera and an encoder do last: blur, low
    resolution, JPEG."""
    if _happens(config.rotate, rng):
        cached = robust.rotate(cached, rng.uniform(-config.rotate_degrees, config.rotate_degrees))
    if _happens(config.profile, rng):
        image = robust.profile_view(cached, geometry.input_size, rng)
    else:
        image = random_resized_crop(cached, geometry, config, rng)
    if config.flip and rng.random() < 0.5:
        image = np.ascontiguousarray(image[:, ::-1])
    if _happens(config.edge_cut, rng):
        image = robust.edge_cut(image, rng)
    if _happens(config.tight_crop, rng):
        image = robust.tight_crop(image, geometry.crop_margin, rng)
    image = color_jitter(image, config.color_jitter, rng)
    if _happens(config.color_shift, rng):
        image = robust.color_shift(image, rng)
    if _happens(config.grayscale, rng):
        image = robust.grayscale(image)
    if _happens(config.occlusion, rng):
        image = robust.occlude(image, rng)
    if rng.random() < config.cutout:
        image = cutout(image, rng)
    if _happens(config.blur, rng):
        image = robust.blur(image, rng)
    if _happens(config.low_res, rng):
        image = robust.low_res(image, rng)
    if _happens(config.jpeg, rng):
        image = robust.jpeg(image, rng)
    return image
