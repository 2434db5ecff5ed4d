"""Side-by-side benchmark: the chapter's formulation against style_transfer.py.

    python benchmarks/benchmark.py                       # heights 200, 400, 800
    python benchmarks/benchmark.py --heights 200 --chapter-evals 100   # a few minutes

On the same images and weights, in one run, it measures
  - seconds per evaluation (median), the chapter's batch of three against the script's
    single generated image, in alternating processes so machine drift hits both;
  - peak resident memory of each (each configuration in a process of its own);
  - the loss after equal numbers of evaluations, for the chapter (L-BFGS restarted
    every 20 evaluations), the script with the same restarts, the script's continuous
    L-BFGS and coarse-to-fine, in the script's default precision and, where that is
    bfloat16, continuous L-BFGS in float32 as well; a bfloat16 run's losses are its
    images' float32 losses, evaluated every 10 evaluations off the clock;
  - the time each takes to reach the chapter's final loss (after --chapter-evals);
  - the effective GFLOP/s of an evaluation next to numpy's float32 matmul.
It prints a Markdown report, headed by the CPU's model and flags and the kernels
TensorFlow runs on it, and writes it to --output (the JSON of every worker beside it).
benchmarks/RESULTS.md keeps one section per kind of CPU measured, gathered from such
reports by hand.

The script's runs go through style_transfer.py's own loop (StyleTransfer.run) with an
Evaluator that also measures; the chapter's through its L-BFGS (st.optimise, restarts).
"""
import argparse
import contextlib
import functools
import json
import os
import platform
import resource
import subprocess
import sys
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
SHARED = os.path.join(ROOT, "..", "shared", "images")
sys.path.insert(0, ROOT)
sys.path.insert(0, HERE)

import chapter  # noqa: E402
import style_transfer as st  # noqa: E402
from nst import cli, inputs, runtime, speed, vgg_weights  # noqa: E402

tf, _ = runtime.load_tensorflow()

CHAPTER_RUN = "chapter (batch of 3, restarts)"


def default_images():
    shared = (os.path.join(SHARED, "tubingen.jpg"), os.path.join(SHARED, "starry_night.jpg"))
    if all(os.path.exists(p) for p in shared):
        return shared
    return (os.path.join(ROOT, "images", "grace_hopper.jpg"),
            os.path.join(ROOT, "images", "swirls.png"))


