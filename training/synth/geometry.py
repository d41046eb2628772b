"""Where a mask goes on a face: a frame aligned with the eye line, and a map from image pixels to
mask coordinates.

Mask coordinates are (u, v): u runs from -1 (image-left side of the mask) through 0 (the face's
midline: nose, mouth centre, chin) to +1, v from 0 (top edge) to 1 (bottom edge). Each style is
drawn as a function of (u, v) (training/synth/styles.py), so placing, scaling and bending the
mask round the jaw is done once, here, for every style.

The map is closed-form in both directions: for a pixel, v comes from its height in the face
frame and u from its distance to the midline divided by the mask's half-width at that height.
The half-width narrows below the jaw line and closes at the bottom edge, which gives the
rounded bottom a mask takes under the chin.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from enum import Enum

import numpy as np

from core.labels import Mask

#: Chin below the mouth, as a fraction of the eye-to-mouth distance (measured on UTKFace chips
#: with MTCNN's landmarks: 0.5-0.55 lands on the chin; the brief's 1.0 lands on the neck).
CHIN_BELOW_MOUTH = 0.55


class Placement(str, Enum):
    """How the mask sits; NOSE_OUT, CHIN_OUT and UNDER_NOSE are wrong ways of wearing one.

    UNDER_NOSE is the commonest real one (issue 16): the top edge just under the nose tip, the
    nostrils half covered, rather than NOSE_OUT's top near the upper lip. Last in the list, so
    the codes (and the generators they seed) of the others do not change.
    """

    CORRECT = "correct"
    NOSE_OUT = "nose_out"
    CHIN_OUT = "chin_out"
    NONE = "none"
    UNDER_NOSE = "under_nose"

    @property
    def mask_label(self) -> Mask:
        if self is Placement.CORRECT:
            return Mask.WEAR
        if self is Placement.NONE:
            return Mask.NOT_WEAR
        return Mask.INCORRECT

    @property
    def code(self) -> int:
        """A stable small integer (seeds the per-output random generator)."""
        return list(Placement).index(self)


def choose_placement(mask: Mask, rng: np.random.Generator) -> Placement:
    """The placement for a mask label; INCORRECT is nose-out or chin-out with equal odds."""
    if mask == Mask.WEAR:
        return Placement.CORRECT
    if mask == Mask.NOT_WEAR:
        return Placement.NONE
    return Placement.NOSE_OUT if rng.random() < 0.5 else Placement.CHIN_OUT


def _rotation(angle: float) -> np.ndarray:
    c, s = math.cos(angle), math.sin(angle)
    return np.array([[c, -s], [s, c]], dtype=np.float64)


@dataclass(frozen=True)
class FaceFrame:
    """The face in a frame aligned with the eye line: origin between the eyes, x towards the
    image-right eye, y down. All lengths in image pixels.

    Working here makes the geometry roll-invariant: "below the nose" is +y whatever the head's tilt.
    """

    origin: np.ndarray  # (2,) image xy of the point between the eyes
    angle: float  # radians, eye line against the image x axis
    eye_dist: float
    nose: np.ndarray  # (2,) aligned
    mouth_left: np.ndarray
    mouth_right: np.ndarray
    box_left: float  # aligned x of the box's left and right edges (at the box centre's height)
    box_right: float
    box_top: float  # aligned y of the box's top and bottom edges
    box_bottom: float

    @classmethod
    def from_detection(cls, landmarks: np.ndarray, box: np.ndarray) -> FaceFrame:
        """Build from MTCNN's 5 landmarks and box; ValueError when they do not look like a face."""
        lm = np.asarray(landmarks, dtype=np.float64).reshape(5, 2)
        left_eye, right_eye = lm[0], lm[1]
        delta = right_eye - left_eye
        eye_dist = float(np.hypot(*delta))
        if eye_dist < 8.0:
            raise ValueError(f"eyes {eye_dist:.1f} px apart: too small to place a mask")
        angle = math.atan2(delta[1], delta[0])
        if abs(angle) > math.radians(45):
            raise ValueError(f"eye line at {math.degrees(angle):.0f} degrees")
        origin = (left_eye + right_eye) / 2.0
        rot = _rotation(angle)
        aligned = (lm - origin) @ rot  # row vectors: R(-angle)·(p - origin)
        nose, mouth_left, mouth_right = aligned[2], aligned[3], aligned[4]
        mouth_y = (mouth_left[1] + mouth_right[1]) / 2.0
        if not (0.15 * eye_dist < nose[1] < mouth_y - 0.05 * eye_dist):
            raise ValueError("landmarks out of order (nose not between the eyes and the mouth)")
        b = np.asarray(box, dtype=np.float64)[:4]
        centre = (np.array([(b[0] + b[2]) / 2.0, (b[1] + b[3]) / 2.0]) - origin) @ rot
        half_w, half_h = (b[2] - b[0]) / 2.0, (b[3] - b[1]) / 2.0
        return cls(origin=origin, angle=angle, eye_dist=eye_dist, nose=nose, mouth_left=mouth_left,
                   mouth_right=mouth_right, box_left=float(centre[0] - half_w),
                   box_right=float(centre[0] + half_w), box_top=float(centre[1] - half_h),
                   box_bottom=float(centre[1] + half_h))

    @property
    def mouth(self) -> np.ndarray:
        return (self.mouth_left + self.mouth_right) / 2.0

    @property
    def eye_to_mouth(self) -> float:
        """Vertical eye-line-to-mouth distance: the face's unit of height."""
        return float(self.mouth[1])

    @property
    def chin(self) -> np.ndarray:
        """Estimated chin: the eye-to-mouth step continued past the mouth, capped a little below
        the box (MTCNN's box bottom sits near the chin)."""
        mouth = self.mouth
        chin = mouth + CHIN_BELOW_MOUTH * mouth  # mouth - eyes == mouth in this frame
        cap = self.box_bottom + 0.05 * (self.box_bottom - self.box_top)
        chin[1] = min(chin[1], cap)
        return chin

    def midline_x(self, y: np.ndarray | float) -> np.ndarray:
        """The face's midline at height y: through the eye centre, nose tip, mouth centre, chin."""
        ys = [0.0, self.nose[1], self.mouth[1], max(self.chin[1], self.mouth[1] + 1.0)]
        xs = [0.0, self.nose[0], self.mouth[0], self.chin[0]]
        return np.interp(y, ys, xs)

    def to_aligned(self, points: np.ndarray) -> np.ndarray:
        return (np.asarray(points, dtype=np.float64) - self.origin) @ _rotation(self.angle)

    def to_image(self, points: np.ndarray) -> np.ndarray:
        return np.asarray(points, dtype=np.float64) @ _rotation(self.angle).T + self.origin


