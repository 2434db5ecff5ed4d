"""The chapter's formulation, as the reference the script is measured against.

Chollet, "Deep Learning with Python", 8.3, rewritten for TensorFlow 2 with nothing else
changed: the target, style and generated images go through the whole VGG19 (no top) as
one batch of three at every evaluation, the Gram matrices of the style image are
recomputed each time, and L-BFGS is restarted every `maxfun` evaluations. Its loss
functions are the chapter's own, kept apart from the script's on purpose, so that the
two can be checked against each other.
"""
import keras
import tensorflow as tf
from scipy.optimize import fmin_l_bfgs_b


def content_loss(base, combination):
    return tf.reduce_sum(tf.square(combination - base))


def gram_matrix(x):
    features = tf.reshape(tf.transpose(x, (2, 0, 1)), (tf.shape(x)[2], -1))
    return tf.matmul(features, tf.transpose(features))


def style_loss(style, combination, img_height, img_width):
    S = gram_matrix(style)
    C = gram_matrix(combination)
    channels = 3
    size = img_height * img_width
    return tf.reduce_sum(tf.square(S - C)) / (4.0 * (channels ** 2) * (size ** 2))


def total_variation_loss(x, img_height, img_width):
    a = tf.square(x[:, :img_height - 1, :img_width - 1, :] - x[:, 1:, :img_width - 1, :])
    b = tf.square(x[:, :img_height - 1, :img_width - 1, :] - x[:, :img_height - 1, 1:, :])
    return tf.reduce_sum(tf.pow(a + b, 1.25))


def chapter_model(weights, img_height, img_width):
    """Keras' VGG19 without top, every layer's output by name (the chapter's outputs_dict).

    weights: {layer: (kernel, bias)} as read by vgg_weights.read_vgg19_h5.
    """
    model = keras.applications.VGG19(weights=None, include_top=False,
                                     input_shape=(img_height, img_width, 3))
    for name, values in weights.items():
        model.get_layer(name).set_weights(list(values))
    return keras.Model(model.input, {layer.name: layer.output for layer in model.layers[1:]})


def chapter_loss_and_grads(weights, target_image, style_image,
                           content_weight=0.025, style_weight=1.0,
                           total_variation_weight=1e-4, content_layer="block5_conv2",
                           style_layers=("block1_conv1", "block2_conv1", "block3_conv1",
                                         "block4_conv1", "block5_conv1")):
    """f(generated image (1, H, W, 3)) -> (loss, gradient), computed as the chapter does."""
    img_height, img_width = int(target_image.shape[1]), int(target_image.shape[2])
    model = chapter_model(weights, img_height, img_width)
    target = tf.constant(target_image, tf.float32)
    style = tf.constant(style_image, tf.float32)

    @tf.function(input_signature=[tf.TensorSpec((1, img_height, img_width, 3), tf.float32)])
    def fetch_loss_and_grads(combination_image):
        with tf.GradientTape() as tape:
            tape.watch(combination_image)
            input_tensor = tf.concat([target, style, combination_image], axis=0)
            outputs_dict = model(input_tensor)
            layer_features = outputs_dict[content_layer]
            loss = content_weight * content_loss(layer_features[0], layer_features[2])
            for layer_name in style_layers:
                layer_features = outputs_dict[layer_name]
                sl = style_loss(layer_features[1], layer_features[2], img_height, img_width)
                loss = loss + (style_weight / len(style_layers)) * sl
            loss = loss + total_variation_weight * total_variation_loss(
                combination_image, img_height, img_width)
        return loss, tape.gradient(loss, combination_image)

    return fetch_loss_and_grads


def chapter_optimise(fetch_loss_and_grads, x0, iterations=20, maxfun=20, on_eval=None):
    """The chapter's loop: fmin_l_bfgs_b restarted every iteration. Returns x."""
    shape = x0.shape

    def loss_and_grads(x):
        loss, grads = fetch_loss_and_grads(tf.constant(x.reshape(shape), tf.float32))
        loss = float(loss)
        if on_eval:
            on_eval(loss)
        return loss, grads.numpy().ravel().astype("float64")

    x = x0.astype("float64").ravel()
    for _ in range(iterations):
        x, _, _ = fmin_l_bfgs_b(loss_and_grads, x, maxfun=maxfun)
    return x.reshape(shape)
