"""docs/fast_styles.jpg: every bundled fast-mode style on photos no model was trained on.

    python docs/fast_styles.py                 # the bundled models, the three photos below
    python docs/fast_styles.py --photos a.jpg b.jpg --models models/x.keras --height 400

One row per photo: the photo, then each model's one-pass result at --height, as
`fast_style_transfer.py stylize NAME PHOTO --height H` makes it.
"""
import argparse
import os
import sys

import numpy as np
from PIL import Image, ImageDraw

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

import fast_style_transfer as fst  # noqa: E402
from nst import runtime, transform_net  # noqa: E402

PHOTOS = [os.path.join(ROOT, "images", "grace_hopper.jpg")] + [
    os.path.join(ROOT, "..", "photos", "held_out", name) for name in (
        "sklearn_china.jpg", "debian_lomiri1604_friends_by_Aitzol_Berasategi.jpg")]
HEIGHT = 400      # the height the fast mode's loss weights are meant for
THUMB = 300       # each picture's height in the sheet


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--photos", nargs="+", default=PHOTOS)
    p.add_argument("--models", nargs="+", default=[
        os.path.join(fst.MODELS_DIR, name + ".keras") for name in fst.bundled_models()])
    p.add_argument("--height", type=int, default=HEIGHT)
    p.add_argument("--output", default=os.path.join(ROOT, "docs", "fast_styles.jpg"))
    args = p.parse_args(argv)
    runtime.load_tensorflow()
    nets = [(os.path.splitext(os.path.basename(m))[0], transform_net.load_transform_net(m))
            for m in args.models]
    rows = []
    for path in args.photos:
        photo = fst.input_image(path, args.height)
        pixels = np.asarray(photo)
        row = [("photo", photo)] + [(name, Image.fromarray(transform_net.stylise_pixels(
            net, pixels))) for name, net in nets]
        rows.append([(title, image.resize((round(image.size[0] * THUMB / image.size[1]),
                                           THUMB), Image.LANCZOS)) for title, image in row])
    width = max(sum(image.size[0] + 4 for _, image in row) for row in rows) + 4
    sheet = Image.new("RGB", (width, (THUMB + 24) * len(rows)), "white")
    draw = ImageDraw.Draw(sheet)
    for r, row in enumerate(rows):
        x, y = 4, r * (THUMB + 24)
        for title, image in row:
            draw.text((x + 2, y + 6), title, fill="black")
            sheet.paste(image, (x, y + 20))
            x += image.size[0] + 4
    sheet.save(args.output, quality=90)
    print(f"wrote {args.output}: {len(rows)} photos x {len(nets)} styles at {args.height} px "
          f"({', '.join(name for name, _ in nets)})")


if __name__ == "__main__":
    main()
