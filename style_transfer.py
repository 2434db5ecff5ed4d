"""Neural style transfer: repaint a photo in the style of a painting.

    python style_transfer.py TARGET STYLE [STYLE ...] [options]

A Keras 3 / TensorFlow 2 port of the neural style transfer in Chollet's "Deep Learning
with Python", section 8.3, which follows Gatys, Ecker & Bethge, "A Neural Algorithm of
Artistic Style" (2015). A generated image, starting as the target image, is optimised
with L-BFGS so that its VGG19 features keep the target's content (block5_conv2) while
its Gram matrices match the style image's (block1_conv1 ... block5_conv1), with a total
variation loss for smoothness. The constants below are the defaults of the command-line
flags; edit them here or override them with flags (see --help).

The file reads in the chapter's order (README.md maps its steps to the functions here):
images, VGG19, the three losses, the total loss and its evaluator, L-BFGS, the loop, the
figure, the command line. What is not the chapter (reading files safely, the weights'
download, speed, memory, the run record) is in the package nst/ beside it.
"""

import dataclasses
import math
import os
import sys

from nst import runtime  # first: it quietens TensorFlow before anything imports it

if __name__ == "__main__":  # a signal while the libraries load: nothing to save, exit
    runtime.exit_on_signals_while_loading()

import numpy as np
from PIL import Image
from scipy.optimize import fmin_l_bfgs_b

from nst import cli, memory, outputs, speed, vgg_weights
from nst.inputs import load_image
from nst.record import Bookkeeper
from nst.runtime import FatalError, NonFiniteLoss, keras, note, tf
from nst.vgg_weights import VGG19_CONV_LAYERS

# ---------------------------------------------------------------- defaults
# Basic: the chapter's values.
IMG_HEIGHT = 400              # height of the generated image; width follows the target
ITERATIONS = 20               # outer iterations; an image is saved after each
EVALS_PER_ITERATION = 20      # loss/gradient evaluations per iteration (the chapter's maxfun)
CONTENT_WEIGHT = 0.025        # weight of the content loss
STYLE_WEIGHT = 1.0            # weight of the style loss, shared equally by the style layers
TV_WEIGHT = 1e-4              # weight of the total variation loss
CONTENT_LAYER = "block5_conv2"
STYLE_LAYERS = ["block1_conv1", "block2_conv1", "block3_conv1", "block4_conv1", "block5_conv1"]
WEIGHTS = "imagenet"          # 'imagenet' or the path of a Keras VGG19 .h5 weights file
OUTPUT_DIR = "outputs"

# Optimisation: how we go down the chapter's loss.
LBFGS_RESTARTS = False        # True: restart L-BFGS every iteration, exactly as the chapter
SCALES = [1.0]                # coarse-to-fine sizes as fractions of IMG_HEIGHT, e.g. [0.5, 1]
PRECISION = "auto"            # VGG19's arithmetic: 'float32' (the chapter's), 'bfloat16', or
                              # 'auto': bfloat16 where the hardware multiplies it natively

# Features beyond the chapter (all off by default).
PRESERVE_COLOR = False        # keep the target's colours, take only the style's luminance
STYLE_BLEND = None            # weights of several style images; None: equal
STYLE_SCALE = 1.0             # style image size relative to the generated image
INIT = "content"              # start from 'content', 'noise', 'style' or an image path
SEED = 0                      # seed for --init noise
POOLING = "max"               # VGG19 pooling: 'max' (as trained) or 'avg' (smoother)
SAVE_EVERY = 1                # save the image every K iterations; 0: only the final image
OVERWRITE = False             # replace an earlier run's files instead of numbering new ones


# ---------------------------------------------------------------- images and preprocessing
def image_size(width, height, target_height):
    """(width, height) of the generated image: target_height high, the target's aspect."""
    return max(1, int(width * target_height / height)), target_height


def scaled_size(size, scale):
    """(width, height) of size scaled by scale, each side at least MIN_SIDE."""
    width, height = size
    return max(MIN_SIDE, round(width * scale)), max(MIN_SIDE, round(height * scale))


def preprocess_image(image, size):
    """Resize a PIL image to size (width, height) and return VGG19 input, (1, H, W, 3)."""
    pixels = np.asarray(image.resize(size, Image.BICUBIC), dtype=np.float32)
    return keras.applications.vgg19.preprocess_input(pixels[np.newaxis])


