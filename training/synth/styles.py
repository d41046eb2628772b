"""Mask styles, drawn procedurally as functions of mask coordinates (u, v).

u runs -1..1 across the mask (0 on the face's midline), v 0..1 from the top edge down (see
geometry.py). A style gives, per pixel: its base colour (with any printed pattern), its
coverage (anti-aliased outline: 1 inside, 0 outside, a one-pixel ramp between) and a relief
factor (pleats, seams, folds as darker and lighter lines). Lighting, grain and blur are added
by render.py, the same for every style.

Lines are sized in pixels (via su, sv: pixels per unit of u and v at each pixel), so a pleat is
as thin on a small face as on a large one and never aliases into a staircase.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

#: Every style, in the order the contact sheet shows them.
STYLES: tuple[str, ...] = ("surgical_blue", "surgical_white", "kf94_white", "kf94_grey", "cloth_dark", "cloth_pattern",
                           "surgical_black", "kf94_black", "cloth_black", "cloth_print")
#: The dark and black masks stock MTCNN misses most often on large frontal faces (issue 17).
DARK_STYLES: tuple[str, ...] = ("surgical_black", "kf94_black", "cloth_black", "cloth_dark")

BGR = tuple[float, float, float]


@dataclass(frozen=True)
class MaskStyle:
    """A style with its random choices made (colours, pattern, pleat positions)."""

    name: str
    family: str  # "surgical", "kf94" or "cloth": the outline and the relief
    color: BGR  # 0-255
    loop_color: BGR
    loop_width: float  # ear loop thickness, fraction of the mask's width
    roundness: float  # how square the bottom closes (geometry.superellipse power)
    grain: float  # fabric noise, relative std of brightness
    pleats: tuple[float, ...] = ()  # v of each pleat (surgical)
    pattern: str = "plain"  # "plain", "stripes", "dots", "checks" or "camo" (cloth)
    pattern_color: BGR = (0.0, 0.0, 0.0)
    pattern_period: float = 0.0  # fraction of the mask's width
    pattern_angle: float = 0.0  # radians; stripes and checks (camo: the phase of its blobs)

    def top_edge(self, u: np.ndarray) -> np.ndarray:
        """v of the top edge across the mask: highest over the nose, dropping towards the sides."""
        a = np.abs(u)
        if self.family == "kf94":
            return 0.15 * np.power(a, 1.3)  # the pointed top of a boat-shaped mask
        if self.family == "cloth":
            return 0.10 * a * a
        return 0.05 * a * a  # surgical: nearly straight, pinched over the nose wire

    def side_limit(self, v: np.ndarray) -> np.ndarray:
        """|u| of the sides at v: rounded top corners for the shaped masks, square for surgical."""
        if self.family == "kf94":
            return 1.0 - 0.16 * np.square(1.0 - np.clip(v / 0.35, 0.0, 1.0))
        if self.family == "cloth":
            return 1.0 - 0.10 * np.square(1.0 - np.clip(v / 0.30, 0.0, 1.0))
        return np.ones_like(v)


def _rgb(r: float, g: float, b: float) -> BGR:
    return (float(b), float(g), float(r))


def _jitter(color: BGR, rng: np.random.Generator, amount: float) -> BGR:
    return tuple(float(np.clip(c + rng.uniform(-amount, amount), 0, 255)) for c in color)  # type: ignore[return-value]


def _pick(options: Sequence[BGR], rng: np.random.Generator) -> BGR:
    return options[int(rng.integers(len(options)))]


def _luma(color: BGR) -> float:
    b, g, r = color
    return 0.114 * b + 0.587 * g + 0.299 * r


_SURGICAL_BLUES = (_rgb(150, 196, 226), _rgb(125, 180, 220), _rgb(170, 208, 232), _rgb(140, 200, 215))
_WHITES = (_rgb(240, 240, 236), _rgb(232, 236, 238), _rgb(244, 242, 236))
_CLOTH_DARK = (_rgb(28, 28, 30), _rgb(32, 40, 72), _rgb(22, 28, 52), _rgb(72, 72, 76))
_CLOTH_BASES = (_rgb(120, 30, 40), _rgb(35, 45, 90), _rgb(210, 195, 170), _rgb(85, 95, 60), _rgb(30, 30, 30),
                _rgb(190, 190, 195), _rgb(190, 80, 60), _rgb(60, 110, 150))
_BLACKS = (_rgb(14, 14, 16), _rgb(22, 22, 24), _rgb(30, 30, 34), _rgb(18, 20, 28))
_PATTERN_INKS = (_rgb(236, 234, 228), _rgb(25, 25, 25), _rgb(220, 180, 60), _rgb(200, 60, 60), _rgb(90, 150, 200))


def sample_style(name: str, rng: np.random.Generator) -> MaskStyle:
    """The style `name` with its colours and details drawn from `rng`."""
    if name == "surgical_blue" or name == "surgical_white":
        color = _jitter(_pick(_SURGICAL_BLUES if name == "surgical_blue" else _WHITES, rng), rng, 8)
        first = rng.uniform(0.26, 0.32)
        gap = rng.uniform(0.17, 0.21)
        return MaskStyle(name, "surgical", color, loop_color=_jitter(_WHITES[0], rng, 6), loop_width=0.012,
                         roundness=3.0, grain=0.02, pleats=(first, first + gap, first + 2 * gap))
    if name == "kf94_white" or name == "kf94_grey":
        if name == "kf94_white":
            color = _jitter(_pick(_WHITES, rng), rng, 6)
        else:
            level = rng.uniform(130, 185)
            color = _jitter((level, level, level + 3), rng, 4)
        return MaskStyle(name, "kf94", color, loop_color=color, loop_width=0.016, roundness=2.0, grain=0.015)
    if name == "cloth_dark":
        color = _jitter(_pick(_CLOTH_DARK, rng), rng, 6)
        return MaskStyle(name, "cloth", color, loop_color=color, loop_width=0.028, roundness=2.3, grain=0.06)
    if name == "surgical_black":
        color = _jitter(_pick(_BLACKS, rng), rng, 4)
        first = rng.uniform(0.26, 0.32)
        gap = rng.uniform(0.17, 0.21)
        return MaskStyle(name, "surgical", color, loop_color=color, loop_width=0.012, roundness=3.0, grain=0.03,
                         pleats=(first, first + gap, first + 2 * gap))
    if name == "kf94_black":
        color = _jitter(_pick(_BLACKS, rng), rng, 4)
        return MaskStyle(name, "kf94", color, loop_color=color, loop_width=0.016, roundness=2.0, grain=0.02)
    if name == "cloth_black":
        color = _jitter(_pick(_BLACKS, rng), rng, 5)
        return MaskStyle(name, "cloth", color, loop_color=color, loop_width=0.028, roundness=2.3, grain=0.07)
    if name == "cloth_print":  # bold prints: gingham checks or camouflage blobs, often with a dark ground
        base = _jitter(_pick(_CLOTH_BASES + _CLOTH_DARK, rng), rng, 10)
        inks = [ink for ink in _PATTERN_INKS if abs(_luma(ink) - _luma(base)) > 60] or [_PATTERN_INKS[0]]
        ink = _jitter(_pick(inks, rng), rng, 8)
        pattern = "checks" if rng.random() < 0.5 else "camo"
        return MaskStyle(name, "cloth", base, loop_color=base, loop_width=0.028, roundness=2.3, grain=0.05,
                         pattern=pattern, pattern_color=ink, pattern_period=float(rng.uniform(0.12, 0.22)),
                         pattern_angle=float(rng.uniform(0.0, 2.0 * np.pi)))
    if name == "cloth_pattern":
        base = _jitter(_pick(_CLOTH_BASES, rng), rng, 10)
        inks = [ink for ink in _PATTERN_INKS if abs(_luma(ink) - _luma(base)) > 60] or [_PATTERN_INKS[0]]
        ink = _jitter(_pick(inks, rng), rng, 8)
        if rng.random() < 0.5:
            angle = float(rng.choice([0.0, np.pi / 2, np.pi / 4, -np.pi / 4]))
            return MaskStyle(name, "cloth", base, loop_color=base, loop_width=0.028, roundness=2.3, grain=0.05,
                             pattern="stripes", pattern_color=ink, pattern_period=float(rng.uniform(0.07, 0.14)),
                             pattern_angle=angle)
        return MaskStyle(name, "cloth", base, loop_color=base, loop_width=0.028, roundness=2.3, grain=0.05,
                         pattern="dots", pattern_color=ink, pattern_period=float(rng.uniform(0.08, 0.13)))
    raise ValueError(f"unknown mask style {name!r} (expected one of {', '.join(STYLES)})")


def _line(distance_px: np.ndarray, width_px: float) -> np.ndarray:
    """A soft line profile: 1 on the line, falling to 0 a couple of `width_px` away."""
    return np.exp(-np.square(distance_px / width_px))


def _step(edge_px: np.ndarray) -> np.ndarray:
    """Anti-aliased inside test from a signed distance in pixels (positive inside)."""
    return np.clip(edge_px + 0.5, 0.0, 1.0)


def style_fields(style: MaskStyle, u: np.ndarray, v: np.ndarray, su: np.ndarray,
                 sv: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Base colour (H×W×3, 0-255), coverage (H×W, 0-1) and relief (H×W, around 1) of the style
    at mask coordinates u, v; su, sv are pixels per unit of u and v."""
    top = (v - style.top_edge(u)) * sv  # px below the top edge
    side = (style.side_limit(v) - np.abs(u)) * su  # px inside the side edges
    bottom = (1.0 - v) * sv
    coverage = _step(top) * _step(side) * _step(bottom)
    edge = np.minimum(top, side)  # px to the nearest edge, inside
    lw = float(max(0.7, np.median(sv) / 110.0))  # a fold line's width, px
    x_px, y_px = u * su, v * sv  # fabric coordinates in pixels, for seams and patterns

    relief = np.ones_like(u)
    if style.family == "surgical":
        for pleat in style.pleats:
            dy = (v - (pleat + 0.025 * u * u)) * sv  # pleats bow slightly with the mask
            relief -= 0.28 * _line(dy, 0.9 * lw)  # shadow under the fold
            relief += 0.07 * _line(dy + 2.5 * lw, 1.5 * lw)  # the fold's lit face above it
        band = 0.06 * float(np.median(sv))
        relief -= 0.03 * (top < band) + 0.12 * _line(top - band, 0.6 * lw)  # the binding along the top
        side_band = 0.08 * su
        relief -= 0.12 * _line(side - side_band, 0.6 * lw)  # the heat-sealed side strips
        relief -= 0.03 * (side < side_band)
    elif style.family == "kf94":
        relief -= 0.25 * _line(x_px, 0.8 * lw)  # centre seam
        relief += 0.06 * _line(np.abs(x_px) - 2.0 * lw, 1.2 * lw)
        fold = (v - (0.45 + 0.06 * u * u)) * sv
        relief -= 0.10 * _line(fold - 1.5 * lw, 3.0 * lw)  # the horizontal fold of the boat shape
        relief += 0.05 * _line(fold + 2.0 * lw, 2.0 * lw)
        inset = 0.05 * float(np.median(sv))
        relief -= 0.12 * _line(edge - inset, 0.7 * lw)  # the welded rim
    else:  # cloth
        relief -= 0.30 * _line(x_px, 0.9 * lw)  # centre seam
        hem = max(0.08 * float(np.median(su)), 1.0)  # px: about 4% of the mask's width
        relief -= 0.12 * np.exp(-np.maximum(edge, 0.0) / hem)  # the hem darkens towards the edge

    base = np.empty(u.shape + (3,), dtype=np.float64)
    base[:] = style.color
    ink = _pattern(style, x_px, y_px, float(np.median(su)) * 2.0, lw)
    if ink is not None:
        base += ink[..., None] * (np.asarray(style.pattern_color) - np.asarray(style.color))
    return base, coverage, relief


