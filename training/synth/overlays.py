"""Things worn with a mask that hide more of the face: a cap over the forehead, a hood round the
face, glasses over the eyes (issue 17: stock MTCNN misses faces in a surgical cap and mask).

Drawn from the same face frame as the mask (geometry.FaceFrame: the eye line, in eye distances),
lit like the photo (render.PhotoLook) and composited as a layer, so only pixels an overlay
covers change. They are kept out of the mask styles: a style never touches the eyes, these do.
"""
from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from training.synth.geometry import FaceFrame
from training.synth.render import MaskLayer, PhotoLook, _apply_look, layer_window

OVERLAYS: tuple[str, ...] = ("cap", "hood", "glasses")
SHADOW_REACH = 0.25  # a cap whose edge comes lower than this (eye distances above the eye line) casts a shadow

_CAP_COLORS = ((214, 196, 150), (200, 214, 160), (236, 236, 232), (60, 60, 64), (200, 170, 120), (40, 40, 44))  # BGR
_HOOD_COLORS = ((30, 30, 32), (60, 50, 40), (90, 90, 95), (40, 50, 90), (150, 150, 155))
_RIM_COLORS = ((20, 20, 20), (40, 40, 45), (30, 60, 110), (170, 170, 175))


@dataclass(frozen=True)
class Overlay:
    """One overlay with its choices made: kind, colour, and (glasses) how dark the lenses are."""

    kind: str
    color: tuple[float, float, float]
    lens: float = 0.0  # glasses: lens opacity (0 clear .. 0.85 sunglasses)
    reach: float = 0.0  # cap: how far down the forehead it comes, eye distances above the eye line (< 0: over the eyes)

    @property
    def shadow(self) -> Overlay | None:
        """A cap pulled low shades the eyes under its brim (the faces stock misses most)."""
        if self.kind != "cap" or self.reach >= SHADOW_REACH:
            return None
        return Overlay("shadow", (12.0, 12.0, 14.0), lens=0.55, reach=self.reach)


def sample_overlay(kind: str, rng: np.random.Generator) -> Overlay:
    if kind == "cap":
        return Overlay(kind, _pick(_CAP_COLORS, rng), reach=float(rng.uniform(-0.15, 0.6)))
    if kind == "hood":
        return Overlay(kind, _pick(_HOOD_COLORS, rng))
    if kind == "glasses":
        return Overlay(kind, _pick(_RIM_COLORS, rng), lens=float(rng.choice([0.0, 0.0, 0.3, 0.85])))
    raise ValueError(f"unknown overlay {kind!r} (expected one of {', '.join(OVERLAYS)})")


def _pick(options, rng: np.random.Generator) -> tuple[float, float, float]:
    color = np.asarray(options[int(rng.integers(len(options)))], dtype=np.float64)
    return tuple(float(c) for c in np.clip(color + rng.uniform(-8, 8, 3), 0, 255))  # type: ignore[return-value]


def _ellipse(cx: float, cy: float, rx: float, ry: float, start: float = 0.0, stop: float = 2 * np.pi, n: int = 48) -> np.ndarray:
    t = np.linspace(start, stop, n)
    return np.stack([cx + rx * np.cos(t), cy + ry * np.sin(t)], axis=1)


