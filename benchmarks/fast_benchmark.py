"""Fast mode against the optimisation: one run on one machine, written to FAST.md.

    python benchmarks/fast_benchmark.py          # every bundled model, ~25 min a new style
    # (b)'s L-BFGS curves are kept in FAST_lbfgs.json: a rerun takes minutes
    python benchmarks/fast_benchmark.py --photos a.jpg b.jpg --evals 20,50 --no-default-run
    python benchmarks/fast_benchmark.py --curves-only   # (b)'s L-BFGS runs alone, cached
    python benchmarks/fast_benchmark.py --models A.keras B.keras  # (b) for each, printed

(a) Seconds per image for stylising 533x400 and 1066x800 with the transform net, against
    one evaluation of style_transfer.py at the same size, and against the default run
    (`python style_transfer.py PHOTO STYLE`, 20 x 20 evaluations at 400 px) timed whole,
    beside `fast_style_transfer.py stylize` timed whole.
(b) Quality, for each model: on photos the net never saw, at 400 px, the fast mode's loss
    (its own layer, weights and style image, read from the model's record) of the net's
    output, against the same loss
    of style_transfer.py's generated image from the same photo after each number of
    evaluations in --evals: "the net matches L-BFGS after N evaluations". Losses are
    float32 evaluations; L-BFGS runs in the default precision.
(c) Training steps per second and peak memory at --size 256, batch 4.
(d) Training variants (--models runs kept in FAST_variants.json): quality against hours,
    as a table and a figure (FAST_variants.png).
"""
import argparse
import itertools
import json
import os
import platform
import subprocess
import sys
import tempfile
import time

import numpy as np
from PIL import Image

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, ROOT)

import fast_style_transfer as fst  # noqa: E402
import style_transfer as st  # noqa: E402
from nst import inputs, runtime, speed, transform_net, vgg_weights  # noqa: E402

tf, _ = runtime.load_tensorflow()

SHARED = os.path.join(ROOT, "..", "shared", "images")
PHOTOS = os.path.join(ROOT, "..", "photos")  # where models/gather_photos.py puts them
# Five photos no model was trained on: a face, a city, architecture, animals, a clock's
# numerals (models/gather_photos.py's held-out set, from packages no training photo
# comes from; Tübingen for local checks only).
QUALITY_PHOTOS = [os.path.join(ROOT, "images", "grace_hopper.jpg"),
                  os.path.join(SHARED, "tubingen.jpg")] + [
    os.path.join(PHOTOS, "held_out", name) for name in (
        "sklearn_china.jpg", "debian_lomiri1604_friends_by_Aitzol_Berasategi.jpg",
        "debian_lomiri1604_greentock_by_Peter_Nerlich.jpg")]
SIZES = [(533, 400), (1066, 800)]
SPEED_STYLE = os.path.join(ROOT, "images", "starry_night.jpg")  # (c) and --speeds train on it
EVALS = [20, 50, 100]  # from the photo, the script's start
NOISE_EVALS = [20, 50, 100]  # from noise, as Gatys et al. start; twice the target of 50
# what a model's record says of its training, kept beside its results to tell variants apart
TRAINING_SETTINGS = ("filters", "size", "small_size", "small_steps", "color_jitter", "augment",
                     "init_model", "batch_size", "content_weight", "learning_rate")


def default_photos():
    """The QUALITY_PHOTOS that are there."""
    return [p for p in QUALITY_PHOTOS if os.path.exists(p)]


def machine():
    """The CPU's model name and the flags that decide the speed, and the libraries."""
    model, flags, numbers = platform.processor(), set(), {}
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                key, _, value = line.partition(":")
                if key.strip() == "model name":
                    model = value.strip()
                elif key.strip() in ("cpu family", "model"):
                    numbers[key.strip()] = value.strip()
                elif key.strip() == "flags":
                    flags = set(value.split())
    except OSError:
        pass
    shown = [f for f in ("avx2", "avx512f", "avx512_bf16", "amx_bf16") if f in flags]
    if numbers:  # "AMD EPYC" alone names several generations
        model += f" (family {numbers.get('cpu family')}, model {numbers.get('model')})"
    return {"cpu": model, "cores": os.cpu_count(), "flags": shown,
            "tensorflow": tf.__version__, "gpus": len(runtime.GPUS)}


def median_seconds(function, repeats):
    function()  # traced and warmed up, off the clock
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        function()
        times.append(time.perf_counter() - start)
    return float(np.median(times))


def loss_function(vgg, settings, photo, style, size, precision):
    """vector_loss_and_grads at size for the photo as target, as style_transfer.py's."""
    extractor = st.build_feature_extractor(vgg, settings.layers, "max", precision)
    return st.build_vector_loss_and_grads(extractor, settings, photo, [style], [1.0], size)


