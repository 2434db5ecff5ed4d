"""The maths: each loss against a small numpy computation by hand, the style Gram
matrices the style loss compares with, and the loss settings."""
import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

import chapter
import style_transfer as st
from conftest import make_style, make_target, seeded_vgg19_weights


def numpy_gram(features):
    flat = features.reshape(-1, features.shape[-1])
    return flat.T @ flat


def test_gram_matrix_is_c_by_c_symmetric_and_matches_numpy():
    features = np.random.default_rng(0).normal(size=(5, 7, 4)).astype(np.float32)
    gram = st.gram_matrix(tf.constant(features)).numpy()
    assert gram.shape == (4, 4)
    np.testing.assert_allclose(gram, gram.T, rtol=1e-6)
    np.testing.assert_allclose(gram, numpy_gram(features), rtol=1e-5)


def test_gram_matrix_and_its_gradient_the_same_with_a_batch_of_one():
    # the losses take VGG19's feature maps whole, (1, H, W, C), without indexing them
    features = tf.constant(np.random.default_rng(10).normal(size=(5, 7, 4)), tf.float32)
    results = []
    for x in (features, features[tf.newaxis]):
        with tf.GradientTape() as tape:
            tape.watch(x)
            loss = st.style_loss(tf.eye(4), x, 35)
        results.append((loss.numpy(), tape.gradient(loss, x).numpy().reshape(5, 7, 4)))
    assert results[0][0] == results[1][0]
    np.testing.assert_array_equal(results[0][1], results[1][1])


def test_gram_matrix_unchanged_when_pixels_are_shuffled():
    features = np.random.default_rng(1).normal(size=(6, 6, 3)).astype(np.float32)
    flat = features.reshape(-1, 3)
    shuffled = flat[np.random.default_rng(2).permutation(len(flat))].reshape(6, 6, 3)
    np.testing.assert_allclose(st.gram_matrix(tf.constant(shuffled)).numpy(),
                               st.gram_matrix(tf.constant(features)).numpy(), rtol=1e-5)


def test_gram_matrix_by_hand():
    # two pixels, two channels: F = [[1, 2], [3, 4]] -> F^T F = [[10, 14], [14, 20]]
    features = tf.constant([[[1.0, 2.0], [3.0, 4.0]]])
    np.testing.assert_allclose(st.gram_matrix(features).numpy(), [[10, 14], [14, 20]])


def test_content_loss_by_hand_and_zero_for_equal_inputs():
    a = np.arange(24, dtype=np.float32).reshape(2, 3, 4)
    b = a + np.float32(0.5)
    assert st.content_loss(tf.constant(a), tf.constant(a)).numpy() == 0
    np.testing.assert_allclose(st.content_loss(tf.constant(a), tf.constant(b)).numpy(),
                               24 * 0.25)


def test_style_loss_matches_the_chapter_formula():
    rng = np.random.default_rng(3)
    style_features = rng.normal(size=(4, 5, 8)).astype(np.float32)
    generated = rng.normal(size=(4, 5, 8)).astype(np.float32)
    height, width = 40, 50  # the generated image's size, not the layer's
    expected = np.sum((numpy_gram(style_features) - numpy_gram(generated)) ** 2) / (
        4.0 * 3 ** 2 * (height * width) ** 2)
    got = st.style_loss(tf.constant(numpy_gram(style_features)), tf.constant(generated),
                        height * width).numpy()
    np.testing.assert_allclose(got, expected, rtol=1e-5)
    assert st.style_loss(tf.constant(numpy_gram(generated)), tf.constant(generated),
                         100).numpy() == pytest.approx(0, abs=1e-6)


def test_gram_matrix_gradient_equals_autodiffs_of_f_transpose_f():
    # a loss whose upstream gradient is not symmetric, so both halves of F (U + U^T) count
    features = tf.constant(np.random.default_rng(6).normal(size=(5, 7, 4)), tf.float32)
    weights = tf.constant(np.random.default_rng(7).normal(size=(4, 4)), tf.float32)

    def plain_gram(x):
        flat = tf.reshape(x, (-1, 4))
        return tf.matmul(flat, flat, transpose_a=True)

    grads = []
    for gram in (st.gram_matrix, plain_gram):
        with tf.GradientTape() as tape:
            tape.watch(features)
            loss = tf.reduce_sum(weights * gram(features) ** 2)
        grads.append(tape.gradient(loss, features).numpy())
    assert grads[0].shape == (5, 7, 4)
    np.testing.assert_allclose(grads[0], grads[1], rtol=1e-4, atol=1e-3)


def test_total_variation_zero_for_a_flat_image():
    flat = tf.fill((1, 6, 7, 3), 42.0)
    assert st.total_variation_loss(flat).numpy() == 0


def test_total_variation_of_a_one_pixel_step():
    # one pixel of one channel raised by 2 in the middle of a 5x5 image: inside the
    # (H-1)x(W-1) window it differs from its lower and right neighbour (a + b = 4 + 4)
    # and is the lower neighbour of one pixel and the right neighbour of another (4 each)
    image = np.zeros((1, 5, 5, 3), np.float32)
    image[0, 2, 2, 1] = 2.0
    expected = 8 ** 1.25 + 2 * 4 ** 1.25
    np.testing.assert_allclose(st.total_variation_loss(tf.constant(image)).numpy(),
                               expected, rtol=1e-6)


