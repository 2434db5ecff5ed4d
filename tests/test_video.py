"""nst/video.py on tiny clips the tests make themselves (ffmpeg's own test pattern and a
sine tone): what a clip keeps, smoothing, interruptions, bad inputs, and never writing
over the input. No model: a fixed colour transform stands in for the transform net."""
import os
import resource
import signal
import subprocess

import numpy as np
import pytest

from nst import runtime, video
from nst.runtime import FatalError, Interrupted

WIDTH, HEIGHT, FPS, COUNT = 64, 48, 10, 8


def ffmpeg(*args):
    subprocess.run([video.ffmpeg_exe(), "-hide_banner", "-loglevel", "error", "-y", *args],
                   check=True, stdin=subprocess.DEVNULL)


def write_frames(path, frames, fps=FPS, audio="aac", extra=()):
    """A clip of the frames (uint8 RGB), with a 440 Hz tone unless audio is None."""
    height, width = frames[0].shape[:2]
    command = [video.ffmpeg_exe(), "-hide_banner", "-loglevel", "error", "-y",
               "-f", "rawvideo", "-pix_fmt", "rgb24", "-s", f"{width}x{height}",
               "-framerate", str(fps), "-i", "pipe:0"]
    if audio:
        command += ["-f", "lavfi", "-i", "sine=frequency=440:duration=1", "-c:a", audio]
    command += ["-c:v", "libx264", "-pix_fmt", "yuv420p", *extra, "-shortest", str(path)]
    subprocess.run(command, input=b"".join(f.tobytes() for f in frames), check=True)
    return str(path)


def pattern(count=COUNT, size=(WIDTH, HEIGHT), step=2, seed=0):
    """A smooth random texture seen by a camera panning `step` px a frame to the right."""
    import cv2
    width, height = size
    rng = np.random.default_rng(seed)
    big = rng.uniform(0, 255, (height, width + step * count, 3)).astype(np.float32)
    big = cv2.GaussianBlur(big, (0, 0), 2.0)
    big = (big - big.min()) / (big.max() - big.min()) * 255
    return [np.round(big[:, step * t:step * t + width]).astype(np.uint8)
            for t in range(count)]


def invert(frame):
    """The stand-in for the transform net: a fixed colour transform."""
    return 255 - frame[..., ::-1]


@pytest.fixture(scope="module")
def clip(tmp_path_factory):
    """8 frames of 64x48 at 10 fps with a 440 Hz tone in AAC."""
    return write_frames(tmp_path_factory.mktemp("clips") / "clip.mp4", pattern())


def decoded(path, height=None):
    return list(video.frames(path, video.probe(path), height))


def leftovers(folder):
    return [name for name in os.listdir(folder) if name.endswith(".tmp")]


# ------------------------------------------------------------------------- what is kept
def test_probe_reads_the_clip(clip):
    info = video.probe(clip)
    assert (info.width, info.height, info.fps, info.frame_count) == (WIDTH, HEIGHT, FPS, COUNT)
    assert info.has_audio and info.audio_codecs == ("aac",) and info.rotation == 0
    assert info.duration == pytest.approx(COUNT / FPS, abs=0.05)


def test_stylized_clip_keeps_count_rate_size_and_sound(clip, tmp_path):
    out = str(tmp_path / "out.mp4")
    calls = []
    assert video.stylize_clip(invert, clip, out, progress=lambda *a: calls.append(a)) == COUNT
    info = video.probe(out)
    assert (info.width, info.height, info.fps) == (WIDTH, HEIGHT, FPS)
    assert info.audio_codecs == ("aac",)  # copied, not re-encoded
    assert info.duration == pytest.approx(COUNT / FPS, abs=0.05)  # the sound cut to fit
    frames = decoded(out)
    assert len(frames) == COUNT
    expected = [invert(f) for f in decoded(clip)]
    assert np.mean(np.abs(np.float32(frames) - np.float32(expected))) < 4  # H.264's loss
    assert [c[0] for c in calls] == list(range(1, COUNT + 1))
    assert all(c[1] == COUNT for c in calls)
    assert not leftovers(tmp_path)


