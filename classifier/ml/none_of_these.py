"""Telling a photo that shows none of the model's categories: "none of these".

A softmax head always answers one of its classes, often confidently, even for a car posted
under *Phones*. The backbone's features know better: ImageNet taught them cars, sofas and
shoes. A photo is "none of these" when its features are far from every category's mean
(cosine distance), or nearer to a photo moderators rejected as *not the product* than to
any category's mean. Only the head convolution's pooled features count (the first
``HEAD_FEATURES``): with the last block's beside them, rooms and gradients passed for
products (``bench/none_of_these.py``, model card).

The distance limit is set on the training photos, judged out of fold, so that a chosen
share of real product photos (``target_rate``) is flagged: the price, in moderators' time,
of catching the rest. The model card compares this rule with others (nearest neighbours,
Mahalanobis distance, the ImageNet head's classes, the softmax confidence).

The backbone's own ImageNet head (``imagenet``) then corrects the distance both ways, for
photos the heads place confidently (at or above the version's threshold) in a category:
- a product photo unlike the marketplace's usual ones (a shop shot on white, a hand) is not
  flagged when ImageNet sees in it what it sees in that category: its likeliest ImageNet
  class is one of the category's own and those hold a fair share of its probability;
- a photo ImageNet is sure shows a class foreign to the category (a mouse, a joystick under
  *Phones*) is flagged however near the category's mean it lies; so is one to which ImageNet
  gives one of the category's look-alike classes more than it gave any of the category's
  training photos (``lookalikes``: a game controller or an e-reader under *Phones*).
A category's own ImageNet classes are the likeliest of its mean direction (``KIN_CLASSES``):
computed from the stored means, so every version with a detector has them, the shipped ones
included. Where the ImageNet head or the threshold is unknown, the distance alone decides.

No Django, no TensorFlow: the serving processes run it in NumPy after the backbone.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from . import imagenet, lookalikes
from .backbone import HEAD_FEATURES

# At most this many rejected photos are kept (a fixed-seed sample): each is a vector the
# served model compares every photo with.
MAX_OTHERS = 256
# A category's own ImageNet classes: the likeliest of its mean direction. Chosen on the
# shipped model (``bench/none_of_these.py``, model card): with 30, drawn headphones and rooms
# pass for products; with 10, more shop shots stay flagged.
KIN_CLASSES = 20
# The share of a photo's ImageNet probability its category's own classes must hold for the
# distance to be overruled.
KIN_SHARE = 0.2
# How far beyond the limit ImageNet may still overrule the distance: the studio shots it
# spares lie within 1.2 times the limit; much further, the photo is unlike any product.
WAIVE_REACH = 1.2
# ImageNet this sure of a class that is not the category's own: not that category. Lower
# catches more other things and costs real photos (0.3: 1.2 points more of the held-out
# photos flagged).
FOREIGN_SURE = 0.4


def unit(features: np.ndarray) -> np.ndarray:
    """Rows scaled to length 1 (float32), so that a dot product is a cosine."""
    x = np.asarray(features, dtype=np.float32)
    return x / np.maximum(np.linalg.norm(x, axis=-1, keepdims=True), 1e-12)


def nearest_distance(x: np.ndarray, vectors: np.ndarray) -> np.ndarray:
    """Each unit row of ``x``'s cosine distance to the nearest of the unit ``vectors``."""
    return 1.0 - (x @ vectors.T).max(axis=1)


def class_means(features: np.ndarray, labels: np.ndarray, n_classes: int) -> np.ndarray:
    """Each class's mean direction ``(n_classes, F)``, of unit length."""
    x = unit(features)
    return unit(np.stack([x[labels == c].mean(axis=0) for c in range(n_classes)]))


