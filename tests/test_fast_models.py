"""Fast mode, models: found by name or path, listed, blended with --strength, fine-tuned
from another with --init-model; the crop-size schedule; records without machine paths."""
import json
import os
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

import fast_style_transfer as fst
import style_transfer as st
from conftest import ROOT, make_photos, make_target
from nst import inputs, record, runtime, training, transform_net, vgg_weights, video
from test_fast_training import record_of, train_argv


@pytest.fixture
def bundled(tmp_path, monkeypatch):
    """A models folder with one small seeded net, 'tiny', and its record."""
    folder = tmp_path / "bundled"
    folder.mkdir()
    transform_net.save_model(transform_net.build_transform_net((4, 4, 8), 1, seed=2),
                             str(folder / "tiny.keras"))
    (folder / "tiny.json").write_text(json.dumps({"style": "images/waves.png", "step": 7}))
    monkeypatch.setattr(fst, "MODELS_DIR", str(folder))
    photo = tmp_path / "photo.png"
    make_target((40, 32)).save(photo)
    return folder, str(photo), tmp_path / "out"


def test_a_model_by_name_or_by_path_gives_the_same_result(bundled):
    folder, photo, out = bundled
    assert fst.main(["stylize", "tiny", photo, "--output-dir", str(out)]) == 0
    assert fst.main(["stylize", str(folder / "tiny.keras"), photo, "--output-dir",
                     str(out)]) == 0
    # named so that the optimisation's results (photo_style.png) are never mistaken for it
    assert sorted(os.listdir(out)) == ["photo_tiny_fast.png", "photo_tiny_fast_1.png"]
    np.testing.assert_array_equal(np.asarray(Image.open(out / "photo_tiny_fast.png")),
                                  np.asarray(Image.open(out / "photo_tiny_fast_1.png")))


def test_an_unknown_name_lists_the_bundled_models(bundled, capsys):
    _, photo, out = bundled
    assert fst.main(["stylize", "starry", photo, "--output-dir", str(out)]) == 2
    assert capsys.readouterr().err == ("error: no model named 'starry': give a .keras file "
                                       "or one of the bundled models (tiny)\n")
    assert not out.exists()


