"""`mask-train eval-detector`: the held-out split of face_mask_853 and the counting, on real photos."""
from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest

from core.labels import Mask
from training.detector.evaluate import CRITERION_MIN_PX, evaluate_detectors, match, score_scenes
from training.detector.scenes import STATE_NAMES, boxes_table, is_heldout, load_scenes


@pytest.fixture(scope="module")
def splits(shared_data: Path):
    table = boxes_table(shared_data)
    return {name: load_scenes(table, name) for name in ("heldout", "train", "all")}


def test_split_is_disjoint_by_group_and_covers_everything(splits, shared_data: Path):
    held, train, every = splits["heldout"], splits["train"], splits["all"]
    assert {s.group for s in held}.isdisjoint({s.group for s in train})
    assert sorted(s.path for s in held + train) == sorted(s.path for s in every)
    assert 0.2 < len({s.group for s in held}) / len({s.group for s in every}) < 0.4
    # Every near-duplicate group lies on one side, whole.
    held_paths = {s.path for s in held}
    side = {s.path.relative_to(shared_data / "face_mask_853").as_posix(): s.path in held_paths for s in every}
    groups: dict[str, set[bool]] = {}
    with open(shared_data / "face_mask_853" / "near_duplicate_groups.csv", newline="") as handle:
        for row in csv.DictReader(handle):
            if row["path"] in side:
                groups.setdefault(row["group"], set()).add(side[row["path"]])
    assert groups and all(len(sides) == 1 for sides in groups.values())
    # Enough wrongly worn masks >= 40 px held out for the criterion to mean something.
    wrong = [b for s in held for b, m in zip(s.boxes, s.states) if m is Mask.INCORRECT and b[2] - b[0] >= CRITERION_MIN_PX]
    assert len(wrong) >= 10


def test_split_is_deterministic(splits, shared_data: Path):
    again = load_scenes(boxes_table(shared_data), "heldout")
    assert [s.path for s in again] == [s.path for s in splits["heldout"]]
    assert is_heldout("group3") == is_heldout("group3")


def test_match_is_one_to_one_at_iou_04():
    truth = np.array([[0, 0, 10, 10], [20, 0, 30, 10]], np.float32)
    # Two detections on the first face (only one counts), one 50 % overlap (IoU 1/3: no match).
    found = np.array([[0, 0, 10, 10], [1, 0, 11, 10], [25, 0, 35, 10]], np.float32)
    truth_hit, found_hit = match(truth, found)
    assert truth_hit.tolist() == [True, False]
    assert found_hit.tolist() == [True, False, False]
    hit, _ = match(truth, np.array([[22, 0, 32, 10]], np.float32))  # IoU 8/12 = 0.67
    assert hit.tolist() == [False, True]


def replay(boxes: list[np.ndarray]):
    """A "detector" answering each scene, in order, with the given boxes."""
    answers = iter(boxes)
    return lambda image: next(answers)


def test_truth_as_detections_finds_all_and_nothing_finds_none(splits):
    scenes = splits["heldout"][:8]
    labelled = {state: sum(STATE_NAMES[m] == state for s in scenes for m in s.states) for state in STATE_NAMES.values()}
    perfect = score_scenes("truth", replay([s.boxes for s in scenes]), scenes, progress=False)
    assert perfect.images == len(scenes)
    assert perfect.recall() == 1.0 and perfect.unmatched == 0 and perfect.mean_iou == pytest.approx(1.0)
    assert perfect.detections == sum(labelled.values())
    for state, n in labelled.items():
        assert perfect.counts([state]) == (n, n)
    empty = score_scenes("none", replay([np.zeros((0, 4))] * len(scenes)), scenes, progress=False)
    assert empty.recall() == 0.0 and empty.unmatched == 0 and empty.detections == 0
    # Each scene's first box only, moved right by 3 widths: that face is lost, the box matches nothing.
    def first_moved(b: np.ndarray) -> np.ndarray:
        w = b[0, 2] - b[0, 0]
        return b[:1] + np.array([3 * w, 0, 3 * w, 0], np.float32)
    moved = score_scenes("moved", replay([first_moved(s.boxes) for s in scenes]), scenes, progress=False)
    assert moved.counts()[0] <= 1  # (only if it lands on a neighbour)
    assert moved.detections == len(scenes) and moved.unmatched >= len(scenes) - 1


def test_stock_detector_report_on_heldout(shared_data: Path, tmp_path: Path):
    from training.cli import main

    out = tmp_path / "report.md"
    assert main(["eval-detector", "--data", str(shared_data), "--label", "stock", "--detector",
                 str(Path(__file__).resolve().parents[1] / "assets" / "models" / "mtcnn"), "--out", str(out)]) == 0
    text = out.read_text()
    assert "| stock (min 40, 0.6/0.7/0.7) |" in text
    with open(out.with_suffix(".csv"), newline="") as handle:
        rows = list(csv.DictReader(handle))
    held = load_scenes(boxes_table(shared_data), "heldout")
    for state in STATE_NAMES.values():
        labelled = sum(int(r["labelled"]) for r in rows if r["state"] == state)
        assert labelled == sum(STATE_NAMES[m] == state for s in held for m in s.states)
    masked = sum(int(r["found"]) for r in rows if r["state"] == "with_mask")
    assert 0 < masked < sum(int(r["labelled"]) for r in rows if r["state"] == "with_mask")
    unmatched = next(r for r in rows if r["state"] == "unmatched_detections")
    assert 0 <= int(unmatched["found"]) <= int(unmatched["labelled"])


def test_several_settings_side_by_side(shared_data: Path):
    reports = evaluate_detectors(shared_data, [Path(__file__).resolve().parents[1] / "assets" / "models" / "mtcnn"],
                                 "heldout", min_faces=(40,), thresholds=((0.6, 0.7, 0.7), (0.99, 0.99, 0.99)),
                                 labels=["stock"], progress=False)
    loose, strict = reports
    assert strict.detections < loose.detections
    assert strict.recall() <= loose.recall()


def test_synth_check_on_held_out_chips(shared_data: Path, tmp_path: Path):
    """Stock MTCNN on the bare copy of a held-out chip finds it with its own landmarks (error ~0)."""
    from training.detector.scenes import utk_heldout
    from training.detector.synth_check import synth_check, synth_check_table
    from training.synth import read_source, synthesize

    faces = [f for f in read_source(shared_data / "utkface")[:200] if utk_heldout(f.person_id)][:3]
    assert len(faces) == 3
    synthesize(faces, tmp_path / "synth", per_face=3, progress=False)
    stock = Path(__file__).resolve().parents[1] / "assets" / "models" / "mtcnn"
    (check,) = synth_check([stock], ["stock"], shared_data, tmp_path / "synth", progress=False)
    assert check.total["none"] == 3 and check.found["none"] == 3
    assert check.error["none"] < 0.05  # the same picture, re-encoded as JPEG
    assert sum(check.total.values()) == 9
    assert "| stock |" in synth_check_table([check])
