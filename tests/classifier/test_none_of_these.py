"""Photos of none of the categories: the detector, routing, the seller's quick check and
page, ``classify --json``, and learning from moderators' "not the product" rejections.

Real tiny versions trained here on drawn laptops and phones, served as the int8 backbone then
the heads, as every retrained version is; drawn watches and cameras are the "other things".
"""

from __future__ import annotations

import json
from dataclasses import replace
from io import StringIO

import numpy as np
import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.core.management import call_command
from rest_framework.test import APIClient

from ads.models import Ad
from classifier import services
from classifier.ml import none_of_these
from classifier.models import Prediction, TrainingImage
from classifier.services import retraining
from moderation import pipeline
from moderation import services as moderation
from moderation.policy import PhotoVerdict, decide
from tests.support.browser import BROWSER_TESTS
from tests.support.factories import make_ad, make_moderator, store_shipped_files
from tests.support.images import jpeg_bytes
from tests.support.retraining import drawn, import_drawn, train_candidate
from tests.support.tiny import tiny_config

pytestmark = pytest.mark.django_db
REASON = Ad.ReviewReason
# Generous on purpose: a tiny model on 48 drawn photos per class; the rule is the same.
CONFIG = replace(tiny_config(), none_of_these_rate=0.05)
CLASSES2 = ["laptop", "phone"]
KINDS = ("laptop", "phone", "watch")


@pytest.fixture
def categories(db):
    from ads.models import Category

    return {c.slug: c for c in Category.objects.all()}


@pytest.fixture
def detecting_version(tmp_path, media, admin_user):
    """A version trained by the app on drawn laptops and phones, active."""
    store_shipped_files()  # the active shipped v5, measured beside it at promotion
    import_drawn(
        tmp_path, {"laptop": drawn("laptop", range(48)), "phone": drawn("phone", range(48))}
    )
    version = train_candidate(admin_user, CONFIG)
    retraining.promote(version, admin_user)
    version.refresh_from_db()
    return version


def test_the_detector_flags_what_is_far_from_every_category_and_little_else():
    rng = np.random.default_rng(0)
    centres = np.eye(4, 64)[:2] * 10
    labels = np.repeat([0, 1], 100)
    features = centres[labels] + rng.normal(size=(200, 64))
    fold_of = np.arange(200) % 4
    detector, report = none_of_these.fit(
        features, labels, 2, fold_of, np.zeros((0, 64)), 0.02, dims=64
    )
    assert 0.005 <= report["flagged_by_distance"] <= 0.05
    product = centres[np.repeat([0, 1], 200)] + rng.normal(size=(400, 64))
    assert detector.flags(product).mean() < 0.06
    other = np.eye(4, 64)[3] * 10 + rng.normal(size=(50, 64))
    assert detector.flags(other).all()
    # Stored and read back, it answers the same.
    again = none_of_these.NoneOfThese.from_arrays(detector.arrays())
    assert (again.flags(other) == detector.flags(other)).all()


def test_a_photo_nearer_a_rejected_photo_than_any_category_is_flagged():
    rng = np.random.default_rng(1)
    labels = np.repeat([0, 1], 60)
    features = np.eye(3, 32)[labels] * 5 + rng.normal(size=(120, 32))
    # Between the categories: too near them to be flagged by distance alone.
    between = (np.eye(3, 32)[0] + np.eye(3, 32)[1]) * 3
    fold_of = np.arange(120) % 3
    plain, _ = none_of_these.fit(features, labels, 2, fold_of, np.zeros((0, 32)), 0.01, dims=32)
    rejected = between + rng.normal(scale=0.3, size=(10, 32))
    learned, report = none_of_these.fit(features, labels, 2, fold_of, rejected, 0.01, dims=32)
    assert report["rejected_photos"] == 10
    new = between + rng.normal(scale=0.3, size=(20, 32))
    assert not plain.flags(new).any()
    assert learned.flags(new).all()


# ImageNet classes (``imagenet.class_names``).
LAPTOP_COMPUTER, MOBILE_PHONE, GOLDFISH = 620, 487, 1


