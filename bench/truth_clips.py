"""Generated clips that know where every face is: the live thresholds bench's material.

Built like bench/frames.py's clips (real photos in ../shared/data, seeded, 640x480), but each
frame comes with its true faces, so a tracker's confirmed boxes can be scored as found faces or
stray ones. Photos come from the parts a detector fine-tune never trains on
(training/detector/scenes.py: held-out face_mask_853 scenes, `web_heldout` mask_web photos),
so the measurement still holds after a fine-tuned detector ships.

Two kinds of truth:
- a labelled box (face_mask_853), carried through the camera's window: matched at IoU >= 0.4;
- a pasted mask_web photo: its face box is not labelled, only that the photo is mostly one
  face (tight crops chosen: near-square, >= 150 px), so a box matches it when its centre lies in
  the photo's middle 60 % and its side is 25-110 % of the photo's (`Truth.loose`).
Faces under MIN_COUNTED px or less than MIN_VISIBLE inside the frame are not counted: a box on
one is neither a found face nor a stray one.
"""
from __future__ import annotations

import csv
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import cv2
import numpy as np

from bench.frames import DATA, _paste, _smoothstep, _sprite, empty_scene, window_view
from training.detector.scenes import boxes_table, load_scenes, web_heldout

SIZE = (640, 480)
#: Faces smaller than this (px, the detector's min face) are not counted, nor found nor stray.
MIN_COUNTED = 40
#: Faces with less than this share of their box inside the frame are not counted.
MIN_VISIBLE = 0.6
#: Held-out face_mask_853 scenes (`is_heldout`), by what they show at 640x480.
CLOSE_MASKED = ("maksssksksss195.jpg", "maksssksksss506.jpg", "maksssksksss635.jpg")
CLOSE_WRONG = ("maksssksksss832.jpg", "maksssksksss276.jpg", "maksssksksss835.jpg")
CLOSE_BARE = ("maksssksksss343.jpg", "maksssksksss455.jpg")
GROUPS = ("maksssksksss698.jpg", "maksssksksss640.jpg")  # masked, wrongly and bare faces, 30-70 px
EMPTY = ("maksssksksss163.jpg", "maksssksksss267.jpg", "maksssksksss338.jpg")  # street, stairs, hall: faces painted out
STATES = {"with_mask": "masked", "mask_weared_incorrect": "wrong", "without_mask": "bare"}


@dataclass(frozen=True, eq=False)
class Truth:
    """One true face in one frame."""

    person: str  # the same face in every frame of its clip
    box: np.ndarray  # x1, y1, x2, y2 in frame px (a pasted photo's extent when loose)
    state: str  # "masked", "wrong" or "bare"
    counted: bool  # big enough and inside the frame: scored as found or missed
    loose: bool = False  # a mask_web photo: matched by centre and size, not IoU

    def matches(self, box: np.ndarray, min_iou: float = 0.4) -> bool:
        if self.loose:
            side = self.box[2] - self.box[0]
            centre = (np.asarray(box[:2]) + np.asarray(box[2:])) / 2
            inner = (self.box[:2] + 0.2 * side <= centre).all() and (centre <= self.box[2:] - 0.2 * side).all()
            found = np.sqrt(max(box[2] - box[0], 0) * max(box[3] - box[1], 0))
            return bool(inner and 0.25 * side <= found <= 1.1 * side)
        return _iou(self.box, box) >= min_iou

    def near(self, box: np.ndarray) -> bool:
        """Whether `box` is on this face at all, if not a match (a box in another style than the
        label's, or a second box on it): the face's centre inside it, its size within 2x. Such a
        box is no false alarm; neither is any box centred on a pasted (tightly cropped) photo."""
        if self.matches(box):
            return True
        if self.loose:
            centre = (np.asarray(box[:2]) + np.asarray(box[2:])) / 2
            return bool((self.box[:2] <= centre).all() and (centre <= self.box[2:]).all())
        centre = (self.box[:2] + self.box[2:]) / 2
        ratio = np.sqrt(max(box[2] - box[0], 1e-6) * max(box[3] - box[1], 1e-6)
                        / max((self.box[2] - self.box[0]) * (self.box[3] - self.box[1]), 1e-6))
        return bool((box[:2] <= centre).all() and (centre <= box[2:]).all() and 0.5 <= ratio <= 2.0)


