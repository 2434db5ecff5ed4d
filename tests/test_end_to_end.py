"""Whole runs on tiny generated images with seeded weights: files, records, features."""
import errno
import json
import os
import signal
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

import style_transfer as st
from conftest import ROOT, make_style, make_target, quick_args


def run(weights_file, target, styles, out, *extra):
    styles = styles if isinstance(styles, list) else [styles]
    return st.main([target, *styles, *quick_args(weights_file, out, *extra)])


def record_of(path):
    with open(path) as f:
        return json.load(f)


def test_a_run_writes_images_record_and_figure(images, weights_file, capsys):
    target, style, out = images
    assert run(weights_file, target, style, out) == 0
    stdout = capsys.readouterr().out
    assert sorted(os.listdir(out)) == [
        "target_style.json", "target_style.png", "target_style_at_iteration_1.png",
        "target_style_at_iteration_2.png", "target_style_comparison.png"]
    assert Image.open(os.path.join(out, "target_style.png")).size == (64, 48)
    record = record_of(os.path.join(out, "target_style.json"))
    assert record["status"] == "completed" and record["size"] == [64, 48]
    history = record["history"]
    assert [h["iteration"] for h in history] == [0, 1, 2]
    assert history[0]["evaluations"] == 0 and history[0]["content"] == 0  # starts at target
    assert history[1]["evaluations"] >= 5 and history[2]["loss"] < history[0]["loss"]
    for h in history:
        assert h["loss"] == pytest.approx(h["content"] + h["style"] + h["tv"], rel=1e-5)
    assert set(record["libraries"]) >= {"tensorflow", "keras", "numpy", "scipy", "pillow",
                                         "matplotlib"}
    assert record["weights"] == f"weights: {weights_file}"
    assert record["settings"]["content_weight"] == 0.025 and record["total_seconds"] > 0
    assert "iteration 2/2  loss " in stdout and " evals " in stdout and "ETA" in stdout


def test_loss_falls_faster_with_continuous_lbfgs_than_restarts(images, weights_file):
    target, style, out = images
    finals = {}
    for flag in ("--no-lbfgs-restarts", "--lbfgs-restarts"):
        assert run(weights_file, target, style, out, flag, "--iterations", "4",
                   "--overwrite", "--save-every", "0") == 0
        history = record_of(os.path.join(out, "target_style.json"))["history"]
        finals[flag] = history[-1]["loss"]
        assert history[-1]["evaluations"] >= 20
    assert finals["--no-lbfgs-restarts"] < finals["--lbfgs-restarts"]


def test_coarse_to_fine(images, weights_file):
    target, style, out = images
    assert run(weights_file, target, style, out, "--height", "64", "--scales", "0.5,1") == 0
    history = record_of(os.path.join(out, "target_style.json"))["history"]
    assert [(h["iteration"], h["scale"], h["size"]) for h in history] == [
        (0, 0.5, [42, 32]), (1, 0.5, [42, 32]), (2, 0.5, [42, 32]),
        (3, 1.0, [85, 64]), (4, 1.0, [85, 64])]
    assert Image.open(os.path.join(out, "target_style.png")).size == (85, 64)


def ycbcr(pixels):
    return np.asarray(Image.fromarray(pixels).convert("YCbCr")).astype(float)


def test_preserve_color_keeps_the_targets_chroma(images, weights_file):
    target, style, out = images
    assert run(weights_file, target, style, out, "--preserve-color") == 0
    result = np.asarray(Image.open(os.path.join(out, "target_style.png")))
    target_pixels = np.asarray(Image.open(target).resize((64, 48), Image.BICUBIC))
    chroma = np.abs(ycbcr(result)[..., 1:] - ycbcr(target_pixels)[..., 1:]).mean()
    luma = np.abs(ycbcr(result)[..., 0] - ycbcr(target_pixels)[..., 0]).mean()
    assert chroma < 1.5, chroma
    assert luma > 3, luma
    iteration = np.asarray(Image.open(os.path.join(out, "target_style_at_iteration_1.png")))
    assert np.abs(ycbcr(iteration)[..., 1:] - ycbcr(target_pixels)[..., 1:]).mean() < 1.5