def deprocess_image(x):
    """Undo preprocess_input: add the ImageNet means back, BGR -> RGB, clip, uint8."""
    x = np.array(x, dtype=np.float64).reshape(x.shape[-3:])
    x[:, :, 0] += 103.939
    x[:, :, 1] += 116.779
    x[:, :, 2] += 123.68
    # rounded, not truncated as in the chapter: truncation darkens every pixel by 0.5
    return np.clip(np.round(x[:, :, ::-1]), 0, 255).astype("uint8")


def preserve_color(generated, target):
    """The generated image's luminance with the target's chroma (Gatys et al. 2016).

    Both are uint8 RGB arrays of the same shape; YCbCr as in JPEG.
    """
    y, _, _ = Image.fromarray(generated).convert("YCbCr").split()
    _, cb, cr = Image.fromarray(target).convert("YCbCr").split()
    return np.asarray(Image.merge("YCbCr", (y, cb, cr)).convert("RGB"))


def initial_image(init, target, style, size, seed, init_image=None):
    """The generated image's start, preprocessed: target, style, seeded noise or
    init_image (the image file named by init, already read)."""
    if init == "content":
        return preprocess_image(target, size)
    if init == "style":
        return preprocess_image(style, size)
    if init == "noise":
        rng = np.random.default_rng(seed)
        noise = rng.uniform(0, 255, (size[1], size[0], 3)).astype(np.uint8)
        return preprocess_image(Image.fromarray(noise), size)
    return preprocess_image(init_image, size)


# ---------------------------------------------------------------- VGG19
MIN_SIDE = 32                 # block5 sees 1/16 of each side: below 32 px it sees 1 pixel


def layers_up_to(layers):
    """The VGG19 conv layers up to and including the deepest of `layers`."""
    order = [name for name, _, _ in VGG19_CONV_LAYERS]
    return order[:max(order.index(name) for name in layers) + 1]


def build_feature_extractor(weights, layers, pooling="max", precision="float32", size=None):
    """VGG19 up to the deepest of `layers`, returning {layer: features}, any image size.

    Built layer by layer, not with keras.applications.VGG19, so that each layer can have
    its own precision and its own gradient (nst/speed.py), and the layers past the
    deepest one asked for are left out. weights is {layer: (kernel, bias)}. In bfloat16
    the features handed to the losses are still float32, so the Gram matrices and sums
    keep float32's accuracy. size, (width, height), fixes the input's shape (for
    --summary); None takes any size.
    """
    order = layers_up_to(layers)
    Pooling = keras.layers.MaxPooling2D if pooling == "max" else keras.layers.AveragePooling2D
    image = keras.Input(shape=(None, None, 3) if size is None else (size[1], size[0], 3))
    x, outputs = image, {}
    for i, name in enumerate(order):
        block = name.split("_")[0]
        if i > 0 and order[i - 1].split("_")[0] != block:
            x = Pooling((2, 2), strides=(2, 2), name=order[i - 1].split("_")[0] + "_pool",
                        dtype=precision)(x)
        # The first convolution, which sees the pixels, stays float32: in bfloat16 pixel
        # values of about 150 round to steps of 1, L-BFGS's late, small steps vanish, and
        # the loss ends higher than float32's (docs/speed.md).
        kernel = weights[name][0]
        rotated = (speed.rotated(kernel) if speed.forward_conv_gradient(kernel.shape[2])
                   else None)
        conv = speed.vgg_conv2d_class()(kernel.shape[3], rotated, name=name,
                                        dtype="float32" if i == 0 else precision)
        x = conv(x)
        conv.set_weights(list(weights[name]))
        if name in layers:
            outputs[name] = (x if precision == "float32" else
                             keras.layers.Identity(dtype="float32", name=name + "_float32")(x))
    return keras.Model(image, outputs, name="vgg19_features")


def print_summary(layers, pooling, precision, size):
    """Print the feature extractor's layers, output shapes and parameters for a generated
    image of size (width, height), as the chapter prints VGG19's structure. Neither
    depends on the weights' values, so zeros stand in for them: nothing is downloaded."""
    zeros = {name: (np.zeros((3, 3, cin, cout), np.float32), np.zeros(cout, np.float32))
             for name, cin, cout in VGG19_CONV_LAYERS[:len(layers_up_to(layers))]}
    build_feature_extractor(zeros, layers, pooling, precision, size).summary()


# ---------------------------------------------------------------- the losses
def content_loss(target_features, generated_features):
    """Sum of squared differences between the target's and the generated features."""
    return tf.reduce_sum(tf.square(generated_features - target_features))