def test_imagenet_overrules_the_distance_for_confidently_placed_photos_both_ways():
    """The real ImageNet head of the default backbone, on features built from its own
    weights: a category's mean is the direction ImageNet reads as its likeliest class."""
    from classifier.ml import imagenet
    from classifier.ml.backbone import DEFAULT_BACKBONE, HEAD_FEATURES

    weight = imagenet.imagenet_head(DEFAULT_BACKBONE).weight
    classes = (LAPTOP_COMPUTER, MOBILE_PHONE, GOLDFISH)
    along = {k: weight[:, k] / np.linalg.norm(weight[:, k]) for k in classes}
    means = none_of_these.unit(np.stack([along[LAPTOP_COMPUTER], along[MOBILE_PHONE]]))
    detector = none_of_these.NoneOfThese(means, np.zeros((0, HEAD_FEATURES)), threshold=0.3)
    own = detector.own_classes(DEFAULT_BACKBONE)
    assert LAPTOP_COMPUTER in own[0] and GOLDFISH not in own[1]
    # Unlike the marketplace's photos: beyond the limit (0.33 > 0.3) along what ImageNet
    # cannot see (the null space of its head), so ImageNet still reads a laptop, only that.
    unseen = np.linalg.svd(weight.T)[2][-1]
    studio = (10 * along[LAPTOP_COMPUTER] + 11 * unseen)[None]
    assert imagenet.probabilities(studio, DEFAULT_BACKBONE)[0, LAPTOP_COMPUTER] > 0.9
    threshold = 0.9

    def flags(features, probabilities):
        return detector.flags(features, np.array([probabilities]), threshold, DEFAULT_BACKBONE)[0]

    assert detector.flags(studio)[0]  # by distance alone: flagged
    assert not flags(studio, [0.99, 0.01])  # the heads are sure it is a laptop: not flagged
    assert flags(studio, [0.6, 0.4])  # unsure heads: the distance decides
    assert flags(studio, [0.01, 0.99])  # "a phone" that ImageNet is sure is a laptop
    # Far beyond the limit (0.55), ImageNet no longer overrules it.
    stranger = (10 * along[LAPTOP_COMPUTER] + 20 * unseen)[None]
    assert flags(stranger, [0.99, 0.01])
    # Near the phone mean (within the limit here), but ImageNet is sure it is a goldfish.
    fish = (10 * along[MOBILE_PHONE] + 20 * along[GOLDFISH])[None]
    detector.threshold = 0.9
    assert imagenet.probabilities(fish, DEFAULT_BACKBONE)[0].argmax() == GOLDFISH
    assert not detector.flags(fish)[0]
    assert flags(fish, [0.01, 0.99])  # confidently a phone to the heads: flagged
    assert not flags(fish, [0.3, 0.7])  # not confident: the routing sends it to review anyway


def test_served_versions_give_the_detector_their_threshold_backbone_and_classes(
    detecting_version,
):
    heads = services.predictor_for(detecting_version).heads
    assert heads.none_of_these is not None
    assert (heads.threshold, heads.backbone, heads.classes) == (
        detecting_version.threshold,
        detecting_version.backbone,
        detecting_version.classes,
    )


def test_any_photo_of_none_of_the_categories_sends_the_ad_to_review(categories):
    phone = categories["phone"]
    sure = PhotoVerdict("phone", 0.99)
    routing = decide(phone, [sure, PhotoVerdict("phone", 0.99, none_of_these=True)], CLASSES2, 0.9)
    assert routing.status == Ad.Status.NEEDS_REVIEW
    assert routing.reason == REASON.NONE_OF_THESE
    # The others may still suggest another category.
    laptop = PhotoVerdict("laptop", 0.99)
    routing = decide(phone, [laptop, PhotoVerdict("phone", 0.5, none_of_these=True)], CLASSES2, 0.9)
    assert routing.suggested_category == categories["laptop"]
    assert decide(phone, [sure, sure], CLASSES2, 0.9).status == Ad.Status.PUBLISHED


def test_training_stores_the_detector_with_the_heads_and_reports_it(detecting_version):
    figures = detecting_version.metrics["none_of_these"]
    assert figures["target_rate"] == 0.05
    assert figures["rejected_photos"] == 0
    assert 0 < figures["flagged_by_distance"] <= 0.15
    predictor = services.load_predictor(detecting_version)
    assert predictor.heads.none_of_these is not None


def test_an_ad_with_a_photo_of_another_thing_goes_to_review_with_its_own_reason(
    detecting_version, seller
):
    published = make_ad(seller, category="phone", photos=2, kind="phone", seed=900)
    assert pipeline.classify_ad(published.pk) == "published"
    assert not Prediction.objects.filter(image__ad=published, none_of_these=True).exists()

    watch = make_ad(seller, category="phone", photos=1, kind="watch", seed=900)
    pipeline.classify_ad(watch.pk)
    watch.refresh_from_db()
    assert (watch.status, watch.review_reason) == (Ad.Status.NEEDS_REVIEW, REASON.NONE_OF_THESE)
    prediction = Prediction.objects.get(image__ad=watch)
    assert prediction.none_of_these is True
    assert prediction.top_text().startswith("none of these (")


def test_most_photos_of_other_things_are_caught_and_few_products(detecting_version):
    pixels = {kind: [jpeg_bytes(kind, seed) for seed in range(500, 520)] for kind in KINDS}
    flagged = {
        kind: np.mean(
            [r.none_of_these for r in services.classify_images(photos, detecting_version)]
        )
        for kind, photos in pixels.items()
    }
    assert flagged["watch"] >= 0.9, flagged
    assert flagged["phone"] <= 0.15 and flagged["laptop"] <= 0.15, flagged


def test_a_whole_model_version_cannot_tell_and_says_so(tiny_version, seller, media):
    ad = make_ad(seller, category="phone", kind="watch", seed=3)
    pipeline.classify_ad(ad.pk)
    assert Prediction.objects.get(image__ad=ad).none_of_these is None


