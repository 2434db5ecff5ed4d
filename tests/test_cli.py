"""The command line: defaults, flags, and one clear error line for every bad input."""
import errno
import os
import shutil

import numpy as np
import pytest
from PIL import Image

import style_transfer as st
from conftest import make_target
from nst import inputs, memory, outputs, vgg_weights


def run_main(argv):
    try:
        return st.main(argv)
    except SystemExit as e:
        return e.code


def test_parser_defaults_are_the_constants():
    args = st.build_parser().parse_args(["t.jpg", "s.jpg"])
    assert args.target == "t.jpg" and args.style == ["s.jpg"]
    assert args.height == st.IMG_HEIGHT == 400
    assert args.iterations == st.ITERATIONS == 20
    assert args.evals_per_iteration == st.EVALS_PER_ITERATION == 20
    assert args.content_weight == st.CONTENT_WEIGHT == 0.025
    assert args.style_weight == st.STYLE_WEIGHT == 1.0
    assert args.tv_weight == st.TV_WEIGHT == 1e-4
    assert args.content_layer == st.CONTENT_LAYER == "block5_conv2"
    assert args.style_layers == st.STYLE_LAYERS
    assert args.output_dir == st.OUTPUT_DIR and args.weights == st.WEIGHTS
    assert args.lbfgs_restarts == st.LBFGS_RESTARTS and args.scales == st.SCALES
    assert args.precision == st.PRECISION == "auto"
    assert args.preserve_color == st.PRESERVE_COLOR and args.style_blend == st.STYLE_BLEND
    assert args.style_scale == st.STYLE_SCALE and args.init == st.INIT
    assert args.seed == st.SEED and args.pooling == st.POOLING
    assert args.save_every == st.SAVE_EVERY and args.overwrite == st.OVERWRITE
    assert args.output is None and not args.show


def test_flags_override_the_defaults():
    args = st.build_parser().parse_args([
        "t.jpg", "a.jpg", "b.jpg", "--height", "256", "--iterations", "5",
        "--content-weight", "1", "--style-weight", "5", "--tv-weight", "0",
        "--style-layers", "block1_conv1,block2_conv1", "--scales", "0.5,1",
        "--lbfgs-restarts", "--preserve-color", "--style-blend", "0.7", "0.3",
        "--style-scale", "0.5", "--init", "noise", "--seed", "3", "--pooling", "avg",
        "--save-every", "0", "--overwrite", "--output", "x.jpg", "--weights", "w.h5",
        "--output-dir", "elsewhere", "--show", "--precision", "bfloat16"])
    assert args.style == ["a.jpg", "b.jpg"] and args.height == 256
    assert args.iterations == 5 and args.content_weight == 1 and args.style_weight == 5
    assert args.tv_weight == 0 and args.style_layers == ["block1_conv1", "block2_conv1"]
    assert args.scales == [0.5, 1.0] and args.lbfgs_restarts and args.preserve_color
    assert args.style_blend == [0.7, 0.3] and args.style_scale == 0.5
    assert args.init == "noise" and args.seed == 3 and args.pooling == "avg"
    assert args.save_every == 0 and args.overwrite and args.output == "x.jpg"
    assert args.weights == "w.h5" and args.output_dir == "elsewhere" and args.show
    assert args.precision == "bfloat16"


def test_help_shows_the_values_in_the_file(capsys):
    assert run_main(["--help"]) == 0
    text = " ".join(capsys.readouterr().out.split())
    for shown in ("(default: 400)", "(default: 0.025)", "(default: 0.0001)",
                  "(default: imagenet)", "(default: outputs)", "--preserve-color",
                  "--style-blend", "--lbfgs-restarts"):
        assert shown in text
    assert "(default: None)" not in text  # a flag without a default says so in words


def test_fast_help_shows_no_empty_defaults():
    import fast_style_transfer as fast
    parser = fast.build_parser()
    text = " ".join(parser.format_help().split())
    train = parser._subparsers._group_actions[0].choices["train"]
    train_text = " ".join(train.format_help().split())
    assert "(default: None)" not in text + train_text
    assert "--photos PHOTOS folder of training photos (recursive)" in train_text


# ---- bad input: each case ends in one line on stderr, exit status 2, no files written
def write(path, data):
    with open(path, "wb") as f:
        f.write(data)
    return str(path)


