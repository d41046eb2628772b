"""Benchmark material built from the real photos in ../shared/data (never copied into the repo)."""
from __future__ import annotations

import csv
import os
from collections.abc import Iterator
from pathlib import Path

import cv2
import numpy as np

REPO = Path(__file__).resolve().parents[1]
DATA = Path(os.environ.get("MASK_CHECKER_DATA", REPO.parent / "shared" / "data"))


def scene_frames(count: int, size: tuple[int, int] = (640, 480)) -> list[np.ndarray]:
    """`count` camera-sized BGR frames: face_mask_853 scenes scaled to fit and letterboxed."""
    width, height = size
    paths = sorted((DATA / "face_mask_853" / "images").glob("*.jpg"))[:count]
    frames = []
    for path in paths:
        image = cv2.imread(str(path))
        scale = min(width / image.shape[1], height / image.shape[0])
        resized = cv2.resize(image, None, fx=scale, fy=scale, interpolation=cv2.INTER_LINEAR)
        frame = np.zeros((height, width, 3), np.uint8)
        y, x = (height - resized.shape[0]) // 2, (width - resized.shape[1]) // 2
        frame[y : y + resized.shape[0], x : x + resized.shape[1]] = resized
        frames.append(frame)
    return frames


def web_photos(count: int) -> list[Path]:
    """Single-face web photos, alternately with and without a mask."""
    masked = sorted((DATA / "mask_web" / "with_mask").iterdir())
    bare = sorted((DATA / "mask_web" / "without_mask").iterdir())
    return [p for pair in zip(masked, bare) for p in pair][:count]


#: Real scenes (face_mask_853) for the clip's pan-and-zoom shot: several people, bare and masked.
CLIP_SCENES = ("maksssksksss81.jpg", "maksssksksss523.jpg")


def _smoothstep(t: float) -> float:
    t = min(1.0, max(0.0, t))
    return t * t * (3 - 2 * t)


def _pan_zoom(scene: np.ndarray, t: float, size: tuple[int, int]) -> np.ndarray:
    """The scene seen through a 4:3 window that zooms in from the whole picture to its middle 60 %."""
    width, height = size
    h, w = scene.shape[:2]
    full_w = min(w, h * width / height)
    k = _smoothstep(t)
    win_w = full_w * (1.0 - 0.4 * k)
    win_h = win_w * height / width
    cx = w / 2 + (0.15 * w * k if w > full_w else 0.0) * np.sin(np.pi * t)
    cy = h / 2 - 0.05 * h * k
    x0 = float(np.clip(cx - win_w / 2, 0, w - win_w))
    y0 = float(np.clip(cy - win_h / 2, 0, h - win_h))
    matrix = np.array([[width / win_w, 0, -x0 * width / win_w], [0, height / win_h, -y0 * height / win_h]])
    return cv2.warpAffine(scene, matrix, size, flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)


def _sprite(path: Path) -> np.ndarray:
    """A face photo as a square BGRA sprite with a soft oval edge (no hard square to detect)."""
    image = cv2.imread(str(path))
    side = min(image.shape[:2])
    y, x = (image.shape[0] - side) // 2, (image.shape[1] - side) // 2
    image = cv2.resize(image[y : y + side, x : x + side], (200, 200), interpolation=cv2.INTER_AREA)
    alpha = np.zeros((200, 200), np.uint8)
    cv2.ellipse(alpha, (100, 100), (84, 96), 0, 0, 360, 255, -1)
    alpha = cv2.GaussianBlur(alpha, (0, 0), 6)
    return np.dstack([image, alpha])


def _paste(frame: np.ndarray, sprite: np.ndarray, cx: float, cy: float, side: float) -> None:
    """Alpha-blend the sprite, `side` px wide, centred at (cx, cy); parts outside the frame are cut."""
    side = max(2, round(side))
    scaled = cv2.resize(sprite, (side, side), interpolation=cv2.INTER_AREA)
    x0, y0 = round(cx - side / 2), round(cy - side / 2)
    fx0, fy0 = max(0, x0), max(0, y0)
    fx1, fy1 = min(frame.shape[1], x0 + side), min(frame.shape[0], y0 + side)
    if fx1 <= fx0 or fy1 <= fy0:
        return
    part = scaled[fy0 - y0 : fy1 - y0, fx0 - x0 : fx1 - x0].astype(np.float32)
    alpha = part[:, :, 3:] / 255.0
    region = frame[fy0:fy1, fx0:fx1].astype(np.float32)
    frame[fy0:fy1, fx0:fx1] = (alpha * part[:, :, :3] + (1 - alpha) * region).astype(np.uint8)


