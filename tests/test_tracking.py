"""core/tracker.py on synthetic box sequences: ids persist, lost tracks end, crossing faces keep their ids."""
from __future__ import annotations

import numpy as np
import pytest

from core.tracker import Tracker, associate, iou, iou_matrix


def box(cx: float, cy: float, side: float = 60.0) -> np.ndarray:
    return np.array([cx - side / 2, cy - side / 2, cx + side / 2, cy + side / 2])


def ids(tracker: Tracker, *boxes: np.ndarray) -> list[int]:
    return [t.track_id for t in tracker.update(np.array(boxes).reshape(-1, 4))]


def test_iou():
    a = np.array([0, 0, 10, 10], np.float32)
    assert iou(a, a) == 1.0
    assert iou(a, np.array([20, 20, 30, 30], np.float32)) == 0.0
    assert abs(iou(a, np.array([5, 0, 15, 10], np.float32)) - 50 / 150) < 1e-6
    assert iou_matrix(np.zeros((0, 4)), np.zeros((3, 4))).shape == (0, 3)


def test_ids_persist_while_faces_move_and_new_faces_get_new_ids():
    tracker = Tracker()
    first = ids(tracker, box(100, 100), box(300, 120), box(500, 300, 90))
    assert first == [1, 2, 3]
    for step in range(1, 30):  # 4-7 px per frame, in different directions
        now = ids(tracker, box(500 - 5 * step, 300 + 4 * step, 90), box(100 + 6 * step, 100), box(300, 120 + 7 * step))
        assert now == [3, 1, 2], f"frame {step}"
    assert ids(tracker, box(100 + 6 * 30, 100), box(620, 40)) == [1, 4]


def test_a_track_survives_max_missed_frames_then_ends():
    tracker = Tracker(max_missed=3)
    (face,) = ids(tracker, box(200, 200))
    for _ in range(3):
        assert ids(tracker) == []
    assert [t.track_id for t in tracker.tracks] == [face]  # missed 3 times: still alive
    assert ids(tracker, box(204, 202)) == [face]  # back with its id
    for _ in range(4):
        ids(tracker)
    assert tracker.tracks == []  # missed 4 times: ended
    assert ids(tracker, box(204, 202)) == [face + 1]


def crossing(tracker: Tracker, frames: int = 30, speed: float = 10.0) -> list[tuple[int, int]]:
    """Face A walks right, face B walks left, 5 px lower, passing in front of each other."""
    out = []
    for i in range(frames):
        a, b = box(140 + speed * i, 200), box(140 + speed * (frames - 1) - speed * i, 205)
        out.append(tuple(ids(tracker, a, b)))
    return out


def test_two_crossing_faces_keep_their_ids():
    seen = crossing(Tracker())
    assert all(pair == seen[0] for pair in seen), seen


def test_crossing_needs_the_predicted_motion():
    """Without velocity (where each face was last frame), the nearest box is the other face's at
    the crossing: the sequence above is a real test of prediction."""
    tracker = Tracker()
    original = Tracker.update

    def still(self, boxes):
        for track in self.tracks:
            track.velocity[:] = 0
        return original(self, boxes)

    tracker.update = still.__get__(tracker)
    seen = crossing(tracker)
    assert any(pair != seen[0] for pair in seen)


def test_a_fast_small_face_is_followed_by_its_centre():
    # A 40 px face jumping 13 px right and down: IoU 0.29 (< 0.3), centre moved 0.47 of its side.
    start, jumped = box(100, 100, 40), box(113, 113, 40)
    assert iou(start, jumped) < 0.3
    tracker = Tracker(min_iou=0.3, max_centroid_shift=0.5)
    assert ids(tracker, start) == [1] and ids(tracker, jumped) == [1]
    strict = Tracker(min_iou=0.3, max_centroid_shift=0.0)
    assert ids(strict, start) == [1] and ids(strict, jumped) == [2]


def test_centre_matching_ignores_a_face_of_another_size():
    tracker = Tracker(max_centroid_shift=0.5)
    ids(tracker, box(100, 100, 40))
    assert ids(tracker, box(110, 110, 120)) == [2]  # three times larger: someone else


@pytest.mark.parametrize("n_tracks, n_boxes", [(0, 2), (2, 0), (0, 0)])
def test_associate_with_nothing_on_one_side(n_tracks, n_boxes):
    assert associate(np.zeros((n_tracks, 4)), np.zeros((n_boxes, 4)), 0.3, 0.5) == []


def test_one_box_goes_to_one_track():
    tracker = Tracker()
    ids(tracker, box(100, 100), box(112, 100))  # two overlapping faces
    assert sorted(ids(tracker, box(106, 100))) in ([1], [2])
    assert len(tracker.tracks) == 2  # the other one is missed, not merged


def test_a_retired_track_ends_at_once_and_its_id_is_not_reused():
    tracker = Tracker()
    assert ids(tracker, box(100, 100), box(300, 100)) == [1, 2]
    tracker.retire({2})
    assert [t.track_id for t in tracker.tracks] == [1]
    assert ids(tracker, box(102, 100), box(302, 100)) == [1, 3]