def gram_matrix(features):
    """G = F^T F for features of shape (H, W, C) or (1, H, W, C): the C x C channel
    correlations.

    Summing over pixels makes G blind to where things are, which is what lets it
    describe style rather than content.
    """
    # tf.custom_gradient wraps at call time: TensorFlow is not imported at definition
    return tf.custom_gradient(_gram_matrix_and_gradient)(features)


def _gram_matrix_and_gradient(features):
    channels = tf.shape(features)[-1]
    flat = tf.reshape(features, (-1, channels))

    def gradient(upstream):
        # dL/dF = F (U + U^T). Autodiff sees F twice in F^T F and makes two (H*W, C) x
        # (C, C) products; adding the tiny C x C matrices first makes it one, a
        # measurable share of an evaluation (docs/speed.md).
        return tf.reshape(tf.matmul(flat, upstream + tf.transpose(upstream)),
                          tf.shape(features))

    return tf.matmul(flat, flat, transpose_a=True), gradient


def style_loss(style_gram, generated_features, img_size):
    """The chapter's style loss for one layer: sum((S - C)^2) / (4 * channels^2 * size^2).

    S is the style image's Gram matrix, C the generated image's; size is the generated
    image's height * width in pixels.
    """
    # The chapter's constant: the image's 3 colour channels, not the layer's. It only
    # scales the style loss, which the style weight was tuned with.
    channels = 3
    generated_gram = gram_matrix(generated_features)
    return tf.reduce_sum(tf.square(style_gram - generated_gram)) / (
        4.0 * (channels ** 2) * (float(img_size) ** 2))


def total_variation_loss(image):
    """sum((a + b)^1.25), a and b the squared vertical and horizontal neighbour steps.

    image has shape (1, H, W, 3); the last row and column are left out as in the chapter.
    """
    a = tf.square(image[:, :-1, :-1, :] - image[:, 1:, :-1, :])
    b = tf.square(image[:, :-1, :-1, :] - image[:, :-1, 1:, :])
    return tf.reduce_sum(tf.pow(a + b, 1.25))


# ---------------------------------------------------------------- total loss and evaluator
@dataclasses.dataclass(frozen=True)
class LossSettings:
    """What the total loss weighs and where it looks: built once from the flags
    (from_args), then handed to whatever builds a loss."""
    content_layer: str = CONTENT_LAYER
    style_layers: tuple = tuple(STYLE_LAYERS)
    content_weight: float = CONTENT_WEIGHT
    style_weight: float = STYLE_WEIGHT
    tv_weight: float = TV_WEIGHT

    @property
    def layers(self):
        """The content and style layers, each once, in network order."""
        wanted = {self.content_layer, *self.style_layers}
        return [name for name, _, _ in VGG19_CONV_LAYERS if name in wanted]

    @classmethod
    def from_args(cls, args):
        return cls(args.content_layer, tuple(args.style_layers), args.content_weight,
                   args.style_weight, args.tv_weight)


def blend_weights(weights, count):
    """Normalised blend weights for `count` style images (equal when weights is None)."""
    weights = [1.0] * count if weights is None else weights
    return [w / float(sum(weights)) for w in weights]


def style_grams(extractor, style_images, blend, style_layers, generated_pixels):
    """The blended Gram matrices of the style images, per style layer.

    A style image of another size than the generated image has Grams in proportion to
    its pixel count; they are rescaled to the generated image's so that the chapter's
    normalisation (by the generated image's size) still holds.
    """
    grams = {layer: 0.0 for layer in style_layers}
    features_of = tf.function(extractor)  # as in build_loss_and_grads
    for image, weight in zip(style_images, blend, strict=True):
        features = features_of(image)
        ratio = generated_pixels / (int(image.shape[1]) * int(image.shape[2]))
        for layer in style_layers:
            grams[layer] = grams[layer] + weight * ratio * gram_matrix(features[layer])
    return grams


def build_loss_and_grads(extractor, target_image, style_grams, settings):
    """fetch_loss_and_grads(generated image) -> (total loss, gradient, (content, style,
    tv)), compiled, on tensors.

    The target's content features and the style Gram matrices are fixed, so each call
    runs VGG19 once, on the generated image alone, where the chapter runs it on a batch of
    target, style and generated image.
    """
    # In a graph, as the generated image's features are: eager and graph kernels round
    # bfloat16 differently, and the content loss at the target image would not be 0.
    content_target = tf.function(extractor)(target_image)[settings.content_layer]
    img_size = int(target_image.shape[1]) * int(target_image.shape[2])
    per_layer = settings.style_weight / len(settings.style_layers)

    @tf.function(input_signature=[tf.TensorSpec(target_image.shape, tf.float32)])
    def fetch_loss_and_grads(generated_image):
        with tf.GradientTape() as tape:
            tape.watch(generated_image)
            features = extractor(generated_image)
            # whole feature maps, batch of one and all: indexing out the image ([0])
            # would cost a copy of every map on the way back (StridedSliceGrad)
            content = settings.content_weight * content_loss(
                content_target, features[settings.content_layer])
            style = tf.add_n([per_layer * style_loss(style_grams[layer], features[layer],
                                                     img_size)
                              for layer in settings.style_layers])
            tv = settings.tv_weight * total_variation_loss(generated_image)
            total = content + style + tv
        return total, tape.gradient(total, generated_image), tf.stack([content, style, tv])

    return fetch_loss_and_grads


