#!/usr/bin/env bash
# Makes the README's feature pictures with the ImageNet weights (run from the repo root).
# Each run also leaves its run record (.json) beside the picture, as provenance.
set -euo pipefail
common=(--height 256 --iterations 10 --save-every 0 --overwrite)
python style_transfer.py images/grace_hopper.jpg images/swirls.png "${common[@]}" --output docs/swirls.jpg
python style_transfer.py images/grace_hopper.jpg images/swirls.png "${common[@]}" --preserve-color --output docs/preserve_color.jpg
python style_transfer.py images/grace_hopper.jpg images/mosaic.png "${common[@]}" --output docs/mosaic.jpg
python style_transfer.py images/grace_hopper.jpg images/swirls.png images/mosaic.png --style-blend 0.5 0.5 "${common[@]}" --output docs/blend.jpg
python style_transfer.py images/grace_hopper.jpg images/swirls.png "${common[@]}" --style-scale 0.5 --output docs/style_scale_0.5.jpg
python style_transfer.py images/grace_hopper.jpg images/swirls.png "${common[@]}" --style-scale 2 --output docs/style_scale_2.jpg
rm -f docs/*_comparison.png