@dataclass(frozen=True)
class Clip:
    """A named clip: `frames()` yields (BGR frame, its true faces), the same on every call."""

    name: str
    what: str
    length: int
    frames: Callable[[], Iterator[tuple[np.ndarray, list[Truth]]]]


def _iou(a: np.ndarray, b: np.ndarray) -> float:
    w = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    h = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - w * h
    return float(w * h / union) if union > 0 else 0.0


def _visible(box: np.ndarray) -> float:
    width, height = SIZE
    inside = max(0.0, min(box[2], width) - max(box[0], 0)) * max(0.0, min(box[3], height) - max(box[1], 0))
    return float(inside / max((box[2] - box[0]) * (box[3] - box[1]), 1e-6))


def _counted(box: np.ndarray) -> bool:
    return bool(np.sqrt((box[2] - box[0]) * (box[3] - box[1])) >= MIN_COUNTED and _visible(box) >= MIN_VISIBLE)


@lru_cache(maxsize=None)
def _labels(name: str) -> tuple[tuple[tuple[float, float, float, float], str], ...]:
    """A face_mask_853 scene's labelled faces: (box, state), in file order."""
    with open(DATA / "face_mask_853" / "boxes.csv", newline="") as handle:
        return tuple(
            (tuple(float(row[k]) for k in ("xmin", "ymin", "xmax", "ymax")), STATES[row["label"]])
            for row in csv.DictReader(handle) if row["path"] == f"images/{name}"
        )


@lru_cache(maxsize=1)
def _heldout_scenes() -> frozenset[str]:
    return frozenset(scene.path.name for scene in load_scenes(boxes_table(DATA), "heldout"))


def _check_heldout(name: str) -> None:
    """Only held-out scenes (by near-duplicate group, as training/detector/scenes.py decides) go
    into these clips: a detector fine-tune never trains on them."""
    if name not in _heldout_scenes():
        raise ValueError(f"{name} is not a held-out face_mask_853 scene")


def _view(scene: np.ndarray, cx: float, cy: float, win_w: float) -> tuple[np.ndarray, np.ndarray]:
    """The scene through a window `win_w` scene px wide centred at (cx, cy) (bench/frames.py's
    window_view at this module's frame size), and the (scale, x0, y0) mapping scene px to frame px."""
    return window_view(scene, cx, cy, win_w, SIZE)


def _scene_truths(name: str, transform: np.ndarray) -> list[Truth]:
    k, x0, y0 = transform
    truths = []
    for i, (box, state) in enumerate(_labels(name)):
        mapped = (np.array(box) - np.array([x0, y0, x0, y0])) * k
        truths.append(Truth(f"{name}#{i}", mapped, state, _counted(mapped)))
    return truths


def _image(name: str) -> np.ndarray:
    _check_heldout(name)
    image = cv2.imread(str(DATA / "face_mask_853" / "images" / name))
    if image is None:
        raise FileNotFoundError(name)
    return image


def _scene_closeups(names: tuple[str, ...], per_scene: int, face_px: float = 260.0) -> Iterator[tuple[np.ndarray, list[Truth]]]:
    """Each scene seen close around its largest face (about `face_px` wide, as a webcam at arm's
    length sees it), swaying and zooming in a little, a hard cut between scenes."""
    for name in names:
        image = _image(name)
        box, _ = max(_labels(name), key=lambda item: (item[0][2] - item[0][0]) * (item[0][3] - item[0][1]))
        fx, fy = (box[0] + box[2]) / 2, (box[1] + box[3]) / 2
        win_w = SIZE[0] * (box[2] - box[0]) / face_px
        for i in range(per_scene):
            t = i / max(1, per_scene - 1)
            sway = 0.06 * win_w * np.sin(2 * np.pi * t)
            frame, transform = _view(image, fx + sway, fy, win_w / (1.0 + 0.1 * _smoothstep(t)))
            yield frame, _scene_truths(name, transform)