def build_vector_loss_and_grads(extractor, settings, target, styles, blend, size,
                                style_scale=1.0):
    """vector_loss_and_grads(x) -> (loss, gradient, [content, style, tv]) for a generated
    image of size (width, height), on the flat float64 vectors scipy's L-BFGS works with."""
    width, height = size
    grams = style_grams(extractor, [preprocess_image(s, scaled_size(size, style_scale))
                                    for s in styles],
                        blend, settings.style_layers, width * height)
    fetch_loss_and_grads = build_loss_and_grads(
        extractor, tf.constant(preprocess_image(target, size)), grams, settings)
    shape = (1, height, width, 3)

    def vector_loss_and_grads(x):
        loss, grads, parts = fetch_loss_and_grads(
            tf.constant(x.reshape(shape), dtype=tf.float32))
        return (float(loss), grads.numpy().ravel().astype(np.float64),
                [float(p) for p in parts.numpy()])
    return vector_loss_and_grads


class Evaluator:
    """What L-BFGS calls, after the chapter's Evaluator: loss and gradient from one
    evaluation. It counts the evaluations, keeps the last result, and is the one place
    that checks the loss and gradient are finite (NonFiniteLoss names the evaluation).

    vector_loss_and_grads(x) -> (loss, gradient, parts), on float64 vectors.
    """

    def __init__(self, vector_loss_and_grads):
        self.vector_loss_and_grads = vector_loss_and_grads
        self.evaluations = 0  # those L-BFGS asked for
        self.last = None      # (x, loss, parts) of the last of them

    def checked(self, x):
        loss, grads, parts = self.vector_loss_and_grads(x)
        if not (np.isfinite(loss) and np.all(np.isfinite(grads))):
            raise NonFiniteLoss(self.evaluations + 1)
        return loss, grads, parts

    def __call__(self, x):
        """(loss, gradient) at x for scipy: one evaluation, counted and kept."""
        loss, grads, parts = self.checked(x)
        self.evaluations += 1
        self.last = (x.copy(), loss, parts)
        return loss, grads

    def loss_at(self, x):
        """(loss, parts) at x: the last evaluation's if it was at x, else a new one."""
        if self.last is None or not np.array_equal(self.last[0], x):
            self(x)
        return self.last[1], self.last[2]

    def starting_loss(self, x):
        """(loss, parts) of the starting image, checked but not counted: L-BFGS evaluates
        it again as its first evaluation."""
        loss, _, parts = self.checked(x)
        return loss, parts


# ---------------------------------------------------------------- L-BFGS
def optimise(evaluator, x0, iterations, evals_per_iteration, restarts, on_iteration,
             on_step=lambda x: None):
    """Minimise with L-BFGS-B from x0; knows nothing about images or files.

    evaluator is an Evaluator. on_iteration(i, x, loss, parts, evaluations) is called
    after each iteration of evals_per_iteration evaluations, on_step(x) after every
    accepted L-BFGS step. restarts=True restarts L-BFGS each iteration as the chapter
    does (losing its curvature memory); otherwise one L-BFGS runs throughout.
    """
    drive = lbfgs_with_restarts if restarts else lbfgs_continuous
    return drive(evaluator, x0, iterations, evals_per_iteration, on_iteration, on_step)


def lbfgs_with_restarts(evaluator, x, iterations, evals_per_iteration, on_iteration,
                        on_step):
    """The chapter's loop: a new L-BFGS of evals_per_iteration evaluations per iteration."""
    for i in range(1, iterations + 1):
        x, _, _ = fmin_l_bfgs_b(evaluator, x, maxfun=evals_per_iteration, callback=on_step)
        on_step(x)
        on_iteration(i, x, *evaluator.loss_at(x), evaluator.evaluations)
    return x


