"""The newcomer's path (``bench/new_category.py``) at the tests' tiny size: on a database
with nothing imported, a category from 60 drawn cameras trains beside the shipped
categories' features, is compared and promoted as the guard allows, and the drawn phones,
laptops and watches then posted under it publish none: it is review-only.

The tests ship their own features (drawn laptops and phones at the tiny input size, as
``build_default_model`` writes them) and the model they stand for: heads trained on their
training side, active, as the shipped model is on a fresh install."""

from __future__ import annotations

import pytest

from bench import new_category
from classifier import services
from classifier.models import ModelVersion
from classifier.services import retraining, shipped
from tests.support.images import write_dataset
from tests.support.tiny import TINY_SIZE, tiny_config

pytestmark = [pytest.mark.django_db, pytest.mark.slow]

KEYS = {
    "train_s",
    "shipped_accuracy_before",
    "shipped_accuracy_after",
    "shipped_error_before",
    "shipped_error_after",
    "new_category_state",
    "others_posted",
    "others_published",
}


@pytest.fixture
def shipped_model(tmp_path, settings, media):
    """Shipped features of 50 drawn laptops and 50 drawn phones, the installation's
    (``CLASSIFIER_SHIPPED_FEATURES``), and an active version trained on their training
    side only (from their photos, as the shipped model was built)."""
    every = services.folder_set(write_dataset(tmp_path / "shipped", per_class=50), TINY_SIZE)
    photos = shipped.ShippedPhotos.of_folder(every, TINY_SIZE)
    shipped.write(tmp_path / "features.npz", photos)
    settings.CLASSIFIER_SHIPPED_FEATURES = str(tmp_path / "features.npz")
    training_side = tmp_path / "shipped-training"
    for i in range(len(photos)):
        if not photos.evaluation[i]:
            folder = training_side / photos.slugs[i]
            folder.mkdir(parents=True, exist_ok=True)
            (folder / f"{i:03d}.jpg").write_bytes(every.read[i]())
    services.forget_loaded_models()
    version = retraining.train_in_process(training_side, tiny_config(), activate=True)
    assert version.status == ModelVersion.Status.ACTIVE
    return photos


def test_a_new_category_trains_beside_the_shipped_ones_and_publishes_nothing_while_review_only(
    shipped_model, tmp_path, settings
):
    settings.CLASSIFIER_MIN_EVALUATION_PHOTOS = 20
    settings.CLASSIFIER_TARGET_RISK = 0.05
    stand_in = ModelVersion.objects.active()
    args = new_category.arguments(["--size", str(TINY_SIZE)])

    result = new_category.run(args, tmp_path / "scratch", tiny_config())

    assert set(result) >= KEYS
    assert result["category"] == "camera"
    # The shipped features were trained on: the fresh install needed no laptop or phone.
    assert result["trained_on_sources"] == {
        "shipped": int((~shipped_model.evaluation).sum()),
        "database": result["new_category_photos"]["training"],
    }
    assert result["new_category_photos"]["photos"] == 60
    # Measured on the same shipped evaluation photos, before and after.
    evaluation = int(shipped_model.evaluation.sum())
    assert result["shipped_before"]["n"] == result["shipped_after"]["n"] == evaluation
    assert result["shipped_accuracy_before"] >= 0.9
    assert result["shipped_accuracy_after"] >= result["shipped_accuracy_before"] - 0.1
    # A dozen shared photos cannot show a difference: promoted, the verdict says why.
    assert result["version_before"] == f"v{stand_in.number}"
    assert result["promoted"] is True and result["refused"] == ""
    assert "too few photos" in result["comparison"]["headline"]
    assert any("does not know Camera" in r for r in result["comparison"]["reasons"])
    assert ModelVersion.objects.active().number == int(result["version_after"][1:])

    assert result["new_category_state"] == "review-only"
    assert result["new_category_needs"].startswith(
        f"{20 - result['new_category_photos']['evaluation']} more evaluation photos"
    )
    assert result["others_posted"] == 30
    assert result["others_published"] == 0
    assert all(routed.startswith("needs_review") for routed in result["others_routed"])
