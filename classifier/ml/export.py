"""Save a trained Keras model in the two forms a ModelVersion keeps.

- ``.keras``: the full model (augmentation included), for retraining and inspection.
- ``.tflite``: the serving form, run by LiteRT. LiteRT loads in a few MB and answers one
  image in well under a millisecond, where TensorFlow costs ~500 MB and ~2 s just to import.
  Weights are quantised to 8 bits (dynamic range); ``tests`` check it agrees with Keras.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import keras


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


def litert_bytes(model: keras.Model, quantize: bool = True) -> bytes:
    import tensorflow as tf

    options = {"optimizations": [tf.lite.Optimize.DEFAULT]} if quantize else {}
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "model.tflite"
        model.export(str(path), format="litert", verbose=False, **options)
        return path.read_bytes()