def flops_per_evaluation(width, height, layers):
    """Multiply-adds x 2 of VGG19's convolutions up to the deepest layer, forward and the
    backward pass to the input (about the same again)."""
    total, scale = 0, 1
    for name, cin, cout in vgg_weights.VGG19_CONV_LAYERS[:len(st.layers_up_to(layers))]:
        scale = 2 ** (int(name[5]) - 1)
        total += 2 * 9 * cin * cout * (height // scale) * (width // scale)
    return 2 * total


def numpy_matmul_gflops(n=2048, repeats=5):
    a = np.random.default_rng(0).standard_normal((n, n), dtype=np.float32)
    b = np.random.default_rng(1).standard_normal((n, n), dtype=np.float32)
    a @ b
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        a @ b
        times.append(time.perf_counter() - start)
    return 2 * n ** 3 / float(np.median(times)) / 1e9


def peak_rss_mb():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


# ---------------------------------------------------------------- worker: one configuration
class Reached(Exception):
    """A run has done the evaluations it was given, or reached the loss it was to stop at."""


class Measurement:
    """A run's clock and its log, one (seconds, loss) per evaluation. Seconds count from
    the last restart of the clock, less the float32 checks of a bfloat16 run (check, every
    10th evaluation), which are kept off it."""

    def __init__(self, max_evals, stop_loss=None):
        self.max_evals, self.stop_loss = max_evals, stop_loss
        self.check = None      # bfloat16 runs: the float32 vector_loss_and_grads
        self.log = []          # (seconds since the optimisation started, loss)
        self.checks = []       # bfloat16 runs: (evaluations, seconds, float32 loss)
        self.coarse_seconds = 0.0  # coarse-to-fine: seconds before the full-size scale
        self.restart_clock()

    def restart_clock(self):
        self.start, self.paused = time.perf_counter(), 0.0

    def seconds(self):
        return time.perf_counter() - self.start - self.paused

    def __call__(self, x, loss):
        """Log an evaluation at x; raise Reached once the run has done its work."""
        self.log.append((self.seconds(), loss))
        checked = self.check is not None and (len(self.log) % 10 == 0 or len(self.log) == 1)
        if checked:
            began = time.perf_counter()
            loss = self.check(x)[0]  # the stopping test below uses the float32 loss too
            self.checks.append((len(self.log), self.log[-1][0], loss))
            self.paused += time.perf_counter() - began
        if self.stop_loss is not None and loss <= self.stop_loss \
                and (self.check is None or checked):
            raise Reached()
        if len(self.log) >= self.max_evals:
            raise Reached()


class Measured(st.Evaluator):
    """An st.Evaluator whose every evaluation is also measured."""

    def __init__(self, measurement, vector_loss_and_grads):
        super().__init__(vector_loss_and_grads)
        self.measurement = measurement

    def __call__(self, x):
        loss, grads = super().__call__(x)
        self.measurement(x, loss)
        return loss, grads


class Budgeted(st.Evaluator):
    """An st.Evaluator that ends the run (Reached) instead of going past its budget."""

    def __init__(self, budget, vector_loss_and_grads):
        super().__init__(vector_loss_and_grads)
        self.budget = budget

    def __call__(self, x):
        if self.evaluations >= self.budget:
            raise Reached()
        return super().__call__(x)


def ignore(*args):
    pass


def time_evaluations(measurement, vector_loss_and_grads, x):
    """Evaluate at x until the measurement has its evaluations; the first evaluation,
    which traces the graph, before the clock starts."""
    vector_loss_and_grads(x)
    measurement.restart_clock()
    with contextlib.suppress(Reached):
        for _ in range(measurement.max_evals):
            measurement(x, vector_loss_and_grads(x)[0])


def chapter_vector_loss_and_grads(weights, target, style, size, settings):
    """The chapter's loss and gradient (a batch of three through VGG19) on float64 vectors."""
    fetch = chapter.chapter_loss_and_grads(
        weights, st.preprocess_image(target, size), st.preprocess_image(style, size),
        content_weight=settings.content_weight, style_weight=settings.style_weight,
        total_variation_weight=settings.tv_weight, content_layer=settings.content_layer,
        style_layers=settings.style_layers)
    shape = (1, size[1], size[0], 3)

    def vector_loss_and_grads(x):
        loss, grads = fetch(tf.constant(x.reshape(shape), tf.float32))
        return float(loss), grads.numpy().ravel().astype(np.float64), None
    return vector_loss_and_grads


def measure_chapter(job, measurement, vector_loss_and_grads, x0):
    if job["mode"] == "timing":
        return time_evaluations(measurement, vector_loss_and_grads, x0)
    vector_loss_and_grads(x0)  # traced before the clock starts, as the script's is
    measurement.restart_clock()
    with contextlib.suppress(Reached):
        st.optimise(Measured(measurement, vector_loss_and_grads), x0, 10 ** 6, 20, True,
                    ignore)


def measure_script(job, measurement, problem, size, check_extractor):
    """The script's run through its own loop: coarse scales first, each with its own
    budget of evaluations and not logged, then the full size, measured. problem is
    (extractor, settings, target, styles, blend), as StyleTransfer takes them."""
    scales = job.get("scales", [1.0])
    start = st.preprocess_image(problem[2], st.scaled_size(size, scales[0]))
    if job["mode"] == "timing":
        return time_evaluations(measurement, st.build_vector_loss_and_grads(*problem, size),
                                start.astype(np.float64).ravel())
    measurement.restart_clock()
    for scale in scales[:-1]:
        coarse = st.StyleTransfer(*problem, evaluator=functools.partial(
            Budgeted, job["coarse_evals"]))
        with contextlib.suppress(Reached):
            coarse.run(start, size, [scale], 10 ** 6, job["coarse_evals"], False, ignore)
        start = coarse.image
    if check_extractor is not None:
        measurement.check = st.build_vector_loss_and_grads(check_extractor, *problem[1:], size)
        measurement.check(st.preprocess_image(problem[2], size))  # traced now

    def on_iteration(iterate):
        if iterate.iteration > 0:
            return
        if len(scales) == 1:  # the start evaluated, so traced: the clock starts now
            measurement.restart_clock()
        else:  # coarse-to-fine: the clock runs on from the coarse scales
            measurement.coarse_seconds = measurement.seconds()

    fine = st.StyleTransfer(*problem, evaluator=functools.partial(Measured, measurement))
    with contextlib.suppress(Reached):
        fine.run(start, size, scales[-1:], 10 ** 6, 20, job["restarts"], on_iteration)


def worker(job):
    """One configuration in this process; prints one JSON line of results."""
    target = inputs.load_image(job["target"], "target")
    style = inputs.load_image(job["style"], "style")
    size = st.image_size(*target.size, job["height"])
    settings = st.LossSettings()
    runtime_mb = peak_rss_mb()  # TensorFlow imported
    weights = vgg_weights.read_vgg19_h5(job["weights"], st.layers_up_to(settings.layers))
    measurement = Measurement(job["max_evals"], job.get("stop_loss"))
    setup = measurement.start
    if job["kind"] == "chapter":
        chapter_loss = chapter_vector_loss_and_grads(weights, target, style, size, settings)
        del weights  # in the model now, as in a real run
        x0 = st.preprocess_image(target, size).astype(np.float64).ravel()
        measure_chapter(job, measurement, chapter_loss, x0)
    else:
        precision = job.get("precision", "float32")
        extractor = st.build_feature_extractor(weights, settings.layers, "max", precision)
        check_extractor = (st.build_feature_extractor(weights, settings.layers)
                           if precision != "float32" and job["mode"] == "optimise" else None)
        del weights  # in the model now, as in a real run
        measure_script(job, measurement, (extractor, settings, target, [style], [1.0]), size,
                       check_extractor)
        job["coarse_seconds"] = measurement.coarse_seconds
    log = measurement.log
    times = [b[0] - a[0] for a, b in zip([(0.0, None), *log], log, strict=False)]
    print(json.dumps({**job, "size": list(size), "log": log, "checks": measurement.checks,
                      "seconds_per_eval": float(np.median(times[1:] if len(times) > 2 else times)),
                      "setup_seconds": measurement.start - setup,
                      "runtime_rss_mb": runtime_mb, "peak_rss_mb": peak_rss_mb()}))


def run_job(job):
    result = subprocess.run([sys.executable, __file__, "--worker", json.dumps(job)],
                            capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise RuntimeError(f"worker failed: {job}\n{result.stderr[-3000:]}")
    return json.loads(result.stdout.strip().splitlines()[-1])


# ---------------------------------------------------------------- measuring: every worker
def script_kinds(precision):
    """The script's timing configurations: its precision, and float32 beside bfloat16."""
    kinds = {"script": precision}
    if precision != "float32":
        kinds["script float32"] = "float32"
    return kinds


def measure(args, base, precision, matmul):
    """Every worker's numbers: per height, timing and memory, then (up to
    --chapter-evals-max-height) the optimisation runs. Prints rows as it goes."""
    script = script_kinds(precision)
    results = {"heights": [], "runtime": [], "raw": []}
    for height in [int(h) for h in args.heights.split(",")]:
        print(f"height {height}: timing", file=sys.stderr, flush=True)
        entry = measure_timing(args, base, height, script, results)
        print(timing_row(entry, script, matmul), memory_row(entry, script), sep="\n",
              file=sys.stderr, flush=True)
        results["heights"].append(entry)
        if height > args.chapter_evals_max_height:
            continue
        print(f"height {height}: optimisation runs", file=sys.stderr, flush=True)
        entry["runs"] = measure_runs(args, base, height, precision, results["raw"])
        for row in quality_rows(args, entry):
            print(row, file=sys.stderr, flush=True)
    return results


def measure_timing(args, base, height, script, results):
    """Seconds per evaluation and peak memory at one height, the kinds taking turns."""
    kinds = ["chapter", *script]
    timings, memory = {kind: [] for kind in kinds}, {kind: [] for kind in kinds}
    for _ in range(args.timing_rounds):  # taking turns, so drift hits all alike
        for kind in kinds:
            r = run_job({**base, "kind": kind.split()[0], "mode": "timing",
                         "height": height, "max_evals": args.timing_evals,
                         "precision": script.get(kind, "float32")})
            timings[kind].append(r["seconds_per_eval"])
            memory[kind].append(r["peak_rss_mb"])
            results["runtime"].append(r["runtime_rss_mb"])
            results["raw"].append(r)
    return {"height": height, "size": r["size"],
            "seconds": {kind: float(np.median(timings[kind])) for kind in kinds},
            "peak": {kind: max(memory[kind]) for kind in kinds},
            # what a process holds once TensorFlow is imported: the median so far
            "base_mb": float(np.median(results["runtime"])), "runs": None}


def measure_runs(args, base, height, precision, raw):
    """The optimisation runs at one height: the chapter's, then the script's."""
    chapter_run = run_job({**base, "kind": "chapter", "mode": "optimise", "height": height,
                           "max_evals": args.chapter_evals})
    raw.append(chapter_run)
    goal = chapter_run["log"][-1][1]
    stop = goal * (1 + 1e-3) if height > args.full_runs_max_height else None
    runs = {CHAPTER_RUN: chapter_run}
    variants = [(f"script, continuous L-BFGS, {precision}", {"restarts": False}),
                (f"script, coarse-to-fine 0.5,1, {precision}",
                 {"restarts": False, "scales": [0.5, 1.0], "coarse_evals": args.coarse_evals})]
    if precision != "float32":
        variants.insert(1, ("script, continuous L-BFGS, float32",
                            {"restarts": False, "precision": "float32"}))
    if height <= args.full_runs_max_height:
        variants.insert(0, (f"script, restarts, {precision}", {"restarts": True}))
    for name, extra in variants:
        # equal work first: the full budget, so the loss after N evaluations is known
        runs[name] = run_job({**base, "kind": "script", "mode": "optimise", "height": height,
                              "max_evals": args.chapter_evals, "stop_loss": stop,
                              "precision": precision, **extra})
        raw.append(runs[name])
    return runs


# ---------------------------------------------------------------- the report: tables
def float32_log(run):
    """[(evaluations, seconds, float32 loss)]: every evaluation of a float32 run; the
    first and every 10th of a bfloat16 run, re-evaluated in float32."""
    if run.get("precision", "float32") == "float32":
        return [(i + 1, seconds, loss) for i, (seconds, loss) in enumerate(run["log"])]
    return run["checks"]


def loss_after(run, evals):
    return next((loss for n, _, loss in float32_log(run) if n == evals), None)


def time_to_reach(run, loss, tolerance=1e-3):
    for _, seconds, value in float32_log(run):
        if value <= loss * (1 + tolerance):
            return seconds
    return None


def fmt(value, spec=".3g", none="–"):
    return none if value is None else format(value, spec)


# The CPU flags that decide which kernels TensorFlow and oneDNN run.
SIMD_FLAGS = ("avx", "avx2", "fma", "avx512f", "avx512_vnni", "avx512_bf16", "avx_vnni",
              "amx_tile", "amx_bf16")
# Environment variables that make this CPU take another CPU's code path.
EMULATION = ("TF_ENABLE_ONEDNN_OPTS", "ONEDNN_MAX_CPU_ISA")


def cpu_info(path="/proc/cpuinfo"):
    """{model, family, model_number, flags}: the first processor's, from /proc/cpuinfo."""
    fields = {"model name": "model", "cpu family": "family", "model": "model_number",
              "flags": "flags"}
    info = {"model": platform.processor() or platform.machine(), "flags": []}
    try:
        with open(path) as f:
            for line in f:
                key, _, value = (part.strip() for part in line.partition(":"))
                if not key and info.get("family"):
                    break  # the end of the first processor
                if key in fields:
                    info[fields[key]] = value.split() if key == "flags" else value
    except OSError:
        pass
    return info


def kernels():
    """Which kernels TensorFlow runs here, and any variable set to emulate another CPU."""
    emulated = [f"{v}={os.environ[v]}" for v in EMULATION if v in os.environ]
    return ("oneDNN" if speed.onednn_enabled() else "TensorFlow's Eigen") + " kernels" + (
        f" (emulation: {', '.join(emulated)})" if emulated else "")


def machine():
    info = cpu_info()
    family = (f" (family {info['family']} model {info['model_number']})"
              if "family" in info and "model_number" in info else "")
    flags = " ".join(f for f in SIMD_FLAGS if f in info["flags"]) or "none of interest"
    return (f"{info['model']}{family}, {os.cpu_count()} cores, flags {flags}; "
            f"{kernels()}; TensorFlow {tf.__version__}, numpy {np.__version__}, "
            f"Python {platform.python_version()}")


def checkpoints(args):
    return [n for n in (20, 100, 200, 400) if n <= args.chapter_evals]


def timing_row(entry, script, matmul):
    (width, height), seconds = entry["size"], entry["seconds"]
    gflop = flops_per_evaluation(width, height, st.LossSettings().layers) / 1e9
    return f"| {width}x{height} | {seconds['chapter']:.2f} | " + " | ".join(
        f"{seconds[k]:.2f} | {seconds['chapter'] / seconds[k]:.2f}x | "
        f"{gflop / seconds[k]:.0f} ({100 * gflop / seconds[k] / matmul:.0f}% of matmul)"
        for k in script) + " |"


def memory_row(entry, script):
    (width, height), peak, base_mb = entry["size"], entry["peak"], entry["base_mb"]
    return f"| {width}x{height} | {peak['chapter']:.0f} | " + " | ".join(
        f"{peak[k]:.0f} ({100 * peak[k] / peak['chapter']:.0f}%)" for k in script) \
        + f" | {peak['chapter'] - base_mb:.0f} | " + " | ".join(
        f"{peak[k] - base_mb:.0f} "
        f"({100 * (peak[k] - base_mb) / (peak['chapter'] - base_mb):.0f}%)"
        for k in script) + " |"


def quality_rows(args, entry):
    """One table row per optimisation run at one height."""
    (width, height), runs = entry["size"], entry["runs"]
    goal = runs[CHAPTER_RUN]["log"][-1][1]
    chapter_time = runs[CHAPTER_RUN]["log"][-1][0]
    rows = []
    for name, r in runs.items():
        reach = time_to_reach(r, goal)
        if reach is not None:
            reach += r.get("coarse_seconds", 0.0)
        rows.append(f"| {width}x{height} | {name} | {fmt(loss_after(r, 1))} | "
                    + " | ".join(fmt(loss_after(r, n)) for n in checkpoints(args))
                    + f" | {fmt(reach, '.0f')} s | ".replace("– s", "–")
                    + (f"{chapter_time / reach:.1f}x |" if reach else "not reached |"))
    return rows


def start_lines(args, entry, precision):
    """The start losses of one height's runs, and bfloat16 against float32."""
    (width, height), runs = entry["size"], entry["runs"]
    continuous = f"script, continuous L-BFGS, {precision}"
    float32_run = runs["script, continuous L-BFGS, float32" if precision != "float32"
                       else continuous]
    start_script = float32_run["log"][0][1]
    start_chapter = runs[CHAPTER_RUN]["log"][0][1]
    difference = abs(start_script - start_chapter) / start_chapter
    lines = [(f"Start loss at {width}x{height}: script (float32) {start_script:.6g}, "
              f"chapter {start_chapter:.6g}, relative difference {difference:.1e}.  ")]
    if precision != "float32":
        ours = runs[continuous]
        lines.append(
            f"{precision} against float32, continuous L-BFGS at {width}x{height}, "
            "loss after equal evaluations: " + ", ".join(
                f"{n}: {100 * (loss_after(ours, n) / loss_after(float32_run, n) - 1):+.2f}%"
                for n in checkpoints(args)
                if loss_after(ours, n) is not None
                and loss_after(float32_run, n) is not None) + ".  ")
    return lines


def timing_section(results, precision, matmul):
    script, runtime = script_kinds(precision), results["runtime"]
    return [
        "## Seconds per evaluation and peak memory", "",
        ("Seconds: median over alternating processes. Memory: peak resident memory "
         "of the process, then the same less the "
         f"{np.median(runtime):.0f} MB a process holds once TensorFlow is imported "
         "(the same for all, whatever the image). The script runs VGG19 in "
         f"{precision} by default on this machine"
         + (" (native here), float32 on request." if precision != "float32" else ".")
         + " GFLOP/s counts the float32 work of an evaluation whatever the precision."),
        "", "| size | chapter s/eval | " + " | ".join(
            f"script ({p}) s/eval | speed-up | GFLOP/s" for p in script.values()) + " |",
        "|---|---|" + "---|---|---|" * len(script),
        *(timing_row(entry, script, matmul) for entry in results["heights"]), "",
        "| size | chapter peak MB | " + " | ".join(
            f"script ({p}) peak MB" for p in script.values())
        + " | chapter MB above TF | " + " | ".join(
            f"script ({p}) MB above TF" for p in script.values()) + " |",
        "|---|---|" + "---|" * 2 * len(script) + "---|",
        *(memory_row(entry, script) for entry in results["heights"]), ""]


def memory_slopes(results, precision):
    """MB per megapixel of each kind, between the lowest and the highest height."""
    by_height = {entry["height"]: entry for entry in sorted(
        results["heights"], key=lambda entry: entry["height"])}
    if len(by_height) < 2:
        return []
    low, high = by_height[min(by_height)], by_height[max(by_height)]
    low_mp, high_mp = (entry["size"][0] * entry["size"][1] / 1e6 for entry in (low, high))
    script, lines = script_kinds(precision), []
    for kind in ["chapter", *script]:
        slope = (high["peak"][kind] - low["peak"][kind]) / (high_mp - low_mp)
        name = f"script ({script[kind]})" if kind in script else kind
        lines.append(f"{name}: {slope:.0f} MB per megapixel "
                     f"(between {low['height']} and {high['height']} px high).  ")
    return [*lines, ""]


def quality_section(args, results, precision):
    measured = [entry for entry in results["heights"] if entry["runs"]]
    if not measured:
        return []
    return [
        "## Loss for the same work, and time to the chapter's final loss", "",
        (f"The chapter's final loss is its loss after {args.chapter_evals} "
         f"evaluations ({args.chapter_evals // 20} restarts of 20); reached means "
         "within 0.1% of it. Time counts optimisation only (coarse-to-fine "
         f"includes its {args.coarse_evals} evaluations at half size; its columns "
         "count full-size evaluations). Above "
         f"{args.full_runs_max_height} px high the script's runs stop once they "
         "reach the chapter's final loss (– after that) and the script-with-"
         "restarts run is left out, to save time. A bfloat16 run's losses are the "
         "float32 losses of its images, evaluated at its first and every 10th "
         "evaluation off the clock, so its time to reach counts in steps of 10 "
         "evaluations.  "),
        *(line for entry in measured for line in start_lines(args, entry, precision)), "",
        "| size | run | start loss | "
        + " | ".join(f"after {n}" for n in checkpoints(args))
        + " | time to chapter's final loss | faster |",
        "|---|---|---|" + "---|" * len(checkpoints(args)) + "---|---|",
        *(row for entry in measured for row in quality_rows(args, entry)), ""]


def report(args, command, results, weights_line, precision, matmul):
    """The Markdown report of the measurements: a header and three tables."""
    header = ["# Benchmark: the chapter's formulation vs style_transfer.py", "",
              f"Machine: {machine()}.  ",
              (f"Images: `{os.path.relpath(args.target, ROOT)}` + "
               f"`{os.path.relpath(args.style, ROOT)}`; {weights_line}.  "),
              f"numpy float32 matmul (2048x2048) on this machine: {matmul:.0f} GFLOP/s.  ",
              f"Command: `python benchmarks/benchmark.py {' '.join(command)}`".rstrip(),
              ""]
    return "\n".join([*header, *timing_section(results, precision, matmul),
                      *memory_slopes(results, precision),
                      *quality_section(args, results, precision)])


# ---------------------------------------------------------------- command line
def build_parser():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=cli.HelpFormatter)
    p.add_argument("--heights", default="200,400,800", help="comma-separated image heights")
    p.add_argument("--target", default=default_images()[0])
    p.add_argument("--style", default=default_images()[1])
    p.add_argument("--weights", default="imagenet", help="'imagenet' or a VGG19 .h5")
    p.add_argument("--chapter-evals", type=int, default=400,
                   help="evaluations of the chapter's run (20 x 20 as in the chapter)")
    p.add_argument("--chapter-evals-max-height", type=int, default=400,
                   help="above this height only timing and memory are measured")
    p.add_argument("--timing-evals", type=int, default=5, help="evaluations per timing process")
    p.add_argument("--timing-rounds", type=int, default=3,
                   help="alternating rounds of timing processes")
    p.add_argument("--coarse-evals", type=int, default=100,
                   help="evaluations at half size before coarse-to-fine goes to full size")
    p.add_argument("--full-runs-max-height", type=int, default=200,
                   help="above this height the script's runs stop at the chapter's final "
                        "loss, and the script-with-restarts run is left out")
    p.add_argument("--precision", default="auto", choices=["auto", "float32", "bfloat16"],
                   help="the script's precision (as style_transfer.py --precision)")
    p.add_argument("--output", default=os.path.join(HERE, "last-run.md"),
                   help="the report; RESULTS.md gathers reports by kind of CPU")
    p.add_argument("--worker", help=argparse.SUPPRESS)
    return p


def main(argv=None):
    args = build_parser().parse_args(argv)
    if args.worker:
        return worker(json.loads(args.worker))
    weights, weights_line = vgg_weights.resolve_weights(args.weights)
    precision = speed.resolve_precision(args.precision)
    matmul = numpy_matmul_gflops()
    base = {"target": args.target, "style": args.style, "weights": weights}
    results = measure(args, base, precision, matmul)
    text = report(args, sys.argv[1:] if argv is None else argv, results, weights_line,
                  precision, matmul)
    print(text)
    with open(args.output, "w") as f:
        f.write(text)
    with open(os.path.splitext(args.output)[0] + ".json", "w") as f:
        # the machine, then every worker's numbers, per-evaluation losses included
        json.dump({"machine": {**cpu_info(), "kernels": kernels(), "cores": os.cpu_count()},
                   "workers": results["raw"]}, f)


if __name__ == "__main__":
    sys.exit(main())
