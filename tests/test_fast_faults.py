"""Fast mode under faults a real machine produces, each entry point as a real process:
every file it reads corrupt in every way (one line naming the file, exit 2, nothing
changed on disk), and Ctrl-C, SIGTERM and SIGHUP at every phase (one line saying what
was kept, 128 + the signal, no partial file, no traceback)."""
import os
import shutil
import signal
import subprocess
import sys
import textwrap

import numpy as np
import pytest
from PIL import Image

import fast_style_transfer as fst
from conftest import ROOT, make_photos, make_style, make_target
from nst import runtime, training, transform_net, video
from test_video import pattern, write_frames

SCRIPT = os.path.join(ROOT, "fast_style_transfer.py")


def snapshot(folder):
    """{relative path: bytes} of every file under folder."""
    files = {}
    for root, _, names in os.walk(folder):
        for name in names:
            path = os.path.join(root, name)
            with open(path, "rb") as f:
                files[os.path.relpath(path, folder)] = f.read()
    return files


@pytest.fixture(scope="module")
def trained(tmp_path_factory, weights_file):
    """A folder with a style image, photos, a preview, a small model trained 2 steps (its
    checkpoint and record beside it), and a second run's, for 'another run' cases."""
    folder = tmp_path_factory.mktemp("faults")
    make_style().save(folder / "style.png")
    make_photos(str(folder / "photos"))
    make_target((40, 36)).save(folder / "preview.png")
    for name in ("run", "other"):
        assert fst.main(train_args(folder, weights_file, name, "--steps", "2",
                                   "--seed", "1" if name == "other" else "0")) == 0
    keras = runtime.keras
    other = keras.Sequential([keras.Input((4,)), keras.layers.Dense(2)], name="other")
    other.save(folder / "not_fw.keras")
    clips = folder / "clips"
    clips.mkdir()
    write_frames(clips / "clip.mp4", pattern(count=6))
    subprocess.run([video.ffmpeg_exe(), "-loglevel", "error", "-f", "lavfi", "-i",
                    "sine=frequency=440:duration=1", "-c:a", "aac", str(folder / "sound.mp4")],
                   check=True, stdin=subprocess.DEVNULL)  # a clip with no picture
    return folder, weights_file


def train_args(folder, weights, name="run", *extra):
    return ["train", str(folder / "style.png"), "--photos", str(folder / "photos"),
            "--preview", str(folder / "preview.png"), "--model",
            str(folder / "models" / f"{name}.keras"), "--weights", weights, "--size", "32",
            "--batch-size", "2", "--filters", "4,4,8", "--residual-blocks", "1",
            "--precision", "float32", "--checkpoint-every", "1", "--preview-every", "100",
            *extra]


