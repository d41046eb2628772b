"""Face tracks between video frames: an id that stays with a person while they move.

Each track predicts where its face is now (its last box moved by its recent velocity); new
detections are matched to those predictions greedily, best IoU first, and whatever IoU leaves
unmatched is matched by centre distance (a small or fast face whose boxes no longer overlap).
Prediction is what keeps two faces that cross each other from swapping ids. A track that is
not matched survives `max_missed` frames, so a face that the detector misses for a moment, or
that passes behind someone, comes back with its id. Geometry only: labels live elsewhere.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

#: Velocity is extrapolated for at most this many frames: beyond, a lost face is looked for where it was last seen.
MAX_EXTRAPOLATION = 3
#: Predicted motion is capped at this many box sides per frame (one bad box must not fling a track away).
MAX_SPEED = 0.25
#: Centre-distance matching ignores pairs whose sizes differ more than this factor.
MAX_SIZE_RATIO = 2.0


def iou_matrix(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """(N, M) intersection over union of boxes a (N, 4) and b (M, 4), x1, y1, x2, y2."""
    a = np.asarray(a, dtype=np.float64).reshape(-1, 4)
    b = np.asarray(b, dtype=np.float64).reshape(-1, 4)
    w = np.clip(np.minimum(a[:, None, 2], b[None, :, 2]) - np.maximum(a[:, None, 0], b[None, :, 0]), 0, None)
    h = np.clip(np.minimum(a[:, None, 3], b[None, :, 3]) - np.maximum(a[:, None, 1], b[None, :, 1]), 0, None)
    inter = w * h
    area_a = (a[:, 2] - a[:, 0]) * (a[:, 3] - a[:, 1])
    area_b = (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])
    union = area_a[:, None] + area_b[None, :] - inter
    return np.where(union > 0, inter / np.where(union > 0, union, 1.0), 0.0)


def iou(a: np.ndarray, b: np.ndarray) -> float:
    """Intersection over union of two x1, y1, x2, y2 boxes."""
    return float(iou_matrix(a, b)[0, 0])


def sides(boxes: np.ndarray) -> np.ndarray:
    """Each box's side (N,): the square root of its area, never 0 (it divides)."""
    return np.sqrt(np.clip(boxes[:, 2] - boxes[:, 0], 1e-6, None) * np.clip(boxes[:, 3] - boxes[:, 1], 1e-6, None))


def associate(predicted: np.ndarray, boxes: np.ndarray, min_iou: float, max_centroid_shift: float) -> list[tuple[int, int]]:
    """(track index, box index) pairs: greedy on IoU >= min_iou, then on centre distance
    <= max_centroid_shift x the pair's mean side among boxes of similar size."""
    predicted = np.asarray(predicted, dtype=np.float64).reshape(-1, 4)
    boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    pairs: list[tuple[int, int]] = []
    if len(predicted) == 0 or len(boxes) == 0:
        return pairs
    free_t = np.ones(len(predicted), bool)
    free_b = np.ones(len(boxes), bool)
    overlap = iou_matrix(predicted, boxes)
    for flat in np.argsort(-overlap, axis=None, kind="stable"):
        t, b = divmod(int(flat), len(boxes))
        if overlap[t, b] < min_iou:
            break
        if free_t[t] and free_b[b]:
            pairs.append((t, b))
            free_t[t] = free_b[b] = False
    if max_centroid_shift <= 0 or not free_t.any() or not free_b.any():
        return pairs
    centres_t = (predicted[:, :2] + predicted[:, 2:]) / 2
    centres_b = (boxes[:, :2] + boxes[:, 2:]) / 2
    side_t, side_b = sides(predicted), sides(boxes)
    mean_side = (side_t[:, None] + side_b[None, :]) / 2
    shift = np.linalg.norm(centres_t[:, None, :] - centres_b[None, :, :], axis=2) / mean_side
    ratio = np.maximum(side_t[:, None] / side_b[None, :], side_b[None, :] / side_t[:, None])
    shift[(ratio > MAX_SIZE_RATIO) | ~free_t[:, None] | ~free_b[None, :]] = np.inf
    for flat in np.argsort(shift, axis=None, kind="stable"):
        t, b = divmod(int(flat), len(boxes))
        if shift[t, b] > max_centroid_shift:
            break
        if free_t[t] and free_b[b]:
            pairs.append((t, b))
            free_t[t] = free_b[b] = False
    return pairs


@dataclass(eq=False)
class Track:
    """One person's face over time, in frame pixels."""

    track_id: int
    box: np.ndarray  # (4,) where it was last seen
    velocity: np.ndarray = field(default_factory=lambda: np.zeros(2))  # centre's px per frame, smoothed
    hits: int = 1  # frames it was seen in
    missed: int = 0  # consecutive frames it was not seen in

    def predicted(self) -> np.ndarray:
        """Where the face should be in the next frame: moved, not resized (sizes change slowly and
        the detector's size noise would be amplified)."""
        return self.box + np.tile(self.velocity, 2) * min(self.missed + 1, MAX_EXTRAPOLATION)

    def _observe(self, box: np.ndarray) -> None:
        step = ((box[:2] + box[2:]) - (self.box[:2] + self.box[2:])) / 2 / (self.missed + 1)
        velocity = step if self.hits == 1 else 0.5 * self.velocity + 0.5 * step
        limit = MAX_SPEED * float(np.sqrt(max(1e-6, (box[2] - box[0]) * (box[3] - box[1]))))
        speed = float(np.linalg.norm(velocity))
        self.velocity = velocity * (limit / speed) if speed > limit else velocity
        self.box = box
        self.hits += 1
        self.missed = 0


class Tracker:
    """Gives each detection a track id; `update` once per frame with that frame's boxes."""

    def __init__(self, min_iou: float = 0.3, max_centroid_shift: float = 0.5, max_missed: int = 15) -> None:
        self.min_iou = min_iou
        self.max_centroid_shift = max_centroid_shift
        self.max_missed = max_missed
        self.reset()

    def reset(self) -> None:
        self.tracks: list[Track] = []  # alive: seen now or within max_missed frames
        self._next_id = 1

    def retire(self, track_ids: set[int]) -> None:
        """End these tracks now (a second track found on a face another track holds)."""
        self.tracks = [t for t in self.tracks if t.track_id not in track_ids]

    def update(self, boxes: np.ndarray) -> list[Track]:
        """The track of each box (parallel to boxes): a matched track or a new one. Tracks not
        matched count a miss and end after max_missed of them in a row."""
        boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
        predicted = np.array([t.predicted() for t in self.tracks]).reshape(-1, 4)
        pairs = associate(predicted, boxes, self.min_iou, self.max_centroid_shift)
        result: list[Track | None] = [None] * len(boxes)
        matched = set()
        for t, b in pairs:
            self.tracks[t]._observe(boxes[b].copy())
            result[b] = self.tracks[t]
            matched.add(t)
        survivors = []
        for index, track in enumerate(self.tracks):
            if index not in matched:
                track.missed += 1
                if track.missed > self.max_missed:
                    continue
            survivors.append(track)
        for b, track in enumerate(result):
            if track is None:
                track = Track(self._next_id, boxes[b].copy())
                self._next_id += 1
                result[b] = track
                survivors.append(track)
        self.tracks = survivors
        return [t for t in result if t is not None]