def _scene_pans(names: tuple[str, ...], per_scene: int, zoom: float = 1.3) -> Iterator[tuple[np.ndarray, list[Truth]]]:
    """Each scene seen `zoom`x closer than whole, the camera panning across it."""
    for name in names:
        image = _image(name)
        h, w = image.shape[:2]
        win_w = min(w, h * SIZE[0] / SIZE[1]) / zoom
        for i in range(per_scene):
            t = i / max(1, per_scene - 1)
            frame, transform = _view(image, win_w / 2 + t * (w - win_w), h / 2, win_w)
            yield frame, _scene_truths(name, transform)


#: Held-out mask_web photos (`web_heldout`), tight single-face crops picked by eye from the
#: near-square ones >= 150 px: two bare close-ups, and the small gliding faces.
WEB_CLOSE_BARE = ("without_mask/420.jpg", "without_mask/augmented_image_101.jpg")
WEB_SMALL = ("with_mask/with_mask014.jpg", "with_mask/with_mask271.jpg", "without_mask/362.jpg", "without_mask/augmented_image_74.jpg")


def web_picks(folder: str, count: int, seed: int) -> list[Path]:
    """`count` held-out mask_web photos of `folder` drawn with `seed` among those that look like
    tight single-face crops (near-square, >= 150 px; not checked by eye)."""
    fit = []
    for path in sorted((DATA / "mask_web" / folder).iterdir()):
        if not web_heldout(path):
            continue
        image = cv2.imread(str(path))
        if image is not None and min(image.shape[:2]) >= 150 and 0.75 <= image.shape[1] / image.shape[0] <= 1.34:
            fit.append(path)
    rng = np.random.default_rng(seed)
    return [fit[i] for i in sorted(rng.choice(len(fit), min(count, len(fit)), replace=False))]


def web_photos(names: tuple[str, ...]) -> list[Path]:
    """mask_web photos by folder/name, refused unless held out from the detector fine-tune."""
    paths = [DATA / "mask_web" / name for name in names]
    for path in paths:
        if not web_heldout(path):
            raise ValueError(f"{path} is not a held-out mask_web photo")
    return paths


@lru_cache(maxsize=None)
def _backdrop(name: str) -> np.ndarray:
    """A held-out street scene with its faces painted out: texture for false alarms."""
    _check_heldout(name)
    return empty_scene(SIZE, name)


def _web_truth(path: Path, cx: float, cy: float, side: float) -> Truth:
    box = np.array([cx - side / 2, cy - side / 2, cx + side / 2, cy + side / 2])
    state = "masked" if path.parent.name == "with_mask" else "bare"
    return Truth(f"web:{path.parent.name}/{path.name}", box, state, _visible(box) >= MIN_VISIBLE, loose=True)


def _web_closeups(paths: list[Path], per_photo: int, backdrop: str) -> Iterator[tuple[np.ndarray, list[Truth]]]:
    """Each photo pasted large (a face filling much of the frame) over a textured scene, swaying
    and coming a little closer; a hard cut between photos."""
    width, height = SIZE
    for path in paths:
        sprite = _sprite(path)
        for i in range(per_photo):
            t = i / max(1, per_photo - 1)
            frame = _backdrop(backdrop).copy()
            cx, cy, side = width * 0.5 + 25 * np.sin(2 * np.pi * t), height * 0.5, 330 * (1.0 + 0.1 * _smoothstep(t))
            _paste(frame, sprite, cx, cy, side)
            yield frame, [_web_truth(path, cx, cy, side)]


def _web_small(paths: list[Path], frames: int, backdrop: str) -> Iterator[tuple[np.ndarray, list[Truth]]]:
    """Small photos (70-95 px: faces of about 45-65 px) gliding over a textured scene."""
    width, height = SIZE
    sprites = [_sprite(p) for p in paths]
    lanes = [(0.15, 0.3, 0.7, 95), (0.85, 0.62, -0.7, 85), (0.3, 0.82, 0.3, 75), (0.75, 0.18, -0.3, 70)]
    for i in range(frames):
        t = i / max(1, frames - 1)
        frame = _backdrop(backdrop).copy()
        truths = []
        for path, sprite, (x, y, dx, side) in zip(paths, sprites, lanes):
            cx, cy = width * (x + dx * t), height * y + 15 * np.sin(2 * np.pi * t)
            _paste(frame, sprite, cx, cy, side)
            truths.append(_web_truth(path, cx, cy, side))
        yield frame, truths