def lbfgs_continuous(evaluator, x0, iterations, evals_per_iteration, on_iteration,
                     on_step):
    """One L-BFGS for all iterations; an iteration ends at the first step taken after
    each further evals_per_iteration evaluations."""
    done = 0

    def callback(x):
        nonlocal done
        on_step(x)
        if evaluator.evaluations >= (done + 1) * evals_per_iteration and done < iterations:
            done += 1
            on_iteration(done, x, *evaluator.loss_at(x), evaluator.evaluations)

    x, _, _ = fmin_l_bfgs_b(evaluator, x0, maxfun=iterations * evals_per_iteration,
                            maxiter=10 ** 9, callback=callback)
    while done < iterations:  # converged or out of evaluations early
        done += 1
        on_iteration(done, x, *evaluator.loss_at(x), evaluator.evaluations)
    return x


# ---------------------------------------------------------------- the run
@dataclasses.dataclass(frozen=True)
class Iterate:
    """One iteration of a run, as the loop hands it on; iteration 0 is the start."""
    iteration: int        # counted over all scales
    scale: float          # the fraction of the full size this iteration ran at
    image: np.ndarray     # the generated image, preprocessed, (1, H, W, 3) float64
    loss: float           # the total loss
    parts: tuple          # its weighted (content, style, tv) parts
    evaluations: int      # loss/gradient evaluations so far, over all scales


def resize_image(image, size):
    """A preprocessed image (1, H, W, 3) resized bicubically to size (width, height), in
    float64 for L-BFGS. One already of that size is only rounded to float32."""
    width, height = size
    return tf.image.resize(image, (height, width), method="bicubic").numpy().astype(
        np.float64)


class StyleTransfer:
    """The algorithm, knowing nothing about files: the generated image optimised with
    L-BFGS, scale by scale, with a callback once per iteration.

    image is the latest generated image L-BFGS accepted, (1, H, W, 3), kept so that
    whoever stops the run early (a signal, a non-finite loss, memory running out) can
    save it; iterate is the last Iterate handed on. evaluator wraps each scale's
    vector_loss_and_grads (Evaluator; the benchmark passes one that also measures).
    """

    def __init__(self, extractor, settings, target, styles, blend, style_scale=1.0,
                 evaluator=Evaluator):
        self.extractor, self.settings = extractor, settings
        self.target, self.styles, self.blend = target, styles, blend
        self.style_scale, self.evaluator = style_scale, evaluator
        self.image = self.iterate = None

    def run(self, start, size, scales, iterations, evals_per_iteration, restarts, callback):
        """Optimise from start, a preprocessed image, at each of scales (fractions of
        size, (width, height)) in turn, for `iterations` iterations of evals_per_iteration
        evaluations each; a scale starts from the last one's result, upsampled.
        callback(Iterate) is called for the starting image and after every iteration."""
        for index, scale in enumerate(scales):
            scale_size = scaled_size(size, scale)
            evaluator = self.evaluator(build_vector_loss_and_grads(
                self.extractor, self.settings, self.target, self.styles, self.blend,
                scale_size, self.style_scale))
            x = resize_image(start if index == 0 else self.image, scale_size)
            if index == 0:
                loss, parts = evaluator.starting_loss(x.ravel())
                self._hand_on(callback, Iterate(0, scale, x, loss, tuple(parts), 0))
            self.image = x
            on_iteration, on_step = self._callbacks(callback, scale, x.shape,
                                                    index * iterations)
            optimise(evaluator, x.ravel(), iterations, evals_per_iteration, restarts,
                     on_iteration, on_step)

    def _hand_on(self, callback, iterate):
        self.iterate = iterate
        callback(iterate)

    def _callbacks(self, callback, scale, shape, first_iteration):
        """optimise's on_iteration and on_step at one scale. Evaluations count on from
        the last Iterate handed on."""
        evaluations_before = self.iterate.evaluations

        def on_iteration(i, x, loss, parts, evaluations):
            self._hand_on(callback, Iterate(first_iteration + i, scale,
                                             x.reshape(shape).copy(), loss, tuple(parts),
                                             evaluations_before + evaluations))

        def on_step(x):
            self.image = x.copy().reshape(shape)

        return on_iteration, on_step