def test_height_resizes_with_even_sides(clip, tmp_path):
    out = str(tmp_path / "small.mp4")
    video.stylize_clip(invert, clip, out, height=33)
    info = video.probe(out)
    assert (info.width, info.height) == (42, 32)  # 64 x 32/48 = 42.7: even sides
    assert len(decoded(out)) == COUNT


def test_a_rotated_phone_clip_comes_out_upright(clip, tmp_path):
    turned = str(tmp_path / "turned.mp4")
    ffmpeg("-display_rotation", "90", "-i", clip, "-c", "copy", turned)
    info = video.probe(turned)
    assert info.rotation == 90 and (info.width, info.height) == (HEIGHT, WIDTH)
    assert decoded(turned)[0].shape == (WIDTH, HEIGHT, 3)
    out = str(tmp_path / "upright.mp4")
    video.stylize_clip(invert, turned, out)
    result = video.probe(out)
    assert result.rotation == 0 and (result.width, result.height) == (HEIGHT, WIDTH)


def test_sound_a_container_cannot_hold_is_reencoded(tmp_path):
    source = write_frames(tmp_path / "pcm.mkv", pattern(), audio="pcm_s16le")
    assert video.probe(source).audio_codecs == ("pcm_s16le",)
    out = str(tmp_path / "out.mp4")  # mp4 holds no PCM
    video.stylize_clip(invert, source, out)
    assert video.probe(out).audio_codecs == ("aac",)
    out_mkv = str(tmp_path / "out.mkv")  # matroska holds anything: copied
    video.stylize_clip(invert, source, out_mkv)
    assert video.probe(out_mkv).audio_codecs == ("pcm_s16le",)


def test_a_clip_without_sound_stays_silent(tmp_path):
    source = write_frames(tmp_path / "silent.mp4", pattern(), audio=None)
    out = str(tmp_path / "out.mp4")
    assert video.stylize_clip(invert, source, out) == COUNT
    assert not video.probe(out).has_audio


def test_sizes_and_names():
    info = video.ClipInfo(1921, 1081, 30.0, 10, 0, False, 1 / 3)
    assert video.output_size(info) == (1920, 1080)
    assert video.output_size(info, 360) == (640, 360)
    assert video.output_size(info, 101) == (178, 100)  # 1921 x 100/1081 = 177.7
    assert video.is_video("a/B.MOV") and not video.is_video("photo.jpg")
    assert video.output_extension("x.webm") == ".mp4"
    assert video.output_extension("x.mkv") == ".mkv"
    assert video.frame_rate_text(29.97) == "30000/1001"
    assert video.frame_rate_text(25.0) == "25/1"


# ------------------------------------------------------------------------- smoothing
def test_smooth_zero_hands_the_writer_each_frame_stylised_alone(clip, tmp_path, monkeypatch):
    handed = []

    class Recorder:
        def __init__(self, destination, source, info, size):
            self.frames_written = 0

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            return False

        def write(self, frame):
            handed.append(frame.copy())
            self.frames_written += 1

    monkeypatch.setattr(video, "ClipWriter", Recorder)
    video.stylize_clip(invert, clip, str(tmp_path / "out.mp4"), smooth=0.0)
    alone = [invert(f) for f in decoded(clip)]
    assert len(handed) == COUNT
    assert all(np.array_equal(a, b) for a, b in zip(handed, alone, strict=True))


def test_smoother_at_zero_returns_the_stylised_frame_itself():
    frames = pattern(3)
    smoother = video.Smoother(0.0)
    for frame in frames:
        stylised = invert(frame)
        assert smoother(frame, stylised) is stylised