def _pattern(style: MaskStyle, x_px: np.ndarray, y_px: np.ndarray, width_px: float, lw: float) -> np.ndarray | None:
    """Pattern ink coverage (0-1) in fabric pixels, or None for a plain fabric."""
    if style.pattern == "plain":
        return None
    period = max(style.pattern_period * width_px, 4.0)
    if style.pattern == "stripes":
        along = x_px * np.sin(style.pattern_angle) + y_px * np.cos(style.pattern_angle)
        phase = np.abs(np.mod(along / period, 1.0) - 0.5) * period  # px from a stripe's centre
        return _step(0.25 * period - phase)
    if style.pattern == "checks":  # gingham: two crossed stripe sets, half ink where they cross
        c, sn = np.cos(style.pattern_angle % (np.pi / 2)), np.sin(style.pattern_angle % (np.pi / 2))
        a, b = x_px * c + y_px * sn, -x_px * sn + y_px * c
        band = lambda t: _step(0.25 * period - np.abs(np.mod(t / period, 1.0) - 0.5) * period)  # noqa: E731
        return np.clip(0.55 * band(a) + 0.55 * band(b), 0.0, 1.0)
    if style.pattern == "camo":  # blobs: a few crossed waves of the period's size, thresholded
        phase = style.pattern_angle
        field = (np.sin(x_px / period * 2.1 + phase) + np.sin(y_px / period * 1.7 - 2 * phase)
                 + np.sin((x_px + y_px) / period * 1.3 + 3 * phase) + np.sin((x_px - 0.6 * y_px) / period * 2.6 - phase))
        return _step(field * period / 4.0 - 0.3 * period / 4.0)
    # dots on a staggered grid
    row = np.floor(y_px / period)
    dx = np.mod(x_px + 0.5 * period * np.mod(row, 2.0), period) - 0.5 * period
    dy = np.mod(y_px, period) - 0.5 * period
    return _step(0.27 * period - np.hypot(dx, dy))
