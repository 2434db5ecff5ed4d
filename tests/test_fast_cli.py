"""Fast mode, command line: defaults are the constants; bad input is one line, exit 2."""
import os

import pytest
from PIL import Image

import fast_style_transfer as fst
import style_transfer as st
from conftest import make_style, make_target
from nst import inputs, memory, runtime, transform_net


def run_main(argv):
    try:
        return fst.main(argv)
    except SystemExit as e:
        return e.code


def test_parser_defaults_are_the_constants():
    args = fst.build_parser().parse_args(["train", "s.jpg", "--photos", "p",
                                          "--model", "m.keras"])
    assert args.content_layer == fst.CONTENT_LAYER and args.style_layers == fst.STYLE_LAYERS
    assert (args.content_weight, args.style_weight, args.tv_weight) == (
        fst.CONTENT_WEIGHT, fst.STYLE_WEIGHT, fst.TV_WEIGHT)
    assert args.filters == fst.FILTERS and args.residual_blocks == fst.RESIDUAL_BLOCKS
    assert args.size == fst.SIZE == 256 and args.batch_size == fst.BATCH_SIZE
    assert args.steps == fst.STEPS and args.learning_rate == fst.LEARNING_RATE
    assert args.seed == fst.SEED and args.precision == fst.PRECISION == st.PRECISION
    assert args.checkpoint_every == fst.CHECKPOINT_EVERY
    assert args.preview_every == fst.PREVIEW_EVERY and not args.resume
    args = fst.build_parser().parse_args(["stylize", "m.keras", "a.jpg", "b"])
    assert args.inputs == ["a.jpg", "b"] and args.output_dir == fst.OUTPUT_DIR
    assert args.height is None and not args.preserve_color


@pytest.fixture
def files(tmp_path, weights_file):
    style, photos = tmp_path / "style.png", tmp_path / "photos"
    make_style().save(style)
    photos.mkdir()
    make_target().save(photos / "a.png")
    make_target().save(photos / "b.png")
    model = tmp_path / "net.keras"
    transform_net.save_model(transform_net.build_transform_net((4, 4, 4), 0), str(model))
    return {"style": str(style), "photos": str(photos), "model": str(model),
            "weights": weights_file, "tmp": tmp_path}


def train(files, *extra, photos=None):
    return ["train", files["style"], "--photos", photos or files["photos"], "--model",
            str(files["tmp"] / "m" / "new.keras"), "--weights", files["weights"],
            "--size", "32", "--steps", "1", *extra]


def not_ours(files):
    path = files["tmp"] / "other.keras"
    model = runtime.keras.Sequential([runtime.keras.Input((4,)), runtime.keras.layers.Dense(2)])
    model.save(path)
    return str(path)


def garbage(files, name="garbage.keras", data=b"PK\x03\x04 not a zip at all"):
    path = files["tmp"] / name
    path.write_bytes(data)
    return str(path)


def empty_photos(files):
    folder = files["tmp"] / "empty"
    (folder / "sub").mkdir(parents=True)
    (folder / "notes.txt").write_text("no photos here")
    (folder / "sub" / "fake.jpg").write_bytes(b"not a jpeg")
    return str(folder)


def tiny_photo(files):
    path = files["tmp"] / "tiny.png"
    Image.new("RGB", (12, 30)).save(path)
    return str(path)