def stylise(args, paths, target, styles, init_image, weights_path, weights_line):
    """The run: VGG19 built, the loop run with its books beside it; the exit status."""
    settings = LossSettings.from_args(args)
    precision = speed.resolve_precision(args.precision)
    extractor = build_feature_extractor(
        vgg_weights.read_vgg19_h5(weights_path, layers_up_to(settings.layers)), settings.layers,
        args.pooling, precision)
    print(weights_line)
    if precision != "float32":
        print(f"precision: {precision} VGG19 (native on this hardware; losses in float32); "
              "--precision float32 for the chapter's arithmetic")
    size = image_size(*target.size, args.height)
    transfer = StyleTransfer(extractor, settings, target, styles,
                             blend_weights(args.style_blend, len(styles)), args.style_scale)
    def pixels(image):  # what is saved of a generated image
        if not args.preserve_color:
            return deprocess_image(image)
        return preserve_color(deprocess_image(image), resized(target, image.shape[2:0:-1]))

    books = Bookkeeper(args, paths, pixels, size, weights_line, precision)
    try:
        start = initial_image(args.init, target, styles[0], scaled_size(size, args.scales[0]),
                              args.seed, init_image)
        transfer.run(start, size, args.scales, args.iterations, args.evals_per_iteration,
                     args.lbfgs_restarts, books)
    except KeyboardInterrupt as e:  # Ctrl-C, SIGTERM or SIGHUP (Interrupted)
        return books.interrupted(transfer.image, e)
    except NonFiniteLoss as e:
        raise books.stopped(transfer.image, e.args[0]) from e
    except runtime.out_of_memory_errors() as e:
        raise books.out_of_memory(transfer.image,
                                  lambda kept, e=e: out_of_memory(args, e, kept)) from e
    except Exception as e:  # main's last resort reports it; the books say what happened
        books.failed(transfer.image, e)
        raise
    return books.completed(transfer.image, lambda result: plot_comparison(
        resized(target, size), [resized(s, size) for s in styles], result,
        books.record["history"], paths["figure"], show=args.show))


def resized(image, size):
    return np.asarray(image.resize(tuple(size), Image.BICUBIC))


# ---------------------------------------------------------------- the figure
def plot_comparison(target, styles, result, history, path, show=False):
    """The chapter's picture (target, style, result) with the loss curve below it."""
    import matplotlib
    if not show:
        matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    images = [("target image", target)] + [
        (f"style image {i + 1}" if len(styles) > 1 else "style image", s)
        for i, s in enumerate(styles)] + [("generated image", result)]
    figure = plt.figure(figsize=(4 * len(images), 7.5))
    grid = figure.add_gridspec(2, len(images), height_ratios=[3, 2])
    for i, (title, pixels) in enumerate(images):
        ax = figure.add_subplot(grid[0, i])
        ax.imshow(pixels)
        ax.set_title(title)
        ax.axis("off")
    ax = figure.add_subplot(grid[1, :])
    evaluations = [entry["evaluations"] for entry in history]
    for key in ("loss", "content", "style", "tv"):
        # a zero (the content loss of the starting target image) is left off the log axis
        values = [entry[key] if entry[key] > 0 else float("nan") for entry in history]
        ax.plot(evaluations, values, marker="o", markersize=3,
                label="total" if key == "loss" else key, lw=2 if key == "loss" else 1)
    ax.set_yscale("log")
    ax.set_xlabel("evaluations")
    ax.set_ylabel("weighted loss")
    ax.legend()
    ax.grid(True, which="both", alpha=0.3)
    figure.tight_layout()
    outputs.atomic_write(path, lambda tmp: figure.savefig(tmp, format="png", dpi=80))
    if show:
        plt.show()
    plt.close(figure)


# ---------------------------------------------------------------- command line
def check_args(args):
    """Everything that can be checked cheaply, before any image is decoded."""
    if args.height < MIN_SIDE:
        raise FatalError(f"--height must be at least {MIN_SIDE} (VGG19's block5 sees "
                         f"1/16 of each side), got {args.height}")
    if args.iterations <= 0:
        raise FatalError(f"--iterations must be at least 1, got {args.iterations}")
    if args.evals_per_iteration <= 0:
        raise FatalError(f"--evals-per-iteration must be at least 1, "
                         f"got {args.evals_per_iteration}")
    cli.check_loss_flags(args)
    if not (math.isfinite(args.style_scale) and args.style_scale > 0):
        raise FatalError(f"--style-scale must be a number > 0, got {args.style_scale}")
    if any(not (math.isfinite(s) and 0 < s <= 1) for s in args.scales) \
            or args.scales != sorted(args.scales) or args.scales[-1] != 1:
        raise FatalError("--scales must be increasing fractions in (0, 1] ending at 1, "
                         f"e.g. 0.5,1; got {','.join(map(str, args.scales))}")
    if args.save_every < 0:
        raise FatalError(f"--save-every must be 0 or more, got {args.save_every}")
    if args.style_blend is not None:
        if len(args.style_blend) != len(args.style):
            raise FatalError(f"--style-blend has {len(args.style_blend)} weights for "
                             f"{len(args.style)} style images; give one per style image")
        if any(not math.isfinite(w) or w < 0 for w in args.style_blend) \
                or sum(args.style_blend) <= 0:
            raise FatalError("--style-blend weights must be >= 0 with a positive sum")
    cli.check_weights_flag(args)
    cli.check_output_extension(args.output)