def test_smoothing_lowers_the_warping_error_of_a_flickering_pan():
    frames = pattern(10, size=(128, 96))
    rng = np.random.default_rng(0)
    # per-frame noise: what a transform net does to frames that differ a little
    flicker = [np.clip(invert(f) + rng.normal(0, 12, f.shape), 0, 255).astype(np.uint8)
               for f in frames]
    smoother = video.Smoother(0.7)
    smoothed = [smoother(f, y) for f, y in zip(frames, flicker, strict=True)]
    per_frame, steady, floor = video.warping_errors([flicker, smoothed, frames], frames)
    assert steady < 0.5 * per_frame
    assert floor < steady
    assert smoother.cuts == 0


def test_a_scene_cut_starts_afresh():
    first, second = pattern(3, seed=1), pattern(3, seed=2)
    smoother = video.Smoother(0.9)
    for frame in first:
        smoother(frame, invert(frame))
    assert np.array_equal(smoother(second[0], invert(second[0])), invert(second[0]))
    assert smoother.cuts == 1


def test_smoothing_strength_is_checked():
    with pytest.raises(ValueError):
        video.Smoother(1.5)


def test_keep_contrast_leaves_an_unblended_frame_alone():
    import cv2
    frame = pattern(1, size=(64, 48))[0].astype(np.float32)
    np.testing.assert_allclose(video.keep_contrast(cv2, frame, frame), frame, atol=1e-3)


def test_warping_error_is_zero_for_a_still_clip():
    frame = pattern(1)[0]
    assert video.warping_error([frame] * 3, [frame] * 3) == pytest.approx(0, abs=1e-9)


# ------------------------------------------------------------------------- interruptions
def stopping_at(index, error):
    calls = []

    def stylise(frame):
        if len(calls) == index:
            raise error
        calls.append(1)
        return invert(frame)
    return stylise


@pytest.mark.parametrize("error", [KeyboardInterrupt(), Interrupted(signal.SIGTERM)])
def test_an_interruption_keeps_the_frames_done_as_a_playable_clip(clip, tmp_path, error):
    out = str(tmp_path / "out.mp4")
    with pytest.raises(KeyboardInterrupt) as raised:
        video.stylize_clip(stopping_at(5, error), clip, out, smooth=0.5)
    assert raised.value is error
    assert len(decoded(out)) == 5
    info = video.probe(out)
    assert info.has_audio and info.duration == pytest.approx(5 / FPS, abs=0.05)
    assert not leftovers(tmp_path)


def test_sigterm_with_the_scripts_handlers_keeps_the_frames_done(clip, tmp_path):
    out = str(tmp_path / "out.mp4")
    previous = {s: signal.getsignal(s) for s in runtime.STOP_SIGNALS}
    runtime.install_signal_handlers()
    calls = []

    def stylise(frame):
        calls.append(1)
        if len(calls) == 4:  # as kill(1) would, while the fourth frame is stylised
            os.kill(os.getpid(), signal.SIGTERM)
        return invert(frame)
    try:
        with pytest.raises(Interrupted) as raised:
            video.stylize_clip(stylise, clip, out)
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
    assert raised.value.signum == signal.SIGTERM
    assert len(decoded(out)) == 3
    assert not leftovers(tmp_path)


def test_an_interruption_before_any_frame_leaves_nothing(clip, tmp_path):
    out = str(tmp_path / "out.mp4")
    with pytest.raises(KeyboardInterrupt):
        video.stylize_clip(stopping_at(0, KeyboardInterrupt()), clip, out)
    assert os.listdir(tmp_path) == []


def test_a_full_disk_leaves_no_half_written_file(tmp_path):
    noise = [np.random.default_rng(i).integers(0, 256, (240, 320, 3), dtype=np.uint8)
             for i in range(COUNT)]
    source = write_frames(tmp_path / "noise.mp4", noise, audio=None)
    folder = tmp_path / "out"
    folder.mkdir()
    soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
    # files over 50 kB cannot be written: ffmpeg, inheriting the limit, fails as on a full
    # disk (the noise is incompressible, so the result needs far more)
    resource.setrlimit(resource.RLIMIT_FSIZE, (50_000, hard))
    try:
        with pytest.raises(FatalError, match="cannot write video"):
            video.stylize_clip(lambda f: f, source, str(folder / "out.mp4"))
    finally:
        resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))
    assert os.listdir(folder) == []


