"""How a dataset's labelled face boxes sit relative to MTCNN's own (the fine-tune trains towards MTCNN's style)."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from training.detector.evaluate import match_pairs


@dataclass(frozen=True)
class BoxStyle:
    """How MTCNN's box for a face sits relative to a dataset's labelled box: centre offset and
    size, as fractions of the labelled box's width and height (medians over matched pairs)."""

    dx: float = 0.0
    dy: float = 0.0
    sw: float = 1.0
    sh: float = 1.0
    pairs: int = 0

    def apply(self, boxes: np.ndarray) -> np.ndarray:
        boxes = np.asarray(boxes, dtype=np.float32).reshape(-1, 4)
        w, h = boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1]
        cx = (boxes[:, 0] + boxes[:, 2]) / 2 + self.dx * w
        cy = (boxes[:, 1] + boxes[:, 3]) / 2 + self.dy * h
        nw, nh = w * self.sw, h * self.sh
        return np.stack([cx - nw / 2, cy - nh / 2, cx + nw / 2, cy + nh / 2], axis=1).astype(np.float32)


def fit_box_style(truth: list[np.ndarray], found: list[np.ndarray]) -> BoxStyle:
    """Medians over one-to-one matches (IoU >= 0.5) of detections to labelled boxes, per scene."""
    rows = []
    for t, d in zip(truth, found):
        for i, j, _ in match_pairs(t, d, 0.5):
            tw, th = t[i, 2] - t[i, 0], t[i, 3] - t[i, 1]
            rows.append(((d[j, 0] + d[j, 2] - t[i, 0] - t[i, 2]) / 2 / tw, (d[j, 1] + d[j, 3] - t[i, 1] - t[i, 3]) / 2 / th,
                         (d[j, 2] - d[j, 0]) / tw, (d[j, 3] - d[j, 1]) / th))
    if not rows:
        return BoxStyle()
    m = np.median(np.array(rows), axis=0)
    return BoxStyle(float(m[0]), float(m[1]), float(m[2]), float(m[3]), len(rows))