def output_paths(args):
    """Paths of the final image, per-iteration images, record and figure of this run.

    An earlier run's final image is never replaced unless --overwrite: the stem gets
    a numeric suffix instead.
    """
    if args.output:
        stem, extension = os.path.splitext(args.output)
        extension = extension or ".png"
    else:
        name = lambda p: os.path.splitext(os.path.basename(p))[0]  # noqa: E731
        stem = os.path.join(args.output_dir,
                            f"{name(args.target)}_{'+'.join(name(s) for s in args.style)}")
        extension = ".png"
    base, n = stem, 1
    while not args.overwrite and any(os.path.lexists(stem + end) for end in (
            extension, ".json", "_comparison.png")):
        stem, n = f"{base}_{n}", n + 1
    return {"final": stem + extension, "record": stem + ".json",
            "figure": stem + "_comparison.png",
            "iteration": stem + "_at_iteration_{}.png"}


def claim_outputs(args):
    """(paths, claim): output_paths whose final image this run has claimed
    (outputs.claim_first_free); claim is None with --overwrite."""
    if args.overwrite:
        return output_paths(args), None
    return outputs.claim_first_free(iter(lambda: output_paths(args), None),
                                    lambda paths: paths["final"])


def output_files(paths, args):
    """[(what, path)] of every file this run may write."""
    files = [("final image", paths["final"]), ("run record", paths["record"]),
             ("comparison figure", paths["figure"])]
    if args.save_every:
        total = args.iterations * len(args.scales)
        files += [(f"image at iteration {i}", paths["iteration"].format(i))
                  for i in range(args.save_every, total + 1, args.save_every)]
    return files


def input_files(args):
    """[(what, path)] of every file this run reads: images and weights."""
    files = [("target image", args.target)] + [("style image", s) for s in args.style]
    if args.init not in ("content", "noise", "style"):
        files.append(("initial image", args.init))
    if args.weights == "imagenet":
        files += [("cached weights file", path) for path in vgg_weights.weights_cache_files()]
    else:
        files.append(("weights file", args.weights))
    return files


def check_memory(args, target, styles, init_image, have):
    """Refuse a run whose images, at every scale, and image files, as decoded, will not
    fit in `have` MB (nst/memory.py)."""
    held = sum(image.size[0] * image.size[1]
               for image in [target, *styles, init_image] if image is not None)

    def sizes(height, style_scale):  # (generated image, style images) at each scale
        scaled = [scaled_size(image_size(*target.size, height), s) for s in args.scales]
        return [(size, scaled_size(size, style_scale)) for size in scaled]

    memory.check_memory(have, sizes, args.height, args.style_scale, len(styles), held,
                        lowest=max(MIN_SIDE, math.ceil(MIN_SIDE * target.size[1]
                                                       / target.size[0])))


def out_of_memory(args, error, kept=""):
    """What ran out, what was kept (kept) and what to try."""
    return memory.out_of_memory(error, args.height, args.style_scale, MIN_SIDE, kept)


