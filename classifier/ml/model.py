"""The classifier: the pretrained EfficientNet-Lite backbone and a small head over the
categories, trained on the backbone's pooled features.

Training fits only the head, on features computed once per photo (``features``); the served
model joins the frozen backbone and the head into one Keras model taking uint8 pixels (the
backbone scales them itself).
"""

from __future__ import annotations

from dataclasses import dataclass

import keras
from keras import layers


@dataclass(frozen=True)
class HeadConfig:
    # 0: a linear (softmax regression) head; otherwise one hidden ReLU layer of this width.
    hidden: int = 0
    dropout: float = 0.2
    weight_decay: float = 1e-4


def build_head(
    n_features: int, n_classes: int, config: HeadConfig, name: str = "head"
) -> keras.Model:
    """Pooled backbone features to class probabilities."""
    if n_classes < 2:
        raise ValueError("a classifier needs at least two classes")
    regularizer = keras.regularizers.L2(config.weight_decay)
    inputs = keras.Input(shape=(n_features,), name="features")
    x = layers.Dropout(config.dropout, name="dropout")(inputs)
    if config.hidden:
        x = layers.Dense(
            config.hidden, activation="relu", kernel_regularizer=regularizer, name="hidden"
        )(x)
        x = layers.Dropout(config.dropout, name="hidden_dropout")(x)
    outputs = layers.Dense(
        n_classes, activation="softmax", kernel_regularizer=regularizer, name="probabilities"
    )(x)
    return keras.Model(inputs, outputs, name=name)


@keras.saving.register_keras_serializable(package="avito_mod")
class Mirror(layers.Layer):
    """The photo mirrored left to right: v1, the from-scratch CNN still in registries,
    averaged its answers over the photo and its mirror image, and needs it to load."""

    def call(self, inputs):
        return keras.ops.flip(inputs, axis=2)


def serving_model(head: keras.Model, input_size: int) -> keras.Model:
    """Pixels to probabilities: the pretrained backbone, then ``head``."""
    from .backbone import pretrained_feature_extractor

    backbone = pretrained_feature_extractor(input_size)
    inputs = keras.Input(shape=(input_size, input_size, 3), name="pixels")
    outputs = head(backbone(inputs))
    return keras.Model(inputs, outputs, name="served_classifier")
