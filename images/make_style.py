"""Paints the bundled style images from fixed seeds, so that anyone can make them again:
images/swirls.png, curved brush strokes in a night palette, and images/mosaic.png,
warm stained-glass cells with dark leading.

    python images/make_style.py
"""
import os

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

SIZE = (512, 512)
PALETTE = [(21, 38, 92), (36, 70, 148), (70, 122, 196), (232, 200, 74),
           (245, 230, 150), (24, 24, 48), (120, 170, 210)]


def paint(seed=8):
    rng = np.random.default_rng(seed)
    canvas = Image.new("RGB", SIZE, PALETTE[0])
    draw = ImageDraw.Draw(canvas)
    for _ in range(900):  # short strokes following a swirling flow field
        x, y = rng.uniform(0, SIZE[0]), rng.uniform(0, SIZE[1])
        colour = PALETTE[rng.integers(len(PALETTE))]
        width = int(rng.integers(3, 9))
        points = [(x, y)]
        for _ in range(int(rng.integers(6, 14))):
            angle = np.sin(x / 60.0) * 2.0 + np.cos(y / 45.0) * 2.0
            x, y = x + 6 * np.cos(angle), y + 6 * np.sin(angle)
            points.append((x, y))
        draw.line(points, fill=colour, width=width, joint="curve")
    return canvas.filter(ImageFilter.SMOOTH)


def mosaic(seed=3, cells=90):
    rng = np.random.default_rng(seed)
    warm = np.array([(190, 60, 40), (230, 140, 50), (245, 200, 90), (120, 40, 60),
                     (200, 100, 120), (90, 110, 60)], float)
    centres = rng.uniform(0, SIZE[0], (cells, 2))
    colours = warm[rng.integers(len(warm), size=cells)] + rng.normal(0, 12, (cells, 3))
    y, x = np.mgrid[0:SIZE[1], 0:SIZE[0]]
    distance = np.hypot(x[..., None] - centres[:, 0], y[..., None] - centres[:, 1])
    nearest = np.sort(distance, axis=-1)
    pixels = colours[np.argmin(distance, axis=-1)]
    pixels[(nearest[..., 1] - nearest[..., 0]) < 3] = (30, 20, 20)  # the leading
    return Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8)).filter(
        ImageFilter.SMOOTH)


if __name__ == "__main__":
    here = os.path.dirname(os.path.abspath(__file__))
    paint().save(os.path.join(here, "swirls.png"))
    mosaic().save(os.path.join(here, "mosaic.png"))
