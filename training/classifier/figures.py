"""Confusion matrices drawn with OpenCV (no plotting library needed) and saved as PNG."""
from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import cv2
import numpy as np

from core.atomic import atomic_path

FONT = cv2.FONT_HERSHEY_SIMPLEX
INK = (40, 40, 40)


def _text_width(text: str, scale: float) -> int:
    return cv2.getTextSize(text, FONT, scale, 1)[0][0]


def confusion_image(matrix: np.ndarray, labels: Sequence[str], title: str) -> np.ndarray:
    """BGR image: rows are the truth, columns the prediction; each cell shows its count and is
    shaded by the row's share (so a rare class's errors show as clearly as a common one's).
    Columns are numbered; the row labels give each number's name."""
    n = len(labels)
    cell = 56 if n <= 6 else 34
    scale = 0.45 if n <= 6 else 0.35
    row_names = [f"{i} {name}" for i, name in enumerate(labels)]
    left = max(_text_width(t, scale) for t in row_names) + 24
    top, bottom = 64, 16
    width, height = left + n * cell + 16, top + n * cell + bottom
    image = np.full((height, width, 3), 255, np.uint8)
    cv2.putText(image, title, (8, 22), FONT, 0.55, INK, 1, cv2.LINE_AA)
    cv2.putText(image, "prediction ->", (left, 44), FONT, scale, INK, 1, cv2.LINE_AA)
    totals = matrix.sum(axis=1, keepdims=True)
    share = np.divide(matrix, totals, out=np.zeros(matrix.shape, np.float64), where=totals > 0)
    for i in range(n):
        y = top + i * cell
        cv2.putText(image, row_names[i], (8, y + cell // 2 + 4), FONT, scale, INK, 1, cv2.LINE_AA)
        for j in range(n):
            x = left + j * cell
            shade = 1.0 - share[i, j]
            colour = (255, int(255 * (0.35 + 0.65 * shade)), int(255 * shade))  # white -> blue
            cv2.rectangle(image, (x, y), (x + cell - 1, y + cell - 1), colour, -1)
            cv2.rectangle(image, (x, y), (x + cell - 1, y + cell - 1), (200, 200, 200), 1)
            text = str(int(matrix[i, j]))
            ink = (255, 255, 255) if share[i, j] > 0.6 else INK
            tx = x + (cell - _text_width(text, scale)) // 2
            cv2.putText(image, text, (tx, y + cell // 2 + 4), FONT, scale, ink, 1, cv2.LINE_AA)
    for j in range(n):
        text = str(j)
        cv2.putText(image, text, (left + j * cell + (cell - _text_width(text, scale)) // 2, top - 6), FONT, scale, INK, 1, cv2.LINE_AA)
    return image


def save_png(path: Path, image: np.ndarray) -> Path:
    ok, data = cv2.imencode(".png", image)
    if not ok:
        raise OSError(f"cannot encode {path}")
    with atomic_path(path) as tmp:
        tmp.write_bytes(data.tobytes())
    return path
