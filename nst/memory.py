"""Memory: what a run will need, what the machine has, and a size that fits.

The estimates are a base and a cost per megapixel, set with room to spare above the peaks
measured in benchmarks/RESULTS.md (the optimisation) and benchmarks/FAST.md (the fast
mode). Promises: a run that would not fit is refused before any work, with a --height
(or --style-scale) that fits; where no limit can be read (another OS), nothing is refused.
"""
import math

from nst import runtime
from nst.runtime import FatalError, tf

# The optimisation's peak resident memory: a base and a cost per megapixel, set with room
# to spare above the float32 peaks in benchmarks/RESULTS.md (bfloat16 needs less).
MEMORY_BASE_MB = 800
MEMORY_MB_PER_MEGAPIXEL = 2900
# A style image only goes forward through VGG19 (no gradient), once per scale: measured at
# 630 MB per megapixel in float32 between 533x400 and 1066x800, with room to spare.
MEMORY_MB_PER_STYLE_MEGAPIXEL = 850
# Stylising's peak resident memory: TensorFlow, the model and a cost per megapixel of the
# largest input, with room above what was measured (fw as a graph, 2000x1500 and
# 4000x3000: 290 MB per megapixel in bfloat16, 415 in float32, about 960 MB besides).
STYLIZE_MEMORY_BASE_MB = 1000
STYLIZE_MEMORY_MB_PER_MEGAPIXEL = 500


def estimated_peak_mb(width, height, style_width=None, style_height=None, styles=1,
                      held_pixels=0):
    """Peak memory of an optimisation at one scale, in MB: TensorFlow's runtime, then the
    larger of the generated image's (width x height) forward and backward pass and a style
    image's forward pass (style_width x style_height, by default the generated image's
    size), plus what is held meanwhile: the decoded image files (held_pixels, RGB bytes)
    and every style image, preprocessed (float32)."""
    style_width, style_height = style_width or width, style_height or height
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


def largest_fitting(values, fits):
    """The largest of increasing values that fits, by bisection (need grows with both
    --height and --style-scale); None if even the first does not."""
    low, high = 0, len(values) - 1
    if not fits(values[0]):
        return None
    while low < high:
        middle = (low + high + 1) // 2
        low, high = (middle, high) if fits(values[middle]) else (low, middle - 1)
    return values[low]


def check_memory(have, sizes, height, style_scale, styles, held_pixels, lowest):
    """Refuse an optimisation whose images will not fit in `have` MB, suggesting a
    --height or a --style-scale that fits. sizes(height, style_scale) lists, for each
    scale of the run (the last the full size), the generated image's (width, height) and
    the style images'; held_pixels counts every image file as decoded; lowest is the
    smallest --height VGG19 takes."""
    def need(height, style_scale):
        return max(estimated_peak_mb(*size, *style_size, styles, held_pixels)
                   for size, style_size in sizes(height, style_scale))

    total = need(height, style_scale)
    if total <= have:
        return
    (width, full_height), (style_width, style_height) = sizes(height, style_scale)[-1]
    what = f"a {width}x{full_height} image"
    fitting_scale = None
    if MEMORY_MB_PER_STYLE_MEGAPIXEL * style_width * style_height \
            > MEMORY_MB_PER_MEGAPIXEL * width * full_height:  # the style images' pass is larger
        what += f" with style images at {style_width}x{style_height}"
        fractions = [k / 100 for k in range(1, int(style_scale * 100) + 1)]
        fitting_scale = largest_fitting(fractions, lambda s: need(height, s) <= have)
    if fitting_scale is not None:
        advice = f"--style-scale {fitting_scale:g}"
    else:
        fitting = largest_fitting(list(range(lowest, height + 1)),
                                  lambda h: need(h, style_scale) <= have)
        advice = (f"--height {fitting}" if fitting is not None else
                  "closing other programs or smaller image files; even --height "
                  f"{lowest} needs {need(lowest, style_scale) / 1024:.1f} GB")
    raise FatalError(f"{what} needs about {total / 1024:.1f} GB of memory and "
                     f"{have / 1024:.1f} GB is available; try {advice}")


def out_of_memory(error, height, style_scale, min_side, kept=""):
    """What ran out, what was kept and what to try, for a MemoryError or a
    ResourceExhaustedError that the estimates did not foresee."""
    what = "the GPU's memory" if runtime.GPUS and isinstance(
        error, tf.errors.ResourceExhaustedError) else "memory"
    advice = f"--height {max(min_side, height * 7 // 10)}"  # about half the pixels
    if style_scale > 1:
        advice += " or a smaller --style-scale"
    kept = f"; {kept}" if kept else ""
    return f"ran out of {what} ({type(error).__name__}){kept}; try {advice}"


def check_stylize_memory(photos, sizes, have, min_side):
    """Refuse before any work a photo too large for the memory available (have, MB) to
    stylise in one pass, suggesting a --height that fits (at least min_side)."""
    if have is None:
        return
    path, (width, height) = max(zip(photos, sizes, strict=True),
                                key=lambda item: item[1][0] * item[1][1])
    need = STYLIZE_MEMORY_BASE_MB + STYLIZE_MEMORY_MB_PER_MEGAPIXEL * width * height / 1e6
    if need <= have:
        return
    fits = math.sqrt(max(have - STYLIZE_MEMORY_BASE_MB, 0) * 1e6
                     / STYLIZE_MEMORY_MB_PER_MEGAPIXEL / (width * height))
    advice = (f"try --height {math.floor(height * fits)}" if height * fits >= min_side
              else "close other programs")
    raise FatalError(f"input '{path}' at {width}x{height} needs about {need / 1024:.1f} GB "
                     f"of memory and {have / 1024:.1f} GB is available; {advice}")