def truncated_jpeg(path):
    make_target((64, 64)).save(path, quality=90)
    with open(path, "rb") as f:
        data = f.read()
    return write(path, data[:len(data) // 2])


def bad_weights(tmp_path, weights_file):
    import h5py
    path = str(tmp_path / "wrong.h5")
    shutil.copy(weights_file, path)
    with h5py.File(path, "r+") as f:
        del f["block3_conv1"]["block3_conv1_W_1:0"]
        f["block3_conv1"]["block3_conv1_W_1:0"] = np.zeros((3, 3, 128, 100), np.float32)
    return path


def case(name, argv, expected):
    """A bad-input case: argv made from (tmp_path, target, style, weights file, output
    folder), and what the one error line must say ({p} stands for tmp_path)."""
    return pytest.param(argv, expected, id=name)


CASES = [
    case("target-missing", lambda p, t, s, w, o: [str(p / "nope.jpg"), s],
         "target image '{p}/nope.jpg' does not exist"),
    case("style-missing", lambda p, t, s, w, o: [t, str(p / "nope.png")],
         "style image '{p}/nope.png' does not exist"),
    case("target-is-a-directory", lambda p, t, s, w, o: [str(p), s], "is a directory"),
    case("empty-file", lambda p, t, s, w, o: [t, write(p / "empty.jpg", b"")],
         "the file is empty"),
    case("truncated-jpeg", lambda p, t, s, w, o: [truncated_jpeg(p / "half.jpg"), s],
         "the file is damaged or truncated"),
    case("text-file-named-jpg", lambda p, t, s, w, o: [
            write(p / "notes.jpg", b"hello\n" * 50), s],
         "not an image file Pillow can read"),
    case("format-pillow-cannot-read-svg", lambda p, t, s, w, o: [
            t, write(p / "a.svg", b'<svg xmlns="http://www.w3.org/2000/svg" width="9" '
                                   b'height="9"><rect width="9" height="9"/></svg>')],
         "not an image file Pillow can read"),
    case("initial-image-missing", lambda p, t, s, w, o: [t, s, "--init", str(p / "x.png")],
         "initial image '{p}/x.png' does not exist"),
    case("too-narrow-at-this-height", lambda p, t, s, w, o: [
            saved_image(p / "narrow.png", (40, 4000)), s, "--height", "400"],
         "it would be 4 px wide, and VGG19 needs at least 32; use --height 3200"),
    case("extreme-aspect-too-big-for-memory", lambda p, t, s, w, o: [
            saved_image(p / "wide.png", (4000, 40)), s, "--height", "400"],
         "a 40000x400 image needs about"),
    case("weights-file-missing", lambda p, t, s, w, o: [t, s, "--weights", str(p / "w.h5")],
         "weights file '{p}/w.h5' does not exist"),
    case("weights-not-hdf5", lambda p, t, s, w, o: [
            t, s, "--weights", write(p / "w.h5", b"x" * 99)],
         "is not an HDF5 (.h5) file"),
    case("weights-of-the-wrong-shapes", lambda p, t, s, w, o: [
            t, s, "--weights", bad_weights(p, w)],
         "layer block3_conv1 has shapes (3, 3, 128, 100), (256,), expected (3, 3, 128, 256)"),
    case("non-numeric-weight", lambda p, t, s, w, o: [t, s, "--style-weight", "lots"],
         "argument --style-weight: invalid float value: 'lots'"),
    case("negative-weight", lambda p, t, s, w, o: [t, s, "--content-weight", "-1"],
         "--content-weight must be a number >= 0, got -1.0"),
    case("nan-weight", lambda p, t, s, w, o: [t, s, "--tv-weight", "nan"],
         "--tv-weight must be a number >= 0, got nan"),
    case("zero-iterations", lambda p, t, s, w, o: [t, s, "--iterations", "0"],
         "--iterations must be at least 1, got 0"),
    case("negative-height", lambda p, t, s, w, o: [t, s, "--height", "-5"],
         "--height must be at least 32"),
    case("zero-height", lambda p, t, s, w, o: [t, s, "--height", "0"],
         "--height must be at least 32"),
    case("unknown-layer", lambda p, t, s, w, o: [
            t, s, "--style-layers", "block1_conv1,block9_conv1"],
         "unknown VGG19 layer 'block9_conv1'"),
    case("unknown-content-layer", lambda p, t, s, w, o: [t, s, "--content-layer", "fc1"],
         "unknown VGG19 layer 'fc1'"),
    case("style-blend-count", lambda p, t, s, w, o: [t, s, s, "--style-blend", "1", "2", "3"],
         "--style-blend has 3 weights for 2 style images"),
    case("bad-scales", lambda p, t, s, w, o: [t, s, "--scales", "1,0.5"],
         "--scales must be increasing fractions"),
    case("unknown-precision", lambda p, t, s, w, o: [t, s, "--precision", "float16"],
         "argument --precision: invalid choice: 'float16'"),
    case("unknown-output-extension", lambda p, t, s, w, o: [t, s, "--output", str(p / "r.xyz")],
         "unknown image extension"),
    case("output-folder-not-writable", lambda p, t, s, w, o: [
            t, s, "--output-dir", os.path.join(write(p / "afile", b"x"), "sub")],
         "cannot write to output folder"),
]


def saved_image(path, size):
    Image.new("RGB", size, (90, 120, 150)).save(path)
    return str(path)


@pytest.mark.parametrize("argv,expected", CASES)
def test_bad_input_gives_one_line_and_exit_2(argv, expected, images, weights_file, tmp_path,
                                             capsys, monkeypatch):
    target, style, out = images
    monkeypatch.setattr(memory, "available_memory_mb", lambda: 20000.0)
    args = argv(tmp_path, target, style, weights_file, out)
    if "--weights" not in args:
        args += ["--weights", weights_file]
    if "--output-dir" not in args:
        args += ["--output-dir", out]
    before = sorted(os.listdir(tmp_path))
    assert run_main([*args, "--height", "48"] if "--height" not in args else args) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("error: "), err
    assert expected.format(p=tmp_path) in err
    assert "Traceback" not in err
    # nothing half-written: the output folder holds no files, nothing new beside it
    assert not os.path.exists(out) or os.listdir(out) == []
    assert [f for f in sorted(os.listdir(tmp_path)) if f not in before and f != "out"] == []


def test_unreadable_file(images, tmp_path, capsys, monkeypatch):
    target, style, out = images
    os.chmod(style, 0)
    if os.geteuid() == 0:  # root reads anything: make open() answer as it would others
        def denied(path, *args, **kwargs):
            if path == style:
                raise PermissionError(errno.EACCES, "Permission denied", path)
            return open(path, *args, **kwargs)
        monkeypatch.setattr(inputs, "open", denied, raising=False)
    assert run_main([target, style, "--output-dir", out]) == 2
    assert capsys.readouterr().err == f"error: cannot read style image '{style}': " \
                                      "permission denied\n"


def test_decompression_bomb(images, tmp_path, capsys, monkeypatch):
    target, style, out = images
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 100)
    assert run_main([target, style, "--output-dir", out]) == 2
    assert "is too large to open safely" in capsys.readouterr().err


def test_not_enough_memory_suggests_a_height(images, weights_file, capsys, monkeypatch):
    target, style, out = images
    monkeypatch.setattr(memory, "available_memory_mb", lambda: 2000.0)
    assert run_main([target, style, "--weights", weights_file, "--output-dir", out,
                     "--height", "1200"]) == 2
    err = capsys.readouterr().err
    assert "a 1600x1200 image needs about" in err and "GB is available; try --height" in err
    suggested = int(err.split("--height ")[1])
    width, height = st.image_size(64, 48, suggested)
    assert memory.estimated_peak_mb(width, height) <= 2000 < memory.estimated_peak_mb(
        *st.image_size(64, 48, suggested + 8))


def test_full_disk_found_before_optimising(images, weights_file, capsys, monkeypatch):
    target, style, out = images

    def no_space(fd, data):
        raise OSError(errno.ENOSPC, "No space left on device")
    monkeypatch.setattr(os, "write", no_space)
    assert run_main([target, style, "--weights", weights_file, "--output-dir", out]) == 2
    monkeypatch.undo()
    assert capsys.readouterr().err.endswith("cannot write to output folder "
                                            f"'{out}': disk full; choose another with "
                                            "--output-dir\n")
    assert os.listdir(out) == []


def test_almost_full_disk_found_before_optimising(images, weights_file, capsys, monkeypatch):
    target, style, out = images
    monkeypatch.setattr(outputs.shutil, "disk_usage", lambda p: shutil._ntuple_diskusage(
        10 ** 9, 10 ** 9 - 10 ** 6, 10 ** 6))
    assert run_main([target, style, "--weights", weights_file, "--output-dir", out]) == 2
    assert "has only 1 MB free" in capsys.readouterr().err


def test_summary_prints_the_extractors_structure_and_exits(images, capsys):
    target, style, out = images
    # no --weights: the summary needs none, and this test's network is disabled
    assert run_main([target, style, "--height", "48", "--precision", "float32",
                     "--output-dir", out, "--summary"]) == 0
    text = capsys.readouterr().out
    deepest = st.layers_up_to(st.LossSettings().layers)
    params = sum(9 * cin * cout + cout
                 for _, cin, cout in vgg_weights.VGG19_CONV_LAYERS[:len(deepest)])
    for name in deepest:
        assert name in text
    assert "block5_conv3" not in text and "(None, 3, 4, 512)" in text  # 64x48 over 16
    assert f"Total params: {params:,}" in text
    assert not os.path.exists(out)
