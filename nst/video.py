"""Video clips: read frame by frame, stylised, steadied from frame to frame, written back
with their sound.

    stylize_clip(stylise, "clip.mp4", "clip_swirls.mp4", height=None, smooth=0.5)

Owns everything that knows about clips: what ffmpeg says a file holds (probe), its frames
as uint8 RGB arrays (frames), the H.264 file written from them (ClipWriter), the temporal
smoothing that keeps a stylised clip from flickering (Smoother, after Ruder, Dosovitskiy
& Brox, "Artistic style transfer for videos", 2016, without their optimisation), and Lai
et al.'s warping error that measures the flicker ("Learning Blind Video Temporal
Consistency", 2018).

Promises: a file that is not a video ffmpeg can read (random bytes, an empty or truncated
file, text named .mp4, sound with no picture) is one FatalError line naming it; frames are
streamed, never the whole clip in memory; a clip comes out at its own frame rate, frame
count and size (or --height), upright whatever rotation the phone recorded, with its audio
track copied unchanged where the container can hold it; a result is written to a temporary
file beside it and renamed when whole, and an interruption keeps the frames done so far as
a playable clip; a result never goes over its input; a disk that fills leaves no
half-written file. Importing this module does not import TensorFlow: ffmpeg is the binary
that imageio-ffmpeg ships, optical flow is OpenCV's.
"""
import contextlib
import dataclasses
import errno
import math
import os
import re
import signal
import subprocess
import tempfile
import time
from fractions import Fraction

import numpy as np

from nst.inputs import check_regular_file
from nst.outputs import check_outputs_are_not_inputs
from nst.runtime import FatalError, signals_deferred
from nst.transform_net import MIN_PHOTO_SIDE

VIDEO_EXTENSIONS = {".mp4", ".mov", ".webm", ".mkv", ".avi", ".gif"}
VIDEO_MAX_BYTES = 64 * 2 ** 30  # reading is streamed: the limit only refuses a device

# ffmpeg opens only local files, in the containers above: a file named .mp4 that is really
# a playlist or a concat script would otherwise make it fetch URLs or read other files.
_DEMUXERS = "mov,matroska,avi,gif"  # mov covers mp4; matroska covers webm
_SAFE_INPUT = ["-protocol_whitelist", "file", "-format_whitelist", _DEMUXERS]
PROBE_SECONDS = 60              # ffmpeg reads only the header; a minute means it is stuck

# The result: H.264 in yuv420p, which every player plays (and which needs even sides).
OUTPUT_FORMATS = {".mp4": "mp4", ".mov": "mov", ".mkv": "matroska"}
CRF = 18                        # x264's quality: 18 looks lossless to most eyes
X264_PRESET = "medium"          # x264's default: encoding stays far faster than stylising
# The audio codecs each container takes as they are; any other is re-encoded to AAC (mp4
# cannot hold PCM, Vorbis or FLAC as players expect; matroska holds anything).
_COPYABLE_AUDIO = {
    "mp4": lambda codec: codec in {"aac", "mp3", "alac", "ac3", "eac3", "opus"},
    "mov": lambda codec: codec in {"aac", "mp3", "alac", "ac3", "eac3"}
    or codec.startswith("pcm_"),
    "matroska": lambda codec: True,
}

# Smoothing (Smoother): see its docstring; benchmarks/VIDEO.md measures the strengths.
FLOW_PRESET = "MEDIUM"          # OpenCV DIS's preset: FAST is 4x faster and rougher
MASK_BLUR = 5                   # side of the Gaussian that softens the occlusion mask's edges
CUT_DIFFERENCE = 0.1            # mean |frame - previous frame warped to it|, 0-1: a new scene
MIN_RELIABLE = 0.5              # fewer trustworthy pixels than this: a new scene too
DETAIL_BANDS = (1.0, 3.0)       # Gaussian sigmas (px) parting the detail bands keep_contrast keeps
ENERGY_BLUR = 8.0               # sigma (px) of the neighbourhood a band's strength is taken over
MAX_GAIN = 2.0                  # keep_contrast never strengthens a band more than this
CARRY_INTERPOLATION = "INTER_CUBIC"  # resampling of the carried output: bilinear's blur piles up


