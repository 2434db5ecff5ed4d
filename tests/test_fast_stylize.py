"""Fast mode, stylising: any size in, the same size out; folders; names; colours."""
import os

import numpy as np
import pytest
from PIL import Image

import fast_style_transfer as fst
from conftest import make_target
from nst import runtime, transform_net


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    """A small, untrained but seeded transform net saved as .keras."""
    path = str(tmp_path_factory.mktemp("model") / "net.keras")
    net = transform_net.build_transform_net((4, 8, 8), 2, "float32", seed=3)
    transform_net.save_model(net, path)
    return path


@pytest.mark.parametrize("size", [(64, 48), (37, 29), (50, 33), (16, 16), (101, 17)])
def test_the_result_has_the_inputs_size(model, size):
    pixels = np.asarray(make_target(size))
    result = transform_net.stylise_pixels(transform_net.load_transform_net(model), pixels)
    assert result.shape == pixels.shape and result.dtype == np.uint8


def test_saved_and_loaded_nets_compute_the_same(model, tmp_path):
    net = transform_net.build_transform_net((4, 8, 8), 2, "float32", seed=3)
    pixels = np.asarray(make_target((40, 36)))
    loaded = transform_net.load_transform_net(model)
    np.testing.assert_array_equal(transform_net.stylise_pixels(net, pixels),
                                  transform_net.stylise_pixels(loaded, pixels))
    assert transform_net.architecture_of(transform_net.load_transform_net(model)) == ((4, 8, 8), 2)


def test_a_bfloat16_net_is_rebuilt_from_the_same_weights(model):
    net32 = transform_net.load_transform_net(model, "float32")
    net16 = transform_net.load_transform_net(model, "bfloat16")
    for a, b in zip(net32.get_weights(), net16.get_weights(), strict=True):
        np.testing.assert_array_equal(a, b)
    pixels = np.asarray(make_target((48, 40)))
    difference = np.abs(transform_net.stylise_pixels(net32, pixels).astype(int)
                        - transform_net.stylise_pixels(net16, pixels).astype(int))
    assert difference.mean() < 4  # bfloat16 keeps 8 bits of mantissa


def test_stylize_writes_one_file_per_input_named_after_input_and_model(model, tmp_path,
                                                                       capsys):
    folder = tmp_path / "photos"
    (folder / "sub").mkdir(parents=True)
    make_target((40, 30)).save(folder / "a.png")
    make_target((33, 45)).save(folder / "sub" / "b.jpg")
    single = tmp_path / "c.png"
    make_target((25, 19)).save(single)
    out = tmp_path / "out"
    argv = ["stylize", model, str(single), str(folder), "--output-dir", str(out),
            "--precision", "float32"]
    assert fst.main(argv) == 0
    assert sorted(os.listdir(out)) == ["a_net_fast.png", "b_net_fast.png", "c_net_fast.png"]
    assert Image.open(out / "b_net_fast.png").size == (33, 45)
    assert Image.open(out / "c_net_fast.png").size == (25, 19)
    printed = capsys.readouterr().out.splitlines()
    assert len(printed) == 3 and printed[-1].startswith("[" + "#" * 24 + "] 3/3")
    assert fst.main(argv) == 0  # again: new numbered names, nothing replaced
    assert "a_net_fast_1.png" in os.listdir(out) and len(os.listdir(out)) == 6


def test_height_output_and_preserve_color(model, tmp_path):
    photo = tmp_path / "p.png"
    make_target((64, 48)).save(photo)
    out = tmp_path / "x.png"  # lossless: JPEG would subsample the chroma
    assert fst.main(["stylize", model, str(photo), "--height", "24", "--output", str(out),
                     "--preserve-color", "--precision", "float32"]) == 0
    result = Image.open(out)
    assert result.format == "PNG" and result.size == (32, 24)
    target = np.asarray(make_target((64, 48)).resize((32, 24), Image.BICUBIC))
    _, cb, cr = Image.fromarray(target).convert("YCbCr").split()
    _, cb2, cr2 = result.convert("YCbCr").split()
    assert np.abs(np.asarray(cb, int) - np.asarray(cb2, int)).mean() < 3
    assert np.abs(np.asarray(cr, int) - np.asarray(cr2, int)).mean() < 3


def test_vgg_input_is_keras_preprocess_input():
    pixels = np.random.default_rng(0).uniform(0, 255, (2, 5, 7, 3)).astype(np.float32)
    np.testing.assert_allclose(fst.vgg_input(pixels).numpy(),
                               runtime.keras.applications.vgg19.preprocess_input(pixels.copy()),
                               rtol=1e-6)
