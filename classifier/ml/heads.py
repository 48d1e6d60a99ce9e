"""The averaged heads as NumPy arrays, served after the shared int8 backbone.

A version retrained from the registry keeps only its heads: the backbone is the same for
every version on one backbone id, converted to int8 once (``ServedBackbone``), so a retrain
never pays the 15-25 s of converting and calibrating the whole network again. The heads are
a few small matrix products: NumPy runs them in well under a millisecond, without Keras.
"""

from __future__ import annotations

import io
import zipfile

import numpy as np

# The head's layers that carry weights, in order (``model.build_head`` names them).
LAYERS = ("hidden", "probabilities")


def heads_bytes(model) -> bytes:
    """``train.average_heads``' Keras model as an ``.npz`` of each head's dense layers."""
    arrays = {}
    heads = [layer for layer in model.layers if hasattr(layer, "get_layer")]
    for number, head in enumerate(heads):
        for name in LAYERS:
            if any(layer.name == name for layer in head.layers):
                kernel, bias = head.get_layer(name).get_weights()
                arrays[f"head{number}_{name}_kernel"] = kernel.astype(np.float32)
                arrays[f"head{number}_{name}_bias"] = bias.astype(np.float32)
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    return buffer.getvalue()


class Heads:
    """Features ``(n, F)`` to the heads' averaged probabilities ``(n, classes)``."""

    def __init__(self, data: bytes):
        try:
            with np.load(io.BytesIO(data), allow_pickle=False) as stored:
                arrays = {name: stored[name] for name in stored.files}
        except (ValueError, OSError, zipfile.BadZipFile, KeyError, EOFError) as error:
            raise ValueError(f"not a heads file: {error}") from error
        self.heads = []
        number = 0
        while f"head{number}_probabilities_kernel" in arrays:
            self.heads.append(
                [
                    (arrays[f"head{number}_{name}_kernel"], arrays[f"head{number}_{name}_bias"])
                    for name in LAYERS
                    if f"head{number}_{name}_kernel" in arrays
                ]
            )
            number += 1
        if not self.heads:
            raise ValueError("the heads file holds no head")
        self.n_features = self.heads[0][0][0].shape[0]
        self.n_classes = self.heads[0][-1][0].shape[1]

    def probabilities(self, features: np.ndarray) -> np.ndarray:
        features = np.asarray(features, dtype=np.float32)
        total = np.zeros((len(features), self.n_classes), dtype=np.float32)
        for layers in self.heads:
            x = features
            for kernel, bias in layers[:-1]:
                x = np.maximum(x @ kernel + bias, 0.0)  # the hidden layer's ReLU
            kernel, bias = layers[-1]
            logits = x @ kernel + bias
            exp = np.exp(logits - logits.max(axis=1, keepdims=True))
            total += exp / exp.sum(axis=1, keepdims=True)
        return total / len(self.heads)
