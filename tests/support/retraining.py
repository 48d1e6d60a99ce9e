"""Retraining's helpers: drawn photos imported as labelled training images, a moderator, a
tiny candidate trained as the training worker trains it, and how an ad was routed."""

from __future__ import annotations

import io

from ads.models import Ad
from ads.uploads import clean_photo
from classifier import services
from classifier.models import (
    ImageFeatures,
    ModelVersion,
    Prediction,
)
from classifier.services import retraining
from moderation import pipeline
from tests.support.factories import make_ad
from tests.support.images import jpeg_bytes
from tests.support.tiny import tiny_config

Status = ModelVersion.Status
REASON = Ad.ReviewReason
REGISTRY = "admin:classifier_modelversion_changelist"
IMAGES = "admin:classifier_trainingimage_changelist"


def write_folder(root, layout: dict[str, list[tuple[str, int]]], stored: bool = False):
    """``root/<label>/<kind>-<seed>.jpg``: drawn ``kind`` photos filed under ``label``.

    ``stored``: the photos as the marketplace stores an upload of them (re-encoded), as a
    dataset made of earlier ads' photos is; re-posting the original gives the same bytes.
    """
    for label, photos in layout.items():
        folder = root / label
        folder.mkdir(parents=True, exist_ok=True)
        for kind, seed in photos:
            data = jpeg_bytes(kind, seed)
            if stored:
                data = clean_photo(io.BytesIO(data)).data
            (folder / f"{kind}-{seed}.jpg").write_bytes(data)
    return root


def import_drawn(tmp_path, layout, stored: bool = False, name: str = "data"):
    return services.import_images(write_folder(tmp_path / name, layout, stored))


def drawn(kind: str, seeds) -> list[tuple[str, int]]:
    return [(kind, seed) for seed in seeds]


def train_candidate(user, config=None) -> ModelVersion:
    """What the admin's button and the training worker do, with a tiny recipe."""
    version = retraining.request_training(user)
    assert retraining.run_training(version.pk, config or tiny_config()).startswith(
        f"v{version.number} trained"
    ), ModelVersion.objects.get(pk=version.pk).error
    version.refresh_from_db()
    # Primary keys and artifact names repeat between tests (rolled back): a model cached by
    # an earlier test must not be served for this one, as in a fresh worker process.
    services.forget_loaded_models()
    return version


def classify(seller, category: str, kind: str, seed: int) -> Ad:
    """An ad of one drawn photo, classified by the pipeline as a worker would."""
    ad = make_ad(seller, category=category, kind=kind, seed=seed)
    pipeline.classify_ad(ad.pk)
    return Ad.objects.select_related("suggested_category").get(pk=ad.pk)


def prediction_version(ad: Ad) -> int:
    return Prediction.objects.filter(image__ad=ad).latest("created_at").model_version.number


def messages_of(response) -> str:
    return " | ".join(str(m) for m in response.context["messages"])


def kept_features(backbone: str) -> dict[int, object]:
    """The training photos whose features are kept for ``backbone``: id to when computed."""
    return dict(
        ImageFeatures.objects.filter(backbone=backbone).values_list("image_id", "created_at")
    )


def training_subset_ids() -> set[int]:
    return set(services.usable_images().filter(subset="train").values_list("pk", flat=True))


def latest_prediction(ad: Ad) -> Prediction:
    return (
        Prediction.objects.filter(image__ad=ad)
        .select_related("model_version")
        .latest("created_at", "id")
    )


def misrouted(ad: Ad, kind: str) -> bool:
    """In review, because the model sees the photo as something it is not."""
    ad.refresh_from_db()
    return ad.status == Ad.Status.NEEDS_REVIEW and latest_prediction(ad).category != kind


def routed_right(ad: Ad, kind: str) -> bool:
    """The model sees what the photo is; the ad is published, or waits for a human only
    because the model is not sure enough (a tiny model's threshold is strict)."""
    ad.refresh_from_db()
    sure = ad.status == Ad.Status.PUBLISHED
    unsure = ad.status == Ad.Status.NEEDS_REVIEW and ad.review_reason == REASON.LOW_CONFIDENCE
    return latest_prediction(ad).category == kind and (sure or unsure)