def corruptions(path, other=None):
    """{how: bytes} of corrupt versions of the file at path: empty, truncated, random,
    another kind of file under its name, and (given other) a whole file of another
    model or run."""
    with open(path, "rb") as f:
        data = f.read()
    rng = np.random.default_rng(len(data))
    found = {"empty": b"", "truncated": data[:len(data) // 2],
             "random bytes": rng.integers(0, 256, 4096, dtype=np.uint8).tobytes(),
             "another kind": (b"\x89PNG\r\n\x1a\n" + data[8:200] if not data.startswith(
                 b"\x89PNG") else b'{"not": "an image"}')}
    if other is not None:
        with open(other, "rb") as f:
            found["another's"] = f.read()
    return found


def cases(folder):
    """(name, file to corrupt, its corrupt versions, argv) for every file each entry
    point reads."""
    m = folder / "models"
    photo = folder / "photos" / "photo1.png"
    stylize = ["stylize", str(m / "run.keras"), str(photo), "--output-dir", str(folder / "o")]
    table = [
        ("stylize: model", m / "run.keras", corruptions(m / "run.keras", folder / "not_fw.keras"),
         stylize),
        ("stylize: photo", photo, corruptions(photo), stylize),
        ("stylize: clip", folder / "clips" / "clip.mp4",
         corruptions(folder / "clips" / "clip.mp4", folder / "sound.mp4"),
         ["stylize", str(m / "run.keras"), str(folder / "clips" / "clip.mp4"), "--output-dir",
          str(folder / "o")]),
        ("train: style image", folder / "style.png", corruptions(folder / "style.png"), None),
        ("train: preview", folder / "preview.png", corruptions(folder / "preview.png"), None),
        ("train --resume: checkpoint", m / "run.ckpt.npz",
         corruptions(m / "run.ckpt.npz", m / "other.ckpt.npz"), ["--resume", "--steps", "3"]),
        ("train --resume: record", m / "run.json", corruptions(m / "run.json"),
         ["--resume", "--steps", "3"]),
        ("train --init-model", m / "other.keras",
         corruptions(m / "other.keras", folder / "not_fw.keras"),
         ["--init-model", str(m / "other.keras"), "--overwrite", "--steps", "1"]),
        ("train: weights file", "weights", None, ["--overwrite", "--steps", "1"]),
    ]
    return table


def run_all(commands):
    """Start every (cwd, argv) at once, as real processes; their (status, stdout, stderr)."""
    processes = [subprocess.Popen([sys.executable, SCRIPT, *argv], cwd=cwd,
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
                 for cwd, argv in commands]
    results = []
    for process in processes:
        out, err = process.communicate(timeout=300)
        results.append((process.returncode, out, err))
    return results


def test_every_corrupt_file_is_one_line_exit_2_and_nothing_changes(trained, tmp_path):
    folder, weights = trained
    commands, expected = [], []
    for name, target, versions, argv in cases(folder):
        if target == "weights":  # the weights file: every corruption of a copy of it
            versions, target = corruptions(weights), None
        for how, data in versions.items():
            case = tmp_path / f"{len(commands)}"
            shutil.copytree(folder, case)
            if target is None:
                bad = case / "weights.h5"
                bad.write_bytes(data)
                args = train_args(case, str(bad), "run", *argv)
            else:
                bad = case / os.path.relpath(target, folder)
                bad.write_bytes(data)
                args = ([a.replace(str(folder), str(case)) for a in argv]
                        if argv and argv[0] == "stylize" else
                        train_args(case, weights, "run", *[a.replace(str(folder), str(case))
                                                           for a in (argv or [])]))
                if argv is None:  # a new model, so that only the corrupt file can stop it
                    args[args.index("--model") + 1] = str(case / "models" / "new.keras")
            commands.append((str(case), args))
            expected.append((f"{name}, {how}", case, os.path.basename(bad),
                             snapshot(case)))
    failures = []
    for (status, _out, err), (label, case, bad_name, before) in zip(
            run_all(commands), expected, strict=True):
        lines = [line for line in err.splitlines() if not line.startswith("note: ")]
        if status != 2 or len(lines) != 1 or not lines[0].startswith("error: ") \
                or bad_name not in lines[0] or "Traceback" in err:
            failures.append(f"{label}: exit {status}, stderr {err!r}")
        elif snapshot(case) != before:
            failures.append(f"{label}: files changed on disk")
    assert not failures, "\n".join(failures)


def test_a_checkpoint_of_another_run_is_refused_not_mixed(trained, tmp_path, capsys):
    folder, weights = trained
    case = tmp_path / "case"
    shutil.copytree(folder, case)
    shutil.copy(case / "models" / "other.ckpt.npz", case / "models" / "run.ckpt.npz")
    before = snapshot(case)
    assert fst.main(train_args(case, weights, "run", "--resume", "--steps", "3")) == 2
    assert capsys.readouterr().err == (
        f"error: checkpoint '{case}/models/run.ckpt.npz' is another run's than the record "
        f"'{case}/models/run.json'; train again without --resume\n")
    assert snapshot(case) == before


DRIVER = textwrap.dedent("""
    import contextlib, os, sys, time
    sys.path.insert(0, {root!r})
    from nst import runtime
    runtime.exit_on_signals_while_loading("while starting; nothing was written")
    import numpy as np
    from PIL import Image
    import fast_style_transfer as fst
    from nst import training, transform_net
    point, signum, argv = sys.argv[1], int(sys.argv[2]), sys.argv[3:]

    def signal_at(owner, name, nth=1):
        real, calls = getattr(owner, name), []

        def wrapper(*args, **kwargs):
            calls.append(1)
            if len(calls) == nth:
                os.kill(os.getpid(), signum)
            return real(*args, **kwargs)
        setattr(owner, name, wrapper)

    if point == "loading TensorFlow":
        real_exit_on_signals = runtime.exit_on_signals

        @contextlib.contextmanager
        def exit_on_signals():
            with real_exit_on_signals():
                os.kill(os.getpid(), signum)
                time.sleep(1)
                yield
        runtime.exit_on_signals = exit_on_signals
    elif point == "loading the model":
        signal_at(transform_net, "load_transform_net")
    elif point == "between two images":  # as the first result's progress line is printed
        signal_at(fst, "progress_bar", 1)
    elif point == "while an image is written":
        signal_at(Image.Image, "save", 2)
    elif point == "during a step":
        signal_at(training.PhotoCrops, "__call__", 5)
    elif point == "while a checkpoint is written":
        signal_at(np, "savez", 2)
    elif point == "between two frames of a clip":
        signal_at(fst, "stylised", 4)
    sys.exit(fst.main(argv, handle_signals=True))
""")

SIGNAL_CASES = [
    ("stylize", "loading TensorFlow", signal.SIGTERM, "while starting; nothing was written"),
    ("stylize", "loading the model", signal.SIGHUP, ": 0 of 3 results written; nothing was"),
    ("stylize", "between two images", signal.SIGINT, ": 1 of 3 results written; the first 1"),
    ("stylize", "while an image is written", signal.SIGTERM,
     ": 2 of 3 results written; the first 2 kept"),
    ("stylize", "between two frames of a clip", signal.SIGHUP,
     "clip_run_fast.mp4' keeps the first 2 frames of '"),
    ("train", "loading TensorFlow", signal.SIGINT, "while starting; nothing was written"),
    ("train", "during a step", signal.SIGHUP, "at step"),
    ("train", "while a checkpoint is written", signal.SIGTERM, "at step"),
]


@pytest.mark.parametrize("command,point,signum,said", SIGNAL_CASES,
                         ids=[f"{c[0]}: {c[1]}, {c[2].name}" for c in SIGNAL_CASES])
def test_a_signal_at_any_phase_is_one_line_and_keeps_whole_files(trained, tmp_path, command,
                                                                 point, signum, said):
    folder, weights = trained
    case = tmp_path / "case"
    shutil.copytree(folder, case)
    if command == "stylize":
        argv = ["stylize", str(case / "models" / "run.keras"), str(case / "photos"),
                "--output-dir", str(case / "out")]
        for extra in case.glob("photos/photo[3-9].png"):
            extra.unlink()  # three photos: photo0..photo2
        if "clip" in point:  # a photo, then a clip of six frames cut after two
            argv[2:3] = [str(case / "photos" / "photo0.png"), str(case / "clips" / "clip.mp4")]
    else:
        argv = train_args(case, weights, "fresh", "--steps", "6", "--checkpoint-every", "2")
    inputs = {k: v for k, v in snapshot(case).items() if not k.startswith(("out", "models"))}
    done = subprocess.run([sys.executable, "-c", DRIVER.format(root=ROOT), point,
                           str(int(signum)), *argv], capture_output=True, text=True,
                          cwd=str(case), timeout=300, check=False)
    assert done.returncode == 128 + signum, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and said in lines[0] and "Traceback" not in done.stderr, lines
    name = signal.Signals(signum).name
    assert name in lines[0] or (signum == signal.SIGINT and lines[0].startswith("interrupted"))
    after = snapshot(case)
    assert {k: v for k, v in after.items() if k in inputs} == inputs  # inputs untouched
    assert not [k for k in after if k.endswith(".tmp") or os.path.basename(k).startswith(".")]
    for path, data in after.items():  # whatever was written is whole
        if path.startswith("out"):
            assert data, path  # no empty placeholder left behind
            if path.endswith(".mp4"):  # the frames done, playable
                assert len(list(video.frames(str(case / path), video.probe(str(case / path)))
                                )) == 2
            else:
                Image.open(case / path).verify()
    if command == "train" and (case / "models" / "fresh.ckpt.npz").exists():
        step, _, _ = training.read_checkpoint(str(case / "models" / "fresh.ckpt.npz"))
        record = training.read_record(str(case / "models" / "fresh.json"))
        assert record["step"] == step and record["status"] == f"interrupted by {name}"
        transform_net.check_model_file(str(case / "models" / "fresh.keras"))
        assert fst.main([*argv, "--resume"]) == 0  # and the run goes on from there
