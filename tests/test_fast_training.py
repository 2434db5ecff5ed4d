"""Fast mode, training: the loss falls, resume is exact, devices agree, signals save."""
import json
import os
import pathlib
import signal
import subprocess
import sys
import textwrap

import numpy as np
import pytest
from PIL import Image

import fast_style_transfer as fst
import style_transfer as st
from conftest import ROOT, make_photos, make_style, make_target
from nst import inputs, runtime, training, transform_net, vgg_weights


def train_argv(setup, *extra, steps=4):
    """A tiny run: 32 px crops, 2 per step, a 4-4-8 wide net with one residual block."""
    style, photos, model, weights = setup
    return ["train", style, "--photos", photos, "--model", model, "--weights", weights,
            "--size", "32", "--batch-size", "2", "--steps", str(steps), "--filters",
            "4,4,8", "--residual-blocks", "1", "--precision", "float32", "--log-every",
            "1", "--checkpoint-every", "2", "--preview-every", "2", *extra]


def record_of(model):
    with open(os.path.splitext(model)[0] + ".json") as f:
        return json.load(f)


def weights_of(model):
    return transform_net.load_transform_net(model).get_weights()


def test_a_few_steps_lower_the_loss(setup):
    assert fst.main(train_argv(setup, "--steps", "12")) == 0
    history = record_of(setup[2])["history"]
    assert [h["step"] for h in history] == list(range(1, 13))
    first, last = history[0]["loss"], np.mean([h["loss"] for h in history[-3:]])
    assert last < 0.5 * first


def test_training_writes_model_record_previews_and_figure(setup, capsys):
    style, _photos, model, _ = setup
    assert fst.main(train_argv(setup)) == 0
    folder = os.path.dirname(model)
    assert sorted(os.listdir(folder)) == ["tiny.ckpt.npz", "tiny.json", "tiny.keras",
                                          "tiny_previews", "tiny_training.png"]
    assert sorted(os.listdir(os.path.join(folder, "tiny_previews"))) == [
        "step_000002.png", "step_000004.png"]
    record = record_of(model)
    assert record["status"] == "completed" and record["step"] == 4
    assert record["style"] == style and record["photo_count"] == 3
    assert record["preview_photo"].endswith("photo0.png")  # held out of the 4
    assert set(record["history"][0]) == {"step", "loss", "content", "style", "tv", "seconds"}
    assert record["settings"]["filters"] == [4, 4, 8] and "tensorflow" in record["libraries"]
    out = capsys.readouterr().out
    assert "step 4/4  loss" in out and "steps/s" in out and "ETA" in out


def test_resume_gives_the_weights_of_an_uninterrupted_run(setup, tmp_path):
    assert fst.main(train_argv(setup, steps=6)) == 0
    uninterrupted = weights_of(setup[2])
    other = (*setup[:2], str(tmp_path / "again" / "tiny.keras"), setup[3])
    assert fst.main(train_argv(other, steps=2)) == 0
    assert fst.main(train_argv(other, "--resume", steps=6)) == 0
    for a, b in zip(uninterrupted, weights_of(other[2]), strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-7)
    assert [h["step"] for h in record_of(other[2])["history"]] == [1, 2, 3, 4, 5, 6]
    assert record_of(other[2])["resumed_at"] == [2]


def test_resume_needs_a_checkpoint_and_an_existing_model_needs_a_flag(setup, capsys):
    assert fst.main(train_argv(setup, "--resume")) == 2
    assert "--resume: no checkpoint" in capsys.readouterr().err
    assert fst.main(train_argv(setup, steps=1)) == 0
    before = pathlib.Path(setup[2]).read_bytes()
    assert fst.main(train_argv(setup, steps=1)) == 2
    assert "exists; pass --resume" in capsys.readouterr().err
    assert pathlib.Path(setup[2]).read_bytes() == before
    assert fst.main(train_argv(setup, "--overwrite", steps=1)) == 0