def superellipse(t: np.ndarray, power: float) -> np.ndarray:
    """(1 - t^p)^(1/p) for t in [0, 1]: 1 at 0, 0 at 1; p = 2 is a quarter ellipse, larger is squarer."""
    t = np.clip(t, 0.0, 1.0)
    return np.power(np.maximum(1.0 - np.power(t, power), 0.0), 1.0 / power)


@dataclass(frozen=True)
class MaskGeometry:
    """One mask on one face, in the face frame (then tilted by `tilt` about `pivot`)."""

    frame: FaceFrame
    top: float  # aligned y of the top edge at the midline
    bottom: float  # aligned y where the mask closes under the chin
    left: float  # aligned x of the mask's sides where it is full width
    right: float
    v_jaw: float  # v where the sides start to close in along the jaw
    top_scale: float  # width at the top edge relative to full (below the jaw line: < 1)
    roundness: float  # superellipse power of the closing sides
    tilt: float  # radians, on top of the eye line
    pivot: np.ndarray  # aligned xy the tilt turns about

    @property
    def width(self) -> float:
        return self.right - self.left

    @property
    def height(self) -> float:
        return self.bottom - self.top

    def _untilt(self, aligned: np.ndarray) -> np.ndarray:
        return (aligned - self.pivot) @ _rotation(self.tilt) + self.pivot

    def _tilt(self, points: np.ndarray) -> np.ndarray:
        return (points - self.pivot) @ _rotation(self.tilt).T + self.pivot

    def width_factor(self, v: np.ndarray) -> np.ndarray:
        """Half-width at v relative to full: top_scale down to the jaw line, then closing to 0 at v = 1."""
        t = (np.asarray(v, dtype=np.float64) - self.v_jaw) / max(1.0 - self.v_jaw, 1e-6)
        return self.top_scale * superellipse(t, self.roundness)

    def _half_widths(self, y: np.ndarray, v: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        mid = self.frame.midline_x(y)
        floor = 0.15 * self.width / 2.0  # a midline strayed to a side (strong yaw) still leaves a strip
        g = self.width_factor(v)
        return mid, np.maximum(mid - self.left, floor) * g, np.maximum(self.right - mid, floor) * g

    def uv(self, xs: np.ndarray, ys: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """Mask coordinates of image pixels: u, v, and pixels per unit of u and of v there
        (so styles can draw lines and edges a given number of pixels wide)."""
        pts = np.stack([xs, ys], axis=-1).astype(np.float64)
        q = self._untilt(self.frame.to_aligned(pts.reshape(-1, 2))).reshape(pts.shape)
        xa, ya = q[..., 0], q[..., 1]
        v = (ya - self.top) / self.height
        mid, half_left, half_right = self._half_widths(ya, v)
        half = np.where(xa >= mid, half_right, half_left)
        u = (xa - mid) / np.maximum(half, 1e-3)
        return u, v, np.maximum(half, 1e-3), np.full_like(v, self.height)

    def to_image(self, u: np.ndarray, v: np.ndarray) -> np.ndarray:
        """Image xy of mask coordinates (the inverse of `uv`), shape (..., 2)."""
        u, v = np.broadcast_arrays(np.asarray(u, dtype=np.float64), np.asarray(v, dtype=np.float64))
        y = self.top + v * self.height
        mid, half_left, half_right = self._half_widths(y, v)
        x = mid + u * np.where(u >= 0, half_right, half_left)
        aligned = self._tilt(np.stack([x, y], axis=-1).reshape(-1, 2))
        return self.frame.to_image(aligned).reshape(u.shape + (2,))


def place_mask(frame: FaceFrame, placement: Placement, rng: np.random.Generator,
               roundness: float = 2.2, edge_margin: float = 0.0) -> MaskGeometry:
    """Where the mask's edges go for a placement, with random jitter.

    - correct: top on the nose bridge (40-55% of the way from the eye line to the nose tip),
      bottom just under the chin;
    - nose out: top between the nose tip and the upper lip, so the whole nose shows;
    - under the nose: top just under the nose tip (the tip shows, the nostrils are half covered);
    - chin out: top below the lower lip, the mask bunched round the chin.
    `edge_margin` (px) keeps a wrong mask's top edge that far from the landmark it must leave
    bare, so edge feathering cannot touch it.
    Sides: the box edges, pulled in a little, but outside the mouth corners and not far beyond
    the eyes (a box that takes in hair or background would make it too wide).
    """
    e = frame.eye_dist
    nose_y, mouth_y = float(frame.nose[1]), float(frame.mouth[1])
    d = frame.eye_to_mouth
    chin_y = float(frame.chin[1])
    jaw_y = nose_y + 0.6 * (mouth_y - nose_y)  # where the face outline starts to narrow
    face_end = chin_y + 0.1 * d

    if placement is Placement.CORRECT:
        top = rng.uniform(0.40, 0.55) * nose_y
        bottom = chin_y + rng.uniform(0.08, 0.18) * d
    elif placement is Placement.NOSE_OUT:
        top = nose_y + rng.uniform(0.28, 0.5) * (mouth_y - nose_y)
        top = max(top, nose_y + edge_margin)
        bottom = chin_y + rng.uniform(0.15, 0.28) * d
    elif placement is Placement.UNDER_NOSE:
        top = nose_y + rng.uniform(0.06, 0.2) * (mouth_y - nose_y)
        top = max(top, nose_y + edge_margin)
        bottom = chin_y + rng.uniform(0.08, 0.2) * d
    elif placement is Placement.CHIN_OUT:
        top = mouth_y + rng.uniform(0.3, 0.55) * (chin_y - mouth_y)
        top = max(top, max(frame.mouth_left[1], frame.mouth_right[1]) + edge_margin)
        bottom = chin_y + rng.uniform(0.3, 0.45) * d
    else:
        raise ValueError("a bare face has no mask geometry")
    bottom = max(bottom, top + 0.35 * d)

    # Each side reaches no further from the nose than twice that side's eye: about the cheek's
    # edge when frontal (1 eye distance), and much less on the far side of a turned head, where
    # MTCNN's box still takes in background.
    inset = rng.uniform(0.05, 0.10) * (frame.box_right - frame.box_left)
    nose_x = float(frame.nose[0])
    left = min(max(frame.box_left + inset, -e - nose_x), frame.mouth_left[0] - 0.2 * e, nose_x - 0.2 * e)
    right = max(min(frame.box_right - inset, e - nose_x), frame.mouth_right[0] + 0.2 * e, nose_x + 0.2 * e)
    scale = rng.uniform(0.95, 1.05)
    centre = (left + right) / 2.0
    left, right = centre + (left - centre) * scale, centre + (right - centre) * scale

    if top < jaw_y:
        v_jaw = (jaw_y - top) / (bottom - top)
        top_scale = 1.0
    else:  # the top edge is already where the jaw narrows
        v_jaw = 0.0
        top_scale = float(max(superellipse((top - jaw_y) / (face_end - jaw_y), roundness), 0.5))
    return MaskGeometry(frame=frame, top=float(top), bottom=float(bottom), left=float(left), right=float(right),
                        v_jaw=float(min(v_jaw, 0.85)), top_scale=top_scale, roundness=roundness,
                        tilt=math.radians(rng.uniform(-3.0, 3.0)), pivot=frame.nose.copy())
