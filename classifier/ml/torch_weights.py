"""Read a PyTorch state dict saved in the legacy (pre-zip) format, without PyTorch.

The format is five pickles in a row (a magic number, the protocol version, the system's
type sizes, the state dict itself, the list of storage keys) followed by the raw storages,
each an int64 element count and its bytes. Tensors inside the state dict are pickled as
calls to ``torch._utils._rebuild_tensor_v2`` on storages referenced by persistent ids.

An unrestricted ``pickle.load`` of a file runs whatever the file names: this reader resolves
only the globals listed in ``_ALLOWED`` and refuses any other with ``WeightsError``.
"""

from __future__ import annotations

import collections
import pickle
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import numpy as np

MAGIC_NUMBER = 0x1950A86A20F9469CFC6C
PROTOCOL_VERSION = 1001

# PyTorch's legacy storage classes and the element type each holds.
STORAGE_DTYPES = {
    "DoubleStorage": np.float64,
    "FloatStorage": np.float32,
    "HalfStorage": np.float16,
    "LongStorage": np.int64,
    "IntStorage": np.int32,
    "ShortStorage": np.int16,
    "CharStorage": np.int8,
    "ByteStorage": np.uint8,
    "BoolStorage": np.bool_,
}


class WeightsError(ValueError):
    """The file is not a legacy PyTorch state dict this reader accepts; says why."""


@dataclass
class _StorageRef:
    key: str
    dtype: type
    numel: int


@dataclass
class _TensorRef:
    storage: _StorageRef
    offset: int
    shape: tuple[int, ...]
    stride: tuple[int, ...]


def _rebuild_tensor(storage, offset, shape, stride, *_ignored) -> _TensorRef:
    return _TensorRef(storage, int(offset), tuple(shape), tuple(stride))


class _StorageType:
    """Stands for a ``torch.*Storage`` class named in the file: it only carries a dtype."""

    def __init__(self, name: str):
        self.dtype = STORAGE_DTYPES[name]


_ALLOWED = {
    ("collections", "OrderedDict"): collections.OrderedDict,
    ("torch._utils", "_rebuild_tensor_v2"): _rebuild_tensor,
    ("torch._utils", "_rebuild_tensor"): _rebuild_tensor,
    **{("torch", name): _StorageType(name) for name in STORAGE_DTYPES},
}


class _RestrictedUnpickler(pickle.Unpickler):
    def __init__(self, file: BinaryIO, storages: dict[str, _StorageRef]):
        super().__init__(file, encoding="utf-8")
        self._storages = storages

    def find_class(self, module: str, name: str):
        try:
            return _ALLOWED[(module, name)]
        except KeyError:
            raise WeightsError(
                f"refusing to load {module}.{name}: only tensors and their storages are "
                "allowed in a weights file"
            ) from None

    def persistent_load(self, pid):
        if not (isinstance(pid, tuple) and len(pid) >= 5 and pid[0] == "storage"):
            raise WeightsError(f"unexpected persistent id in the weights file: {pid!r}")
        storage_type, key, _location, numel = pid[1:5]
        if not isinstance(storage_type, _StorageType):
            raise WeightsError(f"storage of unknown type {storage_type!r}")
        if len(pid) > 5 and pid[5] is not None:
            raise WeightsError("storage views are not supported")
        ref = self._storages.setdefault(str(key), _StorageRef(str(key), storage_type.dtype, 0))
        ref.numel = max(ref.numel, int(numel))
        return ref


def load_state_dict(path: str | Path) -> dict[str, np.ndarray]:
    """The state dict in ``path`` as NumPy arrays, in the file's order."""
    with open(path, "rb") as file:
        return read_state_dict(file)


def read_state_dict(file: BinaryIO) -> dict[str, np.ndarray]:
    try:
        return _read(file)
    except WeightsError:
        raise
    except (
        pickle.UnpicklingError,
        EOFError,
        struct.error,
        TypeError,
        AttributeError,
        ValueError,  # UnicodeDecodeError too
        KeyError,
        IndexError,
        OverflowError,
        MemoryError,
    ) as error:
        raise WeightsError(f"not a legacy PyTorch weights file ({error})") from None


def _read(file: BinaryIO) -> dict[str, np.ndarray]:
    storages: dict[str, _StorageRef] = {}
    if _RestrictedUnpickler(file, storages).load() != MAGIC_NUMBER:
        raise WeightsError("not a legacy PyTorch weights file (wrong magic number)")
    if _RestrictedUnpickler(file, storages).load() != PROTOCOL_VERSION:
        raise WeightsError("unsupported PyTorch serialisation protocol")
    system = _RestrictedUnpickler(file, storages).load()
    if not system.get("little_endian", False):
        raise WeightsError("big-endian weights files are not supported")
    state = _RestrictedUnpickler(file, storages).load()
    keys = _RestrictedUnpickler(file, storages).load()
    if not isinstance(state, dict):
        raise WeightsError("the file does not hold a state dict")
    data = {key: _read_storage(file, storages[key]) for key in keys if key in storages}
    return {name: _to_array(name, tensor, data) for name, tensor in state.items()}


def _read_storage(file: BinaryIO, ref: _StorageRef) -> np.ndarray:
    (numel,) = struct.unpack("<q", file.read(8))
    if numel != ref.numel:
        raise WeightsError(f"storage {ref.key} holds {numel} elements, expected {ref.numel}")
    itemsize = np.dtype(ref.dtype).itemsize
    raw = file.read(numel * itemsize)
    if len(raw) != numel * itemsize:
        raise WeightsError(f"the file ends inside storage {ref.key}")
    return np.frombuffer(raw, dtype=ref.dtype)


def _to_array(name: str, tensor, data: dict[str, np.ndarray]) -> np.ndarray:
    if not isinstance(tensor, _TensorRef):
        raise WeightsError(f"{name} is not a tensor")
    flat = data[tensor.storage.key]
    if not tensor.shape:
        return flat[tensor.offset].copy()
    itemsize = flat.itemsize
    reach = sum((n - 1) * s for n, s in zip(tensor.shape, tensor.stride, strict=True))
    needed = tensor.offset + 1 + reach
    if needed > len(flat):
        raise WeightsError(f"{name} reaches past the end of its storage")
    view = np.lib.stride_tricks.as_strided(
        flat[tensor.offset :],
        shape=tensor.shape,
        strides=tuple(s * itemsize for s in tensor.stride),
        writeable=False,
    )
    return np.array(view)
