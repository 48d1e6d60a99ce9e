"""Read a PyTorch state dict saved in the legacy (pre-zip) format, without PyTorch.

The format is five pickles in a row (a magic number, the protocol version, the system's
type sizes, the state dict itself, the list of storage keys) followed by the raw storages,
each an int64 element count and its bytes. Tensors inside the state dict are pickled as
calls to ``torch._utils._rebuild_tensor_v2`` on storages referenced by persistent ids.

An unrestricted ``pickle.load`` of a file runs whatever the file names: this reader resolves
only the globals listed in ``_allowed()`` and refuses any other with ``WeightsError``.

The file comes from an installed package (a supply-chain path), so nothing in it is trusted:
each load resolves fresh, immutable stand-ins (no file can change how a later one loads),
BUILD is taken only on the state dict itself (its ``_metadata``, dropped), and every tensor's
offset, sizes and strides are checked to stay inside its storage, with the total bytes
capped, before NumPy is asked for a view.
"""

from __future__ import annotations

import collections
import math
import pickle
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import numpy as np

MAGIC_NUMBER = 0x1950A86A20F9469CFC6C
PROTOCOL_VERSION = 1001
# The arrays one file may make, in bytes, storages and tensors each (the ImageNet backbones'
# files are 19-22 MB): a hostile file's zero or overlapping strides could ask for any size.
MAX_TOTAL_BYTES = 512 * 1024 * 1024

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


@dataclass(frozen=True)
class _TensorRef:
    storage: _StorageRef
    offset: int
    shape: tuple
    stride: tuple


def _rebuild_tensor(storage, offset, shape, stride, *_ignored) -> _TensorRef:
    if not isinstance(storage, _StorageRef):
        raise WeightsError(f"a tensor is built on {type(storage).__name__}, not a storage")
    if not isinstance(shape, tuple) or not isinstance(stride, tuple):
        raise WeightsError("a tensor's sizes and strides must be tuples")
    return _TensorRef(storage, offset, shape, stride)


class _StorageType:
    """Stands for a ``torch.*Storage`` class named in the file: it only carries a dtype.
    Immutable, and made afresh for each load."""

    __slots__ = ("dtype",)

    def __init__(self, name: str):
        object.__setattr__(self, "dtype", STORAGE_DTYPES[name])

    def __setattr__(self, name, value):
        raise WeightsError("a weights file may not change a storage type")

    def __setstate__(self, state):
        raise WeightsError("a weights file may not change a storage type")


def _allowed() -> dict:
    """The globals a file may name, resolved to fresh objects for one load."""
    return {
        ("collections", "OrderedDict"): collections.OrderedDict,
        ("torch._utils", "_rebuild_tensor_v2"): _rebuild_tensor,
        ("torch._utils", "_rebuild_tensor"): _rebuild_tensor,
        **{("torch", name): _StorageType(name) for name in STORAGE_DTYPES},
    }


class _RestrictedUnpickler(pickle._Unpickler):
    """The pure-Python unpickler, whose opcode table can be changed: BUILD (which sets an
    object's attributes) is refused on anything but an ``OrderedDict`` the file made."""

    dispatch = dict(pickle._Unpickler.dispatch)

    def __init__(self, file: BinaryIO, storages: dict[str, _StorageRef], allowed: dict):
        super().__init__(file, encoding="utf-8")
        self._storages = storages
        self._allowed = allowed

    def find_class(self, module: str, name: str):
        try:
            return self._allowed[(module, name)]
        except KeyError:
            raise WeightsError(
                f"refusing to load {module}.{name}: only tensors and their storages are "
                "allowed in a weights file"
            ) from None

    def load_build(self):
        # torch pickles a state dict's ``_metadata`` (a version per module) this way; the
        # reader has no use for it.
        self.stack.pop()
        if type(self.stack[-1]) is not collections.OrderedDict:
            raise WeightsError(
                f"refusing to set the attributes of {type(self.stack[-1]).__name__} "
                "(pickle BUILD): only a state dict's metadata may be set"
            )

    dispatch[pickle.BUILD[0]] = load_build

    def persistent_load(self, pid):
        if not (isinstance(pid, tuple) and len(pid) >= 5 and pid[0] == "storage"):
            raise WeightsError(f"unexpected persistent id in the weights file: {pid!r}")
        storage_type, key, _location, numel = pid[1:5]
        if not isinstance(storage_type, _StorageType):
            raise WeightsError(f"storage of unknown type {storage_type!r}")
        if len(pid) > 5 and pid[5] is not None:
            raise WeightsError("storage views are not supported")
        if type(numel) is not int or numel < 0:
            raise WeightsError(f"storage {key!r} has an invalid element count {numel!r}")
        ref = self._storages.setdefault(str(key), _StorageRef(str(key), storage_type.dtype, 0))
        if ref.dtype is not storage_type.dtype:
            raise WeightsError(f"storage {key!r} is named with two element types")
        ref.numel = max(ref.numel, numel)
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
    allowed = _allowed()

    def load():
        return _RestrictedUnpickler(file, storages, allowed).load()

    if load() != MAGIC_NUMBER:
        raise WeightsError("not a legacy PyTorch weights file (wrong magic number)")
    if load() != PROTOCOL_VERSION:
        raise WeightsError("unsupported PyTorch serialisation protocol")
    system = load()
    if not isinstance(system, dict) or system.get("little_endian") is not True:
        raise WeightsError("big-endian weights files are not supported")
    state = load()
    keys = load()
    if not isinstance(state, dict):
        raise WeightsError("the file does not hold a state dict")
    if not isinstance(keys, list):
        raise WeightsError("the file's list of storages is not a list")
    total = sum(ref.numel * np.dtype(ref.dtype).itemsize for ref in storages.values())
    if total > MAX_TOTAL_BYTES:
        raise WeightsError(f"the storages hold {total} bytes, more than {MAX_TOTAL_BYTES}")
    data = {key: _read_storage(file, storages[key]) for key in keys if key in storages}
    budget = [MAX_TOTAL_BYTES]
    return {name: _to_array(name, tensor, data, budget) for name, tensor in state.items()}


