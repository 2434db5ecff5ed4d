"""Fast mode, stylising: any size in, the same size out; folders; names; colours."""
import os

import numpy as np
import pytest
from PIL import Image

import fast_style_transfer as fst
import style_transfer as st
from conftest import make_target


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    """A small, untrained but seeded transform net saved as .keras."""
    path = str(tmp_path_factory.mktemp("model") / "net.keras")
    fst.save_model(fst.build_transform_net((4, 8, 8), 2, "float32", seed=3), path)
    return path


@pytest.mark.parametrize("size", [(64, 48), (37, 29), (50, 33), (16, 16), (101, 17)])
def test_the_result_has_the_inputs_size(model, size):
    pixels = np.asarray(make_target(size))
    result = fst.stylise_pixels(fst.load_transform_net(model), pixels)
    assert result.shape == pixels.shape and result.dtype == np.uint8


def test_saved_and_loaded_nets_compute_the_same(model, tmp_path):
    net = fst.build_transform_net((4, 8, 8), 2, "float32", seed=3)
    pixels = np.asarray(make_target((40, 36)))
    np.testing.assert_array_equal(fst.stylise_pixels(net, pixels),
                                  fst.stylise_pixels(fst.load_transform_net(model), pixels))
    assert fst.architecture_of(fst.load_transform_net(model)) == ((4, 8, 8), 2)


def test_a_bfloat16_net_is_rebuilt_from_the_same_weights(model):
    net32 = fst.load_transform_net(model, "float32")
    net16 = fst.load_transform_net(model, "bfloat16")
    for a, b in zip(net32.get_weights(), net16.get_weights(), strict=True):
        np.testing.assert_array_equal(a, b)
    pixels = np.asarray(make_target((48, 40)))
    difference = np.abs(fst.stylise_pixels(net32, pixels).astype(int)
                        - fst.stylise_pixels(net16, pixels).astype(int))
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
    assert sorted(os.listdir(out)) == ["a_net.png", "b_net.png", "c_net.png"]
    assert Image.open(out / "b_net.png").size == (33, 45)
    assert Image.open(out / "c_net.png").size == (25, 19)
    printed = capsys.readouterr().out.splitlines()
    assert len(printed) == 3 and printed[-1].startswith("[" + "#" * 24 + "] 3/3")
    assert fst.main(argv) == 0  # again: new numbered names, nothing replaced
    assert "a_net_1.png" in os.listdir(out) and len(os.listdir(out)) == 6


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
                               st.keras.applications.vgg19.preprocess_input(pixels.copy()),
                               rtol=1e-6)
