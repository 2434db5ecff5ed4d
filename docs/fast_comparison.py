"""docs/fast_comparison.jpg: a bundled net's one pass beside the optimisation, unseen photos.

Each row: a photo the model never saw, the net's output, and style_transfer.py's result
for the same photo, with the time of each.

    python docs/fast_comparison.py PHOTO [PHOTO ...]                  # starry_night
    python docs/fast_comparison.py PHOTO [PHOTO ...] --model the_scream

Both programs run as a user runs them (whole commands), at the main script's height
(400 px), the size the bundled net's loss is meant for; the optimisation has its default
loss and stops after 10 x 20 evaluations (its loss hardly moves after 200: benchmarks/
FAST.md). Writes docs/fast_comparison.jpg and .json (the times).
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
from PIL import Image

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from docs.fast_styles import style_image  # noqa: E402

MODEL = "starry_night"  # the longest trained of the bundled models
HEIGHT = 400
OPTIMISATION = ["--height", str(HEIGHT), "--iterations", "10", "--save-every", "0"]


def timed(argv):
    start = time.perf_counter()
    subprocess.run([sys.executable, *argv], check=True, cwd=ROOT, stdout=subprocess.DEVNULL,
                   stderr=subprocess.DEVNULL)
    return time.perf_counter() - start


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("photos", nargs="+")
    p.add_argument("--model", default=MODEL, help="a bundled model's name")
    args = p.parse_args(argv)
    model = os.path.join("models", args.model + ".keras")
    style = os.path.relpath(style_image(os.path.join(ROOT, model)), ROOT)
    photos = [os.path.abspath(path) for path in args.photos]
    rows = []
    with tempfile.TemporaryDirectory() as out:
        for photo in photos:
            name = os.path.splitext(os.path.basename(photo))[0]
            fast, slow = os.path.join(out, name + "_fast.png"), os.path.join(out, name + ".png")
            row = {"photo": os.path.relpath(os.path.abspath(photo), ROOT),  # no machine paths
                   "fast_seconds": timed(["fast_style_transfer.py", "stylize", model, photo,
                                          "--height", str(HEIGHT), "--output", fast]),
                   "optimisation_seconds": timed(["style_transfer.py", photo, style,
                                                  *OPTIMISATION, "--output", slow])}
            row["images"] = [Image.open(photo).convert("RGB"), Image.open(fast).copy(),
                             Image.open(slow).copy()]
            rows.append(row)
            print(f"{name}: fast {row['fast_seconds']:.1f} s, optimisation "
                  f"{row['optimisation_seconds']:.0f} s", flush=True)
    figure, axes = plt.subplots(len(rows), 3, figsize=(9, 3 * len(rows)), squeeze=False)
    for row, line in zip(rows, axes, strict=True):
        titles = ["photo (never seen in training)",
                  f"fast mode, {row['fast_seconds']:.1f} s",
                  f"optimisation, {row['optimisation_seconds']:.0f} s"]
        for ax, image, title in zip(line, row.pop("images"), titles, strict=True):
            ax.imshow(image)
            ax.set_title(title, fontsize=9)
            ax.axis("off")
    figure.suptitle(f"{args.model}: the bundled net (one pass) against style_transfer.py "
                    f"(200 evaluations), {HEIGHT} px, whole commands", fontsize=10)
    figure.tight_layout()
    figure.savefig(os.path.join(ROOT, "docs", "fast_comparison.jpg"), dpi=100)
    with open(os.path.join(ROOT, "docs", "fast_comparison.json"), "w") as f:
        json.dump({"model": model, "style": style, "optimisation": OPTIMISATION,
                   "rows": rows}, f, indent=1)


if __name__ == "__main__":
    main()