def timing(net, vgg, photo, style, precision, repeats):
    """(a) without the whole commands: seconds per stylised image and per evaluation."""
    rows = []
    for size in SIZES:
        pixels = np.asarray(photo.resize(size, Image.BICUBIC))
        evaluate = loss_function(vgg, st.LossSettings(), photo, style, size,
                                 precision)
        x = st.preprocess_image(photo, size).astype(np.float64).ravel()
        rows.append({"size": list(size),
                     "stylise_seconds": median_seconds(
                         lambda p=pixels: transform_net.stylise_pixels(net, p), repeats),
                     "evaluation_seconds": median_seconds(lambda e=evaluate, x=x: e(x),
                                                          repeats)})
        print(f"(a) {size[0]}x{size[1]}: stylise {rows[-1]['stylise_seconds']:.3f} s, one "
              f"evaluation {rows[-1]['evaluation_seconds']:.3f} s", flush=True)
    return rows


def timed_command(argv):
    start = time.perf_counter()
    subprocess.run([sys.executable, *argv], check=True, cwd=ROOT, stdout=subprocess.DEVNULL)
    return time.perf_counter() - start


def whole_commands(model, photo, style_path):
    """(a) as a user sees it: the default run and one stylize, each a whole process, on
    the photo at 533x400 (the default run's height, the size stylise_seconds is timed at)."""
    with tempfile.TemporaryDirectory() as out:
        photo_path = os.path.join(out, "photo.png")
        photo.resize(SIZES[0], Image.BICUBIC).save(photo_path)
        default = timed_command(["style_transfer.py", photo_path, style_path,
                                 "--output-dir", out])
        fast = timed_command(["fast_style_transfer.py", "stylize", model, photo_path,
                              "--output-dir", out])
    print(f"(a) default run {default:.0f} s, stylize command {fast:.1f} s", flush=True)
    return {"default_run_seconds": default, "stylize_command_seconds": fast}


class Recorder:
    """StyleTransfer's callback: the float32 loss of the generated image at each iterate."""

    def __init__(self, judge):
        self.judge, self.points = judge, []

    def __call__(self, iterate):
        loss = self.judge(iterate.image.astype(np.float64).ravel())[0]
        self.points.append((iterate.evaluations, loss))


def matched_after(points, net_loss):
    """The evaluations after which L-BFGS's loss first falls to net_loss, interpolated
    on a log scale between recorded points; None if it never does."""
    if points[0][1] <= net_loss:
        return points[0][0]
    for (e0, l0), (e1, l1) in itertools.pairwise(points):
        if l1 <= net_loss:
            if l0 <= net_loss or l0 == l1:
                return e1
            return e0 + (e1 - e0) * np.log(l0 / net_loss) / np.log(l0 / l1)
    return None


