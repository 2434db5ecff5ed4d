"""Shared fixtures: a seeded VGG19 weights file and tiny generated images, all offline."""
import os
import sys

import numpy as np
import pytest
from PIL import Image

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
sys.path.insert(0, os.path.join(ROOT, "benchmarks"))

from nst import runtime, vgg_weights  # noqa: E402

runtime.load_tensorflow()  # the tests call the script's functions directly, not only main


def seeded_vgg19_weights(seed=0):
    """Random VGG19 weights, He-scaled so that features neither vanish nor explode."""
    rng = np.random.default_rng(seed)
    weights = {}
    for name, cin, cout in vgg_weights.VGG19_CONV_LAYERS:
        kernel = rng.normal(0, np.sqrt(2.0 / (9 * cin)), (3, 3, cin, cout))
        weights[name] = (kernel.astype(np.float32),
                         rng.normal(0, 0.01, cout).astype(np.float32))
    return weights


@pytest.fixture(scope="session")
def weights_file(tmp_path_factory):
    path = str(tmp_path_factory.mktemp("weights") / "vgg19_seeded.h5")
    vgg_weights.write_vgg19_h5(seeded_vgg19_weights(), path)
    return path


def make_target(size=(64, 48)):
    """A little landscape: sky gradient, a sun, a house; deterministic."""
    w, h = size
    y, x = np.mgrid[0:h, 0:w]
    pixels = np.zeros((h, w, 3), np.uint8)
    pixels[..., 0] = 60 + 100 * y // h
    pixels[..., 1] = 120 + 80 * y // h
    pixels[..., 2] = 220 - 60 * y // h
    pixels[(x - w * 0.75) ** 2 + (y - h * 0.25) ** 2 < (h * 0.12) ** 2] = (250, 210, 60)
    pixels[h // 2:, w // 5:w // 2] = (150, 60, 40)
    return Image.fromarray(pixels)


def make_style(size=(48, 48), seed=1):
    """Diagonal coloured stripes with a little seeded noise."""
    w, h = size
    y, x = np.mgrid[0:h, 0:w]
    stripes = ((x + y) // 6) % 3
    palette = np.array([[20, 40, 120], [240, 200, 60], [200, 60, 40]], np.uint8)
    pixels = palette[stripes].astype(np.int16)
    pixels += np.random.default_rng(seed).integers(-20, 20, pixels.shape).astype(np.int16)
    return Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8))


@pytest.fixture
def images(tmp_path):
    """Paths of a tiny target and style image, and an empty output folder."""
    target, style = tmp_path / "target.png", tmp_path / "style.png"
    make_target().save(target)
    make_style().save(style)
    out = tmp_path / "out"
    return str(target), str(style), str(out)


@pytest.fixture(autouse=True)
def no_shared_cache(tmp_path, monkeypatch):
    """No test reads or writes the user's ~/.keras, nor reaches the network."""
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "keras_home"))

    def no_network(*args, **kwargs):
        raise RuntimeError("network disabled in tests")
    monkeypatch.setattr(vgg_weights, "download_keras_weights", no_network)
    monkeypatch.setattr(vgg_weights, "pip_download", no_network)


def make_photos(folder, count=4):
    """A few small generated photos: the landscape at several sizes and shifts."""
    os.makedirs(folder, exist_ok=True)
    for i in range(count):
        image = make_target((64 + 8 * i, 48 + 4 * i))
        image.rotate(90 * (i % 2), expand=True).save(os.path.join(folder, f"photo{i}.png"))
    return folder


@pytest.fixture
def setup(tmp_path, weights_file):
    """(style path, photos folder, model path, weights file)."""
    style = str(tmp_path / "style.png")
    make_style().save(style)
    photos = make_photos(str(tmp_path / "photos"))
    return style, photos, str(tmp_path / "models" / "tiny.keras"), weights_file


def quick_args(weights_file, out, *extra):
    """Flags for a quick run: 48 px high, 2 iterations of 5 evaluations, in float32 so
    that results do not depend on whether the machine has native bfloat16."""
    return ["--weights", weights_file, "--height", "48", "--iterations", "2",
            "--evals-per-iteration", "5", "--precision", "float32", "--output-dir", out,
            *extra]