def build_parser():
    p = cli.Parser(
        description="Neural style transfer (Gatys et al.; Chollet, Deep Learning with "
                    "Python, 8.3): repaint TARGET in the style of STYLE.")
    p.add_argument("target", help="the photo to repaint (target image)")
    p.add_argument("style", nargs="+", help="the painting(s) whose style to take")
    basic = p.add_argument_group("basic")
    cli.add_flags(basic, [
        ("--height", int, IMG_HEIGHT, "height of the generated image in pixels"),
        ("--iterations", int, ITERATIONS, "iterations (an image is saved after each)"),
        ("--evals-per-iteration", int, EVALS_PER_ITERATION, "loss evaluations per iteration"),
    ])
    cli.add_loss_flags(basic, content_weight=CONTENT_WEIGHT, style_weight=STYLE_WEIGHT,
                       tv_weight=TV_WEIGHT, content_layer=CONTENT_LAYER,
                       style_layers=STYLE_LAYERS, weights=WEIGHTS)
    cli.add_flags(p.add_argument_group("optimisation"), [
        ("--lbfgs-restarts", cli.TOGGLE, LBFGS_RESTARTS,
         "restart L-BFGS every iteration, exactly as the chapter does"),
        ("--scales", cli.number_list, SCALES,
         "coarse-to-fine sizes as fractions of --height, e.g. 0.5,1"),
        ("--precision", cli.PRECISIONS, PRECISION, ("VGG19's arithmetic; auto: bfloat16 "
         "where the CPU or GPU has it natively (about 1.8x faster), else float32")),
    ])
    cli.add_flags(p.add_argument_group("style"), [
        ("--preserve-color", cli.TOGGLE, PRESERVE_COLOR,
         "keep the target's colours, take only the style's luminance"),
        ("--style-blend", (float, "+"), STYLE_BLEND,
         "one weight per style image (normalised); default equal"),
        ("--style-scale", float, STYLE_SCALE, "style image size relative to the generated image"),
        ("--init", str, INIT, "start from 'content', 'noise', 'style' or an image file"),
        ("--seed", int, SEED, "seed for --init noise"),
        ("--pooling", ["max", "avg"], POOLING, "VGG19 pooling; avg gives smoother results"),
    ])
    cli.add_flags(p.add_argument_group("output"), [
        ("--output-dir", str, OUTPUT_DIR, "folder for the images, the run record and the figure"),
        ("--output", str, None, ("path of the final image (.png, .jpg, .webp); the record and "
         "figure go beside it")),
        ("--save-every", int, SAVE_EVERY,
         "save the image every K iterations; 0: only the final image"),
        ("--overwrite", cli.TOGGLE, OVERWRITE, "replace an earlier run's files"),
        ("--show", cli.SWITCH, False, "show the comparison figure on screen at the end"),
        ("--summary", cli.SWITCH, False, ("print the feature extractor's layers, output shapes "
         "and parameters for these images, and exit")),
        ("--debug", cli.SWITCH, False, "show tracebacks on errors"),
    ])
    return p


def load_images(args):
    """(target, styles, init image or None), read and checked before VGG19 is built."""
    target = load_image(args.target, "target")
    styles = [load_image(path, "style") for path in args.style]
    init_image = (None if args.init in ("content", "noise", "style")
                  else load_image(args.init, "initial"))
    width, height = image_size(*target.size, args.height)
    if width < MIN_SIDE:
        raise FatalError(
            f"target image '{args.target}' is {target.size[0]}x{target.size[1]}: at "
            f"height {height} it would be {width} px wide, and VGG19 needs at least "
            f"{MIN_SIDE}; use --height {math.ceil(MIN_SIDE * target.size[1] / target.size[0])}"
            " or more, or crop it")
    return target, styles, init_image


def main(argv=None):
    """The run from the command line; whatever stops it is one line (a traceback only
    with --debug) and an exit status: 2 for what the user can act on, 128 + the signal's
    number for a signal, 1 for a bug."""
    args = build_parser().parse_args(argv)
    paths, claim = None, None

    def run():
        nonlocal paths, claim
        check_args(args)
        target, styles, init_image = load_images(args)
        width, height = image_size(*target.size, args.height)
        if args.summary:
            runtime.load_tensorflow()
            print_summary(LossSettings.from_args(args).layers, args.pooling,
                          speed.resolve_precision(args.precision), (width, height))
            return 0
        outputs.check_output(output_paths(args)["final"])
        paths, claim = claim_outputs(args)
        written = output_files(paths, args)
        outputs.check_outputs_are_not_inputs(written, input_files(args))
        runtime.load_tensorflow()  # every check above runs without it
        have = memory.available_memory_mb()
        if have is not None and not runtime.GPUS:  # the estimates are of host memory
            check_memory(args, target, styles, init_image, have)
        if target.size[1] < height:
            note(f"target image '{args.target}' is {target.size[0]}x{target.size[1]}; "
                 f"upscaled to {width}x{height}")
        weights_path, weights_line = vgg_weights.resolve_weights(args.weights)
        outputs.check_outputs_are_not_inputs(written, [("weights file", weights_path)])
        return stylise(args, paths, target, styles, init_image, weights_path, weights_line)

    def interrupted(name):  # outside the optimisation: before it, or the figure
        saved = paths is not None and os.path.exists(paths["record"])
        return f"{name}; " + (f"the run record is {paths['record']}" if saved else
                              "nothing was saved")

    try:
        return cli.exit_status(run, args.debug, lambda e: out_of_memory(args, e), interrupted)
    finally:
        outputs.release_claim(paths and paths["final"], claim)


if __name__ == "__main__":
    runtime.install_signal_handlers()
    sys.exit(main())
