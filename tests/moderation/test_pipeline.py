"""The worker's job, run in-process: classify an ad's photos with a real model, route it."""

from datetime import timedelta

import pytest
from django.utils import timezone

from ads.models import Ad
from classifier.models import ModelVersion, Prediction
from moderation import pipeline
from tests.support.factories import make_ad, make_user, upload
from tests.support.images import jpeg_bytes

# In the S3 pass too (-m s3, see .ci/run): this module stores or reads files.
pytestmark = [pytest.mark.django_db, pytest.mark.s3]
REASON = Ad.ReviewReason


def ad_with(seller, category, *kinds, seed=700):
    from ads import services
    from ads.models import Category

    return services.create_ad(
        seller,
        title="t",
        description="",
        price=1,
        category=Category.objects.get(slug=category),
        photos=[upload(f"{kind}.jpg", jpeg_bytes(kind, seed + n)) for n, kind in enumerate(kinds)],
    )


def test_a_matching_ad_is_published_with_a_prediction_per_photo(tiny_version, seller, media):
    ad = ad_with(seller, "phone", "phone", "phone")
    assert pipeline.classify_ad(ad.pk) == "published"
    ad.refresh_from_db()
    assert ad.status == Ad.Status.PUBLISHED and ad.decided_at is not None
    predictions = Prediction.objects.filter(image__ad=ad, model_version=tiny_version)
    assert sorted(p.category for p in predictions) == ["phone", "phone"]
    assert all(p.confidence >= tiny_version.threshold for p in predictions)


def test_a_laptop_under_phones_goes_to_review_with_a_suggestion(tiny_version, seller, media):
    ad = ad_with(seller, "phone", "laptop")
    pipeline.classify_ad(ad.pk)
    ad.refresh_from_db()
    assert (ad.status, ad.review_reason) == (Ad.Status.NEEDS_REVIEW, REASON.CATEGORY_MISMATCH)
    assert ad.suggested_category.slug == "laptop"


def test_a_second_delivery_changes_nothing(tiny_version, seller, media):
    ad = ad_with(seller, "phone", "phone")
    pipeline.classify_ad(ad.pk)
    decided_at = Ad.objects.get(pk=ad.pk).decided_at
    assert pipeline.classify_ad(ad.pk) == "skipped: not pending"
    assert Ad.objects.get(pk=ad.pk).decided_at == decided_at
    assert Prediction.objects.filter(image__ad=ad).count() == 1


def test_stored_predictions_are_reused_not_duplicated(tiny_version, seller, media):
    ad = ad_with(seller, "phone", "phone")
    pipeline._predict(list(ad.images.all()), tiny_version)  # a delivery that died after this
    pipeline.classify_ad(ad.pk)
    assert Prediction.objects.filter(image__ad=ad).count() == 1


def test_an_ad_edited_mid_flight_is_not_routed_on_stale_data(tiny_version, seller, media):
    ad = ad_with(seller, "phone", "phone")
    stale = Ad.objects.get(pk=ad.pk)
    Ad.objects.get(pk=ad.pk).save()  # the seller edits while the worker classifies
    routing, _ = pipeline._classify_and_decide(stale, list(stale.images.all()), tiny_version)
    assert pipeline._apply(stale, routing) == "skipped: changed meanwhile"
    assert Ad.objects.get(pk=ad.pk).status == Ad.Status.PENDING


def test_no_active_model_sends_the_ad_to_review(seller, media):
    ModelVersion.objects.filter(status="active").update(status="retired")
    ad = ad_with(seller, "phone", "phone")
    pipeline.classify_ad(ad.pk)
    ad.refresh_from_db()
    assert ad.review_reason == REASON.MODEL_UNAVAILABLE


def test_an_unloadable_model_sends_the_ad_to_review(tiny_version, seller, media):
    tiny_version.serving_artifact.storage.delete(tiny_version.serving_artifact.name)
    ad = ad_with(seller, "phone", "phone")
    pipeline.classify_ad(ad.pk)
    ad.refresh_from_db()
    assert (ad.status, ad.review_reason) == (Ad.Status.NEEDS_REVIEW, REASON.MODEL_UNAVAILABLE)


