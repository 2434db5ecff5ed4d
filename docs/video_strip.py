"""docs/video_strip.jpg: the flicker of a stylised clip and its cure, as a still.

    python docs/video_strip.py [--model models/swirls.keras] [--smooth 0.5]

Four consecutive frames of the benchmark's camera pan (benchmarks/video_benchmark.py,
filmed from a held-out photo), stylised frame by frame (--smooth 0) and with --smooth,
each above the change from the frame before it carried along the camera's motion
(brighter: more flicker). What moved with the camera should not change at all.
"""
import argparse
import os
import sys

import numpy as np
from PIL import Image, ImageDraw

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
sys.path.insert(0, os.path.join(ROOT, "benchmarks"))

import video_benchmark as bench  # noqa: E402
from nst import runtime, transform_net, video  # noqa: E402

FIRST, COUNT = 30, 4   # which frames of the pan
SCALE = 0.5            # each frame's size in the strip, of 640x360


def change(frames, t):
    """|frame t - frame t-1 carried along the camera's true motion|, brightened."""
    import cv2
    carried = video.warp(cv2, frames[t - 1].astype(np.float32), bench.true_backward_flow(t))
    difference = np.abs(frames[t].astype(np.float32) - carried).mean(axis=2)
    return np.clip(difference * 4, 0, 255).astype(np.uint8)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--model", default=os.path.join(ROOT, "models", "swirls.keras"))
    p.add_argument("--smooth", type=float, default=0.5)
    p.add_argument("--output", default=os.path.join(ROOT, "docs", "video_strip.jpg"))
    args = p.parse_args(argv)
    runtime.load_tensorflow()
    net = transform_net.load_transform_net(args.model)
    frames = list(bench.pan_frames(FIRST + COUNT))
    stylised = [transform_net.stylise_pixels(net, f) for f in frames]
    rows = []
    for label, strength in (("frame by frame (--smooth 0)", 0.0),
                            (f"--smooth {args.smooth:g}", args.smooth)):
        smoother = video.Smoother(strength)
        out = [smoother(f, s) for f, s in zip(frames, stylised, strict=True)]
        rows.append((label, [out[t] for t in range(FIRST, FIRST + COUNT)],
                     [change(out, t) for t in range(FIRST, FIRST + COUNT)]))
    width, height = (round(s * SCALE) for s in bench.SIZE)
    sheet = Image.new("RGB", (COUNT * (width + 4) + 4, len(rows) * (2 * height + 30)),
                      "white")
    draw = ImageDraw.Draw(sheet)
    for r, (label, images, changes) in enumerate(rows):
        y = r * (2 * height + 30)
        draw.text((6, y + 8), f"{label}: four consecutive frames, and below each its change "
                  "from the one before, carried along the camera's motion", fill="black")
        for i, (image, moved) in enumerate(zip(images, changes, strict=True)):
            x = 4 + i * (width + 4)
            sheet.paste(Image.fromarray(image).resize((width, height), Image.LANCZOS),
                        (x, y + 26))
            sheet.paste(Image.fromarray(moved).convert("RGB").resize((width, height)),
                        (x, y + 26 + height))
    sheet.save(args.output, quality=85)
    print(f"wrote {args.output}")


if __name__ == "__main__":
    main()
