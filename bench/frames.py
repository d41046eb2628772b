"""Benchmark material built from the real photos in ../shared/data (never copied into the repo)."""
from __future__ import annotations

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