def test_several_styles_with_blend_weights(images, weights_file, tmp_path):
    target, style, out = images
    second = str(tmp_path / "second.png")
    make_target((40, 40)).save(second)
    assert run(weights_file, target, [style, second], out, "--style-blend", "7", "3") == 0
    record = record_of(os.path.join(out, "target_style+second.json"))
    assert record["settings"]["style_blend"] == [7.0, 3.0] and record["style"] == [style, second]
    assert os.path.exists(os.path.join(out, "target_style+second.png"))


def test_style_scale_flag_changes_the_result(images, weights_file):
    target, style, out = images
    results = []
    for scale in ("1", "2"):
        assert run(weights_file, target, style, out, "--style-scale", scale, "--overwrite",
                   "--save-every", "0") == 0
        results.append(np.asarray(Image.open(os.path.join(out, "target_style.png"))))
    assert np.abs(results[0].astype(int) - results[1]).mean() > 1


def test_noise_init_is_repeatable_with_the_same_seed(images, weights_file):
    target, style, out = images
    finals = []
    for seed in ("1", "1", "2"):
        assert run(weights_file, target, style, out, "--init", "noise", "--seed", seed,
                   "--overwrite", "--save-every", "0") == 0
        finals.append(np.asarray(Image.open(os.path.join(out, "target_style.png"))))
    np.testing.assert_array_equal(finals[0], finals[1])
    assert np.abs(finals[0].astype(int) - finals[2]).mean() > 1


def test_init_style_and_init_from_a_file(images, weights_file, tmp_path):
    target, style, out = images
    start = str(tmp_path / "start.png")
    Image.new("RGB", (10, 10), (0, 255, 0)).save(start)
    for init in ("style", start):
        assert run(weights_file, target, style, out, "--init", init, "--iterations", "1",
                   "--evals-per-iteration", "1", "--overwrite") == 0
        history = record_of(os.path.join(out, "target_style.json"))["history"]
        assert history[0]["content"] > 0  # it did not start at the target image
    result = np.asarray(Image.open(os.path.join(out, "target_style.png"))).astype(int)
    assert result[..., 1].mean() > result[..., 0].mean() + 50  # still mostly green


def test_avg_pooling(images, weights_file):
    target, style, out = images
    assert run(weights_file, target, style, out, "--pooling", "avg") == 0
    assert record_of(os.path.join(out, "target_style.json"))["settings"]["pooling"] == "avg"


@pytest.mark.parametrize("name,format_", [("result.jpg", "JPEG"), ("result.webp", "WEBP"),
                                          ("result.png", "PNG")])
def test_output_path_sets_the_format(images, weights_file, tmp_path, name, format_):
    target, style, out = images
    output = str(tmp_path / "elsewhere" / name)
    assert run(weights_file, target, style, out, "--output", output, "--save-every", "0") == 0
    assert Image.open(output).format == format_
    stem = os.path.splitext(output)[0]
    assert os.path.exists(stem + ".json") and os.path.exists(stem + "_comparison.png")
    assert sorted(os.listdir(tmp_path / "elsewhere")) == sorted(
        [name, "result.json", "result_comparison.png"])


def test_save_every(images, weights_file):
    target, style, out = images
    assert run(weights_file, target, style, out, "--iterations", "4", "--save-every", "2",
               "--evals-per-iteration", "2") == 0
    saved = sorted(f for f in os.listdir(out) if "_at_iteration_" in f)
    assert saved == ["target_style_at_iteration_2.png", "target_style_at_iteration_4.png"]


