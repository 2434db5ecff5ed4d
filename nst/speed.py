"""Speed: bfloat16 where the hardware multiplies it natively, and VGG19's convolutions
differentiated for their input only, by the fastest means measured on each kind of CPU.

What is measured where: benchmarks/conv_gradients.py and benchmarks/RESULTS.md, by kind
of CPU. Promises: the arithmetic changes only where it was measured to pay; the gradient
of every convolution equals autodiff's through Keras' own Conv2D (tests/test_vgg19.py),
and never reaches VGG19's fixed weights.
"""
import functools

import numpy as np

from nst import runtime
from nst.runtime import keras, tf


def native_bfloat16(cpuinfo="/proc/cpuinfo"):
    """Whether the hardware TF computes on multiplies bfloat16 natively: a GPU of compute
    capability 8.0 or later, or a CPU with AVX512_BF16 or AMX. Elsewhere bfloat16 is
    emulated, and no faster than float32."""
    if runtime.GPUS:
        return all(tf.config.experimental.get_device_details(gpu).get(
            "compute_capability", (0, 0)) >= (8, 0) for gpu in runtime.GPUS)
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
    return in_channels > 3 and not runtime.GPUS and not onednn_enabled()


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
