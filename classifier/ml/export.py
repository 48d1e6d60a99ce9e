"""Save trained models in the forms a ModelVersion keeps.

- ``.keras``: the head (the backbone is rebuilt from the installed ImageNet weights), for
  inspection and retraining.
- ``.tflite``: the whole served model (backbone and head; the shipped versions), or the
  backbone alone (``backbone_litert_bytes``, converted once per backbone id and shared by the
  versions retrained here, which keep their heads as ``heads.heads_bytes``), run by LiteRT.
  LiteRT loads in a few MB and needs no TensorFlow. It is quantised to full integer (int8
  weights and activations), calibrated on real photos: about half the latency of float32 on
  this CPU. ``tests`` check that it agrees with the Keras model.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import keras
import numpy as np


def keras_bytes(model: keras.Model) -> bytes:
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "model.keras"
        model.save(path)
        return path.read_bytes()


def load_keras(data: bytes) -> keras.Model:
    from . import model  # noqa: F401  (registers the custom Mirror layer for loading)

    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "model.keras"
        path.write_bytes(data)
        return keras.saving.load_model(path, compile=False)


def litert_bytes(
    model: keras.Model, calibration: np.ndarray | None = None, quantise: bool = True
) -> bytes:
    """The LiteRT form: full integer, calibrated on ``calibration`` pixels when given,
    else with 8-bit weights only (dynamic range); float32 throughout when not ``quantise``."""
    import tensorflow as tf

    options = {"optimizations": [tf.lite.Optimize.DEFAULT] if quantise else []}
    if calibration is not None:
        options |= {
            "representative_dataset": _representative(calibration),
            "target_spec": {"supported_ops": [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]},
        }
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "model.tflite"
        model.export(str(path), format="litert", verbose=False, **options)
        return path.read_bytes()


def backbone_litert_bytes(input_size: int, calibration: np.ndarray) -> bytes:
    """The frozen pretrained backbone alone (pixels to pooled features), int8, calibrated on
    ``calibration`` pixels."""
    from .backbone import pretrained_feature_extractor

    return litert_bytes(pretrained_feature_extractor(input_size), calibration)


def backbone_float32_bytes(input_size: int, backbone: str) -> bytes:
    """The same backbone in float32 (``backbone``: its id): the features the heads were
    trained on, served where the CPU runs float faster than int8 (no VNNI)."""
    from .backbone import pretrained_feature_extractor

    return litert_bytes(pretrained_feature_extractor(input_size, backbone), quantise=False)


def _representative(pixels: np.ndarray):
    def photos():
        for photo in pixels:
            yield [photo[None].astype(np.float32)]

    return photos
