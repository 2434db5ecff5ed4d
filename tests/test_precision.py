"""bfloat16 VGG19: chosen only on hardware that has it, close to float32, losses in float32."""
import json
import os

import numpy as np
import pytest
import tensorflow as tf

import style_transfer as st
from conftest import make_style, make_target, quick_args, seeded_vgg19_weights
from nst import runtime, speed

LAYERS = st.LossSettings().layers


@pytest.mark.parametrize("flags,native", [
    ("fpu sse avx2 avx512f avx512_bf16 avx512_vnni", True),
    ("fpu sse avx2 amx_tile amx_bf16", True),
    ("fpu sse avx2 avx512f avx512_vnni", False),  # AVX-512 without bfloat16: emulated
    ("fp asimd bf16", False),  # an ARM flag TF's CPU kernels do not use for bfloat16
])
def test_native_bfloat16_reads_the_cpu_flags(tmp_path, monkeypatch, flags, native):
    monkeypatch.setattr(runtime, "GPUS", [])
    cpuinfo = tmp_path / "cpuinfo"
    cpuinfo.write_text(f"processor\t: 0\nflags\t\t: {flags}\n\nprocessor\t: 1\n"
                       f"flags\t\t: {flags}\n")
    assert speed.native_bfloat16(str(cpuinfo)) is native
    assert speed.native_bfloat16(str(tmp_path / "missing")) is False


def test_auto_precision_follows_the_hardware(monkeypatch):
    monkeypatch.setattr(speed, "native_bfloat16", lambda: True)
    assert speed.resolve_precision("auto") == "bfloat16"
    assert speed.resolve_precision("float32") == "float32"
    monkeypatch.setattr(speed, "native_bfloat16", lambda: False)
    assert speed.resolve_precision("auto") == "float32"
    assert speed.resolve_precision("bfloat16") == "bfloat16"


def evaluators(size=(40, 32)):
    weights = seeded_vgg19_weights()
    result = {}
    for precision in ("float32", "bfloat16"):
        extractor = st.build_feature_extractor(weights, LAYERS, "max", precision)
        result[precision] = (extractor, st.build_vector_loss_and_grads(
            extractor, st.LossSettings(), make_target(), [make_style()], [1.0], size))
    return result


def test_bfloat16_extractor_keeps_kernels_in_bfloat16_and_hands_float32_features():
    both = evaluators()
    extractor = both["bfloat16"][0]
    kernels = [w for w in extractor.weights if "kernel" in w.path]
    assert len(kernels) == len(st.layers_up_to(LAYERS))
    first = [w for w in extractor.weights if w.path.startswith("block1_conv1/")]
    assert len(first) == 2 and all(w.dtype == "float32" for w in first)  # sees the pixels
    assert all(w.dtype == "bfloat16" for w in extractor.weights
               if not w.path.startswith("block1_conv1/"))
    image = tf.constant(st.preprocess_image(make_target(), (40, 32)))
    ours, reference = extractor(image), both["float32"][0](image)
    for layer in LAYERS:
        assert ours[layer].dtype == tf.float32
        error = np.linalg.norm(ours[layer] - reference[layer]) / np.linalg.norm(reference[layer])
        if layer == "block1_conv1":
            assert error < 1e-6  # computed in float32
        else:
            assert 1e-4 < error < 0.03, layer  # rounded like bfloat16, no worse


def test_bfloat16_loss_and_gradient_stay_close_to_float32():
    both = evaluators()
    rng = np.random.default_rng(3)
    x = st.preprocess_image(make_target(), (40, 32)).astype(np.float64).ravel()
    for point in (x, x + rng.normal(0, 10, x.shape)):
        loss32, grad32, _ = both["float32"][1](point)
        loss16, grad16, parts16 = both["bfloat16"][1](point)
        assert grad16.dtype == np.float64 and np.all(np.isfinite(grad16))
        assert loss16 == pytest.approx(loss32, rel=0.03)
        assert loss16 == pytest.approx(sum(parts16), rel=1e-5)
        cosine = grad16 @ grad32 / np.linalg.norm(grad16) / np.linalg.norm(grad32)
        assert cosine > 0.98


def test_a_step_finer_than_bfloat16s_pixel_rounding_reaches_the_features():
    # Pixels near 150 are 1 apart in bfloat16; a 0.25 step must still be seen, as in
    # float32, or L-BFGS's late, small steps go nowhere.
    both = evaluators()
    x = np.full((1, 32, 40, 3), 150.0, np.float32)
    step = 0.25 * np.sign(np.random.default_rng(4).normal(size=x.shape)).astype(np.float32)
    change = {p: (extractor(tf.constant(x + step))["block1_conv1"]
                  - extractor(tf.constant(x))["block1_conv1"]).numpy()
              for p, (extractor, _) in both.items()}
    error = np.linalg.norm(change["bfloat16"] - change["float32"])
    assert error < 0.01 * np.linalg.norm(change["float32"])


def test_a_bfloat16_run_records_its_precision_and_goes_down_the_loss(images, weights_file,
                                                                     capsys):
    target, style, out = images
    assert st.main([target, style, *quick_args(weights_file, out, "--precision",
                                               "bfloat16")]) == 0
    assert "precision: bfloat16" in capsys.readouterr().out
    with open(os.path.join(out, "target_style.json")) as f:
        record = json.load(f)
    assert record["precision"] == "bfloat16"
    assert record["settings"]["precision"] == "bfloat16"
    history = record["history"]
    assert history[0]["content"] == 0 and history[-1]["loss"] < 0.5 * history[0]["loss"]


def test_the_default_precision_is_resolved_and_recorded(images, weights_file, monkeypatch):
    monkeypatch.setattr(speed, "native_bfloat16", lambda: False)
    target, style, out = images
    argv = [a for a in quick_args(weights_file, out) if a not in ("--precision", "float32")]
    assert st.main([target, style, *argv, "--iterations", "1"]) == 0
    with open(os.path.join(out, "target_style.json")) as f:
        record = json.load(f)
    assert record["settings"]["precision"] == "auto" and record["precision"] == "float32"