def _empty(names: tuple[str, ...], per_scene: int, seed: int) -> Iterator[tuple[np.ndarray, list[Truth]]]:
    """Street scenes with every labelled face painted out, a slow pan and sensor noise: nobody to
    find, plenty of texture (bodies, clothes, signs) to be mistaken for a face."""
    rng = np.random.default_rng(seed)
    for name in names:
        _check_heldout(name)
        painted = empty_scene((SIZE[0] * 5 // 4, SIZE[1] * 5 // 4), name)
        for i in range(per_scene):
            t = i / max(1, per_scene - 1)
            frame, _ = _view(painted, SIZE[0] / 2 + t * SIZE[0] / 4, painted.shape[0] / 2, SIZE[0])
            yield np.clip(frame + rng.normal(0.0, 2.0, frame.shape), 0, 255).astype(np.uint8), []


def live_threshold_clips(seed: int = 0, per_shot: int = 20, web_masked: int = 24, web_bare: int = 6,
                         per_photo: int = 8) -> list[Clip]:
    """The bench's clips: `per_shot` frames a face_mask_853 shot, `per_photo` a random mask_web
    close-up (`web_masked` with a mask, `web_bare` without, drawn with `seed`); ~22 s at 30 fps."""
    masked, small = web_picks("with_mask", web_masked, seed), web_photos(WEB_SMALL)
    bare = [*web_photos(WEB_CLOSE_BARE), *web_picks("without_mask", web_bare, seed)]
    n = per_shot
    return [
        Clip("close masked", "3 masked close-ups (face_mask_853), ~260-320 px", 3 * n,
             lambda: _scene_closeups(CLOSE_MASKED, n)),
        Clip("close masked web", f"{len(masked)} mask_web with_mask photos, ~330 px, drawn at random", len(masked) * per_photo,
             lambda: _web_closeups(masked, per_photo, EMPTY[0])),
        Clip("close wrongly", "3 wrongly worn masks close up (face_mask_853)", 3 * n,
             lambda: _scene_closeups(CLOSE_WRONG, n)),
        Clip("close bare", f"2 bare close-ups (face_mask_853) + {len(bare)} mask_web without_mask photos",
             2 * n + len(bare) * per_photo,
             lambda: _chain(_scene_closeups(CLOSE_BARE, n), _web_closeups(bare, per_photo, EMPTY[1]))),
        Clip("groups", "2 scenes of 7-8 people (masked, wrongly, bare; 30-90 px), panned", 4 * n,
             lambda: _scene_pans(GROUPS, 2 * n)),
        Clip("small web", "4 mask_web photos (2 masked, 2 bare), faces ~45-65 px, gliding", 3 * n,
             lambda: _web_small(small, 3 * n, EMPTY[2])),
        Clip("empty", "3 street scenes with the faces painted out, panned, sensor noise", 6 * n,
             lambda: _empty(EMPTY, 2 * n, seed)),
    ]


def _chain(*parts: Iterator) -> Iterator:
    for part in parts:
        yield from part


def still_closeup(path: Path, side: float = 300, frames: int = 15, backdrop: str = EMPTY[1],
                  seed: int = 0) -> Iterator[tuple[np.ndarray, list[Truth]]]:
    """One mask_web photo `side` px wide, still in the middle of a textured scene, with sensor
    noise: someone sitting in front of a webcam."""
    base = _backdrop(backdrop).copy()
    cx, cy = SIZE[0] / 2, SIZE[1] / 2
    _paste(base, _sprite(path), cx, cy, side)
    truth = _web_truth(path, cx, cy, side)
    rng = np.random.default_rng(seed)
    for _ in range(frames):
        yield np.clip(base + rng.normal(0.0, 2.0, base.shape), 0, 255).astype(np.uint8), [truth]


def empty_clip(scene: str, frames: int = 40, seed: int = 0) -> Iterator[tuple[np.ndarray, list[Truth]]]:
    """A held-out street scene with its faces painted out, panned, with sensor noise: nobody."""
    return _empty((scene,), frames, seed)
