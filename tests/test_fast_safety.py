"""Fast mode keeps the script's guarantees: no special files, never over an input,
concurrent runs get their own names."""
import hashlib
import os
import subprocess
import sys

import pytest

import fast_style_transfer as fst
from conftest import ROOT, make_style, make_target
from nst import inputs, training, transform_net


def digest(path):
    with open(path, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


@pytest.fixture
def model(tmp_path):
    path = str(tmp_path / "net.keras")
    transform_net.save_model(transform_net.build_transform_net((4, 4, 4), 0), path)
    return path


def test_stylize_never_writes_over_its_input_even_with_overwrite(model, tmp_path, capsys):
    photo = tmp_path / "photo.png"
    make_target().save(photo)
    before = digest(photo)
    assert fst.main(["stylize", model, str(photo), "--output",
                     str(tmp_path / "sub" / ".." / "photo.png"), "--overwrite"]) == 2
    err = capsys.readouterr().err
    assert "would be written over the input" in err and err.count("\n") == 1
    assert digest(photo) == before
    assert fst.main(["stylize", model, str(photo), "--output", str(photo)]) == 0
    assert digest(photo) == before and (tmp_path / "photo_1.png").exists()


def test_train_never_writes_over_its_style_image(tmp_path, weights_file, capsys):
    style = tmp_path / "m_training.png"  # what --model m.keras would name its figure
    make_style().save(style)
    photos = tmp_path / "photos"
    photos.mkdir()
    make_target().save(photos / "a.png")
    make_target().save(photos / "b.png")
    before = digest(style)
    assert fst.main(["train", str(style), "--photos", str(photos), "--model",
                     str(tmp_path / "m.keras"), "--weights", weights_file, "--size", "32",
                     "--steps", "1", "--overwrite"]) == 2
    assert "the training figure" in capsys.readouterr().err
    assert digest(style) == before and not (tmp_path / "m.keras").exists()


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="named pipes")
def test_a_named_pipe_is_refused_or_skipped_never_read(model, tmp_path, capsys):
    photos = tmp_path / "photos"
    photos.mkdir()
    make_target().save(photos / "a.png")
    os.mkfifo(photos / "pipe.jpg")
    assert [os.path.basename(p) for p in training.readable_photos(
        inputs.find_photos(str(photos)), 32)] == ["a.png"]
    assert "pipe.jpg' is a named pipe" in capsys.readouterr().err
    os.mkfifo(tmp_path / "pipe.keras")
    assert fst.main(["stylize", str(tmp_path / "pipe.keras"), str(photos / "a.png")]) == 2
    assert "is a named pipe, not a regular file" in capsys.readouterr().err


def test_stylize_runs_started_together_each_get_their_own_file(model, tmp_path):
    photo = tmp_path / "photo.png"
    make_target().save(photo)
    out = tmp_path / "out"
    argv = [sys.executable, os.path.join(ROOT, "fast_style_transfer.py"), "stylize", model,
            str(photo), "--output-dir", str(out), "--precision", "float32"]
    runs = [subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
            for _ in range(2)]
    for run in runs:
        _, err = run.communicate(timeout=180)
        assert run.returncode == 0, err
    assert sorted(os.listdir(out)) == ["photo_net_fast.png", "photo_net_fast_1.png"]
    assert all(os.path.getsize(out / name) > 0 for name in os.listdir(out))
