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
It prints a Markdown table and writes it to benchmarks/RESULTS.md.
"""
import argparse
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


def default_images():
    shared = (os.path.join(SHARED, "tubingen.jpg"), os.path.join(SHARED, "starry_night.jpg"))
    if all(os.path.exists(p) for p in shared):
        return shared
    return (os.path.join(ROOT, "images", "grace_hopper.jpg"),
            os.path.join(ROOT, "images", "swirls.png"))


def flops_per_evaluation(width, height, layers):
    """Multiply-adds x 2 of VGG19's convolutions up to the deepest layer, forward and the
    backward pass to the input (about the same again)."""
    import style_transfer as st
    total, scale = 0, 1
    for name, cin, cout in st.VGG19_CONV_LAYERS[:len(st.layers_up_to(layers))]:
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


# ----------------------------------------------------------------------------- worker
def worker(job):
    """One configuration in this process; prints one JSON line of results."""
    sys.path.insert(0, ROOT)
    sys.path.insert(0, HERE)
    import tensorflow as tf
    import style_transfer as st
    import chapter

    target, style = st.load_image(job["target"], "target"), st.load_image(job["style"], "style")
    width, height = st.image_size(*target.size, job["height"])
    layers = [st.CONTENT_LAYER] + st.STYLE_LAYERS
    runtime_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # TF imported
    weights = st.read_vgg19_h5(job["weights"], st.layers_up_to(layers))
    setup = start = time.perf_counter()
    log = []  # (seconds since the optimisation started, loss) per evaluation
    checks = []  # bfloat16 runs: (evaluations, seconds, float32 loss of that image)
    paused = [0.0]  # seconds spent on those float32 checks, kept off the clock
    precision = job.get("precision", "float32")

    class Reached(Exception):
        pass

    def logged(evaluate, check=None):
        def wrapped(x):
            loss, grads, parts = evaluate(x)
            log.append((time.perf_counter() - start - paused[0], loss))
            checked = check is not None and (len(log) % 10 == 0 or len(log) == 1)
            if checked:
                began = time.perf_counter()
                loss = check(x)[0]  # the stopping test below uses the float32 loss too
                checks.append((len(log), log[-1][0], loss))
                paused[0] += time.perf_counter() - began
            if job.get("stop_loss") is not None and loss <= job["stop_loss"] \
                    and (check is None or checked):
                raise Reached()
            if len(log) >= job["max_evals"]:
                raise Reached()
            return log[-1][1], grads, parts
        return wrapped

    if job["kind"] == "chapter":
        size = (width, height)
        fetch = chapter.chapter_loss_and_grads(
            weights, st.preprocess_image(target, size), st.preprocess_image(style, size))
        del weights  # in the model now, as in a real run
        shape = (1, height, width, 3)

        def evaluate(x):
            loss, grads = fetch(tf.constant(x.reshape(shape), tf.float32))
            return float(loss), grads.numpy().ravel().astype(np.float64), None
        x0 = st.preprocess_image(target, size).astype(np.float64).ravel()
        evaluate(x0)  # traced before the clock starts, as the script's is
        evaluate = logged(evaluate)
        start = time.perf_counter()
        try:
            if job["mode"] == "timing":
                for _ in range(job["max_evals"]):
                    evaluate(x0)
            else:
                st.optimise(evaluate, x0, 10 ** 6, 20, True, lambda *a: None)
        except Reached:
            pass
    else:
        extractor = st.build_feature_extractor(weights, layers, "max", precision)
        if precision != "float32" and job["mode"] == "optimise":
            extractor32 = st.build_feature_extractor(weights, layers)
        del weights  # in the model now, as in a real run
        scales = job.get("scales", [1.0])
        x = None
        start = time.perf_counter()
        for scale in scales:
            size = (max(st.MIN_SIDE, round(width * scale)), max(st.MIN_SIDE, round(height * scale)))
            evaluate = st.make_evaluator(extractor, target, [style], [1.0], size,
                                         st.CONTENT_LAYER, st.STYLE_LAYERS, st.CONTENT_WEIGHT,
                                         st.STYLE_WEIGHT, st.TV_WEIGHT)
            if x is None:
                x = st.preprocess_image(target, size).astype(np.float64)
            else:
                x = tf.image.resize(x, (size[1], size[0]), method="bicubic").numpy()
            if scale != scales[-1]:  # coarse scales: their own budget, not logged as loss
                coarse_evals = [0]

                def counted(x_, evaluate=evaluate):
                    coarse_evals[0] += 1
                    if coarse_evals[0] > job["coarse_evals"]:
                        raise Reached()
                    return evaluate(x_)
                latest = {"x": x.ravel()}
                try:
                    st.optimise(counted, x.ravel(), 10 ** 6, job["coarse_evals"], False,
                                lambda *a: None, lambda x_: latest.update(x=x_.copy()))
                except Reached:
                    pass
                x = latest["x"].reshape(1, size[1], size[0], 3)
                continue
            check = None
            if precision != "float32" and job["mode"] == "optimise":
                check = st.make_evaluator(extractor32, target, [style], [1.0], size,
                                          st.CONTENT_LAYER, st.STYLE_LAYERS,
                                          st.CONTENT_WEIGHT, st.STYLE_WEIGHT, st.TV_WEIGHT)
                check(x.ravel())  # traced now, not on the clock
            if job["mode"] == "timing" or len(scales) == 1:
                evaluate(x.ravel())  # traced before the clock starts, as for the chapter
                start = time.perf_counter()
            evaluate = logged(evaluate, check)
            coarse_seconds = time.perf_counter() - start
            try:
                if job["mode"] == "timing":
                    for _ in range(job["max_evals"]):
                        evaluate(x.ravel())
                else:
                    st.optimise(evaluate, x.ravel(), 10 ** 6, 20, job["restarts"],
                                lambda *a: None)
            except Reached:
                pass
        job["coarse_seconds"] = coarse_seconds if len(scales) > 1 else 0.0
    times = [b[0] - a[0] for a, b in zip([(0.0, None)] + log, log)]
    print(json.dumps({**job, "size": [width, height], "log": log, "checks": checks,
                      "seconds_per_eval": float(np.median(times[1:] if len(times) > 2 else times)),
                      "setup_seconds": start - setup,
                      "runtime_rss_mb": runtime_mb,
                      "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))


def run_job(job):
    result = subprocess.run([sys.executable, __file__, "--worker", json.dumps(job)],
                            capture_output=True, text=True)
    if result.returncode != 0:
        raise RuntimeError(f"worker failed: {job}\n{result.stderr[-3000:]}")
    return json.loads(result.stdout.strip().splitlines()[-1])


# ----------------------------------------------------------------------------- report
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


def machine():
    import tensorflow as tf
    cpu = platform.processor() or "unknown CPU"
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    return (f"{cpu}, {os.cpu_count()} cores, TensorFlow {tf.__version__}, "
            f"numpy {np.__version__}, Python {platform.python_version()}")


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
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
    p.add_argument("--output", default=os.path.join(HERE, "RESULTS.md"))
    p.add_argument("--worker", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.worker:
        return worker(json.loads(args.worker))

    sys.path.insert(0, ROOT)
    import style_transfer as st
    weights, weights_line = st.resolve_weights(args.weights)
    base = {"target": args.target, "style": args.style, "weights": weights}
    precision = st.resolve_precision(args.precision)
    script_kinds = {"script": precision}
    if precision != "float32":
        script_kinds["script float32"] = "float32"
    matmul = numpy_matmul_gflops()
    layers = [st.CONTENT_LAYER] + st.STYLE_LAYERS
    lines = ["# Benchmark: the chapter's formulation vs style_transfer.py", "",
             f"Machine: {machine()}.  ",
             f"Images: `{os.path.relpath(args.target, ROOT)}` + "
             f"`{os.path.relpath(args.style, ROOT)}`; {weights_line}.  ",
             f"numpy float32 matmul (2048x2048) on this machine: {matmul:.0f} GFLOP/s.  ",
             f"Command: `python benchmarks/benchmark.py {' '.join(sys.argv[1:])}`".rstrip(),
             ""]
    timing_rows, memory_rows, quality_rows, memory, start_lines = [], [], [], {}, []
    runtime, raw = [], []  # RSS once TensorFlow is imported; every worker's results
    kinds = ["chapter", *script_kinds]
    for height in [int(h) for h in args.heights.split(",")]:
        print(f"height {height}: timing", file=sys.stderr, flush=True)
        timings = {kind: [] for kind in kinds}
        for _ in range(args.timing_rounds):  # taking turns, so drift hits all alike
            for kind in kinds:
                r = run_job({**base, "kind": kind.split()[0], "mode": "timing",
                             "height": height, "max_evals": args.timing_evals,
                             "precision": script_kinds.get(kind, "float32")})
                timings[kind].append(r["seconds_per_eval"])
                memory.setdefault((kind, height), []).append(r["peak_rss_mb"])
                runtime.append(r["runtime_rss_mb"])
                raw.append(r)
                size = r["size"]
        seconds = {kind: float(np.median(timings[kind])) for kind in kinds}
        gflop = flops_per_evaluation(size[0], size[1], layers) / 1e9
        peak = {kind: max(memory[(kind, height)]) for kind in kinds}
        base_mb = float(np.median(runtime))
        timing_rows.append(f"| {size[0]}x{size[1]} | {seconds['chapter']:.2f} | " + " | ".join(
            f"{seconds[k]:.2f} | {seconds['chapter'] / seconds[k]:.2f}x | "
            f"{gflop / seconds[k]:.0f} ({100 * gflop / seconds[k] / matmul:.0f}% of matmul)"
            for k in script_kinds) + " |")
        memory_rows.append(f"| {size[0]}x{size[1]} | {peak['chapter']:.0f} | " + " | ".join(
            f"{peak[k]:.0f} ({100 * peak[k] / peak['chapter']:.0f}%)" for k in script_kinds)
            + f" | {peak['chapter'] - base_mb:.0f} | " + " | ".join(
            f"{peak[k] - base_mb:.0f} "
            f"({100 * (peak[k] - base_mb) / (peak['chapter'] - base_mb):.0f}%)"
            for k in script_kinds) + " |")
        print(timing_rows[-1], memory_rows[-1], sep="\n", file=sys.stderr, flush=True)
        if height > args.chapter_evals_max_height:
            continue
        print(f"height {height}: optimisation runs", file=sys.stderr, flush=True)
        chapter_run = run_job({**base, "kind": "chapter", "mode": "optimise", "height": height,
                               "max_evals": args.chapter_evals})
        goal = chapter_run["log"][-1][1]
        stop = goal * (1 + 1e-3) if height > args.full_runs_max_height else None
        runs = {"chapter (batch of 3, restarts)": chapter_run}
        raw.append(chapter_run)
        continuous = f"script, continuous L-BFGS, {precision}"
        variants = [(continuous, {"restarts": False}),
                    (f"script, coarse-to-fine 0.5,1, {precision}",
                     {"restarts": False, "scales": [0.5, 1.0],
                      "coarse_evals": args.coarse_evals})]
        if precision != "float32":
            variants.insert(1, ("script, continuous L-BFGS, float32",
                                {"restarts": False, "precision": "float32"}))
        if height <= args.full_runs_max_height:
            variants.insert(0, (f"script, restarts, {precision}", {"restarts": True}))
        for name, extra in variants:
            # equal work first: the full budget, so the loss after N evaluations is known
            runs[name] = run_job({**base, "kind": "script", "mode": "optimise",
                                  "height": height, "max_evals": args.chapter_evals,
                                  "stop_loss": stop, "precision": precision, **extra})
            raw.append(runs[name])
        float32_run = runs["script, continuous L-BFGS, float32" if precision != "float32"
                           else continuous]
        start_script = float32_run["log"][0][1]
        start_chapter = chapter_run["log"][0][1]
        start_lines.append(f"Start loss at {size[0]}x{size[1]}: script (float32) "
                           f"{start_script:.6g}, chapter {start_chapter:.6g}, relative "
                           f"difference {abs(start_script - start_chapter) / start_chapter:.1e}.  ")
        chapter_time = chapter_run["log"][-1][0]
        checkpoints = [n for n in (20, 100, 200, 400) if n <= args.chapter_evals]
        for name, r in runs.items():
            reach = time_to_reach(r, goal)
            if reach is not None:
                reach += r.get("coarse_seconds", 0.0)
            quality_rows.append(
                f"| {size[0]}x{size[1]} | {name} | {fmt(loss_after(r, 1))} | "
                + " | ".join(fmt(loss_after(r, n)) for n in checkpoints)
                + f" | {fmt(reach, '.0f')} s | ".replace("– s", "–")
                + (f"{chapter_time / reach:.1f}x |" if reach else "not reached |"))
            print(quality_rows[-1], file=sys.stderr, flush=True)
        if precision != "float32":
            ours = runs[continuous]
            start_lines.append(
                f"{precision} against float32, continuous L-BFGS at {size[0]}x{size[1]}, "
                "loss after equal evaluations: " + ", ".join(
                    f"{n}: {100 * (loss_after(ours, n) / loss_after(float32_run, n) - 1):+.2f}%"
                    for n in checkpoints
                    if loss_after(ours, n) is not None
                    and loss_after(float32_run, n) is not None) + ".  ")
        quality_header = checkpoints
    lines += ["## Seconds per evaluation and peak memory", "",
              "Seconds: median over alternating processes. Memory: peak resident memory "
              "of the process, then the same less the "
              f"{np.median(runtime):.0f} MB a process holds once TensorFlow is imported "
              "(the same for all, whatever the image). The script runs VGG19 in "
              f"{precision} by default on this machine"
              + (" (native here), float32 on request." if precision != "float32" else ".")
              + " GFLOP/s counts the float32 work of an evaluation whatever the precision.",
              "", "| size | chapter s/eval | " + " | ".join(
                  f"script ({p}) s/eval | speed-up | GFLOP/s" for p in script_kinds.values())
              + " |", "|---|---|" + "---|---|---|" * len(script_kinds), *timing_rows, "",
              "| size | chapter peak MB | " + " | ".join(
                  f"script ({p}) peak MB" for p in script_kinds.values())
              + " | chapter MB above TF | " + " | ".join(
                  f"script ({p}) MB above TF" for p in script_kinds.values()) + " |",
              "|---|---|" + "---|" * 2 * len(script_kinds) + "---|", *memory_rows, ""]
    heights = sorted({h for (_, h) in memory})
    if len(heights) >= 2:
        sizes = {}
        for h in heights:
            sizes[h] = st.image_size(*st.load_image(args.target, "target").size, h)
        lo, hi = heights[0], heights[-1]
        mp = lambda h: sizes[h][0] * sizes[h][1] / 1e6  # noqa: E731
        for kind in kinds:
            slope = (max(memory[(kind, hi)]) - max(memory[(kind, lo)])) / (mp(hi) - mp(lo))
            name = f"script ({script_kinds[kind]})" if kind in script_kinds else kind
            lines.append(f"{name}: {slope:.0f} MB per megapixel "
                         f"(between {lo} and {hi} px high).  ")
        lines.append("")
    if quality_rows:
        lines += ["## Loss for the same work, and time to the chapter's final loss", "",
                  f"The chapter's final loss is its loss after {args.chapter_evals} "
                  f"evaluations ({args.chapter_evals // 20} restarts of 20); reached means "
                  "within 0.1% of it. Time counts optimisation only (coarse-to-fine "
                  f"includes its {args.coarse_evals} evaluations at half size; its columns "
                  "count full-size evaluations). Above "
                  f"{args.full_runs_max_height} px high the script's runs stop once they "
                  "reach the chapter's final loss (– after that) and the script-with-"
                  "restarts run is left out, to save time. A bfloat16 run's losses are the "
                  "float32 losses of its images, evaluated at its first and every 10th "
                  "evaluation off the clock, so its time to reach counts in steps of 10 "
                  "evaluations.  ",
                  *start_lines, "",
                  "| size | run | start loss | "
                  + " | ".join(f"after {n}" for n in quality_header)
                  + " | time to chapter's final loss | faster |",
                  "|---|---|---|" + "---|" * len(quality_header) + "---|---|",
                  *quality_rows, ""]
    text = "\n".join(lines)
    print(text)
    with open(args.output, "w") as f:
        f.write(text)
    with open(os.path.splitext(args.output)[0] + ".json", "w") as f:
        json.dump(raw, f)  # every worker's numbers, per-evaluation losses included


if __name__ == "__main__":
    sys.exit(main())
