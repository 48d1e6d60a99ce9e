"""Any number of categories: a real model of four drawn kinds (``FOUR_CLASSES``) trained,
measured, asked on the command line and by the quick check, routing ads, checking labels."""

from __future__ import annotations

import json
from io import StringIO

import numpy as np
import pytest
from django.core.cache import cache
from django.core.files.uploadedfile import SimpleUploadedFile
from django.core.management import call_command
from django.urls import reverse
from rest_framework.test import APIClient

from ads.models import Ad, Category
from classifier import services
from classifier.ml.dataset import load_folder
from classifier.ml.export import load_keras
from classifier.ml.features import compute
from classifier.ml.train import head_probabilities
from classifier.models import LabelCheck, Prediction, TrainingImage, top_categories
from classifier.services import retraining
from moderation import pipeline
from moderation.policy import PhotoVerdict, decide
from tests.support.factories import make_ad
from tests.support.images import FOUR_CLASSES, jpeg_bytes, write_dataset
from tests.support.tiny import TINY_SIZE, tiny_config

pytestmark = pytest.mark.django_db
REASON = Ad.ReviewReason


def run(name, *args, **options) -> str:
    out = StringIO()
    call_command(name, *args, stdout=out, stderr=StringIO(), **options)
    return out.getvalue()


def confident_seed(kind: str, version, start: int = 5000) -> int:
    """A seed whose drawn ``kind`` photo the model puts in ``kind`` at or above its
    threshold (an ad of it would be published under ``kind``)."""
    for seed in range(start, start + 200):
        result = services.classify_images([jpeg_bytes(kind, seed)], version)[0]
        if result.category == kind and result.confidence >= version.threshold:
            return seed
    raise AssertionError(f"the four-category model is confident about no drawn {kind} photo")


# --- Training and measuring ----------------------------------------------------------


def test_a_four_category_model_learns_every_kind(four_class_package, tmp_path):
    unseen = load_folder(
        write_dataset(tmp_path / "unseen", 15, start=1000, classes=FOUR_CLASSES), TINY_SIZE
    )
    head = load_keras(four_class_package.keras_bytes)
    predicted = head_probabilities(head, compute(unseen.pixels)).argmax(axis=1)
    for label, kind in enumerate(FOUR_CLASSES):
        assert np.mean(predicted[unseen.labels == label] == label) >= 0.8, kind
    m = four_class_package.metrics
    assert m["classes"] == list(FOUR_CLASSES) and set(m["per_class"]) == set(FOUR_CLASSES)
    assert np.array(m["confusion_matrix"]).shape == (4, 4)


def test_evaluate_json_gives_per_class_figures_and_the_matrix_in_the_stated_order(
    four_class_version, tmp_path
):
    data = write_dataset(tmp_path / "eval", per_class=6, start=500, classes=FOUR_CLASSES)
    report = json.loads(run("evaluate", str(data), json=True))

    assert report["classes"] == list(FOUR_CLASSES) == four_class_version.classes
    matrix = np.array(report["confusion_matrix"])
    assert matrix.shape == (4, 4) and matrix.sum() == report["n"] == 24
    assert list(matrix.sum(axis=1)) == [6, 6, 6, 6]  # rows: the true classes, 6 photos each
    for index, kind in enumerate(FOUR_CLASSES):
        scores = report["per_class"][kind]
        assert scores["support"] == 6
        assert scores["recall"] == pytest.approx(matrix[index, index] / 6)
        predicted = matrix[:, index].sum()
        assert scores["precision"] == pytest.approx(matrix[index, index] / predicted)
    assert report["accuracy"] >= 0.85


def test_evaluate_on_some_of_the_categories_keeps_the_models_order(four_class_version, tmp_path):
    data = write_dataset(tmp_path / "eval", per_class=3, start=600, classes=("phone", "watch"))
    report = json.loads(run("evaluate", str(data), json=True))
    assert report["classes"] == list(FOUR_CLASSES)
    assert report["per_class"]["camera"]["support"] == 0
    assert [sum(row) for row in report["confusion_matrix"]] == [0, 0, 3, 3]