@dataclass
class NoneOfThese:
    means: np.ndarray  # (classes, D) unit vectors, in the model's class order
    others: np.ndarray  # (k, D) unit vectors of rejected photos; may be empty
    threshold: float  # a cosine distance to the nearest mean above it flags the photo
    # (backbone, own classes), worked out on first use (``own_classes``).
    _own: tuple | None = field(default=None, repr=False, compare=False)
    # (backbone, model classes, look-alike limits), read on first use (``lookalike_limits``).
    _lookalikes: tuple | None = field(default=None, repr=False, compare=False)

    @property
    def dims(self) -> int:
        """How many of the leading features it looks at."""
        return self.means.shape[1]

    def flags(
        self,
        features: np.ndarray,
        probabilities: np.ndarray | None = None,
        confident_at: float | None = None,
        backbone: str | None = None,
        classes: list[str] | None = None,
    ) -> np.ndarray:
        """True for the photos that show none of the categories. With the heads'
        ``probabilities``, the version's threshold ``confident_at`` and the ``backbone``
        whose ImageNet head to ask, the ImageNet corrections apply (module docstring); with
        the model's ``classes`` (category names) as well, the look-alikes too."""
        x = unit(features[:, : self.dims])
        nearest = nearest_distance(x, self.means)
        flagged = nearest > self.threshold
        if probabilities is not None and confident_at is not None and backbone is not None:
            overrulable = nearest <= self.threshold * WAIVE_REACH
            flagged = self._imagenet_corrected(
                flagged, overrulable, features, probabilities, confident_at, backbone, classes
            )
        if len(self.others):
            flagged |= nearest_distance(x, self.others) < nearest
        return flagged

    def _imagenet_corrected(
        self, flagged, overrulable, features, probabilities, confident_at, backbone, classes
    ):
        if self.dims != HEAD_FEATURES or features.shape[1] < HEAD_FEATURES:
            return flagged  # not the features the ImageNet head reads
        seen = imagenet.probabilities(features, backbone)
        predicted = probabilities.argmax(axis=1)
        confident = probabilities.max(axis=1) >= confident_at
        own = self.own_classes(backbone)[predicted]  # (n, KIN_CLASSES)
        top = seen.argmax(axis=1)
        top_is_own = (own == top[:, None]).any(axis=1)
        own_share = np.take_along_axis(seen, own, axis=1).sum(axis=1)
        recognised = confident & overrulable & top_is_own & (own_share >= KIN_SHARE)
        foreign = confident & ~top_is_own & (seen.max(axis=1) >= FOREIGN_SURE)
        if classes is not None:
            limits = self.lookalike_limits(backbone, classes)
            foreign |= lookalikes.flags(seen, predicted, confident, limits)
        return (flagged & ~recognised) | foreign

    def own_classes(self, backbone: str) -> np.ndarray:
        """Each category's own ImageNet classes ``(classes, KIN_CLASSES)``: the likeliest of
        its mean direction (the bias left out: it does not depend on the photo)."""
        if self._own is None or self._own[0] != backbone:
            logits = self.means @ imagenet.imagenet_head(backbone).weight
            self._own = (backbone, np.argsort(-logits, axis=1, kind="stable")[:, :KIN_CLASSES])
        return self._own[1]

    def lookalike_limits(self, backbone: str, classes: list[str]) -> list:
        """The shipped look-alike limits for the model's ``classes`` (``lookalikes``)."""
        key = (backbone, tuple(classes))
        if self._lookalikes is None or self._lookalikes[0] != key:
            self._lookalikes = (key, lookalikes.limits_for(backbone, list(classes)))
        return self._lookalikes[1]

    def arrays(self, prefix: str = "none_of_these_") -> dict[str, np.ndarray]:
        """Its arrays, as stored beside a version's heads."""
        return {
            f"{prefix}means": self.means.astype(np.float32),
            f"{prefix}others": self.others.astype(np.float16),
            f"{prefix}threshold": np.array([self.threshold], dtype=np.float32),
        }

    @classmethod
    def from_arrays(cls, arrays: dict, prefix: str = "none_of_these_") -> NoneOfThese | None:
        """The detector stored in ``arrays``, or None when they hold none (older versions)."""
        if f"{prefix}means" not in arrays:
            return None
        others = np.asarray(arrays[f"{prefix}others"], dtype=np.float32)
        means = np.asarray(arrays[f"{prefix}means"], dtype=np.float32)
        if others.size == 0:
            others = np.zeros((0, means.shape[1]), dtype=np.float32)
        return cls(means, others, float(np.asarray(arrays[f"{prefix}threshold"])[0]))


def fit(
    features: np.ndarray,
    labels: np.ndarray,
    n_classes: int,
    fold_of: np.ndarray,
    others: np.ndarray,
    target_rate: float,
    seed: int = 0,
    dims: int = HEAD_FEATURES,
) -> tuple[NoneOfThese, dict]:
    """The detector for photos ``features`` ``(n, F)`` of ``n_classes`` categories, with the
    rejected photos ``others`` ``(m, F)``, looking at their first ``dims`` features; and its
    figures.

    Each photo's distance is measured to the means of the other folds (as a new photo's
    would be), and the threshold is the distance that ``target_rate`` of them exceed.
    """
    if not 0 < target_rate < 1:
        raise ValueError("the none-of-these rate must be between 0 and 1")
    features = np.asarray(features, dtype=np.float32)[:, :dims]
    kept_others = unit(np.asarray(others)[:, :dims]) if len(others) else np.zeros((0, dims))
    if len(kept_others) > MAX_OTHERS:
        pick = np.random.default_rng(seed).permutation(len(kept_others))[:MAX_OTHERS]
        kept_others = kept_others[np.sort(pick)]
    out_of_fold = np.zeros(len(labels), dtype=np.float32)
    for fold in np.unique(fold_of):
        inside = fold_of != fold
        present = np.unique(labels[inside])
        if len(present) < n_classes:  # a tiny set: a fold holds a class's only photos
            inside = np.ones_like(inside)
        means = class_means(features[inside], labels[inside], n_classes)
        held_out = fold_of == fold
        out_of_fold[held_out] = nearest_distance(unit(features[held_out]), means)
    threshold = float(np.quantile(out_of_fold, 1.0 - target_rate))
    detector = NoneOfThese(class_means(features, labels, n_classes), kept_others, threshold)
    flagged_by_others = 0.0
    if len(kept_others):
        nearest_other = nearest_distance(unit(features), kept_others)
        flagged_by_others = float(np.mean(nearest_other < out_of_fold))
    report = {
        "method": "cosine distance to the category means, and to rejected photos",
        "features": dims,
        "target_rate": target_rate,
        "threshold": threshold,
        "rejected_photos": int(len(kept_others)),
        # Out of fold: the share of the training photos a served version would flag.
        "flagged_by_distance": float(np.mean(out_of_fold > threshold)),
        "flagged_by_rejected": flagged_by_others,
    }
    return detector, report