def _shapes(frame: FaceFrame, overlay: Overlay) -> tuple[list[np.ndarray], list[np.ndarray], float]:
    """Filled polygons, stroked polylines (aligned coordinates) and the stroke width (px)."""
    e = frame.eye_dist
    left, right, top, chin = frame.box_left, frame.box_right, frame.box_top, float(frame.chin[1])
    cx, half = (left + right) / 2.0, (right - left) / 2.0
    if overlay.kind == "cap":  # a dome from above the head down to the eyebrows
        brow = -overlay.reach * e
        dome = _ellipse(cx, brow, 1.12 * half, brow - (top - 0.45 * e), np.pi, 2 * np.pi)
        return [np.concatenate([dome, [[cx + 1.12 * half, brow + 0.05 * e], [cx - 1.12 * half, brow + 0.05 * e]]])], [], 0.0
    if overlay.kind == "shadow":  # a band under a low cap's edge, over the eyes
        brow = -overlay.reach * e
        return [np.array([[cx - 1.05 * half, brow], [cx + 1.05 * half, brow], [cx + 0.95 * half, brow + 0.45 * e],
                          [cx - 0.95 * half, brow + 0.45 * e]])], [], 0.0
    if overlay.kind == "hood":  # a band framing the face: outer ellipse minus the face opening
        mid_y = (top + chin) / 2.0
        outer = _ellipse(cx, mid_y - 0.1 * e, 1.35 * half, 0.68 * (chin - top) + 0.3 * e)
        inner = _ellipse(cx, mid_y + 0.15 * e, 1.0 * half, 0.5 * (chin - top) + 0.15 * e)[::-1]
        return [outer, inner], [], 0.0
    # glasses: two rounded lenses on the eyes, a bridge, the arms back to the box's sides
    lenses = [_ellipse(x, 0.02 * e, 0.4 * e, 0.26 * e) for x in (-0.5 * e, 0.5 * e)]
    bridge = np.array([[-0.12 * e, -0.05 * e], [0.0, -0.09 * e], [0.12 * e, -0.05 * e]])
    arms = [np.array([[-0.9 * e, -0.05 * e], [left, -0.1 * e]]), np.array([[0.9 * e, -0.05 * e], [right, -0.1 * e]])]
    return lenses, lenses + [bridge] + arms, max(1.0, 0.05 * e)


def render_overlay(image: np.ndarray, frame: FaceFrame, overlay: Overlay, look: PhotoLook,
                   rng: np.random.Generator) -> MaskLayer:
    """The overlay as a premultiplied layer over the part of the image it touches."""
    fills, strokes, stroke_px = _shapes(frame, overlay)
    polys = [frame.to_image(p) for p in fills]
    lines = [frame.to_image(p) for p in strokes]
    window = layer_window(np.concatenate(polys + lines), 3.0 + stroke_px, image.shape)
    if window is None:
        return MaskLayer.empty()
    x0, y0, x1, y1 = window
    to_px = lambda p: np.rint((p - [x0, y0]) * 16).astype(np.int32).reshape(-1, 1, 2)  # noqa: E731
    alpha = np.zeros((y1 - y0, x1 - x0), np.uint8)
    if overlay.kind == "glasses":
        if overlay.lens > 0:
            cv2.fillPoly(alpha, [to_px(p) for p in polys], int(255 * overlay.lens), cv2.LINE_AA, shift=4)
        cv2.polylines(alpha, [to_px(p) for p in lines], False, 255, int(round(stroke_px)), cv2.LINE_AA, shift=4)
    else:  # (the hood's inner ring cuts its opening; a shadow is a see-through band)
        level = int(255 * overlay.lens) if overlay.kind == "shadow" else 255
        cv2.fillPoly(alpha, [to_px(p) for p in polys], level, cv2.LINE_AA, shift=4)
    a = alpha.astype(np.float32) / 255.0
    shade = rng.uniform(0.75, 1.0) + 0.1 * rng.standard_normal(a.shape)
    color = _apply_look(np.asarray(overlay.color, dtype=np.float64) * np.clip(shade, 0.5, 1.2)[..., None], look)
    sigma = max(0.5, look.blur) * (1.0 + 0.08 * frame.eye_dist if overlay.kind == "shadow" else 1.0)
    premult = cv2.GaussianBlur((color * a[..., None]).astype(np.float32), (0, 0), sigma)
    a = cv2.GaussianBlur(a, (0, 0), sigma)
    premult += ((look.noise * rng.standard_normal(a.shape)) * a)[..., None].astype(np.float32)
    return MaskLayer(x0, y0, premult, a)