def moving_faces_clip(frames: int = 300, size: tuple[int, int] = (640, 480), seed: int = 0) -> Iterator[np.ndarray]:
    """A camera-like clip from the real photos, in three shots (a third of the frames each, hard
    cuts between them) with 1-4 faces that move smoothly:

    1. a slow pan and zoom over a real face_mask_853 scene with several people;
    2. four faces (UTKFace, mask_web) gliding over a blurred scene, two of them crossing;
    3. one face coming closer (growing threefold) while it crosses the frame.
    """
    width, height = size
    rng = np.random.default_rng(seed)
    scene_dir = DATA / "face_mask_853" / "images"
    scene = cv2.imread(str(scene_dir / CLIP_SCENES[seed % len(CLIP_SCENES)]))
    backdrop = cv2.GaussianBlur(cv2.resize(cv2.imread(str(scene_dir / CLIP_SCENES[(seed + 1) % len(CLIP_SCENES)])), size), (0, 0), 12)
    bare = sorted((DATA / "utkface" / "images").glob("*.jpg"))
    masked = sorted((DATA / "mask_web" / "with_mask").iterdir())
    picks = [bare[i] for i in rng.choice(len(bare), 3, replace=False)] + [masked[int(rng.integers(len(masked)))]]
    sprites = [_sprite(p) for p in picks]
    shot = max(1, frames // 3)
    for i in range(frames):
        part, t = min(2, i // shot), (i % shot) / max(1, shot - 1)
        if part == 0:
            yield _pan_zoom(scene, t, size)
            continue
        frame = backdrop.copy()
        if part == 1:  # A and B cross; C and D sway
            _paste(frame, sprites[0], width * (0.15 + 0.7 * t), height * 0.38, 120)
            _paste(frame, sprites[1], width * (0.85 - 0.7 * t), height * 0.55, 110)
            _paste(frame, sprites[2], width * 0.15 + 30 * np.sin(2 * np.pi * t), height * 0.8, 100)
            _paste(frame, sprites[3], width * 0.82, height * 0.18 + 25 * np.sin(2 * np.pi * t), 130)
        else:
            _paste(frame, sprites[0], width * (0.2 + 0.5 * t), height * (0.35 + 0.25 * t), 90 + 180 * _smoothstep(t))
        yield frame


# ----------------------------------------------------------------- single-shot clips for tracking and idle cost

#: Real scenes for the zoom and pan clips: several people (bare and masked), faces 45-130 px at 640x480.
ZOOM_SCENE = "maksssksksss21.jpg"
PAN_SCENE = "maksssksksss704.jpg"
#: A street scene whose faces are painted out (inpainted) for the empty-scene clip.
EMPTY_SCENE = "maksssksksss551.jpg"
#: The face walking into the empty scene: its side and its speed (px per frame).
ENTERING_SIDE = 110
ENTERING_SPEED = 6.0


def _scene(name: str) -> np.ndarray:
    path = DATA / "face_mask_853" / "images" / name
    image = cv2.imread(str(path))
    if image is None:
        raise FileNotFoundError(f"{path} is not a readable image")
    return image


def window_view(scene: np.ndarray, cx: float, cy: float, win_w: float, size: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """The part of `scene` seen through a window `win_w` scene pixels wide (aspect of `size`),
    centred at (cx, cy) but kept inside the picture, resized to `size`; with the (scale, x0, y0)
    that maps scene px to frame px."""
    width, height = size
    h, w = scene.shape[:2]
    win_w = min(win_w, w, h * width / height)
    win_h = win_w * height / width
    x0 = float(np.clip(cx - win_w / 2, 0, w - win_w))
    y0 = float(np.clip(cy - win_h / 2, 0, h - win_h))
    k = width / win_w
    matrix = np.array([[k, 0, -x0 * k], [0, k, -y0 * k]])
    frame = cv2.warpAffine(scene, matrix, size, flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)
    return frame, np.array([k, x0, y0])


def _window(scene: np.ndarray, cx: float, cy: float, win_w: float, size: tuple[int, int]) -> np.ndarray:
    return window_view(scene, cx, cy, win_w, size)[0]


def zoom_clip(frames: int = 90, size: tuple[int, int] = (640, 480), scene: str = ZOOM_SCENE,
              zoom: float = 1.8, target: tuple[float, float] = (0.55, 0.4)) -> Iterator[np.ndarray]:
    """A camera zooming in at a steady rate on a real scene, from the whole picture to `zoom`x
    around `target` (fractions of the picture): every face grows and slides outwards, and the
    outer ones leave the frame."""
    image = _scene(scene)
    h, w = image.shape[:2]
    full_w = min(w, h * size[0] / size[1])
    for i in range(frames):
        t = i / max(1, frames - 1)
        k = zoom ** t  # constant zoom rate
        cx = w / 2 + (target[0] * w - w / 2) * (1 - 1 / k) / (1 - 1 / zoom)
        cy = h / 2 + (target[1] * h - h / 2) * (1 - 1 / k) / (1 - 1 / zoom)
        yield _window(image, cx, cy, full_w / k, size)


def pan_clip(frames: int = 90, size: tuple[int, int] = (640, 480), scene: str = PAN_SCENE,
             zoom: float = 1.6) -> Iterator[np.ndarray]:
    """A camera panning at a steady rate across a real scene seen `zoom`x closer than the whole
    picture: faces enter on one side, cross the frame and leave on the other."""
    image = _scene(scene)
    h, w = image.shape[:2]
    win_w = min(w, h * size[0] / size[1]) / zoom
    for i in range(frames):
        t = i / max(1, frames - 1)
        yield _window(image, win_w / 2 + t * (w - win_w), h / 2, win_w, size)


def empty_scene(size: tuple[int, int] = (640, 480), scene: str = EMPTY_SCENE) -> np.ndarray:
    """A real street scene with its labelled faces painted out (OpenCV inpainting): the texture
    of a busy place with no face for the detector to find."""
    image = _scene(scene)
    mask = np.zeros(image.shape[:2], np.uint8)
    with open(DATA / "face_mask_853" / "boxes.csv", newline="") as handle:
        for row in csv.DictReader(handle):
            if row["path"] == f"images/{scene}":
                x1, y1, x2, y2 = (int(row[k]) for k in ("xmin", "ymin", "xmax", "ymax"))
                pad_x, pad_y = (x2 - x1) * 0.35, (y2 - y1) * 0.35
                cv2.rectangle(mask, (int(x1 - pad_x), int(y1 - pad_y)), (int(x2 + pad_x), int(y2 + pad_y)), 255, -1)
    painted = cv2.inpaint(image, mask, 7, cv2.INPAINT_TELEA)
    return cv2.resize(painted, size, interpolation=cv2.INTER_LINEAR)


def entering_clip(frames: int = 150, enter_at: int = 90, size: tuple[int, int] = (640, 480),
                  seed: int = 0, noise: float = 2.0) -> Iterator[np.ndarray]:
    """An empty scene from a still camera (sensor noise of `noise` grey levels) for `enter_at`
    frames, then one bare face (a UTKFace photo) walking in from the left edge, 110 px wide, 6 px
    a frame. Its first frame fully inside the picture is `entering_full_frame(enter_at)`."""
    rng = np.random.default_rng(seed)
    backdrop = empty_scene(size).astype(np.float32)
    bare = sorted((DATA / "utkface" / "images").glob("*.jpg"))
    sprite = _sprite(bare[int(rng.integers(len(bare)))])
    for i in range(frames):
        frame = np.clip(backdrop + rng.normal(0.0, noise, backdrop.shape), 0, 255).astype(np.uint8)
        if i >= enter_at:
            cx = -ENTERING_SIDE / 2 + ENTERING_SPEED * (i - enter_at + 1)
            _paste(frame, sprite, cx, size[1] * 0.45, ENTERING_SIDE)
        yield frame



def entering_full_frame(enter_at: int) -> int:
    """The first frame of `entering_clip` in which the whole face is inside the picture."""
    return enter_at - 1 + int(np.ceil(ENTERING_SIDE / ENTERING_SPEED))
