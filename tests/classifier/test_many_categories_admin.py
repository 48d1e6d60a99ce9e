"""Any number of categories in the admin: the review queue's filters, captions and
suggestions, and the registry's figures, with a real model of four drawn kinds; each page
as each role sees it."""

from __future__ import annotations

import re
from io import StringIO

import pytest
from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.test import Client
from django.urls import reverse

from ads.models import Ad, Category
from avito_mod.charts import confusion_table, per_class_chart
from classifier import services
from classifier.models import ModelVersion, Prediction, top_categories
from classifier.services import retraining
from moderation import pipeline
from moderation.models import ModerationDecision
from tests.classifier.test_many_categories import confident_seed
from tests.support.factories import make_ad
from tests.support.images import FOUR_CLASSES, write_dataset
from tests.support.tiny import tiny_config

pytestmark = pytest.mark.django_db

QUEUE = "admin:moderation_reviewitem_changelist"
ROLES = ("anonymous", "seller", "moderator", "admin")


@pytest.fixture
def clients(seller, admin_user):
    """A client signed in as each role (staff outside the moderators' group aside)."""
    call_command(
        "create_account", "mona", role="moderator", password="a-long-pass", stdout=StringIO()
    )
    signed_in = {"seller": seller, "moderator": get_user_model().objects.get(username="mona")}
    signed_in["admin"] = admin_user
    out = {"anonymous": Client()}
    for role, user in signed_in.items():
        out[role] = Client()
        out[role].force_login(user)
    return out


def routed(seller, category: str, kind: str, version, photos: int = 1) -> Ad:
    """An ad of confidently drawn ``kind`` photos under ``category``, routed by the pipeline."""
    seed = confident_seed(kind, version)
    ad = make_ad(seller, category=category, kind=kind, seed=seed, photos=photos)
    pipeline.classify_ad(ad.pk)
    return Ad.objects.select_related("suggested_category").get(pk=ad.pk)


def listed(client, **params) -> set[int]:
    response = client.get(reverse(QUEUE), params)
    assert response.status_code == 200
    return {ad.pk for ad in response.context["cl"].result_list}


# --- The review queue ----------------------------------------------------------------


def test_the_queue_filters_by_any_of_the_categories_and_predictions(
    clients, seller, four_class_version, media
):
    watch_under_phones = routed(seller, "phone", "watch", four_class_version)
    camera_under_watches = routed(seller, "watch", "camera", four_class_version)
    laptop_under_cameras = routed(seller, "camera", "laptop", four_class_version)
    ads = (watch_under_phones, camera_under_watches, laptop_under_cameras)
    assert all(ad.status == Ad.Status.NEEDS_REVIEW for ad in ads)
    moderator = clients["moderator"]
    by_slug = {c.slug: c.pk for c in Category.objects.all()}

    page = moderator.get(reverse(QUEUE)).text
    for name in ("Cameras", "Laptops", "Phones", "Watches"):  # both filters offer each
        assert page.count(f">{name}</a>") >= 2, name
    assert listed(moderator, category__id__exact=by_slug["watch"]) == {camera_under_watches.pk}
    assert listed(moderator, category__id__exact=by_slug["camera"]) == {laptop_under_cameras.pk}
    assert listed(moderator, predicted="watch") == {watch_under_phones.pk}
    assert listed(moderator, predicted="camera") == {camera_under_watches.pk}
    assert listed(moderator, predicted="laptop") == {laptop_under_cameras.pk}
    assert listed(moderator, predicted="phone") == set()
    assert listed(moderator, predicted="watch", category__id__exact=by_slug["phone"]) == {
        watch_under_phones.pk
    }


@pytest.mark.parametrize("role", ROLES)
def test_under_each_photo_the_top_categories_show_to_those_who_see_the_queue(
    clients, seller, four_class_version, media, role
):
    ad = make_ad(seller, category="phone", kind="laptop", seed=4400, photos=2)
    ad.send_to_review(Ad.ReviewReason.CATEGORY_MISMATCH)
    first, second = ad.images.order_by("position")
    stored = {"camera": 0.22, "laptop": 0.71, "phone": 0.05, "watch": 0.02}
    for image, probabilities in ((first, stored), (second, {"watch": 0.97, "camera": 0.03})):
        Prediction.objects.create(
            image=image,
            model_version=four_class_version,
            category=max(probabilities, key=probabilities.get),
            confidence=max(probabilities.values()),
            probabilities=probabilities,
        )

    response = clients[role].get(reverse(QUEUE))

    if role in ("anonymous", "seller"):
        assert response.status_code == 302 and "/admin/login/" in response["Location"]
        return
    assert response.status_code == 200
    assert "<figcaption>laptop 71% · camera 22% · phone 5%</figcaption>" in response.text
    assert "<figcaption>watch 97%</figcaption>" in response.text  # 3 % is left out
    detail = clients[role].get(reverse("admin:moderation_reviewitem_change", args=[ad.pk]))
    assert "laptop 71% · camera 22% · phone 5%" in detail.text


def test_the_captions_of_a_real_model_are_its_stored_probabilities(
    clients, seller, four_class_version, media
):
    ad = routed(seller, "phone", "camera", four_class_version, photos=2)
    page = clients["moderator"].get(reverse(QUEUE)).text
    for prediction in Prediction.objects.filter(image__ad=ad):
        shown = top_categories(prediction.probabilities)
        assert shown[0][0] == "camera"
        assert f"<figcaption>{prediction.top_text()}</figcaption>" in page


