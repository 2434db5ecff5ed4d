"""The fast mode's image transform network fw (Johnson et al. 2016, narrower by default):
built, saved, loaded, and run on a photo of any size.

Promises: a model file is read only if it is a regular .keras file of sensible size made
by this code (anything else is one FatalError line); a saved model is float32 whatever
precision it trained in, written atomically; stylise_pixels returns a photo the size of its
input. Importing this module does not import TensorFlow: its layers are defined on first
use (layers()).
"""
import functools
import json
import os
import weakref
import zipfile

import numpy as np

from nst.inputs import check_regular_file
from nst.runtime import FatalError, keras, quiet_stderr, signals_deferred, tf

CUSTOM = "fast_style_transfer"  # the package the layers are registered under, in saved models
MODEL_MAX_BYTES = 2 ** 30       # a model file larger than this is not one of ours
MIN_PHOTO_SIDE = 16             # fw halves each side twice and pads by 4 pixels


@functools.cache
def layers():
    """(ReflectionPadding, InstanceNormalization): fw's own layers, defined and registered
    with Keras on first use, so that Keras loads only once the cheap checks have passed."""

    @keras.saving.register_keras_serializable(package=CUSTOM)
    class ReflectionPadding(keras.layers.Layer):
        """Pads height and width by mirroring the border, so edges look like the inside
        instead of a dark frame that zero padding would teach fw to paint."""

        def __init__(self, pad, **kwargs):
            super().__init__(**kwargs)
            self.pad = pad

        def call(self, x):
            p = self.pad
            return tf.pad(x, [[0, 0], [p, p], [p, p], [0, 0]], mode="REFLECT")

        def get_config(self):
            return {**super().get_config(), "pad": self.pad}

    @keras.saving.register_keras_serializable(package=CUSTOM)
    class InstanceNormalization(keras.layers.Layer):
        """Normalises each image's channels over its own pixels (Ulyanov et al. 2016): the
        result no longer depends on the photo's contrast, nor on the other photos in the
        batch, so a batch split across devices gives the same result."""

        def __init__(self, epsilon=1e-5, **kwargs):
            super().__init__(**kwargs)
            self.epsilon = epsilon

        def build(self, input_shape):
            channels = input_shape[-1]
            self.scale = self.add_weight(name="scale", shape=(channels,), initializer="ones")
            self.offset = self.add_weight(name="offset", shape=(channels,),
                                          initializer="zeros")

        def call(self, x):
            mean, variance = tf.nn.moments(x, axes=[1, 2], keepdims=True)
            return ((x - mean) * tf.math.rsqrt(variance + self.epsilon) * self.scale
                    + self.offset)

        def get_config(self):
            return {**super().get_config(), "epsilon": self.epsilon}

    return ReflectionPadding, InstanceNormalization