def test_never_overwrites_an_earlier_run_unless_asked(images, weights_file, capsys):
    target, style, out = images
    assert run(weights_file, target, style, out, "--save-every", "0") == 0
    first = os.path.getmtime(os.path.join(out, "target_style.png"))
    assert run(weights_file, target, style, out, "--save-every", "0") == 0
    assert os.path.getmtime(os.path.join(out, "target_style.png")) == first
    assert os.path.exists(os.path.join(out, "target_style_1.png"))
    assert os.path.exists(os.path.join(out, "target_style_1.json"))
    assert run(weights_file, target, style, out, "--save-every", "0", "--overwrite") == 0
    assert not os.path.exists(os.path.join(out, "target_style_2.png"))


def test_tiny_target_is_upscaled_with_a_note(tmp_path, weights_file, capsys):
    target, style = str(tmp_path / "tiny.png"), str(tmp_path / "s.png")
    make_target((20, 15)).save(target)
    make_style().save(style)
    assert run(weights_file, target, style, str(tmp_path / "out"), "--iterations", "1") == 0
    assert "is 20x15; upscaled to 64x48" in capsys.readouterr().err


def test_nan_loss_stops_and_keeps_the_last_good_image(images, weights_file, capsys,
                                                      monkeypatch):
    target, style, out = images
    build = st.build_loss_and_grads

    def breaks_at_eighth_call(*args, **kwargs):
        loss_and_grads, calls = build(*args, **kwargs), []

        def wrapped(image):
            calls.append(1)
            loss, grads, parts = loss_and_grads(image)
            return (loss * np.nan if len(calls) >= 8 else loss), grads, parts
        return wrapped
    monkeypatch.setattr(st, "build_loss_and_grads", breaks_at_eighth_call)
    assert run(weights_file, target, style, out) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: the loss became NaN or infinite at evaluation 7;")
    assert err.count("\n") == 1 and "kept the last good image" in err
    record = record_of(os.path.join(out, "target_style.json"))
    assert record["status"] == "stopped: non-finite loss"
    assert Image.open(os.path.join(out, "target_style.png")).size == (64, 48)
    assert not [f for f in os.listdir(out) if f.endswith(".tmp")]


def test_a_failing_write_leaves_no_half_file(images, weights_file, capsys, monkeypatch):
    target, style, out = images
    save = Image.Image.save

    def disk_full_on_final(self, fp, *args, **kwargs):
        if "iteration" not in os.path.basename(str(fp)) and str(fp).endswith(".tmp"):
            with open(fp, "wb") as f:
                f.write(b"half a PNG")
            raise OSError(errno.ENOSPC, "No space left on device")
        return save(self, fp, *args, **kwargs)
    monkeypatch.setattr(Image.Image, "save", disk_full_on_final)
    assert run(weights_file, target, style, out) == 2
    assert capsys.readouterr().err == "error: No space left on device\n"
    assert sorted(os.listdir(out)) == ["target_style.json", "target_style_at_iteration_1.png",
                                       "target_style_at_iteration_2.png"]


def test_ctrl_c_saves_the_image_and_an_interrupted_record(images, weights_file):
    target, style, out = images
    process = subprocess.Popen(
        [sys.executable, os.path.join(ROOT, "style_transfer.py"), target, style,
         *quick_args(weights_file, out, "--iterations", "500", "--evals-per-iteration", "2")],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT)
    for line in process.stdout:
        if line.startswith("iteration 1/"):
            process.send_signal(signal.SIGINT)
            break
    _, stderr = process.communicate(timeout=120)
    assert process.returncode == 130, stderr
    assert "interrupted: saved the latest generated image to" in stderr
    record = record_of(os.path.join(out, "target_style.json"))
    assert record["status"] == "interrupted" and len(record["history"]) >= 2
    final = Image.open(os.path.join(out, "target_style.png"))
    final.verify()
    assert final.size == (64, 48)
    assert not [f for f in os.listdir(out) if f.endswith(".tmp")]