# ------------------------------------------------------------------------- bad inputs
def truncated(folder, clip):
    """The first half of a clip whose index (moov) ffmpeg writes at the end."""
    with open(clip, "rb") as f:
        data = f.read()
    path = folder / "truncated.mp4"
    path.write_bytes(data[:len(data) // 2])
    return path


BAD_INPUTS = {
    "random bytes": lambda folder, clip: folder.joinpath("random.mp4").write_bytes(
        np.random.default_rng(0).bytes(4096)) and folder / "random.mp4",
    "empty": lambda folder, clip: folder.joinpath("empty.mp4").write_bytes(b"")
    or folder / "empty.mp4",
    "text named .mp4": lambda folder, clip: folder.joinpath("notes.mp4").write_text(
        "not a video\n") and folder / "notes.mp4",
    "sound only (.m4a)": lambda folder, clip: ffmpeg(
        "-f", "lavfi", "-i", "sine=duration=1", "-c:a", "aac", str(folder / "tone.m4a"))
    or folder / "tone.m4a",
    "sound only (.mp4)": lambda folder, clip: ffmpeg(
        "-f", "lavfi", "-i", "sine=duration=1", "-c:a", "aac", str(folder / "tone.mp4"))
    or folder / "tone.mp4",
    "mp3 named .mp4": lambda folder, clip: ffmpeg(
        "-f", "lavfi", "-i", "sine=duration=1", "-c:a", "libmp3lame", "-f", "mp3",
        str(folder / "song.mp4")) or folder / "song.mp4",
    "truncated": truncated,
    "a folder": lambda folder, clip: folder.joinpath("folder.mp4").mkdir()
    or folder / "folder.mp4",
}


@pytest.mark.parametrize("kind", list(BAD_INPUTS))
def test_a_bad_input_is_one_line_naming_it(kind, clip, tmp_path):
    path = str(BAD_INPUTS[kind](tmp_path, clip))
    with pytest.raises(FatalError) as raised:
        video.probe(path)
    message = str(raised.value)
    assert "\n" not in message and path in message
    if "sound only" in kind:
        assert message == f"video '{path}' has no video stream"
    before = sorted(os.listdir(tmp_path))
    with pytest.raises(FatalError):
        video.stylize_clip(invert, path, str(tmp_path / "out.mp4"))
    assert sorted(os.listdir(tmp_path)) == before  # nothing written


def test_a_truncated_clip_that_starts_well_gives_the_frames_it_has(tmp_path):
    whole = write_frames(tmp_path / "whole.mp4", pattern(40, size=(128, 96)), audio=None,
                         extra=["-movflags", "+faststart"])  # the index first, then frames
    with open(whole, "rb") as f:
        data = f.read()
    cut = tmp_path / "cut.mp4"
    cut.write_bytes(data[:len(data) * 2 // 3])
    try:
        frames = decoded(str(cut))
    except FatalError as e:  # or it says so in one line
        assert "\n" not in str(e)
    else:
        assert 0 < len(frames) < 40


# ------------------------------------------------------------------------- never over the input
def test_the_result_never_goes_over_its_input(clip, tmp_path):
    with open(clip, "rb") as f:
        before = f.read()
    link = str(tmp_path / "link.mp4")
    os.link(clip, link)
    for destination in (clip, link, os.path.join(os.path.dirname(clip), ".", "clip.mp4")):
        with pytest.raises(FatalError, match="would be written over"):
            video.stylize_clip(invert, clip, destination)
    with open(clip, "rb") as f:
        assert f.read() == before
    assert not leftovers(os.path.dirname(clip))


def test_a_destination_h264_cannot_go_in_is_refused(clip, tmp_path):
    with pytest.raises(FatalError, match=r"written as \.mp4, \.mov, \.mkv"):
        video.stylize_clip(invert, clip, str(tmp_path / "out.webm"))
    assert os.listdir(tmp_path) == []
