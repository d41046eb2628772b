"""A face dressed in context: a mask (any style, worn right, nose out or pulled to the chin) and
perhaps a cap, hood or glasses, drawn on a real photo from the reference detector's landmarks.

`mask-train synth` dresses UTKFace chips; the detector fine-tune also dresses the bare faces of
real scenes and web photos where they stand (training.detector.incontext), so the masked faces
it learns from have real surroundings, light and sizes. Dark and black masks get a larger share
(DARK_SHARE): stock MTCNN misses them most.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from training.synth.geometry import FaceFrame, Placement
from training.synth.overlays import render_overlay, sample_overlay
from training.synth.render import PhotoLook, render
from training.synth.styles import DARK_STYLES, STYLES, sample_style

DARK_SHARE = 0.35
#: Chance of each placement for a dressed face (chin out: the mask pulled down to the chin).
PLACEMENT_ODDS = {Placement.CORRECT: 0.62, Placement.CHIN_OUT: 0.14, Placement.NOSE_OUT: 0.12, Placement.NONE: 0.12}
#: Chance of each overlay, drawn independently, on a masked face.
OVERLAY_ODDS = {"hood": 0.08, "cap": 0.18, "glasses": 0.18}


@dataclass(frozen=True)
class Dressing:
    placement: Placement
    style: str | None  # None: bare
    overlays: tuple[str, ...] = ()

    @property
    def bare(self) -> bool:
        return self.placement is Placement.NONE and not self.overlays


def choose_dressing(rng: np.random.Generator, dark_share: float = DARK_SHARE) -> Dressing:
    placements = list(PLACEMENT_ODDS)
    placement = placements[int(rng.choice(len(placements), p=list(PLACEMENT_ODDS.values())))]
    if placement is Placement.NONE:
        return Dressing(placement, None)
    pool = DARK_STYLES if rng.random() < dark_share else STYLES
    style = pool[int(rng.integers(len(pool)))]
    overlays = tuple(k for k, p in OVERLAY_ODDS.items() if rng.random() < p)
    return Dressing(placement, style, overlays)


def dress_face(image: np.ndarray, landmarks: np.ndarray, box: np.ndarray, dressing: Dressing,
               rng: np.random.Generator) -> np.ndarray:
    """The image with this face dressed (a new array); ValueError when the landmarks do not look
    like a face (geometry.FaceFrame's checks)."""
    frame = FaceFrame.from_detection(landmarks, box)
    out = image
    if dressing.placement is not Placement.NONE:
        out = render(image, landmarks, box, sample_style(dressing.style or STYLES[0], rng), dressing.placement, rng).image
    if dressing.overlays:
        look = PhotoLook.estimate(out, frame, box)
        for kind in dressing.overlays:  # hood, cap, glasses: outermost first
            overlay = sample_overlay(kind, rng)
            for part in (overlay.shadow, overlay):  # the shadow under a low cap, then the cap
                if part is not None:
                    out = render_overlay(out, frame, part, look, rng).composite(out)
    return out.copy() if out is image else out