def test_models_lists_each_bundled_model_with_its_style_steps_and_size(bundled, capsys):
    folder, _, _ = bundled
    transform_net.save_model(transform_net.build_transform_net((4, 4, 4), 0),
                             str(folder / "bare.keras"))  # no record beside it
    assert fst.main(["models"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split() == ["model", "style", "image", "steps", "MB"]
    assert lines[1].split()[:3] == ["bare", "(no", "record)"]
    name, style, steps, size = lines[2].split()
    assert (name, style, steps) == ("tiny", "waves.png", "7")
    assert float(size) == pytest.approx(os.path.getsize(folder / "tiny.keras") / 2 ** 20,
                                        abs=0.05)


def test_the_repository_s_models_are_listed(capsys):
    assert fst.main(["models"]) == 0
    listed = {line.split()[0] for line in capsys.readouterr().out.splitlines()[1:]}
    assert listed == {os.path.splitext(f)[0] for f in os.listdir(os.path.join(ROOT, "models"))
                      if f.endswith(".keras")}
    assert {"swirls", "starry_night", "the_scream", "shipwreck"} <= listed


def pixels_of(path):
    with Image.open(path) as image:
        return np.asarray(image.convert("RGB")).astype(int)


def test_strength_blends_the_output_with_the_photo(bundled):
    _, photo, out = bundled
    for strength in ("0", "0.25", "1"):
        assert fst.main(["stylize", "tiny", photo, "--strength", strength, "--output",
                         str(out / f"s{strength}.png")]) == 0
    original, full = pixels_of(photo), pixels_of(out / "s1.png")
    np.testing.assert_array_equal(pixels_of(out / "s0.png"), original)  # the photo itself
    assert np.abs(full - original).mean() > 10  # the net changes the photo
    quarter = pixels_of(out / "s0.25.png")
    np.testing.assert_allclose(quarter, 0.25 * full + 0.75 * original, atol=0.51)


def test_strength_with_preserve_color(bundled):
    _, photo, out = bundled
    assert fst.main(["stylize", "tiny", photo, "--strength", "0", "--preserve-color",
                     "--output", str(out / "kept.png")]) == 0
    np.testing.assert_array_equal(pixels_of(out / "kept.png"), pixels_of(photo))


def first_batch_loss(setup, net, batch=2, size=32):
    """The fast mode's loss of net on the first batch of a train_argv run, computed here
    from the pieces, not by training."""
    style, photos, _, weights = setup
    settings = st.LossSettings(fst.CONTENT_LAYER, tuple(fst.STYLE_LAYERS), fst.CONTENT_WEIGHT,
                               fst.STYLE_WEIGHT, fst.TV_WEIGHT)
    loss = fst.PerceptualLoss(vgg_weights.read_vgg19_h5(weights, st.layers_up_to(
        settings.layers)), inputs.load_image(style, "style"), size, settings)
    crops = training.PhotoCrops(inputs.find_photos(photos)[1:], size, fst.SEED,  # [0]: preview
                                augment=fst.AUGMENT)
    images = runtime.tf.constant(np.stack([crops(i) for i in range(batch)]))
    total, _ = loss(images, net(images), batch)
    return float(total)


def test_init_model_starts_from_the_given_weights(setup, tmp_path):
    first = (*setup[:2], str(tmp_path / "first" / "a.keras"), setup[3])
    assert fst.main(train_argv(first, steps=3)) == 0
    trained = transform_net.load_transform_net(first[2])
    assert fst.main(train_argv(setup, "--init-model", first[2], steps=1)) == 0
    history = record_of(setup[2])["history"]
    assert history[0]["loss"] == pytest.approx(first_batch_loss(setup, trained), rel=1e-4)
    fresh = transform_net.build_transform_net((4, 4, 8), 1, seed=fst.SEED)
    assert history[0]["loss"] != pytest.approx(first_batch_loss(setup, fresh), rel=1e-2)
    assert record_of(setup[2])["settings"]["init_model"] == first[2]


def test_the_warm_up_raises_the_step_size_linearly_then_holds_it():
    rate = training.warmed_up(4e-3, 4)
    assert [round(float(rate(s)), 6) for s in range(6)] == [1e-3, 2e-3, 3e-3, 4e-3, 4e-3, 4e-3]
    assert training.warmed_up(4e-3, 0) == 4e-3


def test_init_model_warms_up_and_a_resumed_warm_up_continues_exactly(setup, tmp_path):
    first = (*setup[:2], str(tmp_path / "first" / "a.keras"), setup[3])
    assert fst.main(train_argv(first, steps=2)) == 0
    assert record_of(first[2])["settings"]["warmup_steps"] == 0  # from scratch: none
    assert fst.main(train_argv(setup, "--init-model", first[2], "--warmup-steps", "3",
                               steps=4)) == 0
    uninterrupted = transform_net.load_transform_net(setup[2]).get_weights()
    other = (*setup[:2], str(tmp_path / "again" / "b.keras"), setup[3])
    assert fst.main(train_argv(other, "--init-model", first[2], "--warmup-steps", "3",
                               steps=2)) == 0
    # resumed inside the warm-up, without naming it again: the record's is kept
    assert fst.main(train_argv(other, "--resume", steps=4)) == 0
    for a, b in zip(uninterrupted, transform_net.load_transform_net(other[2]).get_weights(),
                    strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-7)
    assert record_of(other[2])["settings"]["warmup_steps"] == 3
    # by default a fine-tune warms up, and its first steps move the net less
    again = (*setup[:2], str(tmp_path / "default" / "c.keras"), setup[3])
    assert fst.main(train_argv(again, "--init-model", first[2], steps=1)) == 0
    assert record_of(again[2])["settings"]["warmup_steps"] == fst.WARMUP_STEPS
    cold = (*setup[:2], str(tmp_path / "cold" / "d.keras"), setup[3])
    assert fst.main(train_argv(cold, "--init-model", first[2], "--warmup-steps", "0",
                               steps=1)) == 0
    start = transform_net.load_transform_net(first[2]).get_weights()

    def moved(model):
        return sum(float(np.abs(a - b).sum()) for a, b in zip(
            transform_net.load_transform_net(model).get_weights(), start, strict=True))
    assert moved(again[2]) < 0.1 * moved(cold[2])


def test_init_model_refuses_other_widths_and_what_is_not_a_transform_net(setup, tmp_path,
                                                                         capsys):
    first = (*setup[:2], str(tmp_path / "first" / "a.keras"), setup[3])
    assert fst.main(train_argv(first, steps=1)) == 0
    argv = train_argv(setup, "--init-model", first[2], steps=1)
    assert fst.main([*argv, "--filters", "8,8,8"]) == 2
    assert ("has --filters 4,4,8 and --residual-blocks 1; leave those flags out"
            in capsys.readouterr().err)
    garbage = tmp_path / "garbage.keras"
    garbage.write_bytes(b"PK\x03\x04 not a model")
    assert fst.main(train_argv(setup, "--init-model", str(garbage), steps=1)) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: --init-model '") and "is not a transform net" in err
    assert err.count("\n") == 1 and not os.path.exists(setup[2])


def test_the_crop_size_schedule_trains_small_crops_first(tmp_path):
    photos = inputs.find_photos(make_photos(str(tmp_path / "p")))
    big, small = training.PhotoCrops(photos, 48, 0), training.PhotoCrops(photos, 32, 0, 48)
    sides = [int(batch.shape[1]) for batch in training.photo_dataset(big, 0, 6, 2, small, 4)]
    assert sides == [32, 32, 32, 32, 48, 48]
    resumed = [int(b.shape[1]) for b in training.photo_dataset(big, 3, 6, 2, small, 4)]
    assert resumed == [32, 48, 48]


def test_the_crop_size_schedule_resumes_exactly(setup, tmp_path):
    schedule = ("--small-steps", "2", "--small-size", "32", "--size", "40")
    assert fst.main(train_argv(setup, *schedule, steps=4)) == 0
    uninterrupted = transform_net.load_transform_net(setup[2]).get_weights()
    # stopped on small crops, resumed to more steps, across the switch to large ones
    other = (*setup[:2], str(tmp_path / "again" / "tiny.keras"), setup[3])
    assert fst.main(train_argv(other, *schedule, steps=1)) == 0
    assert fst.main(train_argv(other, *schedule, "--resume", steps=4)) == 0
    for a, b in zip(uninterrupted, transform_net.load_transform_net(other[2]).get_weights(),
                    strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-7)
    assert fst.main(train_argv(other, "--small-steps", "3", "--small-size", "32", "--size",
                               "40", "--resume", steps=6)) == 2  # another schedule: refused


def test_colour_jitter_is_seeded_and_mild(tmp_path):
    photos = inputs.find_photos(make_photos(str(tmp_path / "p")))
    plain, jittered = training.PhotoCrops(photos, 32, 3), training.PhotoCrops(photos, 32, 3,
                                                                                 jitter=0.1)
    np.testing.assert_array_equal(jittered(4), training.PhotoCrops(photos, 32, 3,
                                                                   jitter=0.1)(4))
    difference = np.abs(jittered(4) - plain(4))
    assert 0 < difference.mean() < 0.2 * 255 and jittered(4).min() >= 0
    same = training.jitter_colours(plain(4), 0.0, np.random.default_rng(0))
    np.testing.assert_allclose(same, plain(4), atol=1e-3)


def test_plain_crops_are_one_scale_and_never_flipped(tmp_path):
    # a horizontal ramp: a crop's slope tells its scale, its sign whether it was flipped
    ramp = np.tile(np.linspace(0, 255, 200, dtype=np.float32), (100, 1))
    Image.fromarray(np.stack([ramp] * 3, -1).astype(np.uint8)).save(tmp_path / "ramp.png")
    photos = [str(tmp_path / "ramp.png")]

    def slopes(crops):
        return [float(np.mean(np.diff(crops(i)[..., 0], axis=1))) for i in range(12)]
    plain = slopes(training.PhotoCrops(photos, 32, 0, augment=False))
    augmented = slopes(training.PhotoCrops(photos, 32, 0))
    assert min(plain) > 0 and max(plain) - min(plain) < 0.05 * max(plain)
    assert min(augmented) < 0 < max(augmented)  # some flipped
    assert max(map(abs, augmented)) - min(map(abs, augmented)) > 0.2 * max(plain)


def test_records_hold_no_machine_paths(monkeypatch, tmp_path):
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    (tmp_path / "work").mkdir()
    monkeypatch.chdir(tmp_path / "work")
    assert record.portable(str(tmp_path / "work" / "models" / "a.keras")) == "models/a.keras"
    weights = f"weights: ImageNet VGG19 ({tmp_path}/home/.keras/models/w.h5)"
    assert record.portable(weights) == "weights: ImageNet VGG19 (~/.keras/models/w.h5)"
    assert record.portable(3) == 3 and record.portable("/elsewhere/x") == "/elsewhere/x"
    assert record.portable((str(tmp_path / "work" / "a.png"), 2)) == ["a.png", 2]


def test_the_bundled_models_records_hold_no_absolute_paths():
    folder = os.path.join(ROOT, "models")
    for name in os.listdir(folder):
        if name.endswith(".json"):
            with open(os.path.join(folder, name)) as f:
                text = f.read()
            assert '"/' not in text and "(/" not in text, name


REFUSED_WITHOUT_TENSORFLOW = """
import sys
sys.path.insert(0, {root!r})
import fast_style_transfer, style_transfer
codes = [fast_style_transfer.main(["stylize", "no_such_model", {photo!r}]),
         fast_style_transfer.main(["train", {photo!r}, "--photos", "/nowhere",
                                   "--model", "m.keras"]),
         fast_style_transfer.main(["stylize", "swirls", {photo!r}, "--strength", "2"]),
         fast_style_transfer.main(["stylize", "/no/model.keras", {photo!r}]),
         fast_style_transfer.main(["stylize", {photo!r}, {photo!r}]),
         fast_style_transfer.main(["train", {photo!r}, "--photos", {root!r} + "/images",
                                   "--model", "m.keras", "--init-model", {photo!r}]),
         style_transfer.main([{photo!r}, "/no/style.png"])]
print(codes, "tensorflow" in sys.modules)
"""


def test_a_refused_command_answers_without_importing_tensorflow(tmp_path):
    code = REFUSED_WITHOUT_TENSORFLOW.format(root=ROOT,
                                             photo=os.path.join(ROOT, "images",
                                                                "grace_hopper.jpg"))
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          cwd=str(tmp_path), timeout=120, check=False)
    assert done.stdout.split("\n")[-2] == "[2, 2, 2, 2, 2, 2, 2] False", done.stderr
    assert done.stderr.count("error: ") == 7


def test_a_clip_among_photos_is_stylised_into_a_clip_of_its_own(bundled, tmp_path):
    from test_video import decoded, pattern, write_frames
    _, photo, out = bundled
    clip = write_frames(tmp_path / "pan.mp4", pattern(count=6))
    folder = tmp_path / "mixed"
    folder.mkdir()
    write_frames(folder / "inner.mov", pattern(count=4, seed=1), audio=None)
    assert fst.main(["stylize", "tiny", photo, clip, str(folder), "--output-dir", str(out),
                     "--smooth", "0"]) == 0
    assert sorted(os.listdir(out)) == ["inner_tiny_fast.mov", "pan_tiny_fast.mp4",
                                       "photo_tiny_fast.png"]
    frames = decoded(str(out / "pan_tiny_fast.mp4"))
    info = video.probe(str(out / "pan_tiny_fast.mp4"))
    assert len(frames) == 6 and (info.width, info.height, info.fps) == (64, 48, 10)
    assert info.has_audio and not video.probe(str(out / "inner_tiny_fast.mov")).has_audio
    # each frame is the net's output for that frame, H.264 aside: in luminance, since
    # yuv420p keeps a quarter of the colour of so small a frame
    net = transform_net.load_transform_net(str(bundled[0] / "tiny.keras"))
    source = decoded(clip)[0]

    def luma(frame):
        return frame.astype(float) @ [0.299, 0.587, 0.114]
    expected = luma(transform_net.stylise_pixels(net, source))
    assert np.abs(luma(frames[0]) - expected).mean() < 0.2 * np.abs(luma(source) - expected).mean()


def test_a_clip_s_output_must_be_a_video_container(bundled, tmp_path, capsys):
    from test_video import pattern, write_frames
    clip = write_frames(tmp_path / "pan.mp4", pattern(count=3))
    assert fst.main(["stylize", "tiny", clip, "--output", str(tmp_path / "x.png")]) == 2
    assert "a clip is written as .mkv, .mov, .mp4" in capsys.readouterr().err
    assert fst.main(["stylize", "tiny", clip, "--smooth", "1.5"]) == 2
    assert "--smooth must be from 0 to 1" in capsys.readouterr().err