def test_the_quick_check_tells_the_seller(detecting_version, seller):
    from django.core.cache import cache

    cache.clear()  # the throttles count in the cache, which outlives a test
    client = APIClient()
    client.force_authenticate(seller)

    # A watch the workers would flag (most are: see above), checked as the seller would.
    watches = [jpeg_bytes("watch", seed) for seed in range(950, 960)]
    results = services.classify_images(watches, detecting_version)
    flagged = next(photo for photo, r in zip(watches, results, strict=True) if r.none_of_these)

    def check(data):
        image = SimpleUploadedFile("photo.jpg", data, "image/jpeg")
        response = client.post(
            "/api/v1/classify/", {"image": image, "category": "phone"}, format="multipart"
        )
        assert response.status_code == 200, response.content
        return response.json()

    other = check(flagged)
    assert other["none_of_these"] is True
    assert other["class"] is None and other["categories_matched"] is False
    assert other["confident"] is False and other["suggested_category"] is None
    assert other["switch_to"] is None
    # Said as sure only when no category reaches the threshold (ads.verdicts.is_sure).
    assert other["sure"] is (other["confidence"] < detecting_version.threshold)
    phone = check(jpeg_bytes("phone", 950))
    assert phone["none_of_these"] is False and phone["class"] == "phone"


def test_the_seller_page_and_api_say_why_the_ad_waits(detecting_version, seller, client):
    ad = make_ad(seller, category="phone", kind="watch", seed=960)
    pipeline.classify_ad(ad.pk)
    client.force_login(seller)
    page = client.get(f"/ads/{ad.pk}/")
    assert "A photo shows none of the categories" in page.content.decode()
    api = APIClient()
    api.force_authenticate(seller)
    answer = api.get(f"/api/v1/ads/{ad.pk}/").json()
    assert answer["review_reason"] == "none_of_these"
    assert answer["photos"][0]["prediction"]["none_of_these"] is True


def browser_test(test):
    """The browser tests' marks (a live server needs a transactional database)."""
    for mark in reversed(BROWSER_TESTS):
        test = mark(test)
    return test


@browser_test
def test_the_new_ad_page_says_a_photo_shows_none_of_the_categories(
    detecting_version, seller, open_page, tmp_path
):
    from django.core.cache import cache
    from playwright.sync_api import expect

    cache.clear()  # the quick check's rate limits count in the cache
    watches = [jpeg_bytes("watch", seed) for seed in range(980, 1010)]
    results = services.classify_images(watches, detecting_version)
    photo = tmp_path / "watch.jpg"
    # One the detector flags and no category claims: said as sure (ads.verdicts.is_sure).
    sure = [
        p
        for p, r in zip(watches, results, strict=True)
        if r.none_of_these and r.confidence < detecting_version.threshold
    ]
    photo.write_bytes(sure[0])
    page = open_page()
    page.sign_in()
    page.new_ad_with(photo)

    expect(page.tab.locator("#photo-list .photo")).to_contain_text(
        "This photo does not look like any of our categories"
    )
    assert page.errors == []


def test_classify_json_gives_class_null_for_none_of_these(detecting_version, tmp_path):
    watch, phone = tmp_path / "watch.jpg", tmp_path / "phone.jpg"
    watch.write_bytes(jpeg_bytes("watch", 970))
    phone.write_bytes(jpeg_bytes("phone", 970))
    out = StringIO()
    call_command("classify", str(watch), str(phone), category="phone", as_json=True, stdout=out)
    first, second = (json.loads(line) for line in out.getvalue().splitlines())
    assert first["none_of_these"] is True and first["class"] is None
    assert first["confident"] is False and first["categories_matched"] is False
    assert second["none_of_these"] is False and second["class"] == "phone"
    assert second["confident"] is (second["confidence"] >= detecting_version.threshold)


def test_rejections_as_not_the_product_are_learned_by_the_next_version(
    detecting_version, seller, admin_user
):
    moderator = make_moderator()
    for seed in range(600, 612):
        ad = make_ad(seller, category="phone", kind="camera", seed=seed)
        pipeline.classify_ad(ad.pk)
        ad.refresh_from_db()
        if ad.status == Ad.Status.PUBLISHED:  # a published ad is reported, then reviewed
            Ad.objects.filter(pk=ad.pk).update(status=Ad.Status.NEEDS_REVIEW)
        moderation.decide(ad.pk, moderator, "reject", reason="not_product")
    assert TrainingImage.objects.filter(not_product=True).count() == 12

    learned = train_candidate(admin_user, CONFIG)
    assert learned.metrics["none_of_these"]["rejected_photos"] == 12
    new_cameras = [jpeg_bytes("camera", seed) for seed in range(700, 720)]
    flags = [r.none_of_these for r in services.classify_images(new_cameras, learned)]
    assert np.mean(flags) >= 0.9
    products = [jpeg_bytes(kind, seed) for kind in ("phone", "laptop") for seed in range(700, 710)]
    assert np.mean([r.none_of_these for r in services.classify_images(products, learned)]) <= 0.15