CASES = {
    "train: photos folder without a readable image": (
        lambda f: train(f, photos=empty_photos(f)), "no readable image under --photos"),
    "train: photos folder missing": (
        lambda f: train(f, photos=str(f["tmp"] / "nowhere")), "is not a folder"),
    "train: style image missing": (
        lambda f: [*train(f)[:1], str(f["tmp"] / "nope.png"), *train(f)[2:]],
        "style image"),
    "train: model not .keras": (
        lambda f: [*train(f), "--model", str(f["tmp"] / "m.h5")], "must end in .keras"),
    "train: size not a multiple of 4": (
        lambda f: [*train(f), "--size", "30"], "--size must be a multiple of 4"),
    "train: size too small": (lambda f: [*train(f), "--size", "16"], "of at least 32"),
    "train: zero steps": (lambda f: [*train(f), "--steps", "0"], "--steps must be at least 1"),
    "train: zero loss height": (
        lambda f: [*train(f), "--loss-height", "0"], "--loss-height must be at least 1"),
    "train: negative learning rate": (
        lambda f: [*train(f), "--learning-rate", "-1"], "--learning-rate must be"),
    "train: two filters": (lambda f: [*train(f), "--filters", "8,8"], "three positive"),
    "train: unknown layer": (
        lambda f: [*train(f), "--content-layer", "block9_conv9"], "unknown VGG19 layer"),
    "train: nan weight": (
        lambda f: [*train(f), "--style-weight", "nan"], "--style-weight must be"),
    "train: weights file missing": (
        lambda f: [*train(f), "--weights", "nope.h5"], "weights file 'nope.h5' does not"),
    "stylize: model is another Keras model": (
        lambda f: ["stylize", not_ours(f), os.path.join(f["photos"], "a.png")],
        "is a Keras model but not a transform net"),
    "stylize: model is garbage": (
        lambda f: ["stylize", garbage(f), os.path.join(f["photos"], "a.png")],
        "is not a transform net made by"),
    "stylize: model is not .keras": (
        lambda f: ["stylize", garbage(f, "net.h5"), os.path.join(f["photos"], "a.png")],
        "is not a .keras file"),
    "stylize: model missing": (
        lambda f: ["stylize", str(f["tmp"] / "no.keras"), f["photos"]], "does not exist"),
    "stylize: photo too small": (
        lambda f: ["stylize", f["model"], tiny_photo(f)], "needs at least 16 px"),
    "stylize: photo is not an image": (
        lambda f: ["stylize", f["model"], garbage(f, "x.jpg", b"text")], "not an image"),
    "stylize: input missing": (
        lambda f: ["stylize", f["model"], str(f["tmp"] / "gone.jpg")], "does not exist"),
    "stylize: folder without images": (
        lambda f: ["stylize", f["model"], str(f["tmp"] / "empty_dir")], "holds no image"),
    "stylize: --output with two inputs": (
        lambda f: ["stylize", f["model"], f["photos"], "--output", "x.png"],
        "--output names one file"),
    "stylize: --output unknown extension": (
        lambda f: ["stylize", f["model"], os.path.join(f["photos"], "a.png"), "--output",
                   "x.xyz"], "unknown image extension"),
    "stylize: height too small": (
        lambda f: ["stylize", f["model"], f["photos"], "--height", "8"],
        "--height must be at least 16"),
    "stylize: bad precision": (
        lambda f: ["stylize", f["model"], f["photos"], "--precision", "int8"],
        "invalid choice"),
}


@pytest.mark.parametrize("case", list(CASES))
def test_bad_input_is_one_line_and_exit_2(files, case, capsys):
    (files["tmp"] / "empty_dir").mkdir()
    argv_of, message = CASES[case]
    argv = argv_of(files)
    before = sorted(os.listdir(files["tmp"]))
    assert run_main(argv) == 2
    lines = capsys.readouterr().err.splitlines()
    # one error line, last; before it only notes (of photos skipped, say)
    assert lines[-1].startswith("error: ") and message in lines[-1], lines
    assert all(line.startswith("note: ") for line in lines[:-1]), lines
    after = sorted(os.listdir(files["tmp"]))
    assert after == before  # nothing half-written: no model folder, no output


def test_an_input_too_large_for_memory_is_refused_with_a_height_that_fits(
        files, capsys, monkeypatch):
    big = files["tmp"] / "big.png"
    make_target((1000, 800)).save(big)  # 0.8 megapixels: about 1.4 GB by the estimate
    out = files["tmp"] / "out"
    monkeypatch.setattr(memory, "available_memory_mb", lambda: 1200.0)
    assert run_main(["stylize", files["model"], str(big), "--output-dir", str(out)]) == 2
    error = capsys.readouterr().err.strip()
    assert error.startswith("error: input") and "at 1000x800 needs about 1.4 GB" in error
    assert error.endswith("try --height 565") and not out.exists()
    # the height it suggests fits, and runs
    assert run_main(["stylize", files["model"], str(big), "--output-dir", str(out),
                     "--height", "565"]) == 0
    with Image.open(out / "big_net_fast.png") as result:
        assert result.size == (706, 565)


def test_a_folder_is_read_one_image_at_a_time(files, monkeypatch):
    """Each input is decoded to be checked, then again for its turn: never all at once."""
    loaded, alive = [], []
    load_image = inputs.load_image

    def counting(path, role):
        image = load_image(path, role)
        loaded.append(path)
        return image

    monkeypatch.setattr(fst, "load_image", counting)
    real = transform_net.stylise_pixels
    monkeypatch.setattr(transform_net, "stylise_pixels",
                        lambda net, pixels: alive.append(len(loaded)) or real(net, pixels))
    out = files["tmp"] / "out"
    assert run_main(["stylize", files["model"], files["photos"], "--output-dir",
                     str(out)]) == 0
    names = sorted(os.path.join(files["photos"], n) for n in ("a.png", "b.png"))
    assert sorted(loaded[:2]) == names and loaded[2:] == names  # checked, then one by one
    assert alive == [3, 4]
