"""`mask-train eval-detector --closeup`: held-out mask_web photos letterboxed into 640x480, on real photos."""
from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest

from core.imageio import load_image
from core.mtcnn import MTCNN
from training.detector.closeup import (FRAME_SHAPE, PHOTO_HEIGHT, STATES, closeup_photos, background, judge, letterbox,
                                       score_closeups)
from training.detector.evaluate import mtcnn_detect
from training.detector.scenes import web_group, web_heldout

STOCK = Path(__file__).resolve().parents[1] / "assets" / "models" / "mtcnn"


@pytest.fixture(scope="module")
def held(shared_data: Path):
    return closeup_photos(shared_data)


def test_heldout_photos_are_stable_and_disjoint_from_the_training_part(held, shared_data: Path):
    assert [p.path for p in closeup_photos(shared_data)] == [p.path for p in held]
    assert all(web_heldout(p.path) for p in held)
    every = [p for s in STATES for p in sorted((shared_data / "mask_web" / s).iterdir())]
    rest = [p for p in every if not web_heldout(p)]
    assert {web_group(p.path) for p in held}.isdisjoint({web_group(p) for p in rest})
    assert len(held) + len(rest) == len(every)
    # One celebrity's photos lie on one side, whole.
    anhu = [p for p in every if web_group(p) == "without_mask/anhu"]
    assert len(anhu) > 100 and len({web_heldout(p) for p in anhu}) == 1
    for state in STATES:
        share = sum(p.state == state for p in held) / sum(p.parent.name == state for p in every)
        assert 0.15 < share < 0.45
    # A limited sample is a stable subset, at most N per state.
    sample = closeup_photos(shared_data, limit=5)
    assert sample == closeup_photos(shared_data, limit=5)
    assert [sum(p.state == s for p in sample) for s in STATES] == [5, 5]
    assert set(sample) <= set(held)


def test_a_letterboxed_frame_holds_the_photo_at_its_recorded_place(held):
    photo = next(p for p in held if p.state == "with_mask")
    image = load_image(photo.path).image
    frame = letterbox(image, photo.key)
    x1, y1, x2, y2 = frame.rect
    assert frame.image.shape == (*FRAME_SHAPE, 3) and frame.image.dtype == np.uint8
    assert 0 <= x1 < x2 <= FRAME_SHAPE[1] and 0 <= y1 < y2 <= FRAME_SHAPE[0]
    assert PHOTO_HEIGHT[0] - 1 <= y2 - y1 <= PHOTO_HEIGHT[1] + 1 or x2 - x1 == FRAME_SHAPE[1]
    assert (x2 - x1) / (y2 - y1) == pytest.approx(image.shape[1] / image.shape[0], rel=0.02)
    # The pasted pixels are the photo's (scaled): compare with the photo resized to the same place.
    import cv2

    pasted = frame.image[y1:y2, x1:x2].astype(np.float32)
    expected = cv2.resize(image, (x2 - x1, y2 - y1), interpolation=cv2.INTER_LINEAR).astype(np.float32)
    assert np.abs(pasted - expected).mean() < 12
    # Outside the photo: the background alone, the same for the same key.
    plain = background(photo.key)
    outside = np.ones(FRAME_SHAPE, bool)
    outside[y1:y2, x1:x2] = False
    assert np.array_equal(frame.image[outside], plain[outside])
    again = letterbox(image, photo.key)
    assert again.rect == frame.rect and np.array_equal(again.image, frame.image)
    other = next(p for p in held if p.state == "without_mask")
    assert letterbox(image, other.key).rect != frame.rect  # another file: another place


def test_judge_counts_found_outside_and_inside():
    rect = (100, 50, 400, 450)  # a 300x400 photo: found needs a box side >= 90 px
    assert judge(np.array([[120, 80, 380, 400]]), rect).found
    small = judge(np.array([[120, 80, 180, 140]]), rect)  # 60 px: too small to be the close-up's face
    assert not small.found and small.inside == 1 and small.outside == 0
    away = judge(np.array([[450, 50, 600, 200], [0, 0, 120, 120]]), rect)  # on the background / mostly off it
    assert not away.found and away.outside == 2 and away.inside == 0
    assert judge(np.zeros((0, 4)), rect) == judge(np.zeros((0, 4)), rect)
    assert not judge(np.zeros((0, 4)), rect).found


def test_blank_frames_count_nothing_and_the_pasted_rectangle_counts_everything(held):
    sample = [p for s in STATES for p in [q for q in held if q.state == s][:4]]
    rects = iter([letterbox(load_image(p.path).image, p.key).rect for p in sample])
    stock = mtcnn_detect(MTCNN(STOCK))
    blanks = iter([stock(background(p.key)) for p in sample])  # the stock detector on each frame without its photo
    pasted, empty = score_closeups([("pasted", lambda image: np.array([next(rects)], np.float32)),
                                    ("blank", lambda image: next(blanks))], sample, progress=False)
    for state in STATES:
        assert pasted.states[state].photos == 4 and pasted.states[state].found == 4
        assert pasted.states[state].outside == 0 and pasted.states[state].several == 0
        assert empty.states[state].photos == 4 and empty.states[state].found == 0


def test_stock_detector_finds_most_close_ups(shared_data: Path, tmp_path: Path):
    from training.cli import main

    out = tmp_path / "report.md"
    assert main(["eval-detector", "--data", str(shared_data), "--label", "stock", "--detector", str(STOCK),
                 "--closeup", "--closeup-photos", "8", "--out", str(out)]) == 0
    text = out.read_text()
    assert "## Close-ups" in text and "| stock (min 40, 0.6/0.7/0.7) |" in text.split("## Close-ups")[1]
    with open(out.with_suffix(".csv"), newline="") as handle:
        rows = [r for r in csv.DictReader(handle) if r["band"] == "closeup"]
    assert [r["state"] for r in rows] == list(STATES)
    for row in rows:
        assert int(row["labelled"]) == 8
        assert 6 <= int(row["found"]) <= 8  # the stock detector finds most close-ups, whatever the mask