def build_transform_net(filters, residual_blocks, precision="float32", seed=0):
    """fw: photo (N, H, W, 3) RGB in 0-255 -> stylised photo, same shape, about 0-255.

    filters are the widths of the first 9x9 convolution and of each stride-2 one. H and
    W must be multiples of 4 (stylise_pixels pads to that). Instance normalisation and
    the output stay float32 in bfloat16 mode: their sums over a whole image need it.
    """
    ReflectionPadding, InstanceNormalization = layers()
    compute = "mixed_bfloat16" if precision == "bfloat16" else "float32"
    init = keras.initializers.GlorotUniform
    layer_seed = iter(range(seed * 1000, seed * 1000 + 1000))

    def conv(x, width, kernel, name, stride=1, norm=True, relu=True):
        x = ReflectionPadding(kernel // 2, name=name + "_pad", dtype=compute)(x)
        # a bias before instance normalisation is subtracted right away: none
        x = keras.layers.Conv2D(width, kernel, strides=stride, name=name, dtype=compute,
                                use_bias=not norm,
                                kernel_initializer=init(seed=next(layer_seed)))(x)
        if norm:
            x = InstanceNormalization(name=name + "_norm", dtype="float32")(x)
        return keras.layers.ReLU(name=name + "_relu", dtype=compute)(x) if relu else x

    photo = keras.Input(shape=(None, None, 3), name="photo")
    x = keras.layers.Rescaling(1 / 127.5, offset=-1.0, name="to_unit", dtype=compute)(photo)
    x = conv(x, filters[0], 9, "down0")
    x = conv(x, filters[1], 3, "down1", stride=2)
    x = conv(x, filters[2], 3, "down2", stride=2)
    for i in range(residual_blocks):
        y = conv(x, filters[2], 3, f"residual{i}_a")
        y = conv(y, filters[2], 3, f"residual{i}_b", relu=False)
        x = keras.layers.Add(name=f"residual{i}", dtype=compute)([x, y])
    # Resize, then convolve (Odena et al. 2016): a strided transposed convolution
    # overlaps unevenly and paints a checkerboard.
    for i, width in enumerate((filters[1], filters[0]), start=1):
        x = keras.layers.UpSampling2D(2, name=f"up{i}_resize", dtype=compute)(x)
        x = conv(x, width, 3, f"up{i}")
    x = conv(x, 3, 9, "out", norm=False, relu=False)
    x = keras.layers.Activation("linear", dtype="float32", name="out_float32")(x)
    # Unbounded, centred on mid-grey: a random fw starts as a flat grey image.
    y = keras.layers.Rescaling(127.5, offset=127.5, name="to_pixels", dtype="float32")(x)
    return keras.Model(photo, y, name="transform_net")


def architecture_of(net):
    """(filters, residual blocks) of a transform net, read off its layers."""
    widths = tuple(net.get_layer(name).filters for name in ("down0", "down1", "down2"))
    blocks = sum(1 for layer in net.layers if layer.name.endswith("_a")
                 and layer.name.startswith("residual"))
    return widths, blocks


def check_model_file(path, what="model"):
    """Refuse, without TensorFlow, a model file that cannot be a transform net: not a
    regular .keras file, not a readable archive (empty, truncated, random bytes, another
    kind of file under the name), or the saved model of something else."""
    check_regular_file(path, what, MODEL_MAX_BYTES)
    if not path.endswith(".keras"):
        raise FatalError(f"{what} '{path}' is not a .keras file made by "
                         "'fast_style_transfer.py train'")
    try:
        with zipfile.ZipFile(path) as archive:
            config = json.loads(archive.read("config.json"))
            archive.getinfo("model.weights.h5")
        name = config["config"]["name"]
    except (zipfile.BadZipFile, KeyError, TypeError, ValueError, OSError, EOFError) as e:
        raise FatalError(f"{what} '{path}' is not a transform net made by "
                         f"'fast_style_transfer.py train' ({type(e).__name__}: the file is "
                         "damaged or of another kind)") from None
    if name != "transform_net":
        raise FatalError(f"{what} '{path}' is a Keras model but not a transform net made by "
                         "'fast_style_transfer.py train'")


def load_transform_net(path, precision="float32", what="model"):
    """The transform net saved at path, rebuilt in the given precision, or FatalError
    naming it as `what`."""
    check_model_file(path, what)
    layers()  # registered, so that Keras finds them in the file
    try:
        with quiet_stderr():
            saved = keras.models.load_model(path, compile=False)
    except Exception as e:  # noqa: BLE001  whatever it is, it is not one of ours
        raise FatalError(f"{what} '{path}' is not a transform net made by "
                         f"'fast_style_transfer.py train' ({type(e).__name__})") from None
    try:
        if saved.name != "transform_net":
            raise ValueError(saved.name)
        widths, blocks = architecture_of(saved)
    except ValueError:
        raise FatalError(f"{what} '{path}' is a Keras model but not a transform net made by "
                         "'fast_style_transfer.py train'") from None
    net = build_transform_net(widths, blocks, precision)
    net.set_weights(saved.get_weights())
    return net


def save_model(net, path):
    """fw as a float32 .keras file (whatever precision it trained in), atomically; a
    signal meanwhile waits until the file is whole."""
    widths, blocks = architecture_of(net)
    plain = build_transform_net(widths, blocks, "float32")
    plain.set_weights(net.get_weights())
    folder, name = os.path.split(os.path.abspath(path))
    tmp = os.path.join(folder, f".{name}.{os.getpid()}.tmp.keras")  # Keras wants .keras
    with signals_deferred():
        try:
            plain.save(tmp)
            os.replace(tmp, path)
        finally:
            if os.path.exists(tmp):
                os.remove(tmp)


def stylise_pixels(net, pixels):
    """Run fw on uint8 RGB pixels (H, W, 3) of any size; returns uint8 pixels, same size.

    The photo is mirrored out to a multiple of 4 on each side, for fw's two halvings
    and two doublings, and the result cropped back.
    """
    height, width = pixels.shape[:2]
    pad_h, pad_w = -height % 4, -width % 4
    x = np.pad(pixels.astype(np.float32), ((0, pad_h), (0, pad_w), (0, 0)), mode="reflect")
    y = one_pass(net)(tf.constant(x[np.newaxis]))[0].numpy()[:height, :width]
    return np.clip(np.round(y), 0, 255).astype(np.uint8)


_ONE_PASS = weakref.WeakKeyDictionary()


def one_pass(net):
    """fw's forward pass as one graph, traced once for every size. Called eagerly, Keras
    keeps every intermediate image until the pass ends: 1.3 GB per megapixel against
    0.26 GB as a graph, which also runs faster (measured on 2000x1500)."""
    if net not in _ONE_PASS:
        ref = weakref.ref(net)  # the cache must not keep fw alive
        _ONE_PASS[net] = tf.function(
            lambda x: ref()(x, training=False),
            input_signature=[tf.TensorSpec([1, None, None, 3], tf.float32)])
    return _ONE_PASS[net]
