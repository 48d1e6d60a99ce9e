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

from .none_of_these import NoneOfThese

# The head's layers that carry weights, in order (``model.build_head`` names them).
LAYERS = ("hidden", "probabilities")


def heads_bytes(model, none_of_these=None) -> bytes:
    """``train.average_heads``' Keras model as an ``.npz`` of each head's dense layers, with
    the none-of-these detector's arrays when given."""
    arrays = dict(none_of_these.arrays()) if none_of_these is not None else {}
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
    """Features ``(n, F)`` to the heads' averaged probabilities ``(n, classes)``, and to
    whether each photo shows none of the classes (``none_of_these``: None for versions
    stored without a detector)."""

    def __init__(
        self,
        data: bytes,
        threshold: float | None = None,
        backbone: str | None = None,
        classes: list[str] | None = None,
    ):
        """``threshold`` (the version's) and ``backbone`` (its id) let the detector consult
        the ImageNet head for the photos the heads place confidently (``none_of_these``);
        ``classes`` (its category names) let it look for each category's look-alikes."""
        self.threshold, self.backbone, self.classes = threshold, backbone, classes
        try:
            with np.load(io.BytesIO(data), allow_pickle=False) as stored:
                arrays = {name: stored[name] for name in stored.files}
        except (ValueError, OSError, zipfile.BadZipFile, KeyError, EOFError) as error:
            raise ValueError(f"not a heads file: {error}") from error
        count = 0
        while f"head{count}_probabilities_kernel" in arrays:
            count += 1
        if not count:
            raise ValueError("the heads file holds no head")
        # The heads side by side: one product per layer for all of them.
        self.layers = [
            (
                np.stack([arrays[f"head{n}_{name}_kernel"] for n in range(count)]),
                np.stack([arrays[f"head{n}_{name}_bias"] for n in range(count)])[:, None, :],
            )
            for name in LAYERS
            if f"head0_{name}_kernel" in arrays
        ]
        self.none_of_these = NoneOfThese.from_arrays(arrays)
        self.count = count
        self.n_features = self.layers[0][0].shape[1]
        self.n_classes = self.layers[-1][0].shape[2]
        detector = self.none_of_these
        if detector is not None and (
            len(detector.means) != self.n_classes or detector.dims > self.n_features
        ):
            raise ValueError(
                f"its none-of-these means have shape {detector.means.shape}, for "
                f"{self.n_classes} classes of {self.n_features} features"
            )

    def probabilities(self, features: np.ndarray) -> np.ndarray:
        x = np.asarray(features, dtype=np.float32)[None]  # (1, n, F), shared by the heads
        for kernel, bias in self.layers[:-1]:
            x = np.maximum(np.matmul(x, kernel) + bias, 0.0)  # the hidden layer's ReLU
        kernel, bias = self.layers[-1]
        logits = np.matmul(x, kernel) + bias  # (heads, n, classes)
        exp = np.exp(logits - logits.max(axis=2, keepdims=True))
        return (exp / exp.sum(axis=2, keepdims=True)).mean(axis=0)

    def none_of_these_flags(self, features: np.ndarray, probabilities: np.ndarray):
        """Per photo, whether it shows none of the classes; None without a detector."""
        if self.none_of_these is None:
            return None
        return self.none_of_these.flags(
            features, probabilities, self.threshold, self.backbone, self.classes
        )