def test_resume_refuses_other_loss_or_training_settings(setup, capsys):
    assert fst.main(train_argv(setup, steps=2)) == 0
    before = {p: p.read_bytes() for p in pathlib.Path(setup[2]).parent.iterdir()
              if p.is_file()}
    for flags, said in [(("--content-weight", "0.5"), f"--content-weight {fst.CONTENT_WEIGHT}"),
                        (("--learning-rate", "0.1"), f"--learning-rate {fst.LEARNING_RATE}"),
                        (("--seed", "3"), "--seed 0")]:
        assert fst.main(train_argv(setup, "--resume", *flags, steps=4)) == 2
        err = capsys.readouterr().err
        assert f"was trained with {said}" in err and err.count("\n") == 1
        assert {p: p.read_bytes() for p in before} == before
    # how long and how often may change, and the record says so
    assert fst.main(train_argv(setup, "--resume", "--log-every", "2", steps=4)) == 0
    record = record_of(setup[2])
    assert record["settings"]["steps"] == 4 and record["settings"]["log_every"] == 2
    assert record["settings"]["content_weight"] == fst.CONTENT_WEIGHT


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_a_signal_checkpoints_and_resume_finishes_the_run(setup, tmp_path, signum):
    argv = train_argv(setup, "--checkpoint-every", "1000", steps=400)
    process = subprocess.Popen([sys.executable, os.path.join(ROOT, "fast_style_transfer.py"),
                                *argv], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               text=True, cwd=str(tmp_path))
    for line in process.stdout:
        if line.startswith("step 3/"):
            process.send_signal(signum)
            break
    _stdout, stderr = process.communicate(timeout=120)
    assert process.returncode == 128 + signum, stderr
    name = signal.Signals(signum).name
    assert f"interrupted ({name}) at step" in stderr
    record = record_of(setup[2])
    stopped = record["step"]
    assert record["status"] == f"interrupted by {name}" and 3 <= stopped < 400
    assert [h["step"] for h in record["history"]] == list(range(1, stopped + 1))
    assert os.path.getsize(os.path.splitext(setup[2])[0] + "_training.png") > 0
    assert fst.main(train_argv(setup, "--resume", steps=stopped + 2)) == 0
    assert [h["step"] for h in record_of(setup[2])["history"]] == list(
        range(1, stopped + 3))


TWO_DEVICES = textwrap.dedent("""
    import sys, json
    sys.path.insert(0, {root!r}); sys.path.insert(0, {tests!r})
    import tensorflow as tf
    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(
        cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
    import keras
    import numpy as np
    import style_transfer as st, fast_style_transfer as fst
    from nst import training, transform_net, vgg_weights
    from conftest import make_style, make_target
    weights = vgg_weights.read_vgg19_h5({weights!r}, st.layers_up_to(
        [fst.CONTENT_LAYER] + fst.STYLE_LAYERS))
    photos = np.stack([np.asarray(make_target((32, 32)), np.float32),
                       np.asarray(make_target((40, 32)).resize((32, 32)), np.float32)[::-1],
                       np.asarray(make_style((32, 32), seed=3), np.float32),
                       np.asarray(make_style((32, 32), seed=4), np.float32)])
    results = {{}}
    for name, strategy in [("one", tf.distribute.get_strategy()),
                           ("two", tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"]))]:
        with strategy.scope():
            loss = fst.PerceptualLoss(weights, make_style(), 32, st.LossSettings(
                fst.CONTENT_LAYER, tuple(fst.STYLE_LAYERS), fst.CONTENT_WEIGHT,
                fst.STYLE_WEIGHT, fst.TV_WEIGHT))
        # SGD: its update is the gradient itself (with lr 1, large enough that float32
        # resolves it), while Adam's first step is +-lr for every weight, turning a
        # gradient's rounding noise around 0 into a sign flip
        trainer = training.Trainer(strategy, loss, (4, 4, 8), 1, 1.0, "float32", 0, 4,
                              optimizer=keras.optimizers.SGD)
        batch = next(iter(trainer.distribute(
            tf.data.Dataset.from_tensor_slices(photos).batch(4))))
        values = trainer.step(batch).numpy()
        results[name] = {{"replicas": strategy.num_replicas_in_sync,
                          "values": values.tolist(),
                          "weights": [w.numpy().ravel().tolist() for w in trainer.net.weights]}}
    print(json.dumps(results))
""")


