"""Things a category's heads take for its products that ImageNet has a name for.

Under *Phones*, many small rectangular objects (game controllers, computer mice, e-readers
and music players, remote controls, wallets, cassettes) lie near the phones' mean and the
heads call them phones with confidence; the none-of-these distance cannot tell them apart.
ImageNet has explicit classes for them, and real phone photos rarely give those classes
much probability: a photo placed confidently in a category is "none of these" when ImageNet
gives one of the category's look-alike classes more than any of the category's own training
photos got (``fit``). The limits come from those photos only, never from photos of the
things: they hold on photos not seen (``bench/none_of_these.py``, model card).

The limits depend on the backbone (its ImageNet head) and on the category's photos, not on
a version's heads: they are kept per backbone id and category in ``lookalikes.json``,
written by ``python bench/none_of_these.py --write-lookalikes`` from the served features of
the shipped training photos. A backbone or category without an entry has no look-alikes.

No Django, no TensorFlow: run in NumPy after the backbone, with the ImageNet head's answers.
"""

from __future__ import annotations

import json
import math
from functools import cache
from pathlib import Path

import numpy as np

from .imagenet import class_names

# Per category (the model's class name): the ImageNet classes of things sold as something
# else that its heads mistake for its products. The list (remote controls, game
# controllers, wallets, cassettes; ImageNet has no calculator or power bank) and the near
# things the bench found published alone (mice; e-readers, which ImageNet reads as iPods).
# *Laptops* has none: its near things (desktop computers, monitors, keyboards) are among
# the classes ImageNet gives real laptop photos (a list of them flagged held-out laptops
# and no icon more).
CLASSES: dict[str, tuple[str, ...]] = {
    "phone": ("remote control", "joystick", "wallet", "cassette", "computer mouse", "iPod"),
}
LIMITS_FILE = Path(__file__).with_name("lookalikes.json")


def fit(seen: np.ndarray, labels: np.ndarray, classes: list[str]) -> dict[str, dict[str, float]]:
    """Per category with look-alikes, each look-alike class's limit: the most ImageNet
    probability ``seen`` ``(n, 1000)`` gave it on the category's photos (``labels`` index
    ``classes``), rounded up, so that none of them would be flagged."""
    index = {name: i for i, name in enumerate(class_names())}
    limits = {}
    for c, category in enumerate(classes):
        mine = seen[labels == c]
        if category not in CLASSES or not len(mine):
            continue
        limits[category] = {
            name: math.ceil(float(mine[:, index[name]].max()) * 1e4) / 1e4
            for name in CLASSES[category]
        }
    return limits


@cache
def stored_limits(path: Path = LIMITS_FILE) -> dict:
    """The shipped limits, read once per process."""
    # Shipped with the package: a missing file is an error, not a rule quietly dropped.
    return json.loads(path.read_text())


def limits_for(
    backbone: str, classes: list[str], table: dict | None = None
) -> list[tuple[np.ndarray, np.ndarray] | None]:
    """Per class of a model, (ImageNet class indices, their limits) of its look-alikes, or
    None; from ``table`` (``{backbone id: {category: {ImageNet name: limit}}}``) or the
    shipped file."""
    stored = (stored_limits() if table is None else table).get(backbone, {})
    index = {name: i for i, name in enumerate(class_names())}
    out = []
    for category in classes:
        limits = stored.get(category)
        if not limits:
            out.append(None)
            continue
        out.append(
            (
                np.array([index[name] for name in limits], dtype=np.int64),
                np.array(list(limits.values()), dtype=np.float32),
            )
        )
    return out


def flags(
    seen: np.ndarray,
    predicted: np.ndarray,
    confident: np.ndarray,
    limits: list[tuple[np.ndarray, np.ndarray] | None],
) -> np.ndarray:
    """True for the photos placed confidently in a category for which ImageNet gives one of
    that category's look-alike classes more than its limit."""
    flagged = np.zeros(len(seen), dtype=bool)
    for category, entry in enumerate(limits):
        if entry is None:
            continue
        indices, limit = entry
        mine = confident & (predicted == category)
        flagged[mine] = (seen[mine][:, indices] > limit).any(axis=1)
    return flagged
