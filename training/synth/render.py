"""Drawing a mask onto a face photo: the style's fields, lit and grained like the photo, feathered,
and composited over the pixels it covers (every other pixel stays byte-identical).

A mask that is brighter, sharper or cleaner than the photo around it is a shortcut a classifier
would learn instead of the mask's position, so the layer takes its exposure, colour cast,
saturation, side light and noise from the photo (`PhotoLook.estimate`) and is blurred a little.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np

from training.synth.geometry import FaceFrame, MaskGeometry, Placement, place_mask
from training.synth.styles import MaskStyle, sample_style, style_fields


@dataclass(frozen=True)
class PhotoLook:
    """What the photo does to a surface in it: light, colour, noise and softness."""

    exposure: float  # multiplies colours: a white mask in a dim photo is grey
    tint: tuple[float, float, float]  # per-channel (BGR) colour cast
    saturation: float  # 0: a grey photo (the mask goes grey too) .. 1: colour
    light_angle: float  # radians; > 0: lit from the image's right
    noise: float  # the photo's noise std (0-255), added to the mask
    blur: float  # px: the Gaussian blur that makes the drawn mask as soft as the face

    @classmethod
    def estimate(cls, image: np.ndarray, frame: FaceFrame, box: np.ndarray) -> PhotoLook:
        gray = cv2.cvtColor(image, cv2.COLOR_BGR2GRAY)
        exposure = float(np.clip(np.percentile(gray, 99) / 235.0, 0.5, 1.05))
        # A weak grey-world cast: most of a face chip is skin, whose colour is not the light's.
        means = image.reshape(-1, 3).mean(axis=0)
        tint = np.clip(np.power(means / max(float(means.mean()), 1.0), 0.25), 0.93, 1.07)
        saturation = float(np.clip(cv2.cvtColor(image, cv2.COLOR_BGR2HSV)[..., 1].mean() / 255.0 / 0.12, 0.0, 1.0))
        # Side light: the two cheeks' brightness (a ratio, so skin tone cancels out).
        e = frame.eye_dist
        cheeks = frame.to_image(np.array([[-0.55 * e, frame.nose[1]], [0.55 * e, frame.nose[1]]]))
        r = max(2, int(0.15 * e))
        levels = []
        for x, y in np.rint(cheeks).astype(int):
            patch = gray[max(0, y - r):y + r + 1, max(0, x - r):x + r + 1]
            levels.append(float(patch.mean()) if patch.size else 0.0)
        left, right = levels
        light_angle = float(np.clip(1.6 * (right - left) / (right + left + 1.0), -0.6, 0.6))
        # Noise from the median absolute Laplacian (robust to edges); the 4-neighbour kernel's gain is sqrt(20).
        lap = cv2.Laplacian(gray.astype(np.float32), cv2.CV_32F, ksize=1)
        noise = float(np.clip(1.4826 * np.median(np.abs(lap)) / math.sqrt(20.0), 0.8, 6.0))
        # Softness: detail (mean |Laplacian|) against contrast (std) inside the face box. Sharp
        # chips score ~0.3, typical ~0.08, upscaled blurry ones ~0.04; the constant maps a
        # typical chip to ~0.85 px, which matched the faces by eye on the contact sheet.
        h, w = gray.shape
        x1, y1, x2, y2 = np.clip(np.rint(np.asarray(box[:4])).astype(int), 0, [w, h, w, h])
        face = gray[y1:y2, x1:x2].astype(np.float32)
        detail = float(np.abs(cv2.Laplacian(face, cv2.CV_32F, ksize=1)).mean()) if face.size else 0.0
        sharpness = detail / (float(face.std()) + 1e-3) if face.size else 0.1
        blur = float(np.clip(0.07 / max(sharpness, 1e-3), 0.45, 2.0)) * max(1.0, frame.eye_dist / 75.0)
        return cls(exposure, tuple(float(t) for t in tint), saturation, light_angle, noise, blur)  # type: ignore[arg-type]


@dataclass(frozen=True)
class MaskLayer:
    """Premultiplied BGR colour and alpha over the region [y0:y0+h, x0:x0+w] of the image."""

    x0: int
    y0: int
    color: np.ndarray  # (h, w, 3) float32, premultiplied by alpha
    alpha: np.ndarray  # (h, w) float32, 0-1

    @classmethod
    def empty(cls) -> MaskLayer:
        """A layer that touches no pixel (drawn wholly outside the image)."""
        return cls(0, 0, np.zeros((0, 0, 3), np.float32), np.zeros((0, 0), np.float32))

    def composite(self, image: np.ndarray) -> np.ndarray:
        """The image with the layer over it; pixels under alpha 0 are unchanged."""
        out = image.copy()
        h, w = self.alpha.shape
        region = out[self.y0:self.y0 + h, self.x0:self.x0 + w].astype(np.float32)
        a = self.alpha[..., None]
        out[self.y0:self.y0 + h, self.x0:self.x0 + w] = np.clip(np.rint(region * (1.0 - a) + self.color), 0, 255).astype(np.uint8)
        return out

    def full_alpha(self, shape: tuple[int, ...]) -> np.ndarray:
        full = np.zeros(shape[:2], dtype=np.float32)
        h, w = self.alpha.shape
        full[self.y0:self.y0 + h, self.x0:self.x0 + w] = self.alpha
        return full


@dataclass(frozen=True)
class Rendered:
    image: np.ndarray  # BGR uint8, same size as the input
    alpha: np.ndarray  # (H, W) float32: how much of each pixel the mask covers (0 for a bare face)
    style: MaskStyle | None
    placement: Placement


def _smoothstep(a: float, b: float, x: np.ndarray) -> np.ndarray:
    t = np.clip((x - a) / (b - a), 0.0, 1.0)
    return t * t * (3.0 - 2.0 * t)


def layer_window(points: np.ndarray, grow: float, shape: tuple[int, ...]) -> tuple[int, int, int, int] | None:
    """The pixel window (x0, y0, x1, y1) a layer drawn through `points` (N×2) can touch, grown by
    `grow` px for feathering and clipped to the image; None when it misses the image."""
    height, width = shape[:2]
    x0 = int(np.clip(np.floor(points[:, 0].min() - grow), 0, width))
    x1 = int(np.clip(np.ceil(points[:, 0].max() + grow) + 1, 0, width))
    y0 = int(np.clip(np.floor(points[:, 1].min() - grow), 0, height))
    y1 = int(np.clip(np.ceil(points[:, 1].max() + grow) + 1, 0, height))
    return (x0, y0, x1, y1) if x1 > x0 and y1 > y0 else None


def _ear_loops(geometry: MaskGeometry, style: MaskStyle) -> list[np.ndarray]:
    """Image polylines of the visible ear loops: from the mask's corners back to the ears.

    A side much narrower than the other is the far side of a turned head; its loops are hidden.
    """
    frame = geometry.frame
    mid = float(frame.midline_x(geometry.top + 0.5 * geometry.height))
    widths = {-1: mid - geometry.left, 1: geometry.right - mid}
    nose_y = float(frame.nose[1])
    loops = []
    for side in (-1, 1):
        if widths[side] < 0.55 * widths[-side]:
            continue
        edge = geometry.left if side < 0 else geometry.right
        ear_x = edge + side * 0.07 * geometry.width  # the ears are behind the cheeks, a little outside
        v_corner = float(style.top_edge(np.array(0.97))) + 0.04
        starts = geometry.to_image(np.array([side * 0.97, side * 0.9]), np.array([v_corner, 0.8]))
        ears = frame.to_image(np.array([[ear_x, 0.45 * nose_y], [ear_x, 1.0 * nose_y]]))
        for start, ear in zip(starts, ears):
            start_al = frame.to_aligned(start)
            ear_al = frame.to_aligned(ear)
            control = (start_al + ear_al) / 2.0 + np.array([side * 0.06 * geometry.width, 0.0])
            t = np.linspace(0.0, 1.0, 24)[:, None]
            curve = (1 - t) ** 2 * start_al + 2 * (1 - t) * t * control + t ** 2 * ear_al
            loops.append(frame.to_image(curve))
    return loops


def render_layer(image: np.ndarray, geometry: MaskGeometry, style: MaskStyle, look: PhotoLook,
                 blur_sigma: float, rng: np.random.Generator) -> MaskLayer:
    """The mask as a premultiplied layer over the part of the image it (and its loops) touch."""
    loops = _ear_loops(geometry, style)
    outline_u = np.concatenate([np.linspace(-1, 1, 41), np.full(21, 1.0), np.full(21, -1.0)])
    outline_v = np.concatenate([np.zeros(41), np.linspace(0, 1, 21), np.linspace(0, 1, 21)])
    points = np.concatenate([geometry.to_image(outline_u, outline_v).reshape(-1, 2)] + loops)
    window = layer_window(points, 4.0 * blur_sigma + 3.0, image.shape)
    if window is None:
        return MaskLayer.empty()
    x0, y0, x1, y1 = window

    ys, xs = np.mgrid[y0:y1, x0:x1].astype(np.float64)
    u, v, su, sv = geometry.uv(xs, ys)
    base, coverage, relief = style_fields(style, u, v, su, sv)

    # Light: a cylinder lit from the photo's side (Lambert); the lower part turns away from the
    # light as it wraps under the chin, the part over the nose faces it.
    ambient = rng.uniform(0.5, 0.65)
    normal = np.arcsin(np.clip(0.9 * u, -1.0, 1.0))
    shade = ambient + (1.0 - ambient) * np.maximum(np.cos(normal - look.light_angle), 0.0)
    shade *= 1.0 + 0.04 * (1.0 - _smoothstep(0.0, 0.35, v)) - rng.uniform(0.2, 0.35) * _smoothstep(0.55, 1.0, v)
    grain = 1.0 + style.grain * rng.standard_normal(u.shape)
    color = base * (shade * relief * grain)[..., None]
    color = _apply_look(color, look)

    # Ear loops go under the mask: drawn anti-aliased on their own layer, then the mask over them.
    loop_alpha = np.zeros(u.shape, dtype=np.uint8)
    thickness = max(1, int(round(style.loop_width * geometry.width)))
    for loop in loops:
        pts = np.rint((loop - [x0, y0]) * 16).astype(np.int32).reshape(-1, 1, 2)
        cv2.polylines(loop_alpha, [pts], False, 255, thickness, cv2.LINE_AA, shift=4)
    loop_a = loop_alpha.astype(np.float64) / 255.0
    loop_color = _apply_look(np.asarray(style.loop_color, dtype=np.float64) * (ambient + 1.0) / 2.0, look)

    alpha = coverage + loop_a * (1.0 - coverage)
    premult = color * coverage[..., None] + loop_color * (loop_a * (1.0 - coverage))[..., None]

    # Feather: the same blur on colour and alpha softens the edge and matches the photo's softness.
    premult = cv2.GaussianBlur(premult.astype(np.float32), (0, 0), blur_sigma)
    alpha = cv2.GaussianBlur(alpha.astype(np.float32), (0, 0), blur_sigma)
    noise = (look.noise * rng.standard_normal(u.shape)).astype(np.float32)
    premult += (noise * alpha)[..., None]
    return MaskLayer(x0, y0, premult, alpha)


def _apply_look(color: np.ndarray, look: PhotoLook) -> np.ndarray:
    """Exposure, colour cast and (for a grey photo) desaturation of mask colours."""
    lit = color * look.exposure * np.asarray(look.tint)
    gray = np.asarray(lit @ np.array([0.114, 0.587, 0.299]))[..., None]
    return gray + (lit - gray) * look.saturation


def render(image_bgr: np.ndarray, landmarks: np.ndarray, box: np.ndarray, style: str | MaskStyle,
           placement: Placement, rng: np.random.Generator) -> Rendered:
    """`render_mask` with the mask's alpha, for checks and debugging."""
    if placement is Placement.NONE:
        return Rendered(image_bgr.copy(), np.zeros(image_bgr.shape[:2], np.float32), None, placement)
    frame = FaceFrame.from_detection(landmarks, box)
    if isinstance(style, str):
        style = sample_style(style, rng)
    look = PhotoLook.estimate(image_bgr, frame, box)
    blur_sigma = look.blur * rng.uniform(0.8, 1.2)
    # A wrong mask's top edge stays clear of the nose tip / mouth by more than the feathering reaches.
    geometry = place_mask(frame, placement, rng, roundness=style.roundness, edge_margin=4.0 * blur_sigma + 2.0)
    layer = render_layer(image_bgr, geometry, style, look, blur_sigma, rng)
    return Rendered(layer.composite(image_bgr), layer.full_alpha(image_bgr.shape), style, placement)


def render_mask(image_bgr: np.ndarray, landmarks: np.ndarray, box: np.ndarray, style: str | MaskStyle,
                placement: Placement, rng: np.random.Generator) -> np.ndarray:
    """The face with a mask drawn on it (a new BGR uint8 image of the same size).

    landmarks: MTCNN's (5, 2) left eye, right eye, nose, mouth left, mouth right; box: its
    x1, y1, x2, y2. style: a name from STYLES (details drawn from rng) or a MaskStyle.
    Raises ValueError when the landmarks do not look like a face.
    """
    return render(image_bgr, landmarks, box, style, placement, rng).image