def lbfgs_curve(vgg, settings, photo, style, size, precision, max_evals, judge,
                init):
    """style_transfer.py's run from init ('content': the photo, or 'noise'): [(evaluations,
    float32 loss)], an iterate every 10 evaluations."""
    extractor = st.build_feature_extractor(vgg, settings.layers, "max", precision)
    recorder = Recorder(judge)
    step = 10
    st.StyleTransfer(extractor, settings, photo, [style], [1.0]).run(
        st.initial_image(init, photo, style, size, st.SEED), size, [1.0],
        max_evals // step, step, False, recorder)
    return recorder.points


class CurveCache:
    """L-BFGS curves kept in a JSON file, one entry per photo, size, loss, precision and
    length, written after each photo: they do not depend on the net, take most of the
    benchmark's time, and so survive an interrupted run or a retrained model."""

    def __init__(self, path):
        self.path, self.curves = path, {}
        if path and os.path.exists(path):
            with open(path) as f:
                self.curves = json.load(f)

    def get(self, key, compute):
        longer = self.longer(key)
        if longer is not None:
            return [tuple(p) for p in longer if p[0] <= key["evals"]]
        key = json.dumps(key, sort_keys=True)
        if key not in self.curves:
            self.curves[key] = [list(p) for p in compute()]
            if self.path:
                with open(self.path + ".tmp", "w") as f:
                    json.dump(self.curves, f, indent=0)
                os.replace(self.path + ".tmp", self.path)
        return [tuple(p) for p in self.curves[key]]

    def longer(self, key):
        """A kept curve of the same run but more evaluations: its start answers a shorter
        request, since L-BFGS's first N evaluations do not depend on how many follow."""
        for evals in sorted({json.loads(k)["evals"] for k in self.curves}):
            if evals > key["evals"]:
                found = self.curves.get(json.dumps({**key, "evals": evals}, sort_keys=True))
                if found is not None:
                    return found
        return None


def quality(net, vgg, settings, photo_path, style, precision, evals, cache,
            init="content"):
    """(b) for one photo: the net's loss and L-BFGS's after each of evals evaluations,
    L-BFGS starting from init."""
    photo = inputs.load_image(photo_path, "photo")
    size = st.image_size(*photo.size, 400)
    judge = loss_function(vgg, settings, photo, style, size, "float32")
    key = {"photo": os.path.basename(photo_path), "size": list(size),
           "style": os.path.basename(style.info["path"]),
           "settings": repr(settings), "precision": precision, "evals": max(evals)}
    if init != "content":  # the keys of the curves from the photo stay as they were
        key["init"] = init
    points = cache.get(key, lambda: lbfgs_curve(vgg, settings, photo, style, size,
                                                precision, max(evals), judge, init))
    lbfgs = {n: float(np.interp(n, *zip(*points, strict=True))) for n in evals}
    result = {"photo": key["photo"], "size": list(size), "init": init, "lbfgs_loss": lbfgs,
              "start_loss": points[0][1] if points[0][0] == 0 else None}
    if net is not None:
        result["net_loss"] = judge(stylised_input(net, photo, size).ravel())[0]
        result["matched_after"] = matched_after(points, result["net_loss"])
    print(f"(b) {result['photo']} from {init}: net {result.get('net_loss', float('nan')):.3g};"
          " L-BFGS " + ", ".join(f"{n}: {v:.3g}" for n, v in lbfgs.items())
          + f"; matched after {result.get('matched_after')}", flush=True)
    return result


def training_speed(style_path, photos_folder, steps=30, size=256, filters="16,32,64"):
    """(c) steps per second (after the first 10, which trace) and peak memory, from a
    training run in a process of its own, on size x size crops with fw of filters."""
    with tempfile.TemporaryDirectory() as out:
        model = os.path.join(out, "bench.keras")
        child = subprocess.Popen(
            [sys.executable, "fast_style_transfer.py", "train", style_path, "--photos",
             photos_folder, "--model", model, "--size", str(size), "--filters", filters,
             "--batch-size", "4", "--steps", str(steps), "--log-every", "10",
             "--preview-every", str(steps), "--checkpoint-every", str(steps)],
            cwd=ROOT, stdout=subprocess.DEVNULL)
        # this child's own peak: RUSAGE_CHILDREN would give the largest of every child so
        # far, the default run's among them
        _, status, usage = os.wait4(child.pid, 0)
        child.returncode = os.waitstatus_to_exitcode(status)
        if child.returncode:
            raise subprocess.CalledProcessError(child.returncode, child.args)
        with open(os.path.join(out, "bench.json")) as f:
            history = json.load(f)["history"]
    seconds = history[-1]["seconds"] - history[9]["seconds"]
    peak_mb = usage.ru_maxrss / 1024
    print(f"(c) {(steps - 10) / seconds:.2f} steps/s, peak {peak_mb:.0f} MB", flush=True)
    return {"steps_per_second": (steps - 10) / seconds, "peak_mb": peak_mb}


def report(results):
    """FAST.md: the machine, then (a), (b) for each model, (c) and (d) as tables."""
    m, lines = results["machine"], []
    lines += ["# Fast mode against the optimisation", "",
              (f"One run of `python benchmarks/fast_benchmark.py` on {m['cpu']}, {m['cores']} "
               f"cores, flags {' '.join(m['flags'])}, TensorFlow {m['tensorflow']}, "
               f"precision {results['precision']}, {results['date']}: the bundled models "
               f"{', '.join(e['model'] for e in results['models'])}."), "",
              "## (a) Seconds per image", "",
              f"With `{results['timed_model']}` (every bundled net has the same shape).", "",
              ("| size | stylise (one pass of fw) | one evaluation of style_transfer.py | "
               "evaluations per stylised image |"), "|---|---|---|---|"]
    for row in results["timing"]:
        lines.append(f"| {row['size'][0]}x{row['size'][1]} | {row['stylise_seconds']:.3f} | "
                     f"{row['evaluation_seconds']:.3f} | "
                     f"{row['stylise_seconds'] / row['evaluation_seconds']:.3f} |")
    whole = results.get("whole")
    if whole:
        first = results["timing"][0]
        lines += ["", (f"The default run (`python style_transfer.py PHOTO STYLE`, 20 x 20 "
                  f"evaluations at 533x400) took **{whole['default_run_seconds']:.0f} s**: "
                  f"{whole['default_run_seconds'] / first['stylise_seconds']:.0f} times one "
                  f"stylised image. As whole commands, `fast_style_transfer.py stylize` took "
                  f"{whole['stylize_command_seconds']:.1f} s (importing TensorFlow and "
                  f"loading the model included), "
                  f"{whole['default_run_seconds'] / whole['stylize_command_seconds']:.0f}x "
                  "less.")]
    photos = ", ".join(r["photo"] for r in results["models"][0]["quality"])
    lines += ["", "## (b) Loss of the net's output against L-BFGS", "",
              ("Each model under its own loss (from its record) and style image, at 400 px, "
               "float32: the net's output against style_transfer.py's generated image after "
               "each number of evaluations, from the photo and from noise; \"matches after\" "
               "interpolates on a log scale between iterates 10 evaluations apart. On photos "
               f"no model was trained on: {photos}. Hours are the steps at the clean rates of "
               "(d); the record's own wall time shared the CPU with other work."), "",
              ("| model | style image | training steps | hours (2 cores) | MB | matches L-BFGS "
               "from noise after (median) | from the photo after (median) |"),
              "|---|---|---|---|---|---|---|"]
    table = speeds_table()
    for e in results["models"]:
        hours = variant_hours({"settings": e["settings"], "step": e["training_steps"]},
                              table) if table else float("nan")
        noise = "" if e["from_noise"] is None else f"{e['from_noise']:.0f}"
        lines.append(f"| `{e['model']}` | {e['style']} | {e['training_steps']} | "
                     f"{hours:.1f} | {e['megabytes']:.1f} | {noise} | "
                     f"{e['from_photo']:.0f} |")
    for e in results["models"]:
        lines += ["", f"### `{e['model']}`", "", f"Its loss: {e['loss_settings']}."]
        lines += quality_table(e["quality"], results["evals"],
                               "From the photo (style_transfer.py's default, the chapter's "
                               "start)", "####")
        if e["quality_from_noise"]:
            lines += quality_table(e["quality_from_noise"], results["noise_evals"],
                                   "From noise (`--init noise`: Gatys et al.'s start, and "
                                   "jcjohnson/neural-style's default)", "####")
    c = results.get("training")
    if c:
        lines += ["", "## (c) Training", "",
                  (f"At --size 256, batch 4, widths {','.join(map(str, fst.FILTERS))}: "
                   f"**{c['steps_per_second']:.2f} steps/s**, peak resident memory "
                   f"**{c['peak_mb']:.0f} MB**.")]
    return "\n".join(lines) + "\n" + variants_section()


VARIANTS = os.path.join(HERE, "FAST_variants.json")
SPEEDS = os.path.join(HERE, "FAST_speeds.json")


def speeds_table():
    """FAST_speeds.json: training steps per second at each width and crop size."""
    if not os.path.exists(SPEEDS):
        return None
    with open(SPEEDS) as f:
        return json.load(f)


def variants_section():
    """FAST.md's (d): the table of training variants and their figure, when measured."""
    table = speeds_table()
    if not (os.path.exists(VARIANTS) and table):
        return ""
    with open(VARIANTS) as f:
        photos = ", ".join(r["photo"] for r in json.load(f)[0]["rows"]["content"])
    figure = variants_figure(VARIANTS, table, os.path.splitext(VARIANTS)[0] + ".png")
    return ("\n## (d) Training variants: quality per hour\n\n"
            "Each variant trained from the same seed and photos (models/gather_photos.py's "
            "39), judged as in (b) under its own loss and style, at 400 px, on photos no "
            f"model was trained on ({photos}), by `fast_benchmark.py --models M ...`; a "
            "name with _stepN is that run's model at step N. Hours are its steps at the "
            f"clean rates of FAST_speeds.json ({table['how']}); a fine-tune's (from M) "
            "are its own, after those of M.\n\n"
            + variants_report(VARIANTS, table)
            + f"\n![quality against hours of each variant]({os.path.basename(figure)})\n")


def variant_family(summary):
    """The run a variant's model belongs to: its name without _stepN."""
    name = os.path.splitext(os.path.basename(summary["model"]))[0]
    return name.split("_step")[0]


def variants_figure(path, table, output):
    """Quality against hours, one line per training run (its snapshots and its end)."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    with open(path) as f:
        summaries = json.load(f)
    runs = {}
    for v in summaries:  # the last judgement of a model counts
        runs.setdefault(variant_family(v), {})[v["step"]] = v
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2))
    for ax, key, title in ((axes[0], "from_noise", "from noise"),
                           (axes[1], "from_photo", "from the photo")):
        for family, points in runs.items():
            steps = sorted(points)
            ax.plot([variant_hours(points[n], table) for n in steps],
                    [points[n][key] for n in steps], "o-", label=family)
        ax.set_xlabel("hours of training (2 cores, clean rates)")
        ax.set_ylabel(f"matches L-BFGS {title} after N evaluations")
        ax.axhline(50 if key == "from_noise" else 25, color="grey", ls="--", lw=1)
        ax.set_title(f"{title} (median of {len(summaries[0]['rows']['content'])} photos)")
        ax.grid(alpha=0.3)
        ax.set_xlim(left=0)
        ax.set_ylim(bottom=0)
    axes[0].legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(output, dpi=90)
    plt.close(fig)
    return output


def quality_table(rows, evals, title, heading="###"):
    """(b)'s table for one start of L-BFGS, and the median photo's N."""
    lines = ["", f"{heading} {title}", "",
             "| photo | net | L-BFGS's start | " + " | ".join(f"L-BFGS {n}" for n in evals)
             + " | net matches L-BFGS after |", "|---" * (len(evals) + 4) + "|"]
    for row in rows:
        matched = row["matched_after"]
        matched = (f"more than {max(evals)} evaluations" if matched is None else
                   "0 evaluations (the photo itself scores lower)" if matched == 0
                   else f"{matched:.0f} evaluations")
        start = "" if row.get("start_loss") is None else f"{row['start_loss']:.3g}"
        lines.append(f"| {row['photo']} | {row['net_loss']:.3g} | {start} | " + " | ".join(
            f"{row['lbfgs_loss'][n]:.3g}" for n in evals) + f" | {matched} |")
    matched = [max(evals) + 1 if r["matched_after"] is None else r["matched_after"]
               for r in rows]
    median = np.median(matched)
    said = f"more than {max(evals)}" if median > max(evals) else f"{median:.0f}"
    return [*lines, "", (f"Median over {len(rows)} photos: the net matches L-BFGS after "
                         f"**{said} evaluations**.")]


def model_loss(model):
    """A trained model's record, the LossSettings it was trained under and its style
    image (found in images/ when the record's path is not here)."""
    with open(os.path.splitext(model)[0] + ".json") as f:
        trained = json.load(f)
    s = trained["settings"]
    settings = st.LossSettings(s["content_layer"], tuple(s["style_layers"]),
                               s["content_weight"], s["style_weight"], s["tv_weight"])
    style_path = os.path.join(ROOT, trained["style"])
    if not os.path.exists(style_path):
        style_path = os.path.join(ROOT, "images", os.path.basename(trained["style"]))
    return trained, settings, load_style(style_path)


def bundled_models():
    return [os.path.join(fst.MODELS_DIR, name + ".keras") for name in fst.bundled_models()]


def load_style(path):
    style = inputs.load_image(path, "style")
    style.info["path"] = path  # the curves' cache key names the style
    return style


def median_matched(rows, evals):
    """The median photo's N, counting 'never within evals' as one more than the most."""
    return float(np.median([max(evals) + 1 if r["matched_after"] is None else
                            r["matched_after"] for r in rows]))


def first_model(args):
    """(precision, path, record, loss settings, style image, VGG19, net) of --model's
    first model, for the measurements that look at one net."""
    precision = speed.resolve_precision(args.precision)
    weights_path, _ = vgg_weights.resolve_weights("imagenet")
    model = args.model[0]
    trained, settings, style = model_loss(model)
    vgg = vgg_weights.read_vgg19_h5(weights_path, st.layers_up_to(settings.layers))
    return (precision, model, trained, settings, style, vgg,
            transform_net.load_transform_net(model, precision))


def stylised_input(net, photo, size):
    """The net's output for photo at size, preprocessed as the loss takes it (float64)."""
    stylised = transform_net.stylise_pixels(net, np.asarray(photo.resize(size, Image.BICUBIC)))
    return st.preprocess_image(Image.fromarray(stylised), size).astype(np.float64)


def seen_and_unseen(args):
    """Whether more photos would help: for --model's first model, the net's loss over
    the photo's own (how much of the loss the net removes, lower is better) at 400 px,
    on photos it was trained on against photos it never saw. Equal ratios mean the net
    generalises, and what limits it is the net or its training, not the photos."""
    _, model, trained, settings, style, vgg, net = first_model(args)
    seen = sorted(inputs.find_photos(os.path.join(ROOT, trained["photos"])))[:args.seen_photos]
    ratios = {}
    for kind, photos in (("trained on", seen), ("never seen", args.photos)):
        for path in photos:
            photo = inputs.load_image(path, "photo")
            size = st.image_size(*photo.size, 400)
            judge = loss_function(vgg, settings, photo, style, size, "float32")
            own = judge(st.preprocess_image(photo, size).astype(np.float64).ravel())[0]
            net_loss = judge(stylised_input(net, photo, size).ravel())[0]
            ratios.setdefault(kind, []).append(net_loss / own)
            print(f"{kind}: {os.path.basename(path)}: net {net_loss:.3g}, the photo itself "
                  f"{own:.3g}, ratio {net_loss / own:.3f}", flush=True)
    print(f"{os.path.relpath(model, ROOT)} step {trained['step']}: the net's loss over the "
          "photo's, median: " + ", ".join(f"{kind} {np.median(r):.3f} ({len(r)} photos)"
                                          for kind, r in ratios.items()))
    return ratios


def loss_parts(args):
    """What the net's loss is made of: the weighted content, style and TV losses of its
    output on the first photo at 400 px, beside the photo's own and those of L-BFGS at
    the quality target (25 evaluations from the photo, 50 from noise), in float32."""
    precision, model, trained, settings, style, vgg, net = first_model(args)
    photo = inputs.load_image(args.photos[0], "photo")
    size = st.image_size(*photo.size, 400)
    judge = loss_function(vgg, settings, photo, style, size, "float32")

    def parts(x):
        loss, _, (content, style_part, tv) = judge(x.astype(np.float64).ravel())
        return loss, content, style_part, tv
    rows = [("the net's output", parts(stylised_input(net, photo, size))),
            ("the photo itself", parts(st.preprocess_image(photo, size)))]
    extractor = st.build_feature_extractor(vgg, settings.layers, "max", precision)
    for init, evals in (("content", 25), ("noise", 50)):
        kept = {}

        def keep(iterate, evals=evals, kept=kept):
            if iterate.evaluations == evals:
                kept["image"] = iterate.image
        st.StyleTransfer(extractor, settings, photo, [style], [1.0]).run(
            st.initial_image(init, photo, style, size, st.SEED), size, [1.0], evals // 5, 5,
            False, keep)
        start = "the photo" if init == "content" else "noise"
        rows.append((f"L-BFGS from {start}, {evals} evaluations", parts(kept["image"])))
    print(f"{os.path.relpath(model, ROOT)} step {trained['step']} on "
          f"{os.path.basename(args.photos[0])} at {size[0]}x{size[1]}:")
    print("| image | loss | content | style | TV |\n|---|---|---|---|---|")
    for name, (loss, content, style_part, tv) in rows:
        print(f"| {name} | {loss:.3g} | {content:.3g} | {style_part:.3g} | {tv:.3g} |")
    return rows


def compare(args):
    """(b) for each of args.models, from the photo and from noise, each judged under its
    own loss with its own style image (read from its record): one line per model, and
    the rows appended to --variants (a JSON list) for FAST.md's table of variants."""
    precision = speed.resolve_precision(args.precision)
    weights_path, _ = vgg_weights.resolve_weights("imagenet")
    cache, summaries = CurveCache(args.cache), []
    for model in args.models:
        trained, settings, style = model_loss(model)
        s = trained["settings"]
        vgg = vgg_weights.read_vgg19_h5(weights_path, st.layers_up_to(settings.layers))
        net = transform_net.load_transform_net(model, precision)
        rows = {init: [quality(net, vgg, settings, p, style, precision, evals, cache, init)
                       for p in args.photos]
                for init, evals in (("content", args.evals), ("noise", args.noise_evals))}
        summary = {"model": os.path.relpath(model, ROOT), "step": trained["step"],
                   "style": os.path.basename(trained["style"]),
                   "training_seconds": trained.get("training_seconds"),
                   "settings": {k: s.get(k) for k in TRAINING_SETTINGS},
                   "from_photo": median_matched(rows["content"], args.evals),
                   "from_noise": median_matched(rows["noise"], args.noise_evals),
                   "rows": rows, "evals": args.evals, "noise_evals": args.noise_evals,
                   "machine": machine(), "date": time.strftime("%Y-%m-%d")}
        summaries.append(summary)
        print(f"{summary['model']} step {summary['step']}: matches L-BFGS from the photo "
              f"after {summary['from_photo']:.0f}, from noise after "
              f"{summary['from_noise']:.0f} evaluations (medians)", flush=True)
        if args.variants:
            done = []
            if os.path.exists(args.variants):
                with open(args.variants) as f:
                    done = json.load(f)
            with open(args.variants + ".tmp", "w") as f:
                json.dump([*done, summary], f, indent=1)
            os.replace(args.variants + ".tmp", args.variants)
    return summaries


def speeds(args):
    """Steps per second of each crop size and width the variants train with, one
    process each, for the hours of the table of variants (the variants' own records
    hold wall times of a CPU shared with other work)."""
    table = {}
    for filters in ("16,32,64", "32,64,128"):
        for size in (128, 256):
            table[f"{filters}@{size}"] = training_speed(SPEED_STYLE, args.photos_folder, 40,
                                                        size, filters)["steps_per_second"]
    table["machine"] = machine()
    table["how"] = (f"one 40-step run each (steps 10-40 timed), batch 4, starry_night, "
                    f"{speed.resolve_precision(args.precision)}, on {table['machine']['cpu']} "
                    f"with nothing else running, {time.strftime('%Y-%m-%d')}: "
                    "`fast_benchmark.py --speeds`")
    with open(SPEEDS, "w") as f:
        json.dump(table, f, indent=1)
    return table


def variant_hours(summary, table):
    """Hours a variant's steps take at the measured clean rates."""
    s = summary["settings"]
    filters = ",".join(map(str, s["filters"]))
    small = min(s.get("small_steps") or 0, summary["step"])
    return (small / table[f"{filters}@{s.get('small_size') or 128}"]
            + (summary["step"] - small) / table[f"{filters}@{s['size']}"]) / 3600


def variants_report(path, table):
    """FAST.md's table of variants, from the --models runs kept in path."""
    with open(path) as f:
        summaries = json.load(f)
    lines = [("| variant | style | steps | hours (2 cores) | matches L-BFGS from noise after "
              "(median) | from the photo after (median) |"), "|---|---|---|---|---|---|"]
    for v in summaries:
        s = v["settings"]
        what = [f"widths {','.join(map(str, s['filters']))}",
                f"{s['small_steps']} steps at {s['small_size']} px, then {s['size']}"
                if s.get("small_steps") else f"{s['size']} px crops"]
        what += [f"colour jitter {s['color_jitter']}"] if s.get("color_jitter") else []
        what += ["no random scales or flips"] if s.get("augment") is False else []
        what += [f"from {os.path.basename(s['init_model'])}"] if s.get("init_model") else []
        # the flags a variant may change besides those above, named when not the default
        what += [f"{flag} {s[key]:g}" for key, flag, default in (
            ("content_weight", "content weight", fst.CONTENT_WEIGHT),
            ("learning_rate", "learning rate", fst.LEARNING_RATE))
            if s.get(key, default) != default]
        name = os.path.splitext(os.path.basename(v["model"]))[0]
        style = os.path.splitext(v.get("style", "starry_night.jpg"))[0]
        lines.append(f"| {name}: {'; '.join(what)} | {style} | {v['step']} | "
                     f"{variant_hours(v, table):.2f} | {v['from_noise']:.0f} | "
                     f"{v['from_photo']:.0f} |")
    return "\n".join(lines) + "\n"


def measure(args):
    """(a) with the first model, (b) for each, (c): the results FAST.md reports."""
    precision = speed.resolve_precision(args.precision)
    weights_path, _ = vgg_weights.resolve_weights("imagenet")
    cache = CurveCache(args.cache)
    results = {"machine": machine(), "precision": precision, "date": time.strftime("%Y-%m-%d"),
               "evals": args.evals, "noise_evals": args.noise_evals, "models": []}
    for model in args.model:
        trained, settings, style = model_loss(model)
        s = trained["settings"]
        vgg = vgg_weights.read_vgg19_h5(weights_path, st.layers_up_to(
            st.LossSettings().layers + settings.layers))
        if args.curves_only:
            for init, evals in [("content", args.evals), ("noise", args.noise_evals)]:
                for p in args.photos if init == "content" else args.photos[:args.noise_photos]:
                    quality(None, vgg, settings, p, style, precision, evals, cache, init)
            continue
        net = transform_net.load_transform_net(model, precision)
        if "timing" not in results:  # every bundled net has the same shape: one is timed
            photo = inputs.load_image(args.photos[0], "photo")
            results["timing"] = timing(net, vgg, photo, style, precision, args.repeats)
            results["timed_model"] = os.path.relpath(model, ROOT)
            if args.default_run:
                results["whole"] = whole_commands(model, photo, style.info["path"])
        entry = {
            "model": os.path.relpath(model, ROOT), "style": os.path.basename(trained["style"]),
            "training_steps": trained["step"], "training_seconds": trained.get(
                "training_seconds"), "megabytes": os.path.getsize(model) / 1e6,
            "settings": {k: s.get(k) for k in TRAINING_SETTINGS},
            "loss_settings": (
                f"content {settings.content_layer} x {settings.content_weight:g}, style "
                f"x {settings.style_weight:g}, TV x {settings.tv_weight:g}"
                + (f"; fw trained on {s['size']} px crops counted as photos "
                   f"{s['loss_height']} px high" if s.get("loss_height") else "")),
            "quality": [quality(net, vgg, settings, p, style, precision, args.evals, cache)
                        for p in args.photos],
            "quality_from_noise": [
                quality(net, vgg, settings, p, style, precision, args.noise_evals, cache,
                        "noise") for p in args.photos[:args.noise_photos]]
            if args.noise_evals else []}
        entry["from_photo"] = median_matched(entry["quality"], args.evals)
        entry["from_noise"] = (median_matched(entry["quality_from_noise"], args.noise_evals)
                               if args.noise_evals else None)
        results["models"].append(entry)
    if args.curves_only or not results["models"]:
        return None
    if args.photos_folder:
        results["training"] = training_speed(SPEED_STYLE, args.photos_folder)
    return results


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--model", nargs="+", default=bundled_models(),
                   help="the models to report on (default: every bundled one); each is "
                        "judged under its own loss and style image, from its record")
    p.add_argument("--photos", nargs="+", default=default_photos(),
                   help="photos the model never saw; the first also times (a)")
    p.add_argument("--photos-folder", default=os.path.join(PHOTOS, "train"),
                   help="training photos for (c); '' to skip (c)")
    p.add_argument("--evals", type=lambda t: [int(v) for v in t.split(",")], default=EVALS)
    p.add_argument("--noise-evals", type=lambda t: [int(v) for v in t.split(",") if v],
                   default=NOISE_EVALS, help="evaluations of L-BFGS from noise, Gatys et "
                   "al.'s start ('' to skip)")
    p.add_argument("--noise-photos", type=int, default=None,
                   help="L-BFGS from noise on only the first N photos (it is the long part)")
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--precision", default="auto")
    p.add_argument("--default-run", action=argparse.BooleanOptionalAction, default=True)
    p.add_argument("--output", default=os.path.join(HERE, "FAST.md"))
    p.add_argument("--cache", default=os.path.join(HERE, "FAST_lbfgs.json"),
                   help="L-BFGS curves kept between runs; '' to keep none")
    p.add_argument("--curves-only", action="store_true",
                   help="only run L-BFGS for (b) into --cache (the model's record gives "
                        "the loss): the long part, which a training run may share")
    p.add_argument("--models", nargs="+", default=None,
                   help="only (b), from the photo and from noise, for each of these models "
                        "under its own loss and style (from its record): to compare models "
                        "or checkpoints (with cached curves it takes seconds a photo)")
    p.add_argument("--variants", default=VARIANTS,
                   help="with --models: the JSON list the results are appended to")
    p.add_argument("--speeds", action="store_true",
                   help="only measure training steps/s of each crop size and width "
                        "(FAST_speeds.json), for the hours in the table of variants")
    p.add_argument("--seen-photos", type=int, default=0,
                   help="only compare --model's loss on N of its training photos with its "
                        "loss on --photos, each over the photo's own loss: does it generalise")
    p.add_argument("--parts", action="store_true",
                   help="only print what --model's loss on the first photo is made of, "
                        "beside the photo's and L-BFGS's at the quality target")
    p.add_argument("--variants-table", action="store_true",
                   help="print the table of variants from --variants and FAST_speeds.json, "
                        "and put it in --output in place of its (d)")
    args = p.parse_args(argv)
    if args.seen_photos:
        seen_and_unseen(args)
        return
    if args.parts:
        loss_parts(args)
        return
    if args.speeds:
        print(speeds(args))
        return
    if args.variants_table:
        section = variants_section()
        print(section)
        replace_variants_section(args.output, section)
        return
    if args.models:
        compare(args)
        return
    results = measure(args)
    if results is None:
        return
    write_report(report(results), results, args.output)


def replace_variants_section(output, section):
    """FAST.md with its (d) replaced by section (or section added), the rest as it was:
    the table of variants grows with each judged model, between whole runs."""
    text = ""
    if os.path.exists(output):
        with open(output) as f:
            text = f.read()
    start = text.find("\n## (d) ")
    if start >= 0:
        end = text.find("\n## ", start + 1)
        text = text[:start] + section + (text[end:] if end >= 0 else "")
    else:
        text = text.rstrip("\n") + "\n" + section
    with open(output, "w") as f:
        f.write(text)


def write_report(text, results, output):
    """The report printed and written to output (Markdown), its figures beside it (.json)."""
    print(text)
    with open(output, "w") as f:
        f.write(text)
    with open(os.path.splitext(output)[0] + ".json", "w") as f:
        json.dump(results, f, indent=1)


if __name__ == "__main__":
    main()
