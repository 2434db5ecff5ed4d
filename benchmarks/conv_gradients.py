"""VGG19's convolutions one by one: forward, TensorFlow's input gradient, and the input
gradient as a forward convolution (speed.conv2d_relu's two ways), per layer shape
and precision, for the generated image's size.

    python benchmarks/conv_gradients.py                  # 533x400, float32 and bfloat16
    TF_ENABLE_ONEDNN_OPTS=0 python benchmarks/conv_gradients.py --precisions float32
    ONEDNN_MAX_CPU_ISA=AVX2 python benchmarks/conv_gradients.py --precisions float32

It prints a Markdown table: GFLOP/s of each (median over alternating repeats), which of
the two gradients speed.forward_conv_gradient picks on this machine, and the
relative difference of the two gradients. The table in benchmarks/RESULTS.md that the
rule follows came from here. The two environment variables above make this CPU take
another CPU's code path: TensorFlow's Eigen kernels, which it uses on CPUs without
AVX512_VNNI, AVX512_BF16, AVX_VNNI or AMX (most AVX2-only CPUs), and oneDNN held to AVX2.
Such figures are emulations, and labelled so.
"""
import argparse
import os
import sys
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))
sys.path.insert(0, HERE)

import benchmark  # noqa: E402
import style_transfer as st  # noqa: E402
from nst import runtime, speed, vgg_weights  # noqa: E402

tf, _ = runtime.load_tensorflow()


def layer_shapes(width, height):
    """[(name, height, width, in channels, out channels)], one per distinct shape."""
    shapes, seen = [], set()
    for name, cin, cout in vgg_weights.VGG19_CONV_LAYERS[:len(st.layers_up_to(
            st.LossSettings().layers))]:
        scale = 2 ** (int(name[5]) - 1)
        shape = (height // scale, width // scale, cin, cout)
        if shape not in seen:
            seen.add(shape)
            shapes.append((name, *shape))
    return shapes


def measure(shape, dtype, repeats):
    """Median seconds of the forward convolution and the two input gradients, taking
    turns, and the two gradients' relative difference."""
    height, width, cin, cout = shape
    rng = np.random.default_rng(0)
    x = tf.constant(rng.normal(size=(1, height, width, cin)), dtype)
    kernel = tf.constant(rng.normal(0, np.sqrt(2 / (9 * cin)), (3, 3, cin, cout)), dtype)
    upstream = tf.constant(rng.normal(size=(1, height, width, cout)), dtype)
    rotated_kernel = tf.constant(speed.rotated(kernel), dtype)  # made once, as in the script
    y = tf.nn.relu(tf.nn.conv2d(x, kernel, 1, "SAME"))

    def input_gradient(rotated):
        # the backward pass alone, the ReLU's gradient with it, as in an evaluation
        return tf.function(lambda: speed.conv2d_relu_input_gradient(upstream, y, kernel,
                                                                 rotated, x.shape))

    runs = {"forward": tf.function(lambda: tf.nn.conv2d(x, kernel, 1, "SAME")),
            "tensorflow": input_gradient(None), "as forward": input_gradient(rotated_kernel)}
    a, b = (runs[k]().numpy().astype(np.float64) for k in ("tensorflow", "as forward"))
    difference = float(np.abs(a - b).max() / np.abs(a).max())
    times = {k: [] for k in runs}
    for _ in range(repeats):
        for k, run in runs.items():
            start = time.perf_counter()
            run().numpy()
            times[k].append(time.perf_counter() - start)
    return {k: float(np.median(v)) for k, v in times.items()}, difference


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--width", type=int, default=533)
    p.add_argument("--height", type=int, default=400)
    p.add_argument("--precisions", default="float32,bfloat16")
    p.add_argument("--repeats", type=int, default=7)
    args = p.parse_args(argv)
    print(f"Machine: {benchmark.machine()}.  ")
    print(f"Generated image {args.width}x{args.height}; GFLOP/s, median of {args.repeats} "
          "alternating repeats; the gradients include the ReLU's.\n")
    print("| layer | shape (H x W, in -> out) | precision | forward | TensorFlow's input "
          "gradient | as a forward conv | ratio | picked here | relative difference |")
    print("|---|---|---|---|---|---|---|---|---|")
    for precision in args.precisions.split(","):
        for name, *shape in layer_shapes(args.width, args.height):
            height, width, cin, cout = shape
            dtype = tf.float32 if name == "block1_conv1" else tf.as_dtype(precision)
            if name == "block1_conv1" and precision != "float32":
                continue  # the first convolution is float32 whatever the precision
            seconds, difference = measure(shape, dtype, args.repeats)
            gflop = 2 * 9 * cin * cout * height * width / 1e9
            rate = {k: gflop / s for k, s in seconds.items()}
            picked = "forward conv" if speed.forward_conv_gradient(cin) else "TensorFlow's"
            print(f"| {name} | {height}x{width}, {cin} -> {cout} | {dtype.name} | "
                  f"{rate['forward']:.0f} | {rate['tensorflow']:.0f} | "
                  f"{rate['as forward']:.0f} | "
                  f"{seconds['tensorflow'] / seconds['as forward']:.2f}x | {picked} | "
                  f"{difference:.1e} |", flush=True)


if __name__ == "__main__":
    sys.exit(main())
