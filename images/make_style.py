"""Paints images/swirls.png, the bundled style image: curved brush strokes in a night
palette, made from a fixed seed so that anyone can make it again.

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


if __name__ == "__main__":
    paint().save(os.path.join(os.path.dirname(os.path.abspath(__file__)), "swirls.png"))