def test_evaluate_prints_every_category_and_the_whole_matrix(four_class_version, tmp_path):
    data = write_dataset(tmp_path / "eval", per_class=3, start=500, classes=FOUR_CLASSES)
    out = run("evaluate", str(data))
    lines = out.splitlines()
    header = lines.index("Confusion matrix (rows: true, columns: predicted)")
    assert lines[header + 1].split() == list(FOUR_CLASSES)
    for offset, kind in enumerate(FOUR_CLASSES, start=2):
        row = lines[header + offset].split()
        assert row[0] == kind and sum(map(int, row[1:])) == 3
        assert any(line.strip().startswith(kind) and "precision" in line for line in lines)


def test_classify_names_the_kind_among_four_with_every_probability(four_class_version, tmp_path):
    watch = tmp_path / "watch.jpg"
    watch.write_bytes(jpeg_bytes("watch", confident_seed("watch", four_class_version)))
    answer = json.loads(run("classify", str(watch), category="phone", json=True))

    assert (answer["class"], answer["categories_matched"]) == ("watch", False)
    assert list(answer["probabilities"]) == list(FOUR_CLASSES)
    assert sum(answer["probabilities"].values()) == pytest.approx(1.0, abs=0.01)  # int8 outputs
    assert answer["probabilities"]["watch"] == answer["confidence"]
    assert answer["decided_automatically"] is True

    text = run("classify", str(watch), category="watch")
    assert text.startswith(f"{watch}: watch (") and " matches" in text


def test_the_top_categories_are_the_likeliest_three_above_five_percent():
    probabilities = {"camera": 0.02, "laptop": 0.71, "phone": 0.05, "tablet": 0.22}
    assert top_categories(probabilities) == [("laptop", 0.71), ("tablet", 0.22), ("phone", 0.05)]
    assert top_categories({"a": 0.5, "b": 0.5, "c": 0.0}) == [("a", 0.5), ("b", 0.5)]
    assert top_categories({"a": 0.97, "b": 0.03}) == [("a", 0.97)]
    # Six categories: never more than three, even when the tail is above the bar.
    six = {c: p for c, p in zip("abcdef", (0.3, 0.2, 0.2, 0.1, 0.1, 0.1), strict=True)}
    assert [c for c, _ in top_categories(six)] == ["a", "b", "c"]


# --- Routing -------------------------------------------------------------------------


def verdicts(*pairs):
    return [PhotoVerdict(category, confidence) for category, confidence in pairs]


def test_the_photos_vote_for_the_suggested_category_among_several(four_categories):
    phone = four_categories["phone"]
    routing = decide(
        phone,
        verdicts(("watch", 0.95), ("camera", 0.99), ("watch", 0.91), ("phone", 0.99)),
        list(FOUR_CLASSES),
        0.9,
    )
    assert routing.reason == REASON.CATEGORY_MISMATCH
    assert routing.suggested_category.slug == "watch"  # two photos against one


def test_a_tied_vote_goes_to_the_category_shown_with_more_confidence(four_categories):
    phone = four_categories["phone"]
    pairs = (("watch", 0.91), ("camera", 0.99))
    for order in (pairs, pairs[::-1]):  # whichever photo comes first
        routing = decide(phone, verdicts(*order), list(FOUR_CLASSES), 0.9)
        assert routing.suggested_category.slug == "camera"


def test_an_inactive_winner_leaves_the_suggestion_to_the_next_active_category(four_categories):
    Category.objects.filter(slug="watch").update(active=False)
    routing = decide(
        four_categories["phone"],
        verdicts(("watch", 0.95), ("watch", 0.95), ("camera", 0.93)),
        list(FOUR_CLASSES),
        0.9,
    )
    assert routing.suggested_category.slug == "camera"


def test_unsure_photos_of_other_categories_still_suggest_their_vote(four_categories):
    routing = decide(
        four_categories["laptop"],
        verdicts(("camera", 0.6), ("camera", 0.5), ("laptop", 0.95)),
        list(FOUR_CLASSES),
        0.9,
    )
    assert (routing.reason, routing.suggested_category.slug) == (REASON.LOW_CONFIDENCE, "camera")


def test_the_pipeline_publishes_a_new_category_and_suggests_it_for_a_wrong_one(
    four_class_version, seller, media
):
    seed = confident_seed("camera", four_class_version)
    camera_ad = make_ad(seller, category="camera", kind="camera", seed=seed)
    assert pipeline.classify_ad(camera_ad.pk) == "published"

    seed = confident_seed("watch", four_class_version)
    watch_under_phones = make_ad(seller, category="phone", kind="watch", seed=seed)
    pipeline.classify_ad(watch_under_phones.pk)
    watch_under_phones.refresh_from_db()
    assert watch_under_phones.review_reason == REASON.CATEGORY_MISMATCH
    assert watch_under_phones.suggested_category.slug == "watch"
    prediction = Prediction.objects.get(image__ad=watch_under_phones)
    assert set(prediction.probabilities) == set(FOUR_CLASSES)
    assert prediction.category == "watch"