def _read_storage(file: BinaryIO, ref: _StorageRef) -> np.ndarray:
    (numel,) = struct.unpack("<q", file.read(8))
    if numel != ref.numel:
        raise WeightsError(f"storage {ref.key} holds {numel} elements, expected {ref.numel}")
    itemsize = np.dtype(ref.dtype).itemsize
    raw = file.read(numel * itemsize)
    if len(raw) != numel * itemsize:
        raise WeightsError(f"the file ends inside storage {ref.key}")
    return np.frombuffer(raw, dtype=ref.dtype)


def _to_array(name: str, tensor, data: dict[str, np.ndarray], budget: list[int]) -> np.ndarray:
    """The tensor's values, copied out of its storage once its geometry is checked: no
    negative offset or stride, no zero stride over more than one element, every element
    inside the storage, and the bytes within what is left of ``budget``."""
    if not isinstance(tensor, _TensorRef):
        raise WeightsError(f"{name} is not a tensor")
    flat = data.get(tensor.storage.key)
    if flat is None:
        raise WeightsError(f"{name}: its storage {tensor.storage.key!r} is not in the file")
    offset, shape, stride = tensor.offset, tensor.shape, tensor.stride
    _check_geometry(name, offset, shape, stride, len(flat))
    count = math.prod(shape)
    budget[0] -= count * flat.itemsize
    if budget[0] < 0:
        raise WeightsError(f"{name}: the tensors hold more than {MAX_TOTAL_BYTES} bytes")
    if count == 0:
        return np.zeros(shape, dtype=flat.dtype)
    view = np.lib.stride_tricks.as_strided(
        flat[offset:],
        shape=shape,
        strides=tuple(s * flat.itemsize for s in stride),
        writeable=False,
    )
    return np.array(view)


def _check_geometry(name: str, offset, shape: tuple, stride: tuple, storage_numel: int) -> None:
    numbers = (offset, *shape, *stride)
    if not all(type(number) is int for number in numbers):
        raise WeightsError(f"{name}: its offset, sizes and strides must be integers")
    if len(shape) != len(stride):
        raise WeightsError(f"{name}: {len(shape)} sizes but {len(stride)} strides")
    if offset < 0:
        raise WeightsError(f"{name}: negative storage offset {offset}")
    if any(size < 0 for size in shape):
        raise WeightsError(f"{name}: negative size in {shape}")
    if any(step < 0 for step in stride):
        raise WeightsError(f"{name}: negative stride in {stride}")
    if any(step == 0 and size > 1 for size, step in zip(shape, stride, strict=True)):
        raise WeightsError(f"{name}: a zero stride repeats one element ({shape}, {stride})")
    if math.prod(shape) == 0:
        return
    end = offset + 1 + sum((size - 1) * step for size, step in zip(shape, stride, strict=True))
    if end > storage_numel:
        raise WeightsError(
            f"{name} reaches element {end - 1} of a storage of {storage_numel} elements"
        )