def test_total_variation_matches_numpy_on_noise():
    x = np.random.default_rng(4).normal(size=(1, 6, 9, 3)).astype(np.float32)
    a = (x[:, :-1, :-1] - x[:, 1:, :-1]) ** 2
    b = (x[:, :-1, :-1] - x[:, :-1, 1:]) ** 2
    np.testing.assert_allclose(st.total_variation_loss(tf.constant(x)).numpy(),
                               np.sum((a + b) ** 1.25), rtol=1e-5)


def test_blend_weights_are_normalised_and_equal_by_default():
    assert st.blend_weights(None, 4) == [0.25] * 4
    np.testing.assert_allclose(st.blend_weights([7, 3], 2), [0.7, 0.3])
    np.testing.assert_allclose(st.blend_weights([2, 2, 4], 3), [0.25, 0.25, 0.5])


def test_deprocess_undoes_preprocess():
    image = make_target((20, 16))
    x = st.preprocess_image(image, (20, 16))
    assert x.shape == (1, 16, 20, 3)
    np.testing.assert_array_equal(st.deprocess_image(x), np.asarray(image))


def test_image_size_keeps_the_aspect_ratio_like_the_chapter():
    assert st.image_size(1024, 768, 400) == (533, 400)  # int(), as the chapter
    assert st.image_size(300, 600, 400) == (200, 400)


def test_starting_loss_and_gradient_equal_the_chapters_batch_of_three():
    weights = seeded_vgg19_weights()
    size = (40, 32)
    target = st.preprocess_image(make_target(), size)
    style = st.preprocess_image(make_style(), size)
    layers = st.LossSettings().layers
    extractor = st.build_feature_extractor(weights, layers)
    grams = st.style_grams(extractor, [style], [1.0], st.STYLE_LAYERS, 40 * 32)
    ours = st.build_loss_and_grads(extractor, tf.constant(target), grams, st.LossSettings())
    reference = chapter.chapter_loss_and_grads(weights, target, style)
    # at the target image (the chapter's start) and at a point away from it
    for generated in (target, target + np.random.default_rng(5).normal(0, 10, target.shape)):
        generated = tf.constant(generated, tf.float32)
        loss, grads, parts = ours(generated)
        ref_loss, ref_grads = reference(generated)
        np.testing.assert_allclose(loss.numpy(), ref_loss.numpy(), rtol=1e-3)
        np.testing.assert_allclose(float(np.sum(parts)), loss.numpy(), rtol=1e-5)
        cosine = np.sum(grads * ref_grads) / np.linalg.norm(grads) / np.linalg.norm(ref_grads)
        assert cosine > 0.9999


def test_style_grams_are_the_blend_of_each_styles():
    weights = seeded_vgg19_weights()
    extractor = st.build_feature_extractor(weights, ["block1_conv1", "block2_conv1"])
    a = st.preprocess_image(make_style(seed=1), (32, 32))
    b = st.preprocess_image(make_target(), (32, 32))
    layers = ["block1_conv1", "block2_conv1"]
    ga = st.style_grams(extractor, [a], [1.0], layers, 32 * 32)
    gb = st.style_grams(extractor, [b], [1.0], layers, 32 * 32)
    blend = st.style_grams(extractor, [a, b], st.blend_weights([7, 3], 2), layers, 32 * 32)
    for layer in layers:
        np.testing.assert_allclose(blend[layer], 0.7 * ga[layer] + 0.3 * gb[layer], rtol=1e-5)


def test_style_scale_resizes_the_style_and_keeps_gram_scale():
    extractor = st.build_feature_extractor(seeded_vgg19_weights(), ["block1_conv1"])
    flat = Image.new("RGB", (8, 8), (120, 80, 40))
    small = st.style_grams(extractor, [st.preprocess_image(flat, (32, 32))], [1.0],
                           ["block1_conv1"], 32 * 32)["block1_conv1"]
    large = st.style_grams(extractor, [st.preprocess_image(flat, (64, 64))], [1.0],
                           ["block1_conv1"], 32 * 32)["block1_conv1"]
    # a flat image has the same features everywhere but at the zero-padded border, so
    # per-pixel statistics, and the rescaled Grams, agree closely (unscaled: 4x apart)
    assert np.linalg.norm(large - small) / np.linalg.norm(small) < 0.05


def test_loss_settings_default_to_the_constants_and_come_from_the_flags():
    settings = st.LossSettings()
    assert (settings.content_layer, list(settings.style_layers)) == (st.CONTENT_LAYER,
                                                                      st.STYLE_LAYERS)
    assert (settings.content_weight, settings.style_weight, settings.tv_weight) == (
        st.CONTENT_WEIGHT, st.STYLE_WEIGHT, st.TV_WEIGHT)
    assert settings.layers == [*st.STYLE_LAYERS, st.CONTENT_LAYER]  # in network order
    args = st.build_parser().parse_args([
        "t.jpg", "s.jpg", "--content-layer", "block2_conv1", "--style-weight", "5",
        "--style-layers", "block3_conv1,block2_conv1,block1_conv1"])
    settings = st.LossSettings.from_args(args)
    assert settings.style_layers == ("block3_conv1", "block2_conv1", "block1_conv1")
    assert settings.style_weight == 5 and settings.content_layer == "block2_conv1"
    assert settings.layers == ["block1_conv1", "block2_conv1", "block3_conv1"]  # each once