# --- The quick check and the seller's pages ------------------------------------------


@pytest.fixture
def quick(seller):
    cache.clear()  # the throttles count in the cache, which outlives a test
    client = APIClient()
    client.force_authenticate(seller)

    def check(kind: str, seed: int, category: str) -> dict:
        photo = SimpleUploadedFile("p.jpg", jpeg_bytes(kind, seed), content_type="image/jpeg")
        response = client.post("/api/v1/classify/", {"image": photo, "category": category})
        assert response.status_code == 200, response.content
        return response.json()

    yield check
    cache.clear()


@pytest.mark.parametrize("kind", FOUR_CLASSES)
def test_the_quick_check_offers_the_predicted_category_among_four(four_class_version, quick, kind):
    seed = confident_seed(kind, four_class_version)
    for chosen in FOUR_CLASSES:
        body = quick(kind, seed, chosen)
        assert body["class"] == kind and body["confident"] is True
        assert body["categories_matched"] is (chosen == kind)
        names = {"slug": kind, "name": Category.objects.get(slug=kind).name}
        assert body["suggested_category"] == (None if chosen == kind else names)


def test_the_quick_check_never_offers_an_inactive_category(four_class_version, quick):
    seed = confident_seed("watch", four_class_version)
    Category.objects.filter(slug="watch").update(active=False)
    body = quick("watch", seed, "phone")
    assert (body["class"], body["categories_matched"]) == ("watch", False)
    assert body["suggested_category"] is None  # the page then says it is not a phone


def test_the_new_ad_page_offers_every_active_category(client, seller, four_categories):
    Category.objects.filter(slug="camera").update(active=False)
    client.force_login(seller)
    page = client.get(reverse("sellers:ad-new")).text
    for slug in ("laptop", "phone", "watch"):
        assert f'<option value="{slug}">' in page
    assert 'value="camera"' not in page


def test_the_ad_page_says_which_of_the_categories_the_photos_look_like(
    client, seller, four_class_version, media
):
    seed = confident_seed("watch", four_class_version)
    ad = make_ad(seller, category="phone", kind="watch", seed=seed)
    pipeline.classify_ad(ad.pk)
    client.force_login(seller)
    page = client.get(reverse("sellers:ad", args=[ad.pk])).text
    assert "they look like Watches" in page
    assert "Looks like Watches (" in page


# --- Suspected label errors among four categories ------------------------------------


def test_the_label_check_suggests_the_right_one_of_four_labels(
    tmp_path, media, four_categories, admin_user, admin_client
):
    folder = write_dataset(tmp_path / "data", per_class=30, classes=FOUR_CLASSES)
    # Watches filed as cameras and cameras as phones: wrong labels of new categories.
    for kind, wrong, seeds in (
        ("watch", "camera", range(300, 304)),
        ("camera", "phone", range(300, 304)),
    ):
        for seed in seeds:
            (folder / wrong / f"{kind}-{seed}.jpg").write_bytes(jpeg_bytes(kind, seed))
    services.import_images(folder)

    check = retraining.find_label_errors(admin_user, folds=3, config=tiny_config())

    assert check.status == LabelCheck.Status.DONE, check.error
    assert set(check.thresholds) == set(FOUR_CLASSES)
    flipped = TrainingImage.objects.filter(original_name__regex=r"^(watch|camera)-30[0-3]\.jpg$")
    flipped = flipped.filter(subset="train").select_related("category", "suspected_category")
    found = [image for image in flipped if image.suspected_category_id is not None]
    assert len(found) >= 0.6 * len(flipped)
    for image in found:  # the suggested label is the kind drawn, not merely "not this one"
        assert image.suspected_category.slug == image.original_name.split("-")[0]
    suspects = TrainingImage.objects.filter(suspected_category__isnull=False)
    assert len(found) >= 0.6 * suspects.count(), "precision"
    page = admin_client.get(
        reverse("admin:classifier_trainingimage_changelist"), {"suspected": "yes"}
    ).text
    for image in found:  # its one-click fix names the suggested one of the four
        assert f"Relabel as {image.suspected_category.name}" in page
