"""Backbone features: what a head is trained on, computed once per photo and backbone.

Each photo gives two vectors, for the photo and for its mirror image: training sees both
(mirroring is the augmentation that survives caching); a head answers on the first.
"""

from __future__ import annotations

import threading

import numpy as np

from .backbone import DEFAULT_BACKBONE, FEATURES, spec_of

# Bump when the backbone's code, weights or the preprocessing change: features computed
# before are then never mixed with new ones. r2: the last block's features beside the head's.
BACKBONE_REVISION = 2
FEATURE_DTYPE = np.float16


def backbone_id(input_size: int, backbone: str = DEFAULT_BACKBONE) -> str:
    """Names a backbone and its input: features are comparable only under one id."""
    return f"{spec_of(backbone).name}/r{BACKBONE_REVISION}/{input_size}px-letterbox"


_extractors: dict[tuple[int, str], object] = {}
_lock = threading.Lock()


def extractor(input_size: int, backbone: str = DEFAULT_BACKBONE):
    """The frozen pretrained backbone for ``input_size`` pixels, built once per process."""
    from .backbone import pretrained_feature_extractor

    with _lock:
        if (input_size, backbone) not in _extractors:
            _extractors[input_size, backbone] = pretrained_feature_extractor(input_size, backbone)
        return _extractors[input_size, backbone]


def compute(pixels: np.ndarray, chunk: int = 256, backbone: str = DEFAULT_BACKBONE) -> np.ndarray:
    """``(n, size, size, 3)`` uint8 pixels to ``(n, 2, FEATURES)`` float16 features.

    Through ``predict`` (one compiled function; calling the model eagerly was seven times
    slower) in batches of 32, and a chunk of photos at a time so that only that chunk is
    ever held as float32: TensorFlow keeps its working memory for the largest batch it saw.
    """
    out = np.zeros((len(pixels), 2, FEATURES), dtype=FEATURE_DTYPE)
    if not len(pixels):
        return out
    model = extractor(pixels.shape[1], backbone)
    for start in range(0, len(pixels), chunk):
        batch = pixels[start : start + chunk].astype(np.float32)
        both = model.predict(np.concatenate([batch, batch[:, :, ::-1]]), batch_size=32, verbose=0)
        out[start : start + len(batch), 0] = both[: len(batch)]
        out[start : start + len(batch), 1] = both[len(batch) :]
    return out


def to_bytes(features: np.ndarray) -> bytes:
    """One photo's ``(2, FEATURES)`` features as stored in the database."""
    return np.ascontiguousarray(features, dtype=FEATURE_DTYPE).tobytes()


def from_bytes(data: bytes) -> np.ndarray:
    return np.frombuffer(bytes(data), dtype=FEATURE_DTYPE).reshape(2, FEATURES)
