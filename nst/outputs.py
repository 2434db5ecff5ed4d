"""Writing results: atomic writes, claiming output names, never writing over an input.

Promises: a file is never half-written (each is written to a temporary file beside it,
then renamed); runs started at the same moment into one folder each get names of their
own (claimed with O_EXCL); no output is written over an input, whatever --output,
--output-dir and --overwrite say; a folder that cannot take the outputs is found before
the long work, not after it.
"""
import contextlib
import errno
import json
import os
import shutil
import tempfile

from PIL import Image

from nst.runtime import FatalError, before_exit_at_once, signals_deferred


def atomic_write(path, write):
    """Call write(tmp_path), then rename tmp onto path, so path is never half-written;
    a signal meanwhile waits until the temporary file is renamed or removed."""
    folder = os.path.dirname(os.path.abspath(path))
    with signals_deferred():
        fd, tmp = tempfile.mkstemp(prefix="." + os.path.basename(path) + ".",
                                   suffix=".tmp", dir=folder)
        os.close(fd)
        try:
            write(tmp)
            umask = os.umask(0)
            os.umask(umask)
            os.chmod(tmp, 0o666 & ~umask)  # mkstemp's 0600 would hide results from others
            os.replace(tmp, path)
        except BaseException:
            if os.path.exists(tmp):
                os.remove(tmp)
            raise


def save_image(pixels, path):
    """Save uint8 RGB pixels; the format follows the extension (PNG, JPEG, WebP...)."""
    extension = os.path.splitext(path)[1].lower()
    format_ = Image.registered_extensions().get(extension, "PNG")
    options = {"quality": 95} if format_ in ("JPEG", "WEBP") else {}
    atomic_write(path, lambda tmp: Image.fromarray(pixels).save(tmp, format=format_,
                                                                 **options))


def write_text(path, text):
    def write(tmp):
        with open(tmp, "w") as f:
            f.write(text)
    atomic_write(path, write)


def save_json(record, path):
    write_text(path, json.dumps(record, indent=2) + "\n")


def check_output(path):
    """Fail now, not after the long work, when the folder of path cannot take our files."""
    folder = os.path.dirname(os.path.abspath(path))
    try:
        os.makedirs(folder, exist_ok=True)
        fd, probe = tempfile.mkstemp(prefix=".write-test-", dir=folder)
        try:
            os.write(fd, b"\0" * 65536)
        finally:
            os.close(fd)
            os.remove(probe)
    except OSError as e:
        reason = "disk full" if e.errno == errno.ENOSPC else (e.strerror or str(e))
        raise FatalError(f"cannot write to output folder '{folder}': {reason}; "
                         "choose another with --output-dir") from e
    free_mb = shutil.disk_usage(folder).free / 2 ** 20
    if free_mb < 50:
        raise FatalError(f"output folder '{folder}' has only {free_mb:.0f} MB free; "
                         "free some space or choose another with --output-dir")


def check_outputs_are_not_inputs(outputs, inputs, instead="another --output or --output-dir"):
    """Refuse a run that would write over one of its own inputs, whatever --output,
    --output-dir and --overwrite say: the same resolved path (so ../ and symbolic links
    count) or, for files that exist, the same device and inode (so hard links count).
    outputs and inputs are [(what, path)]; `instead` says which flags choose other names."""
    def identity(path):
        try:
            info = os.stat(path)
        except OSError:
            return None
        return info.st_dev, info.st_ino

    known = [(what, path, os.path.realpath(path), identity(path)) for what, path in inputs]
    for what_out, out in outputs:
        real, same = os.path.realpath(out), identity(out)
        for what_in, path, real_in, same_in in known:
            if real == real_in or (same is not None and same == same_in):
                raise FatalError(f"the {what_out} '{out}' would be written over the "
                                 f"{what_in} '{path}'; --overwrite replaces earlier outputs "
                                 f"only: choose {instead}")
        if os.path.isdir(out):
            raise FatalError(f"the {what_out} '{out}' would be written where a folder is; "
                             f"choose {instead}")


def numbered(stem, extension):
    """stem + extension, then stem_1 + extension, stem_2 + extension...: the names an
    output takes in turn while earlier results hold the ones before."""
    yield stem + extension
    n = 1
    while True:
        yield f"{stem}_{n}{extension}"
        n += 1


_claims = {}  # path -> claim of the placeholders this process holds


def release_all_claims():
    for path, claim in list(_claims.items()):
        release_claim(path, claim)


before_exit_at_once(release_all_claims)  # a signal while TensorFlow loads leaves none


def claim_first_free(candidates, path_of=lambda candidate: candidate):
    """(candidate, claim) for the first of candidates whose path (path_of(candidate)) this
    process creates, empty, with O_EXCL: runs started at the same moment each get their
    own. claim is the placeholder's (st_dev, st_ino), which the result's atomic rename
    replaces (release_claim removes it if the result never comes)."""
    for candidate in candidates:
        try:
            fd = os.open(path_of(candidate), os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
        except FileExistsError:
            continue  # an earlier result, or a run that took the name since we looked
        info = os.fstat(fd)
        os.close(fd)
        _claims[path_of(candidate)] = (info.st_dev, info.st_ino)
        return candidate, (info.st_dev, info.st_ino)
    raise FatalError("no free output name")  # candidates are endless: never reached


def release_claim(path, claim):
    """Remove a claimed placeholder at path if the run ended without replacing it."""
    if path is None or claim is None:
        return
    _claims.pop(path, None)
    with contextlib.suppress(OSError):
        info = os.lstat(path)
        if (info.st_dev, info.st_ino) == claim and info.st_size == 0:
            os.remove(path)