def test_recategorize_follows_the_suggestion_among_four(clients, seller, four_class_version, media):
    watch_ad = routed(seller, "phone", "watch", four_class_version)
    camera_ad = routed(seller, "laptop", "camera", four_class_version)
    laptop_ad = routed(seller, "watch", "laptop", four_class_version)
    moderator = clients["moderator"]

    # The row offers every other active category, the suggestion chosen.
    page = moderator.get(reverse(QUEUE)).text
    select = re.search(
        rf'<select name="category" form="decide-{watch_ad.pk}".*?</select>', page, re.S
    )
    options = re.findall(r"<option [^>]*>([^<]*)</option>", select.group())
    assert options == ["Cameras", "Laptops", "Watches (suggested)"]
    watches = Category.objects.get(slug="watch")
    assert f'<option value="{watches.pk}" selected>' in select.group()

    # One ad by its row's button, two by the bulk action: each goes to its own suggestion.
    url = reverse("admin:moderation_reviewitem_recategorize", args=[watch_ad.pk])
    moderator.post(url, {"category": ""})
    moderator.post(
        reverse(QUEUE),
        {"action": "recategorize_selected", "_selected_action": [camera_ad.pk, laptop_ad.pk]},
    )

    published = {
        ad.pk: ad.category.slug
        for ad in Ad.objects.filter(pk__in=[watch_ad.pk, camera_ad.pk, laptop_ad.pk])
    }
    assert published == {watch_ad.pk: "watch", camera_ad.pk: "camera", laptop_ad.pk: "laptop"}
    assert set(Ad.objects.filter(pk__in=published).values_list("status", flat=True)) == {
        "published"
    }
    moves = ModerationDecision.objects.values_list("from_category__slug", "to_category__slug")
    assert sorted(moves) == [("laptop", "camera"), ("phone", "watch"), ("watch", "laptop")]


# --- The registry --------------------------------------------------------------------


def test_the_confusion_table_stays_readable_at_six_categories():
    classes = ["camera", "headphones", "laptop", "phone", "tablet", "watch"]
    matrix = [
        [10 if i == j else (2 if j == (i + 1) % 6 else 0) for j in range(6)] for i in range(6)
    ]
    html = str(confusion_table(matrix, classes))
    assert html.count("<tr>") == 7 and html.count('class="right"') == 6
    assert html.count('class="wrong"') == 6  # the mistakes stand apart from the right answers
    assert 'title="camera predicted as headphones: 2 of 12 (17%)"' in html
    assert 'title="camera never predicted as laptop"></td>' in html  # empty cells stay blank
    assert html.count('<td class="total">83%</td>') == 6  # each row's recall


def test_the_per_category_chart_has_a_bar_per_category_each_version_knows():
    six = ["camera", "headphones", "laptop", "phone", "tablet", "watch"]
    scores = {"precision": 0.8, "recall": 0.9, "f1": 0.85, "support": 12}
    candidate = {"per_class": {name: scores for name in six}}
    active = {"per_class": {name: scores for name in ("laptop", "phone")}}
    svg = str(per_class_chart([("v5", candidate, "#111"), ("v4", active, "#222")]))
    assert svg.count("<rect") == 6 + 2 + 2  # bars, and the legend's two swatches
    assert svg.count('fill="#222"><title>') == 2  # the active version: its two categories
    assert "<title>v5, headphones: recall 90.0%, precision 80.0% (n=12)</title>" in svg
    for name in six:
        assert f">{name}</text>" in svg


def train_candidate(user) -> ModelVersion:
    """What the admin's button and the training worker do, with a tiny recipe."""
    version = retraining.request_training(user)
    outcome = retraining.run_training(version.pk, tiny_config())
    assert outcome.startswith(f"v{version.number} trained"), outcome
    version.refresh_from_db()
    services.forget_loaded_models()
    return version


def test_a_version_of_four_categories_shows_its_figures_next_to_a_two_category_one(
    clients, admin_user, tiny_version, four_categories, tmp_path, media, settings
):
    settings.CLASSIFIER_EVALUATION_PERCENT = 30
    services.import_images(write_dataset(tmp_path / "data", per_class=24, classes=FOUR_CLASSES))
    candidate = train_candidate(admin_user)
    assert candidate.classes == list(FOUR_CLASSES)
    assert candidate.evaluation["classes"] == list(FOUR_CLASSES)
    url = reverse("admin:classifier_modelversion_change", args=[candidate.pk])

    for role in ("anonymous", "seller"):
        response = clients[role].get(url)
        assert response.status_code == 302 and "/admin/login/" in response["Location"]
    assert clients["moderator"].get(url).status_code == 403
    response = clients["admin"].get(url)

    page = response.text
    assert response.status_code == 200
    tables = re.findall(r'<table class="confusion">.*?</table>', page, re.S)
    # The validation split's and the evaluation set's of this version, the active one's.
    sizes = sorted(table.count("<tr>") - 1 for table in tables)
    assert sizes == [2, 4, 4], sizes
    # Per class, both versions side by side; the active one knows two of the four.
    for kind in FOUR_CLASSES:
        assert f"<td>{kind}: precision / recall</td>" in page
    assert page.count("<td>—</td>") >= 2
    assert 'role="img" aria-label="Recall per category"' in page
    # The banner names the real reason the versions were measured on different photos.
    assert f"V{tiny_version.number} does not know Cameras and Watches: compared on" in page
    rows = [page.index(f"<tr><td>{kind}</td><td>") for kind in FOUR_CLASSES]  # per class
    assert rows == sorted(rows)  # in the version's order
    counts = candidate.metrics["class_counts"]
    assert " · ".join(f"{kind} {counts[kind]}" for kind in FOUR_CLASSES) in page
