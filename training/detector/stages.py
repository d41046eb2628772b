"""Which stage of the cascade loses a labelled face: P-Net, R-Net or O-Net.

Fine-tuning a stage that never sees a face (P-Net dropped it) cannot bring it back, so before
choosing which nets to train, each labelled face is followed through the cascade at the app's
settings: it survives a stage when a box out of that stage overlaps it at IoU >= MATCH_IOU (the
evaluation's match). The first stage with no such box is where it was lost.
"""
from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
from tqdm import tqdm

from core.imageio import ImageReadError, load_image
from core.mtcnn import MTCNN, integral_image, pyramid_scales, run_onet, run_pnet, run_rnet, to_network_image
from core.tracker import iou_matrix
from training.detector.evaluate import CRITERION_MIN_PX, MATCH_IOU
from training.detector.scenes import STATE_NAMES, Scene

STAGES = ("pnet", "rnet", "onet")


@dataclass
class StageLosses:
    """Per mask state: faces (>= min_width px) looked at, and how many each stage lost first."""

    faces: Counter = field(default_factory=Counter)
    lost: dict[str, Counter] = field(default_factory=lambda: {s: Counter() for s in STAGES})

    def table(self) -> str:
        lines = ["| state | faces | lost by P-Net | lost by R-Net | lost by O-Net | found |", "|---|---|---|---|---|---|"]
        for state, n in sorted(self.faces.items()):
            lost = [self.lost[s][state] for s in STAGES]
            lines.append(f"| {state} | {n} | " + " | ".join(str(k) for k in lost) + f" | {n - sum(lost)} |")
        return "\n".join(lines) + "\n"


def stage_outputs(detector: MTCNN, image: np.ndarray) -> list[np.ndarray]:
    """Boxes (K, 4) out of P-Net, R-Net and O-Net at the detector's settings."""
    config = detector.config
    pnet, rnet, onet = detector._sessions
    height, width = image.shape[:2]
    scales = pyramid_scales(height, width, config.min_face_size, config.scale_factor)
    empty = np.zeros((0, 4), np.float32)
    if not scales:
        return [empty] * 3
    table = integral_image(to_network_image(image))
    t1, t2, t3 = config.thresholds
    first = run_pnet(pnet, table, scales, t1)
    second = run_rnet(rnet, table, first, t2) if len(first) else first
    third = run_onet(onet, table, second, t3)[0] if len(second) else second
    return [b[:, :4].reshape(-1, 4) for b in (first, second, third)]


def stage_losses(detector: MTCNN, scenes: Sequence[Scene], min_width: float = CRITERION_MIN_PX,
                 progress: bool = True) -> StageLosses:
    """Follow every labelled face at least `min_width` px wide through the cascade."""
    result = StageLosses()
    for scene in tqdm(scenes, desc="stages", unit="img", disable=not progress, leave=False):
        wide = (scene.boxes[:, 2] - scene.boxes[:, 0]) >= min_width
        if not wide.any():
            continue
        try:
            image = load_image(scene.path).image
        except ImageReadError:
            continue
        outputs = stage_outputs(detector, image)
        for box, state in zip(scene.boxes[wide], np.array(scene.states, dtype=object)[wide]):
            name = STATE_NAMES[state]
            result.faces[name] += 1
            for stage, boxes in zip(STAGES, outputs):
                if not len(boxes) or iou_matrix(box[None], boxes)[0].max() < MATCH_IOU:
                    result.lost[stage][name] += 1
                    break
    return result