def ffmpeg_exe():
    """The ffmpeg binary imageio-ffmpeg ships: the same ffmpeg on every machine."""
    try:
        import imageio_ffmpeg
        return imageio_ffmpeg.get_ffmpeg_exe()
    except (ImportError, RuntimeError) as e:
        raise FatalError("videos need ffmpeg: pip install -r requirements.txt "
                         f"(imageio-ffmpeg: {e})") from None


def is_video(path):
    return os.path.splitext(path)[1].lower() in VIDEO_EXTENSIONS


def output_extension(source):
    """The result's extension for a clip: its own where H.264 fits in it, else .mp4."""
    extension = os.path.splitext(source)[1].lower()
    return extension if extension in OUTPUT_FORMATS else ".mp4"


# ----------------------------------------------------------------------------- reading
@dataclasses.dataclass(frozen=True)
class ClipInfo:
    """What ffmpeg says of a clip. width and height are as shown, upright (rotation
    applied); rotation is the degrees, counter-clockwise, the stored picture is turned to
    show it; frame_count is an estimate (duration x fps) or None when ffmpeg knows no
    duration; audio_codecs names each audio track's codec."""
    width: int
    height: int
    fps: float
    frame_count: int | None
    rotation: int
    has_audio: bool
    duration: float | None
    audio_codecs: tuple = ()


def _file_arg(path):
    # "file:" keeps a name starting with "-" or holding "http:" a plain file name
    return "file:" + os.path.abspath(path)


def probe(path):
    """ClipInfo of the video at path, or FatalError saying in one line what is wrong."""
    check_regular_file(path, "video", VIDEO_MAX_BYTES)
    if os.path.getsize(path) == 0:
        raise FatalError(f"cannot read video '{path}': the file is empty")
    try:
        run = subprocess.run([ffmpeg_exe(), "-hide_banner", "-nostdin", *_SAFE_INPUT,
                              "-i", _file_arg(path)], stdin=subprocess.DEVNULL,
                             stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                             timeout=PROBE_SECONDS, check=False)
    except subprocess.TimeoutExpired:
        raise FatalError(f"cannot read video '{path}': ffmpeg found no end to its "
                         f"header in {PROBE_SECONDS} s") from None
    return parse_probe(run.stderr.decode("utf-8", "replace"), path)


def parse_probe(text, path):
    """ClipInfo from what `ffmpeg -i path` printed (it prints the streams, then complains
    that no output was given: its exit status says nothing)."""
    if "Format not on whitelist" in text:
        raise FatalError(f"cannot read video '{path}': not a video container this reads "
                         f"({', '.join(sorted(VIDEO_EXTENSIONS))})")
    if "Input #0" not in text:
        raise FatalError(f"cannot read video '{path}': not a video file ffmpeg can read "
                         "(another kind of file, or damaged or truncated)")
    lines = text.splitlines()
    video = [i for i, line in enumerate(lines) if re.search(r"Stream #\S+.*: Video: ", line)
             and "(attached pic)" not in line]  # an album cover is not a video
    if not video:
        raise FatalError(f"video '{path}' has no video stream")
    line = lines[video[0]]
    size = re.search(r", (\d+)x(\d+)\b", line)
    rate = re.search(r", (\d+(?:\.\d+)?)(k?) (?:fps|tbr)\b", line)
    if size is None or rate is None or float(rate.group(1)) <= 0:
        raise FatalError(f"cannot read video '{path}': ffmpeg gives its picture no "
                         "size or frame rate")
    width, height = int(size.group(1)), int(size.group(2))
    fps = float(rate.group(1)) * (1000 if rate.group(2) else 1)
    rotation = 0
    for side in lines[video[0] + 1:]:
        if "Stream #" in side:
            break
        # "Display Matrix: rotation of 90.00 degrees" (counter-clockwise)
        turned = re.search(r"rotation of (-?\d+(?:\.\d+)?) degrees", side, re.IGNORECASE)
        if turned:
            rotation = round(float(turned.group(1))) % 360
    if rotation in (90, 270):
        width, height = height, width  # ffmpeg turns the frames upright as it decodes
    duration = re.search(r"Duration: (\d+):(\d\d):(\d\d(?:\.\d+)?)", text)
    seconds = None if duration is None else (int(duration.group(1)) * 3600 +
                                             int(duration.group(2)) * 60 +
                                             float(duration.group(3)))
    audio = [re.search(r": Audio: (\w+)", line).group(1) for line in lines
             if re.search(r"Stream #\S+.*: Audio: \w+", line)]
    return ClipInfo(width, height, fps, None if seconds is None else max(1, round(seconds * fps)),
                    rotation, bool(audio), seconds, tuple(audio))


