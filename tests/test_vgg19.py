"""The feature extractor: VGG19 built layer by layer, and its convolutions' gradient."""
import numpy as np
import pytest
import tensorflow as tf

import chapter
import style_transfer as st
from conftest import make_style, make_target, seeded_vgg19_weights
from nst import runtime, speed

SIZE = (40, 32)  # (width, height) of the generated image in these tests
ALWAYS = {"forward convolution": lambda in_channels: in_channels > 3,
          "TensorFlow's": lambda in_channels: False}


def test_avg_pooling_builds_average_pooling_layers():
    extractor = st.build_feature_extractor(seeded_vgg19_weights(), ["block3_conv1"], "avg")
    pools = [layer for layer in extractor.layers if "pool" in layer.name]
    assert len(pools) == 2 and all(
        isinstance(layer, tf.keras.layers.AveragePooling2D) for layer in pools)


@pytest.mark.parametrize("shape", [(1, 7, 9, 5, 6), (2, 8, 5, 3, 4), (1, 6, 6, 16, 3)],
                         ids=["odd sides", "a batch of two", "three outputs"])
def test_the_input_gradient_as_a_forward_convolution_equals_tensorflows(shape):
    batch, height, width, cin, cout = shape
    rng = np.random.default_rng(8)
    x = tf.constant(rng.normal(size=(batch, height, width, cin)), tf.float32)
    kernel = tf.constant(rng.normal(size=(3, 3, cin, cout)), tf.float32)
    bias = tf.constant(rng.normal(size=cout), tf.float32)
    upstream = tf.constant(rng.normal(size=(batch, height, width, cout)), tf.float32)
    results = []
    for forward_gradient in (True, False, None):
        with tf.GradientTape() as tape:
            tape.watch(x)
            if forward_gradient is None:  # autodiff's own
                y = tf.nn.relu(tf.nn.conv2d(x, kernel, 1, "SAME") + bias)
            else:
                y = speed.conv2d_relu(x, kernel, bias, tf.constant(speed.rotated(kernel))
                                   if forward_gradient else None)
        results.append((y.numpy(), tape.gradient(y, x, output_gradients=upstream).numpy()))
    (y, gradient), reference = results[0], results[2]
    assert 0 < np.mean(reference[0] > 0) < 1  # the ReLU both passes and blocks
    for y, gradient in results[:2]:
        np.testing.assert_array_equal(y, reference[0])
        scale = np.abs(reference[1]).max()
        np.testing.assert_allclose(gradient, reference[1], rtol=1e-5, atol=1e-6 * scale)


@pytest.mark.parametrize("rule", ALWAYS.values(), ids=ALWAYS.keys())
def test_loss_and_gradient_equal_autodiffs_through_keras_vgg19(monkeypatch, rule):
    # The reference: Keras' own VGG19 (as the chapter builds it), gradients by autodiff.
    monkeypatch.setattr(speed, "forward_conv_gradient", rule)
    weights, settings = seeded_vgg19_weights(), st.LossSettings()
    target = tf.constant(st.preprocess_image(make_target(), SIZE))
    vgg19 = chapter.chapter_model(weights, SIZE[1], SIZE[0])
    reference = tf.keras.Model(vgg19.input, {layer: vgg19.output[layer]
                                             for layer in settings.layers})
    grams = st.style_grams(reference, [st.preprocess_image(make_style(), SIZE)], [1.0],
                           settings.style_layers, SIZE[0] * SIZE[1])
    ours = st.build_feature_extractor(weights, settings.layers)
    point = target + np.random.default_rng(9).normal(0, 10, target.shape).astype(np.float32)
    for generated in (target, point):
        loss, gradient, parts = st.build_loss_and_grads(ours, target, grams, settings)(
            generated)
        ref_loss, ref_gradient, ref_parts = st.build_loss_and_grads(
            reference, target, grams, settings)(generated)
        np.testing.assert_allclose(loss.numpy(), ref_loss.numpy(), rtol=1e-6)
        np.testing.assert_allclose(parts.numpy(), ref_parts.numpy(), rtol=1e-6, atol=1e-3)
        scale = np.abs(ref_gradient.numpy()).max()
        np.testing.assert_allclose(gradient.numpy(), ref_gradient.numpy(), rtol=1e-5,
                                   atol=1e-6 * scale)


@pytest.mark.parametrize("rule", ALWAYS.values(), ids=ALWAYS.keys())
def test_gradient_reaches_the_input_and_never_the_weights(monkeypatch, rule):
    monkeypatch.setattr(speed, "forward_conv_gradient", rule)
    extractor = st.build_feature_extractor(seeded_vgg19_weights(), ["block2_conv1"])
    image = tf.constant(st.preprocess_image(make_target(), SIZE))
    with tf.GradientTape(persistent=True) as tape:  # watches every variable it reads
        tape.watch(image)
        loss = tf.reduce_sum(extractor(image)["block2_conv1"] ** 2)
    assert np.abs(tape.gradient(loss, image).numpy()).max() > 0
    weights = extractor.trainable_weights
    assert len(weights) == 6 and tape.gradient(loss, weights) == [None] * 6


def test_the_forward_convolution_gradient_only_where_it_was_measured_faster(monkeypatch):
    monkeypatch.setattr(runtime, "GPUS", [])
    monkeypatch.setattr(speed, "onednn_enabled", lambda: False)  # TensorFlow's Eigen kernels
    assert [speed.forward_conv_gradient(cin) for cin in (3, 64, 512)] == [False, True, True]
    monkeypatch.setattr(speed, "onednn_enabled", lambda: True)
    assert not any(speed.forward_conv_gradient(cin) for cin in (3, 64, 512))
    monkeypatch.setattr(speed, "onednn_enabled", lambda: False)
    monkeypatch.setattr(runtime, "GPUS", ["a GPU"])  # not measured: TensorFlow's gradient
    assert not any(speed.forward_conv_gradient(cin) for cin in (3, 64, 512))


def test_the_extractor_takes_its_rule_per_layer(monkeypatch):
    asked = []
    monkeypatch.setattr(speed, "forward_conv_gradient",
                        lambda in_channels: asked.append(in_channels) or in_channels > 3)
    extractor = st.build_feature_extractor(seeded_vgg19_weights(), ["block2_conv1"])
    assert asked == [3, 64, 64]
    convs = [layer for layer in extractor.layers if isinstance(layer, speed.vgg_conv2d_class())]
    assert [layer.forward_gradient for layer in convs] == [False, True, True]
    for layer in convs[1:]:  # rotated once, from the weights the layer was given
        np.testing.assert_array_equal(layer.rotated_kernel, speed.rotated(layer.kernel))