def test_a_photo_missing_from_storage_is_a_classification_failure(tiny_version, seller, media):
    ad = ad_with(seller, "phone", "phone")
    image = ad.images.get()
    image.file.storage.delete(image.file.name)
    pipeline.classify_ad(ad.pk)
    ad.refresh_from_db()
    assert ad.review_reason == REASON.CLASSIFICATION_FAILED


def test_another_sellers_photo_is_flagged_as_a_duplicate(tiny_version, seller, media):
    original = ad_with(make_user("first"), "phone", "phone", seed=900)
    pipeline.classify_ad(original.pk)
    copy = ad_with(seller, "phone", "phone", seed=900)
    pipeline.classify_ad(copy.pk)
    copy.refresh_from_db()
    assert copy.review_reason == REASON.DUPLICATE_PHOTO


def test_a_sellers_own_repost_is_not_a_duplicate(tiny_version, seller, media):
    pipeline.classify_ad(ad_with(seller, "phone", "phone", seed=910).pk)
    again = ad_with(seller, "phone", "phone", seed=910)
    assert pipeline.classify_ad(again.pk) == "published"


def test_the_sweep_requeues_ads_left_pending(tiny_version, seller, media, settings):
    settings.ADS_REQUEUE_PENDING_AFTER = 60
    stuck = make_ad(seller)
    fresh = make_ad(seller)
    long_ago = timezone.now() - timedelta(minutes=10)
    Ad.objects.filter(pk=stuck.pk).update(classification_requested_at=long_ago)
    Ad.objects.filter(pk=fresh.pk).update(classification_requested_at=timezone.now())
    assert pipeline.requeue_stale_ads() == 1
    assert Ad.objects.get(pk=stuck.pk).classification_requested_at > long_ago


def _purge_inference_queue(settings) -> None:
    from avito_mod.celery import app

    with app.connection_for_write() as connection:
        connection.default_channel.queue_purge(settings.CLASSIFIER_INFERENCE_QUEUE)


def test_the_sweep_waits_longer_while_a_backlog_waits_in_the_queue(seller, media, settings):
    """Pending for a minute with nothing queued: lost with a dead worker, sent again. With
    tasks waiting in the (real) broker, the same ad may just be waiting its turn."""
    settings.ADS_REQUEUE_PENDING_AFTER = 30
    settings.ADS_REQUEUE_BACKLOGGED_AFTER = 300
    _purge_inference_queue(settings)
    a_minute_ago = timezone.now() - timedelta(minutes=1)
    lost, waiting = make_ad(seller), make_ad(seller)
    Ad.objects.filter(pk=lost.pk).update(classification_requested_at=a_minute_ago)

    assert pipeline.waiting_for_inference() == 0
    assert pipeline.requeue_stale_ads() == 1  # now one task waits in the queue
    assert pipeline.waiting_for_inference() == 1

    Ad.objects.filter(pk=waiting.pk).update(classification_requested_at=a_minute_ago)
    assert pipeline.requeue_stale_ads() == 0
    Ad.objects.filter(pk=waiting.pk).update(
        classification_requested_at=timezone.now() - timedelta(minutes=6)
    )
    assert pipeline.requeue_stale_ads() == 1
    _purge_inference_queue(settings)


def test_an_upload_survives_a_broker_that_is_down(seller, media, monkeypatch):
    from kombu.exceptions import OperationalError

    from moderation import tasks

    def broker_down(*args, **kwargs):
        raise OperationalError("Connection refused")

    monkeypatch.setattr(tasks.classify_ad, "delay", broker_down)
    ad = make_ad(seller)
    assert pipeline.enqueue([ad.pk]) == 0
    ad.refresh_from_db()
    assert ad.status == Ad.Status.PENDING
    assert ad.classification_requested_at is not None  # the sweep will find it