def output_size(info, height=None):
    """(width, height) of the frames frames() yields: the clip's, or height high with the
    clip's aspect; both even, as yuv420p needs (an odd side or height is one pixel less,
    the width is rounded to the nearest even number)."""
    if height is None:
        return info.width // 2 * 2, info.height // 2 * 2
    height = max(2, height // 2 * 2)
    return max(2, math.floor(info.width * height / info.height / 2 + 0.5) * 2), height


def frames(path, info, height=None):
    """The clip's frames, uint8 RGB (H, W, 3), one at a time, upright, at output_size.

    ffmpeg decodes in a process of its own and hands over raw RGB through a pipe; every
    decoded frame comes out once (-fps_mode passthrough), so the count is the clip's.
    Closing the generator early stops ffmpeg.
    """
    width, height_out = output_size(info, height)
    picture = []
    if height is not None:
        picture = ["-vf", f"scale={width}:{height_out}:flags=bicubic"]
    elif (width, height_out) != (info.width, info.height):
        picture = ["-vf", f"crop={width}:{height_out}:0:0"]
    frame_bytes = width * height_out * 3
    with tempfile.TemporaryFile() as log:  # a pipe for stderr could fill and stall ffmpeg
        # a session of its own: Ctrl-C in the terminal is ours to handle, not ffmpeg's
        process = subprocess.Popen(
            [ffmpeg_exe(), "-hide_banner", "-nostdin", "-loglevel", "error", *_SAFE_INPUT,
             "-i", _file_arg(path), "-map", "0:v:0", *picture,
             "-fps_mode", "passthrough", "-f", "rawvideo", "-pix_fmt", "rgb24", "pipe:1"],
            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=log,
            start_new_session=True, bufsize=frame_bytes)
        try:
            while True:
                data = process.stdout.read(frame_bytes)
                if len(data) < frame_bytes:
                    break  # the end (a torn last frame is dropped)
                yield np.frombuffer(data, np.uint8).reshape(height_out, width, 3)
            if process.wait() != 0:
                raise FatalError(f"cannot decode video '{path}': {_last_line(log)}")
        finally:
            if process.poll() is None:
                process.kill()
            process.stdout.close()
            process.wait()


def _last_line(log, default="ffmpeg failed"):
    log.seek(0)
    lines = [line.strip() for line in log.read().decode("utf-8", "replace").splitlines()
             if line.strip()]
    return lines[-1] if lines else default


# ----------------------------------------------------------------------------- writing
def frame_rate_text(fps):
    """fps as ffmpeg takes it: the NTSC rates as their exact fractions (ffmpeg prints
    30000/1001 as 29.97), others as the nearest fraction."""
    for base in (24, 30, 48, 60, 120):
        if abs(fps - base * 1000 / 1001) < 0.006:
            return f"{base * 1000}/1001"
    rate = Fraction(fps).limit_denominator(1000)
    return f"{rate.numerator}/{rate.denominator}"


class ClipWriter:
    """Frames in, an H.264 clip out, with the audio of `source` (if any) beside them.

    with ClipWriter(destination, source, info, (width, height)) as clip:
        clip.write(frame)   # uint8 RGB (height, width, 3)

    ffmpeg encodes in a process of its own into a temporary file beside destination,
    renamed onto it when the block ends. When the block ends by an exception or an
    interruption, the frames written so far are finished into a playable clip (the sound
    cut to their length) and kept; with no frame written, nothing is kept. When ffmpeg
    itself fails (a full disk, say) the temporary file is removed and FatalError raised:
    nothing half-written is left.
    """

    def __init__(self, destination, source, info, size):
        extension = os.path.splitext(destination)[1].lower()
        if extension not in OUTPUT_FORMATS:
            raise FatalError(f"cannot write video '{destination}': the result is H.264, "
                             f"written as {', '.join(OUTPUT_FORMATS)}")
        check_outputs_are_not_inputs([("result", destination)], [("input", source)])
        self.destination, self.source, self.info, self.size = destination, source, info, size
        self.format = OUTPUT_FORMATS[extension]
        self.frames_written = 0
        self.process = self.tmp = self.log = None
        self.failed = False

    def command(self, tmp):
        width, height = self.size
        audio = []
        if self.info.has_audio:
            copyable = all(map(_COPYABLE_AUDIO[self.format], self.info.audio_codecs))
            audio = ["-map", "1:a?", "-c:a"] + (["copy"] if copyable else ["aac", "-b:a", "192k"])
        # No -shortest: a sound track a few ms shorter than the picture (AAC's frames
        # rarely end with the last picture's) would cost the last frames; an interrupted
        # clip's sound is cut afterwards (cut_sound).
        return [ffmpeg_exe(), "-hide_banner", "-loglevel", "error", "-y",
                "-f", "rawvideo", "-pix_fmt", "rgb24", "-s", f"{width}x{height}",
                "-framerate", frame_rate_text(self.info.fps), "-i", "pipe:0",
                *([*_SAFE_INPUT, "-i", _file_arg(self.source)] if audio else []),
                "-map", "0:v:0", "-c:v", "libx264", "-preset", X264_PRESET,
                "-crf", str(CRF), "-pix_fmt", "yuv420p", *audio, *self.container_options(),
                _file_arg(tmp)]

    def container_options(self):
        # faststart: the index before the frames, so a player starts before the end arrives
        return ["-movflags", "+faststart", "-f", self.format] if self.format != "matroska" \
            else ["-f", self.format]

    def __enter__(self):
        folder, name = os.path.split(os.path.abspath(self.destination))
        with signals_deferred():  # the temporary file exists only with its cleanup armed
            try:
                fd, self.tmp = tempfile.mkstemp(prefix=f".{name}.", suffix=".tmp", dir=folder)
            except OSError as e:
                raise FatalError(f"cannot write video '{self.destination}': "
                                 f"{e.strerror or e}") from None
            os.close(fd)
            try:
                self.log = tempfile.TemporaryFile()
                self.process = subprocess.Popen(
                    self.command(self.tmp), stdin=subprocess.PIPE, stdout=subprocess.DEVNULL,
                    stderr=self.log, start_new_session=True)
            except BaseException:
                self._discard()
                raise
        return self

    def write(self, frame):
        """Hand one frame to ffmpeg, whole: a signal meanwhile waits until it is in."""
        if frame.shape != (self.size[1], self.size[0], 3) or frame.dtype != np.uint8:
            raise ValueError(f"frame of shape {frame.shape} {frame.dtype}; expected "
                             f"{(self.size[1], self.size[0], 3)} uint8")
        try:
            with signals_deferred():
                self.process.stdin.write(np.ascontiguousarray(frame).tobytes())
        except OSError as e:  # BrokenPipe: ffmpeg has stopped, and says why in its log
            self.failed = True
            raise self._failure(e) from None
        self.frames_written += 1

    def _failure(self, error=None):
        returncode = with_stdin_closed(self.process)
        reason = _last_line(self.log, str(error) if error else "ffmpeg failed")
        if "No space left" in reason or getattr(error, "errno", None) == errno.ENOSPC:
            reason = "disk full"
        elif returncode == -getattr(signal, "SIGXFSZ", 0):
            reason = "the file size limit (ulimit -f) was reached"
        return FatalError(f"cannot write video '{self.destination}': {reason}")

    def __exit__(self, exc_type, exc, traceback):
        with signals_deferred():  # finishing the file must not be cut short in turn
            try:
                if self.failed:
                    return False
                returncode = with_stdin_closed(self.process)
                if returncode != 0:
                    error = self._failure()
                    if exc is None:
                        raise error
                    return False  # the exception that stopped us is the one to report
                if self.frames_written:
                    if exc is not None and self.info.has_audio:
                        self.cut_sound()
                    umask = os.umask(0)
                    os.umask(umask)
                    os.chmod(self.tmp, 0o666 & ~umask)  # as atomic_write does
                    os.replace(self.tmp, self.destination)
                    self.tmp = None
            finally:
                self._discard()
        return False

    def cut_sound(self):
        """Cut the sound of a clip stopped early at its last frame: a second pass that
        copies both streams (-c copy -t), cheap beside the stylising. Should it fail, the
        clip keeps its sound whole and plays on the last frame to the end."""
        folder, name = os.path.split(self.tmp)
        fd, cut = tempfile.mkstemp(prefix=name + ".", suffix=".tmp", dir=folder)
        os.close(fd)
        try:
            run = subprocess.run(
                [ffmpeg_exe(), "-hide_banner", "-nostdin", "-loglevel", "error", "-y",
                 *_SAFE_INPUT, "-i", _file_arg(self.tmp), "-map", "0", "-c", "copy",
                 "-t", f"{self.frames_written / self.info.fps:.6f}",
                 *self.container_options(), _file_arg(cut)],
                stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL, start_new_session=True, check=False)
            if run.returncode == 0:
                os.replace(cut, self.tmp)
        finally:
            if os.path.exists(cut):
                os.remove(cut)

    def _discard(self):
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait()
        if self.tmp is not None and os.path.exists(self.tmp):
            os.remove(self.tmp)
        self.tmp = None
        if self.log is not None:
            self.log.close()
            self.log = None


def with_stdin_closed(process):
    """Close ffmpeg's input, which tells it the frames have ended; its exit status."""
    with contextlib.suppress(OSError):  # it had stopped already: its exit status says how
        process.stdin.close()
    return process.wait()


# ----------------------------------------------------------------------------- smoothing
def _cv2():
    try:
        import cv2
    except ImportError as e:
        raise FatalError("smoothing needs OpenCV: pip install -r requirements.txt "
                         f"(opencv-python-headless: {e})") from None
    return cv2


def dis_flow(cv2):
    return cv2.DISOpticalFlow_create(getattr(cv2, f"DISOPTICAL_FLOW_PRESET_{FLOW_PRESET}"))


def flow(dis, from_gray, to_gray):
    """Optical flow w with from_gray(x) ~ to_gray(x + w(x)), (H, W, 2) float32."""
    return dis.calc(from_gray, to_gray, None)


def warp(cv2, image, flow_field, interpolation=None):
    """image sampled at x + flow(x): image carried along the flow onto its start frame
    (bilinear unless another of OpenCV's interpolations is given)."""
    height, width = flow_field.shape[:2]
    grid_x, grid_y = np.meshgrid(np.arange(width, dtype=np.float32),
                                 np.arange(height, dtype=np.float32))
    return cv2.remap(image, grid_x + flow_field[..., 0], grid_y + flow_field[..., 1],
                     cv2.INTER_LINEAR if interpolation is None else interpolation,
                     borderMode=cv2.BORDER_REPLICATE)


def consistent(cv2, there, back):
    """1.0 where following `there` then `back` returns to the start, 0.0 where it does not
    (the pixel is hidden in the other frame) or leaves the picture: Sundaram et al.'s
    forward-backward check, with Ruder et al.'s bounds,
    |w(x) + w'(x + w(x))|^2 > 0.01 (|w|^2 + |w'(x + w(x))|^2) + 0.5 means occluded."""
    height, width = there.shape[:2]
    back_there = warp(cv2, back, there)
    round_trip = np.sum((there + back_there) ** 2, axis=2)
    bound = 0.01 * (np.sum(there ** 2, axis=2) + np.sum(back_there ** 2, axis=2)) + 0.5
    grid_x, grid_y = np.meshgrid(np.arange(width), np.arange(height))
    x, y = grid_x + there[..., 0], grid_y + there[..., 1]
    inside = (x >= 0) & (x <= width - 1) & (y >= 0) & (y <= height - 1)
    return ((round_trip <= bound) & inside).astype(np.float32)


def keep_contrast(cv2, stylised, blended):
    """blended with each detail band (DETAIL_BANDS) scaled back up to the local strength
    it has in stylised, at most MAX_GAIN times.

    Two textures that do not line up exactly average to a fainter one (what differs
    cancels): a plain blend washes the style out, and the style loss reads it so. The
    bands are differences of Gaussian blurs, so with gains of 1 they add up to blended
    itself, and where nothing was blended in the gains are 1.
    """
    out, rest, reference = np.zeros_like(blended), blended, stylised
    for sigma in DETAIL_BANDS:
        rest_low = cv2.GaussianBlur(rest, (0, 0), sigma)
        reference_low = cv2.GaussianBlur(reference, (0, 0), sigma)
        band, reference_band = rest - rest_low, reference - reference_low
        strength = cv2.GaussianBlur(np.sum(band ** 2, axis=2), (0, 0), ENERGY_BLUR)
        wanted = cv2.GaussianBlur(np.sum(reference_band ** 2, axis=2), (0, 0), ENERGY_BLUR)
        gain = np.clip(np.sqrt((wanted + 1) / (strength + 1)), 1, MAX_GAIN)
        out += band * gain[..., np.newaxis]
        rest, reference = rest_low, reference_low
    return out + rest


class Smoother:
    """Temporal consistency without training: each stylised frame is blended with the
    previous output carried along the optical flow onto it,

        out = (1 - s m) stylised + s m warped,   then keep_contrast(stylised, out)

    s is the strength (--smooth, 0 to 1), m the reliability mask: 0 where the
    forward-backward check finds the pixel was hidden in the previous frame (nothing there
    to carry over), 1 elsewhere, its edges softened. The flow is DIS's (Kroeger et al.
    2016) between the input frames, where it is sound, never between stylised ones.

    The previous OUTPUT is carried, as Ruder et al. carry their previous result: each frame
    holds a decaying memory of the ones before, and flicker falls much further than a blend
    with the previous stylised frame alone takes it. Being carried again and again, it is
    resampled bicubically (bilinear's blur would pile up), and keep_contrast gives the
    blend back the strength of detail that averaging takes away. benchmarks/VIDEO.md
    measures each choice. A scene cut (the previous frame, carried over, still far from
    this one, or too few pixels passing the check) starts afresh. s = 0 returns the
    stylised frame itself.
    """

    def __init__(self, strength):
        if not 0 <= strength <= 1:
            raise ValueError(f"smoothing strength {strength} is not between 0 and 1")
        self.strength = strength
        self.previous = None  # (grey input, output as float32) of the last frame
        self.cuts = 0         # scene cuts found, for the curious
        if strength:
            self.cv2 = _cv2()
            self.dis = dis_flow(self.cv2)

    def __call__(self, frame, stylised):
        if self.strength == 0:
            return stylised
        cv2 = self.cv2
        gray = cv2.cvtColor(frame, cv2.COLOR_RGB2GRAY)
        if self.previous is None or self.previous[0].shape != gray.shape:
            self.previous = gray, stylised.astype(np.float32)
            return stylised
        last_gray, last_output = self.previous
        backward = flow(self.dis, gray, last_gray)  # where each pixel was a frame ago
        forward = flow(self.dis, last_gray, gray)
        reliable = consistent(cv2, backward, forward)
        difference = np.mean(np.abs(warp(cv2, last_gray, backward).astype(np.float32)
                                    - gray)) / 255
        if difference > CUT_DIFFERENCE or reliable.mean() < MIN_RELIABLE:
            self.cuts += 1
            self.previous = gray, stylised.astype(np.float32)
            return stylised
        weight = self.strength * cv2.GaussianBlur(reliable, (MASK_BLUR, MASK_BLUR), 0)
        weight = weight[..., np.newaxis]
        current = stylised.astype(np.float32)
        carried = warp(cv2, last_output, backward, getattr(cv2, CARRY_INTERPOLATION))
        out = (1 - weight) * current + weight * carried
        out = keep_contrast(cv2, current, out)
        self.previous = gray, out
        return np.clip(np.round(out), 0, 255).astype(np.uint8)


def warping_errors(outputs_list, inputs):
    """warping_error of each sequence in outputs_list against the same inputs, the flow
    between each pair of input frames computed once for all of them."""
    cv2 = _cv2()
    dis = dis_flow(cv2)
    totals = [0.0] * len(outputs_list)
    pairs, previous = 0, None
    for step in zip(inputs, *outputs_list, strict=True):
        frame, outs = step[0], step[1:]
        gray = cv2.cvtColor(frame, cv2.COLOR_RGB2GRAY)
        if previous is not None:
            last_gray, last_outs = previous
            forward = flow(dis, last_gray, gray)
            backward = flow(dis, gray, last_gray)
            mask = consistent(cv2, forward, backward)
            counted = max(float(mask.sum()), 1.0)
            for i, (last, now) in enumerate(zip(last_outs, outs, strict=True)):
                back = warp(cv2, now.astype(np.float32) / 255, forward)
                squared = np.sum((last.astype(np.float32) / 255 - back) ** 2, axis=2)
                totals[i] += float(np.sum(mask * squared)) / counted
            pairs += 1
        previous = gray, outs
    return [total / max(pairs, 1) for total in totals]


def warping_error(outputs, inputs):
    """Lai et al. 2018's warping error of a stylised clip: for each pair of frames, the
    next output carried back onto this one along the INPUT frames' optical flow, and
    the squared RGB distance (0-1, summed over channels) to this output, averaged over the
    pixels the forward-backward check keeps; then averaged over the pairs. 0 means every
    visible point keeps its colour as it moves. outputs and inputs are sequences (or
    iterators) of uint8 RGB frames of one size."""
    return warping_errors([outputs], inputs)[0]


# ----------------------------------------------------------------------------- the loop
def stylize_clip(stylise, source, destination, height=None, smooth=0.0, progress=None):
    """Stylise the clip at source into destination; the number of frames written.

    stylise(frame) -> frame: uint8 RGB (H, W, 3) in, the same shape out. height: the
    result's height in pixels (the width keeps the aspect, both even), None for the
    clip's own. smooth: Smoother's strength, 0 (each frame alone) to 1. progress(done,
    total, fps, seconds_left) is called after each frame; total is ffmpeg's estimate (or
    None), fps the frames stylised per second so far, seconds_left None until known.

    destination's extension is one of OUTPUT_FORMATS (output_extension(source) picks one)
    and must not be the source. The result keeps the clip's frame rate, frame count,
    size (or height), its upright turn and its audio. On KeyboardInterrupt (Interrupted),
    or any exception, the frames done so far are kept as a playable clip at destination
    (the last progress call's `done` says how many) before the exception goes on.
    """
    info = probe(source)
    size = output_size(info, height)
    if min(size) < MIN_PHOTO_SIDE:
        raise FatalError(f"video '{source}' would be {size[0]}x{size[1]}; the transform "
                         f"net needs at least {MIN_PHOTO_SIDE} px on each side")
    smoother = Smoother(smooth)
    start, done = time.perf_counter(), 0
    # closing: an interruption stops the decoding ffmpeg now, not when the traceback goes
    with ClipWriter(destination, source, info, size) as clip, \
            contextlib.closing(frames(source, info, height)) as decoded:
        for frame in decoded:
            clip.write(smoother(frame, stylise(frame)))
            done += 1
            if progress is not None:
                total = None if info.frame_count is None else max(info.frame_count, done)
                fps = done / max(time.perf_counter() - start, 1e-9)
                left = None if total is None else (total - done) / fps
                progress(done, total, fps, left)
        if done == 0:
            raise FatalError(f"video '{source}' has no frame ffmpeg can decode")
    return clip.frames_written

