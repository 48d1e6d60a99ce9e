"""Look-alikes: things the heads take for a category's products that ImageNet names (a game
controller, a mouse, an e-reader under *Phones*) are "none of these" when ImageNet gives
their class more than any of the category's training photos got.

On the real ImageNet head and the shipped v5 (its heads, detector and look-alike limits);
the features are built from the head's own weights, no photo is needed."""

from __future__ import annotations

import json

import numpy as np
import pytest

from classifier.ml import imagenet, lookalikes
from classifier.ml.backbone import HEAD_FEATURES, spec_of
from classifier.ml.heads import Heads
from classifier.ml.none_of_these import FOREIGN_SURE

V5 = lookalikes.LIMITS_FILE.parents[1] / "default_model/v5"  # classifier/default_model/v5


def test_the_shipped_limits_name_imagenet_classes_of_each_categorys_list():
    table = json.loads(lookalikes.LIMITS_FILE.read_text())
    names = set(imagenet.class_names())
    assert json.loads((V5 / "manifest.json").read_text())["backbone"] in table
    for backbone, categories in table.items():
        spec_of(backbone)  # a known backbone
        for category, limits in categories.items():
            assert set(limits) == set(lookalikes.CLASSES[category]) <= names
            assert all(0 < limit < 1 for limit in limits.values()), limits


def test_each_limit_is_the_most_the_categorys_own_photos_got():
    rng = np.random.default_rng(0)
    seen = rng.dirichlet(np.ones(1000) * 0.1, size=60).astype(np.float32)
    labels = np.repeat([0, 1], 30)
    limits = lookalikes.fit(seen, labels, ["laptop", "phone"])
    assert set(limits) == {"phone"}  # laptops have no look-alikes
    joystick = imagenet.class_names().index("joystick")
    assert 0 <= limits["phone"]["joystick"] - seen[30:, joystick].max() < 1e-4  # rounded up
    table = {"some-backbone/r1": limits}
    per_class = lookalikes.limits_for("some-backbone/r1", ["laptop", "phone", "tablet"], table)
    assert per_class[0] is None and per_class[2] is None
    assert lookalikes.limits_for("another-backbone/r1", ["phone"], table) == [None]

    # None of the photos it was fitted on is flagged; a photo beyond a limit is, but only
    # when the heads place it confidently in that category.
    phones = seen[labels == 1]
    assert not lookalikes.flags(phones, np.ones(30, int), np.ones(30, bool), per_class).any()
    beyond = seen[:1].copy()
    beyond[0, joystick] = limits["phone"]["joystick"] + 0.01
    one = np.ones(1, bool)
    assert lookalikes.flags(beyond, np.ones(1, int), one, per_class)[0]
    assert not lookalikes.flags(beyond, np.zeros(1, int), one, per_class)[0]
    assert not lookalikes.flags(beyond, np.ones(1, int), ~one, per_class)[0]


@pytest.fixture(scope="module")
def v5():
    manifest = json.loads((V5 / "manifest.json").read_text())
    data = (V5 / "heads.npz").read_bytes()
    served = Heads(data, manifest["threshold"], manifest["backbone"], manifest["classes"])
    without = Heads(data, manifest["threshold"], manifest["backbone"])
    return manifest, served, without


def test_a_game_controller_the_heads_call_a_phone_goes_to_a_moderator(v5):
    manifest, served, without = v5
    backbone = manifest["backbone"]
    joystick = imagenet.class_names().index("joystick")
    weight = imagenet.imagenet_head(backbone).weight[:, joystick]
    phone_mean = served.none_of_these.means[manifest["classes"].index("phone")]
    # Near the phones' mean (well within the distance limit), a little of a joystick in it.
    controller = np.zeros((1, served.n_features), np.float32)
    controller[0, :HEAD_FEATURES] = 20 * phone_mean + 3 * weight / np.linalg.norm(weight)
    seen = imagenet.probabilities(controller, backbone)[0]
    limit = json.loads(lookalikes.LIMITS_FILE.read_text())[backbone]["phone"]["joystick"]
    assert limit < seen[joystick] < FOREIGN_SURE  # not sure enough for the foreign rule
    plain = np.zeros_like(controller)
    plain[0, :HEAD_FEATURES] = 20 * phone_mean

    def flagged(heads, features, probabilities):
        return bool(heads.none_of_these_flags(features, np.array([probabilities]))[0])

    assert flagged(served, controller, [0.01, 0.99])  # a confident phone: a look-alike
    assert not flagged(without, controller, [0.01, 0.99])  # as served before
    assert not flagged(served, plain, [0.01, 0.99])  # a phone
    assert not flagged(served, controller, [0.99, 0.01])  # laptops have no such list
    assert not flagged(served, controller, [0.4, 0.6])  # unsure: sent to review anyway
