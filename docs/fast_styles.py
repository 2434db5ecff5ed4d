"""docs/fast_styles.jpg: every bundled fast-mode style on photos no model was trained on.

    python docs/fast_styles.py                 # the bundled models, the three photos below
    python docs/fast_styles.py --photos a.jpg b.jpg --models models/x.keras --height 400

A first row of the style images each model was trained on (from its record), then one
row per photo: the photo, then each model's one-pass result at --height, as
`fast_style_transfer.py stylize NAME PHOTO --height H` makes it. The photos other than
grace_hopper.jpg are held out of training by models/gather_photos.py.
"""
import argparse
import json
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
CELL = (400, 300)  # the largest each picture is in the sheet


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
    # the style images' row first, its first cell empty; then a row per photo
    rows = [[("", None)] + [(name, Image.open(style_image(model)).convert("RGB"))
                            for model, (name, _) in zip(args.models, nets, strict=True)]]
    for path in args.photos:
        photo = fst.input_image(path, args.height)
        pixels = np.asarray(photo)
        rows.append([(os.path.basename(path), photo)] + [
            (name, Image.fromarray(transform_net.stylise_pixels(net, pixels)))
            for name, net in nets])
    sheet = Image.new("RGB", (4 + (CELL[0] + 4) * len(rows[0]), (CELL[1] + 24) * len(rows)),
                      "white")
    draw = ImageDraw.Draw(sheet)
    for r, row in enumerate(rows):
        for c, (title, image) in enumerate(row):
            x, y = 4 + c * (CELL[0] + 4), r * (CELL[1] + 24)
            draw.text((x + 2, y + 6), title, fill="black")
            if image is not None:  # each picture whole, as large as its cell allows
                image = image.copy()
                image.thumbnail(CELL, Image.LANCZOS)
                sheet.paste(image, (x + (CELL[0] - image.size[0]) // 2, y + 20))
    sheet.save(args.output, quality=90)
    print(f"wrote {args.output}: {len(rows) - 1} photos x {len(nets)} styles at {args.height} px "
          f"({', '.join(name for name, _ in nets)})")


def style_image(model):
    """The style image model's record names, found in images/ when the record's path
    is another machine's."""
    with open(os.path.splitext(model)[0] + ".json") as f:
        style = json.load(f)["style"]
    for candidate in (style, os.path.join(ROOT, style),
                      os.path.join(ROOT, "images", os.path.basename(style))):
        if os.path.isfile(candidate):
            return candidate
    raise SystemExit(f"{model}: its style image '{style}' is not here")


if __name__ == "__main__":
    main()
