"""Side-by-side benchmark: the chapter's formulation against style_transfer.py.

    python benchmarks/benchmark.py                       # heights 200, 400, 800
    python benchmarks/benchmark.py --heights 200 --chapter-evals 100   # a few minutes

On the same images and weights, in one run, it measures
  - seconds per evaluation (median), the chapter's batch of three against the script's
    single generated image, in alternating processes so machine drift hits both;
  - peak resident memory of each (each configuration in a process of its own);
  - the loss after equal numbers of evaluations, for the chapter (L-BFGS restarted
    every 20 evaluations), the script with the same restarts, the script's continuous
    L-BFGS and coarse-to-fine;
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

    class Reached(Exception):
        pass

    def logged(evaluate):
        def wrapped(x):
            loss, grads, parts = evaluate(x)
            log.append((time.perf_counter() - start, loss))
            if job.get("stop_loss") is not None and loss <= job["stop_loss"]:
                raise Reached()
            if len(log) >= job["max_evals"]:
                raise Reached()
            return loss, grads, parts
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
        extractor = st.build_feature_extractor(weights, layers)
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
            if job["mode"] == "timing" or len(scales) == 1:
                evaluate(x.ravel())  # traced before the clock starts, as for the chapter
                start = time.perf_counter()
            evaluate = logged(evaluate)
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
    print(json.dumps({**job, "size": [width, height], "log": log,
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
def loss_after(log, evals):
    return log[evals - 1][1] if len(log) >= evals else None


def time_to_reach(log, loss, tolerance=1e-3):
    for seconds, value in log:
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
    p.add_argument("--output", default=os.path.join(HERE, "RESULTS.md"))
    p.add_argument("--worker", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.worker:
        return worker(json.loads(args.worker))

    sys.path.insert(0, ROOT)
    import style_transfer as st
    weights, weights_line = st.resolve_weights(args.weights)
    base = {"target": args.target, "style": args.style, "weights": weights}
    matmul = numpy_matmul_gflops()
    layers = [st.CONTENT_LAYER] + st.STYLE_LAYERS
    lines = ["# Benchmark: the chapter's formulation vs style_transfer.py", "",
             f"Machine: {machine()}.  ",
             f"Images: `{os.path.relpath(args.target, ROOT)}` + "
             f"`{os.path.relpath(args.style, ROOT)}`; {weights_line}.  ",
             f"numpy float32 matmul (2048x2048) on this machine: {matmul:.0f} GFLOP/s.  ",
             f"Command: `python benchmarks/benchmark.py {' '.join(sys.argv[1:])}`".rstrip(),
             ""]
    timing_rows, quality_rows, memory, start_lines = [], [], {}, []
    runtime, raw = [], []  # RSS once TensorFlow is imported; every worker's results
    for height in [int(h) for h in args.heights.split(",")]:
        print(f"height {height}: timing", file=sys.stderr, flush=True)
        timings = {"chapter": [], "script": []}
        for _ in range(args.timing_rounds):  # taking turns, so drift hits both
            for kind in ("chapter", "script"):
                r = run_job({**base, "kind": kind, "mode": "timing", "height": height,
                             "max_evals": args.timing_evals})
                timings[kind].append(r["seconds_per_eval"])
                memory.setdefault((kind, height), []).append(r["peak_rss_mb"])
                runtime.append(r["runtime_rss_mb"])
                raw.append(r)
                size = r["size"]
        chapter_s = float(np.median(timings["chapter"]))
        script_s = float(np.median(timings["script"]))
        gflop = flops_per_evaluation(size[0], size[1], layers) / 1e9
        mp = size[0] * size[1] / 1e6
        chapter_mb = max(memory[("chapter", height)])
        script_mb = max(memory[("script", height)])
        base_mb = float(np.median(runtime))
        timing_rows.append(
            f"| {size[0]}x{size[1]} | {chapter_s:.2f} | {script_s:.2f} | "
            f"{chapter_s / script_s:.2f}x | {gflop / script_s:.0f} "
            f"({100 * gflop / script_s / matmul:.0f}% of matmul) | {chapter_mb:.0f} | "
            f"{script_mb:.0f} ({100 * script_mb / chapter_mb:.0f}%) | "
            f"{chapter_mb - base_mb:.0f} | {script_mb - base_mb:.0f} "
            f"({100 * (script_mb - base_mb) / (chapter_mb - base_mb):.0f}%) |")
        print(timing_rows[-1], file=sys.stderr, flush=True)
        if height > args.chapter_evals_max_height:
            continue
        print(f"height {height}: optimisation runs", file=sys.stderr, flush=True)
        chapter_run = run_job({**base, "kind": "chapter", "mode": "optimise", "height": height,
                               "max_evals": args.chapter_evals})
        goal = chapter_run["log"][-1][1]
        stop = goal * (1 + 1e-3) if height > args.full_runs_max_height else None
        runs = {"chapter (batch of 3, restarts)": chapter_run}
        raw.append(chapter_run)
        variants = [("script, continuous L-BFGS", {"restarts": False}),
                    ("script, coarse-to-fine 0.5,1", {"restarts": False, "scales": [0.5, 1.0],
                                                      "coarse_evals": args.coarse_evals})]
        if height <= args.full_runs_max_height:
            variants.insert(0, ("script, restarts", {"restarts": True}))
        for name, extra in variants:
            # equal work first: the full budget, so the loss after N evaluations is known
            runs[name] = run_job({**base, "kind": "script", "mode": "optimise",
                                  "height": height, "max_evals": args.chapter_evals,
                                  "stop_loss": stop, **extra})
            raw.append(runs[name])
        start_script = runs["script, continuous L-BFGS"]["log"][0][1]
        start_chapter = chapter_run["log"][0][1]
        start_lines.append(f"Start loss at {size[0]}x{size[1]}: script {start_script:.6g}, "
                           f"chapter {start_chapter:.6g}, relative difference "
                           f"{abs(start_script - start_chapter) / start_chapter:.1e}.  ")
        chapter_time = chapter_run["log"][-1][0]
        for name, r in runs.items():
            log = r["log"]
            reach = time_to_reach(log, goal)
            if reach is not None:
                reach += r.get("coarse_seconds", 0.0)
            checkpoints = [n for n in (20, 100, 200, 400) if n <= args.chapter_evals]
            quality_rows.append(
                f"| {size[0]}x{size[1]} | {name} | {fmt(log[0][1])} | "
                + " | ".join(fmt(loss_after(log, n)) for n in checkpoints)
                + f" | {fmt(reach, '.0f')} s | ".replace("– s", "–")
                + (f"{chapter_time / reach:.1f}x |" if reach else "not reached |"))
            print(quality_rows[-1], file=sys.stderr, flush=True)
        quality_header = checkpoints
    lines += ["## Seconds per evaluation and peak memory", "",
              "Seconds: median over alternating processes. Memory: peak resident memory "
              "of the process, then the same less the "
              f"{np.median(runtime):.0f} MB a process holds once TensorFlow is imported "
              "(the same for both, whatever the image).", "",
              "| size | chapter s/eval | script s/eval | speed-up | script GFLOP/s | "
              "chapter peak MB | script peak MB | chapter MB above TF | script MB above TF |",
              "|---|---|---|---|---|---|---|---|---|", *timing_rows, ""]
    heights = sorted({h for (_, h) in memory})
    if len(heights) >= 2:
        sizes = {}
        for h in heights:
            sizes[h] = st.image_size(*st.load_image(args.target, "target").size, h)
        lo, hi = heights[0], heights[-1]
        mp = lambda h: sizes[h][0] * sizes[h][1] / 1e6  # noqa: E731
        for kind in ("chapter", "script"):
            slope = (max(memory[(kind, hi)]) - max(memory[(kind, lo)])) / (mp(hi) - mp(lo))
            lines.append(f"{kind}: {slope:.0f} MB per megapixel "
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
                  "restarts run is left out, to save time.  ",
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