def test_one_step_on_two_devices_equals_one_device(weights_file):
    code = TWO_DEVICES.format(root=ROOT, tests=os.path.join(ROOT, "tests"),
                              weights=weights_file)
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False,
                          timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    results = json.loads(done.stdout.strip().splitlines()[-1])
    assert results["one"]["replicas"] == 1 and results["two"]["replicas"] == 2
    np.testing.assert_allclose(results["two"]["values"], results["one"]["values"], rtol=1e-5)
    fresh = transform_net.build_transform_net((4, 4, 8), 1, "float32", 0).get_weights()
    # the step each took: -lr * the gradient summed over replicas
    steps_one = [np.subtract(one, start.ravel()) for one, start in
                 zip(results["one"]["weights"], fresh, strict=True)]
    steps_two = [np.subtract(two, start.ravel()) for two, start in
                 zip(results["two"]["weights"], fresh, strict=True)]
    # against the largest step: a weight whose gradient is 0 in exact arithmetic (the last
    # residual block's offset, removed by the next instance normalisation) gets rounding
    # noise that differs between the two summation orders
    scale = max(np.abs(s).max() for s in steps_one)
    for two, one in zip(steps_two, steps_one, strict=True):
        np.testing.assert_allclose(two, one, rtol=1e-4, atol=1e-5 * scale)
    moved = sum(np.abs(s).max() > 1e-3 * scale for s in steps_one)
    assert moved >= len(fresh) - 2  # the step moved the weights: the test means something


def test_crops_depend_only_on_the_seed_and_index(tmp_path):
    photos = inputs.find_photos(make_photos(str(tmp_path / "p")))
    a, b = training.PhotoCrops(photos, 32, 7), training.PhotoCrops(photos, 32, 7)
    np.testing.assert_array_equal(a(5), b(5))
    assert a(5).shape == (32, 32, 3) and a(5).dtype == np.float32
    assert not np.array_equal(a(5), a(6))


def test_an_unreadable_photo_is_skipped_with_a_note(tmp_path, capsys):
    folder = make_photos(str(tmp_path / "p"), count=2)
    with open(os.path.join(folder, "broken.jpg"), "wb") as f:
        f.write(b"not a jpeg")
    Image.new("RGB", (5, 5)).save(os.path.join(folder, "tiny.png"))
    os.makedirs(os.path.join(folder, "sub"))
    make_target().save(os.path.join(folder, "sub", "deeper.png"))
    found = training.readable_photos(inputs.find_photos(folder), 32)
    assert [os.path.basename(p) for p in found] == ["photo0.png", "photo1.png", "deeper.png"]
    err = capsys.readouterr().err
    assert err.count("note: skipped") == 2
    assert "broken.jpg': not an image" in err and "tiny.png': 5 px" in err


def test_the_loss_is_the_chapters_averaged_over_the_batch_at_the_loss_height(weights_file):
    tf = runtime.tf
    settings = st.LossSettings(fst.CONTENT_LAYER, tuple(fst.STYLE_LAYERS), 0.5, 2.0, 1e-3)
    weights = vgg_weights.read_vgg19_h5(weights_file, st.layers_up_to(settings.layers))
    photos = np.stack([np.asarray(make_target((32, 32)), np.float32),
                       np.asarray(make_style((32, 32), seed=5), np.float32)])
    generated = np.stack([np.asarray(make_style((32, 32), seed=6), np.float32),
                          np.asarray(make_target((32, 32)), np.float32)[::-1]])
    style = make_style((48, 40), seed=2)
    plain = fst.PerceptualLoss(weights, style, 32, settings, style_size=40, loss_height=None)
    total, parts = plain(tf.constant(photos), tf.constant(generated), 2)

    # by hand, one photo at a time, with the main script's own losses
    extractor = st.build_feature_extractor(weights, settings.layers)
    grams = st.style_grams(extractor, [st.preprocess_image(style, (48, 40))], [1.0],
                           settings.style_layers, 32 * 32)
    expected = np.zeros(3)
    for photo, image in zip(photos, generated, strict=True):
        target = extractor(fst.vgg_input(tf.constant(photo[None])))[settings.content_layer]
        features = extractor(fst.vgg_input(tf.constant(image[None])))
        expected += [
            settings.content_weight * st.content_loss(target, features[settings.content_layer]),
            sum(st.style_loss(grams[layer], features[layer], 32 * 32)
                for layer in settings.style_layers) * settings.style_weight / 5,
            settings.tv_weight * st.total_variation_loss(tf.constant(image[None]))]
    expected /= 2
    np.testing.assert_allclose([float(p) for p in parts], expected, rtol=1e-4)
    assert float(total) == pytest.approx(expected.sum(), rel=1e-4)
    assert min(expected) > 0  # each part is there to be compared

    # meant for a photo 64 high: the sums over pixels count 4 times, the style as it is
    high = fst.PerceptualLoss(weights, style, 32, settings, style_size=40, loss_height=64)
    _, scaled = high(tf.constant(photos), tf.constant(generated), 2)
    np.testing.assert_allclose([float(p) for p in scaled], expected * [4, 1, 4], rtol=1e-4)
