"""Draw the app icon (a face wearing a mask) into assets/icons/ as PNG, .ico (Windows) and .icns (macOS).

Run once after changing the drawing; the files it writes are committed, so building needs no drawing.
"""
from __future__ import annotations

import argparse
from pathlib import Path

from PIL import Image, ImageDraw

ICONS = Path(__file__).resolve().parent.parent / "assets" / "icons"
BASE = 1024  # drawn large, then scaled down, so small sizes are anti-aliased

BACKGROUND = (32, 92, 122, 255)
SKIN = (246, 214, 180, 255)
MASK = (120, 200, 235, 255)
STRAP = (80, 150, 185, 255)
EYES = (40, 40, 48, 255)


def draw_icon(size: int = BASE) -> Image.Image:
    """The icon at `size` px: a rounded square, a face, a surgical mask over nose and mouth."""
    image = Image.new("RGBA", (BASE, BASE), (0, 0, 0, 0))
    draw = ImageDraw.Draw(image)
    s = BASE / 64  # drawing units: a 64×64 grid
    draw.rounded_rectangle((2 * s, 2 * s, 62 * s, 62 * s), radius=12 * s, fill=BACKGROUND)
    draw.ellipse((14 * s, 9 * s, 50 * s, 55 * s), fill=SKIN)  # face
    for x in (23, 41):  # eyes
        draw.ellipse(((x - 2.5) * s, 24 * s, (x + 2.5) * s, 29 * s), fill=EYES)
    draw.line((14 * s, 36 * s, 9 * s, 30 * s), fill=STRAP, width=int(2 * s))  # ear loops
    draw.line((50 * s, 36 * s, 55 * s, 30 * s), fill=STRAP, width=int(2 * s))
    draw.rounded_rectangle((13 * s, 32 * s, 51 * s, 50 * s), radius=7 * s, fill=MASK)  # mask
    for y in (38, 44):  # pleats
        draw.line((18 * s, y * s, 46 * s, y * s), fill=STRAP, width=int(1.2 * s))
    return image.resize((size, size), Image.Resampling.LANCZOS) if size != BASE else image


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Write the app icon files into assets/icons/.")
    parser.add_argument("--out", type=Path, default=ICONS, help=f"folder to write into (default {ICONS})")
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    big = draw_icon(BASE)
    big.resize((256, 256), Image.Resampling.LANCZOS).save(args.out / "mask-checker.png", optimize=True)
    big.save(args.out / "mask-checker.ico", sizes=[(n, n) for n in (16, 24, 32, 48, 64, 128, 256)])
    big.save(args.out / "mask-checker.icns")
    for name in ("mask-checker.png", "mask-checker.ico", "mask-checker.icns"):
        print(args.out / name, (args.out / name).stat().st_size, "bytes")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
