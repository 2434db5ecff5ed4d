"""Reading input files: only regular files, never unbounded, images decoded as upright RGB.

Promises: nothing is read from a named pipe, a device, a socket or a folder (a pipe would
block the first read forever); no read is larger than its limit; a file that is not what
it should be (not an image, truncated, a decompression bomb) raises FatalError with one
line naming the file and what to do, never a library's traceback.
"""
import io
import os
import stat
import warnings

import numpy as np
from PIL import Image, ImageOps

from nst.runtime import FatalError, note

IMAGE_EXTENSIONS = {ext for ext, fmt in Image.registered_extensions().items()
                    if fmt in Image.OPEN}

# No read is unbounded: a file larger than this is refused before a byte is read. Pillow
# refuses images over ~89 million pixels anyway (vgg_weights.WEIGHTS_MAX_BYTES is the
# weights' limit).
IMAGE_MAX_BYTES = 512 * 2 ** 20

_FILE_KINDS = [(stat.S_ISDIR, "a directory"), (stat.S_ISFIFO, "a named pipe"),
               (stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device"),
               (stat.S_ISSOCK, "a socket")]


def _size_text(size):
    return f"{size / 2 ** 30:.1f} GB" if size >= 2 ** 30 else f"{size / 2 ** 20:.0f} MB"


def check_regular_file(path, what, max_bytes, hint=""):
    """Refuse, before a byte is read, anything but a regular file of at most max_bytes.

    A named pipe would block the first read forever and a device may never end. A
    symbolic link is followed; a dangling one is named as such. `what` names the file in
    the message ('style image'), `hint` is appended to it (what to do instead).
    """
    try:
        info = os.stat(path)
    except FileNotFoundError as e:
        if os.path.lexists(path):
            raise FatalError(f"{what} '{path}' is a symbolic link to '{os.readlink(path)}', "
                             f"which does not exist{hint}") from e
        raise FatalError(f"{what} '{path}' does not exist{hint}") from e
    except PermissionError as e:
        raise FatalError(f"cannot read {what} '{path}': permission denied") from e
    except OSError as e:  # a loop of links, a file used as a folder, a name too long
        raise FatalError(f"cannot read {what} '{path}': {e.strerror or e}") from e
    if not stat.S_ISREG(info.st_mode):
        kind = next((kind for is_kind, kind in _FILE_KINDS if is_kind(info.st_mode)),
                    "a special file")
        raise FatalError(f"{what} '{path}' is {kind}, not a regular file{hint}")
    if info.st_size > max_bytes:
        raise FatalError(f"{what} '{path}' is {_size_text(info.st_size)}, over the "
                         f"{_size_text(max_bytes)} limit for a {what}{hint}")
    return info


def _open_nonblocking(path, flags):
    # should a pipe take the file's place after the check, opening it will not wait
    return os.open(path, flags | getattr(os, "O_NONBLOCK", 0))


def read_regular_file(path, what, max_bytes):
    """The bytes of a regular file of at most max_bytes, never blocking nor unbounded."""
    check_regular_file(path, what, max_bytes)
    with open(path, "rb", opener=_open_nonblocking) as f:
        if not stat.S_ISREG(os.fstat(f.fileno()).st_mode):
            raise FatalError(f"{what} '{path}' was replaced by a special file while it was "
                             "being read")
        data = f.read(max_bytes + 1)
    if len(data) > max_bytes:
        raise FatalError(f"{what} '{path}' grew past the {_size_text(max_bytes)} limit "
                         "while it was being read")
    return data


def _read_bytes(path, role):
    try:
        data = read_regular_file(path, f"{role} image", IMAGE_MAX_BYTES)
    except PermissionError as e:
        raise FatalError(f"cannot read {role} image '{path}': permission denied") from e
    except OSError as e:
        raise FatalError(f"cannot read {role} image '{path}': {e.strerror or e}") from e
    if not data:
        raise FatalError(f"cannot read {role} image '{path}': the file is empty")
    return data


def _to_rgb(image, role, path):
    """An RGB copy of any Pillow image, with a note where something had to be decided."""
    mode = image.mode
    if mode in ("I;16", "I;16L", "I;16B", "I;16N", "I", "F"):
        pixels = np.asarray(image, dtype=np.float64)
        if not np.all(np.isfinite(pixels)):
            pixels = np.nan_to_num(pixels, nan=0.0, posinf=0.0, neginf=0.0)
            note(f"{role} image '{path}' has NaN or infinite pixels; set to 0")
        low, high = float(pixels.min()), float(pixels.max())
        if mode.startswith("I;16") or (mode == "I" and high > 255):
            pixels = pixels / 65535.0 * 255.0
        elif mode == "F" and low >= 0.0 and high <= 1.0:
            pixels = pixels * 255.0
        elif low < 0.0 or high > 255.0:
            pixels = (pixels - low) / max(high - low, 1e-12) * 255.0
            note(f"{role} image '{path}' has values from {low:g} to {high:g}; "
                 "stretched to 0-255")
        grey = Image.fromarray(np.clip(np.round(pixels), 0, 255).astype(np.uint8))
        return grey.convert("RGB")
    if (mode == "P" and "transparency" in image.info) or mode in ("LA", "La", "PA"):
        image = image.convert("RGBA")  # so that the compositing below sees the alpha
    if image.mode in ("RGBA", "RGBa"):
        if image.getextrema()[3][0] < 255:
            note(f"{role} image '{path}' has transparent pixels; composited on white")
        white = Image.new("RGBA", image.size, (255, 255, 255, 255))
        return Image.alpha_composite(white, image.convert("RGBA")).convert("RGB")
    return image.convert("RGB")


def load_image(path, role):
    """Read an image file as an upright RGB Pillow image, or raise FatalError."""
    data = _read_bytes(path, role)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            image = Image.open(io.BytesIO(data))
            frames = getattr(image, "n_frames", 1)
            image.load()
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as e:
        raise FatalError(f"{role} image '{path}' is too large to open safely "
                         f"(over {Image.MAX_IMAGE_PIXELS:,} pixels); scale it down first") \
            from e
    except Image.UnidentifiedImageError as e:
        raise FatalError(f"cannot read {role} image '{path}': not an image file "
                         "Pillow can read") from e
    except (OSError, SyntaxError, ValueError) as e:
        raise FatalError(f"cannot read {role} image '{path}': the file is damaged "
                         f"or truncated ({e})") from e
    except MemoryError as e:
        raise FatalError(f"not enough memory to decode {role} image '{path}'; scale it "
                         "down first") from e
    if frames > 1:
        note(f"{role} image '{path}' has {frames} frames; using the first")
    image = ImageOps.exif_transpose(image)
    return _to_rgb(image, role, path)


def find_photos(folder, more_extensions=()):
    """Every file under folder (recursively) with an image extension (or one of
    more_extensions), sorted."""
    wanted = IMAGE_EXTENSIONS | set(more_extensions)
    found = []
    for root, dirs, files in os.walk(folder):
        dirs.sort()
        found += [os.path.join(root, f) for f in sorted(files)
                  if os.path.splitext(f)[1].lower() in wanted]
    return found
