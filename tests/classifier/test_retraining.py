"""Retraining from moderators' labels: suspected label errors, who may press which button,
and the whole loop. (The evaluation set and export: test_retraining_data.py; training runs:
test_retraining_runs.py; promotion: test_retraining_promotion.py.)"""

from __future__ import annotations

from io import StringIO

import pytest
from django.contrib.auth import get_user_model
from django.core.management import CommandError, call_command
from django.urls import reverse

from ads.models import Ad, Category
from classifier import services
from classifier.ml.features import backbone_id
from classifier.models import (
    ImageFeatures,
    LabelCheck,
    ModelVersion,
    TrainingImage,
)
from classifier.services import retraining
from moderation import pipeline
from moderation import services as moderation
from tests.support.factories import make_ad, make_moderator
from tests.support.images import CLASSES
from tests.support.retraining import (
    IMAGES,
    REGISTRY,
    Status,
    classify,
    drawn,
    import_drawn,
    kept_features,
    latest_prediction,
    messages_of,
    misrouted,
    routed_right,
    train_candidate,
    training_subset_ids,
)
from tests.support.tiny import TINY_SIZE, tiny_config

pytestmark = pytest.mark.django_db


# --- Suspected label errors ------------------------------------------------------------


@pytest.fixture
def flipped(tmp_path, media):
    """Drawn photos with a few deliberately wrong labels: phones filed as laptops and the
    other way round, like the chargers and cases the prototype found among "phones"."""
    import_drawn(
        tmp_path,
        {
            "laptop": drawn("laptop", range(48)) + drawn("phone", range(100, 105)),
            "phone": drawn("phone", range(48)) + drawn("laptop", range(100, 105)),
        },
    )
    return TrainingImage.objects.filter(original_name__regex=r"-10[0-4]\.jpg$", subset="train")


def test_find_label_errors_flags_the_flipped_labels(flipped, admin_client, admin_user):
    check = retraining.find_label_errors(admin_user, folds=3, config=tiny_config())

    assert check.status == LabelCheck.Status.DONE, check.error
    assert check.progress["stage"] == "3 folds" and check.progress["fraction"] == 1.0
    suspects = TrainingImage.objects.filter(suspected_category__isnull=False)
    assert check.flagged == suspects.count() and check.checked == len(
        services.labelled_set(TINY_SIZE).ids
    )
    hits = suspects.filter(pk__in=flipped).count()
    assert hits >= 0.6 * flipped.count(), "recall"
    assert hits >= 0.6 * suspects.count(), "precision"
    for image in suspects.select_related("category", "suspected_category"):
        assert image.suspected_category != image.category
        assert image.suspected_confidence > check.thresholds[image.suspected_category.slug] - 1e-6

    page = admin_client.get(reverse(IMAGES), {"suspected": "yes"})
    assert f"{check.flagged} suspected label errors among {check.checked}" in page.text
    first = suspects.select_related("suspected_category").order_by("-suspected_margin").first()
    suspected = first.suspected_category
    assert reverse("classifier:training-image", args=[first.pk]) in page.text  # thumbnail
    assert f"Relabel as {first.suspected_category}" in page.text

    # One click: relabel to the suspected category (its source stays, the change is signed).
    admin_client.post(
        reverse("admin:classifier_trainingimage_relabel", args=[first.pk]),
        {"_changelist_filters": "suspected=yes"},
    )
    first.refresh_from_db()
    assert first.category == suspected and first.suspected_category is None
    assert first.relabelled_by == admin_user and first.relabelled_from is not None
    assert first.source == "import"
    # One click: exclude another.
    other = suspects.exclude(pk=first.pk).first()
    if other is not None:
        response = admin_client.post(
            reverse("admin:classifier_trainingimage_exclude", args=[other.pk]), follow=True
        )
        assert "1 images excluded from training." in messages_of(response)
        other.refresh_from_db()
        assert other.excluded and other.exclusion_reason == "suspected label error"


def test_find_label_errors_command_refuses_bad_options(db):
    with pytest.raises(CommandError, match="--folds must be at least 2"):
        call_command("find_label_errors", folds=1, stdout=StringIO())
    with pytest.raises(CommandError, match="no labelled training images"):
        call_command("find_label_errors", epochs=1, stdout=StringIO())


def test_the_find_label_errors_button_queues_a_check(
    admin_client, db, sent_trainings, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        response = admin_client.post(
            reverse("admin:classifier_trainingimage_check_labels"), follow=True
        )
    check = LabelCheck.objects.get()
    assert sent_trainings == [check.pk] and check.requested_by.username == "admin"
    assert "is queued on the training worker" in messages_of(response)
    assert '<meta http-equiv="refresh"' in response.text
    # The worker is busy: no training meanwhile.
    with pytest.raises(services.ClassifierError, match="is using the training worker"):
        retraining.request_training(None)


# --- Who may press which button ---------------------------------------------------------


@pytest.fixture
def objects(db, media, tmp_path):
    candidate = ModelVersion.objects.create(number=90, status=Status.CANDIDATE, classes=["a"])
    retired = ModelVersion.objects.create(number=91, status=Status.RETIRED, classes=["a"])
    training = ModelVersion.objects.create(number=92, status=Status.TRAINING)
    import_drawn(tmp_path, {k: drawn(k, range(2)) for k in CLASSES})
    image = TrainingImage.objects.first()
    image.suspected_category = Category.objects.exclude(pk=image.category_id).first()
    image.suspected_confidence = 0.99
    image.save()
    return {"candidate": candidate, "retired": retired, "training": training, "image": image}


BUTTONS = [
    ("admin:classifier_modelversion_train", None),
    ("admin:classifier_modelversion_promote", "candidate"),
    ("admin:classifier_modelversion_rollback", "retired"),
    ("admin:classifier_modelversion_cancel", "training"),
    ("admin:classifier_modelversion_evaluate", "candidate"),
    ("admin:classifier_trainingimage_relabel", "image"),
    ("admin:classifier_trainingimage_exclude", "image"),
    ("admin:classifier_trainingimage_check_labels", None),
]
ACTIONS = [
    (REGISTRY, "promote_selected", "candidate"),
    (REGISTRY, "roll_back_selected", "retired"),
    (REGISTRY, "evaluate_selected", "candidate"),
    (IMAGES, "exclude_selected", "image"),
    (IMAGES, "include_selected", "image"),
    (IMAGES, "relabel_selected", "image"),
]


def _button(name, target, objects):
    return reverse(name, args=[objects[target].pk] if target else [])


@pytest.mark.parametrize("name, target", BUTTONS)
def test_buttons_are_for_admins(name, target, objects, client, admin_client, sent_trainings):
    url = _button(name, target, objects)
    anonymous = client.post(url)
    assert anonymous.status_code == 302 and "/admin/login/" in anonymous["Location"]
    client.force_login(make_moderator())
    assert client.post(url).status_code == 403
    assert admin_client.get(url).status_code == 405  # a GET does nothing
    response = admin_client.post(url)
    assert response.status_code == 302, response.content[:500]
    assert "/admin/login/" not in response["Location"]


@pytest.mark.parametrize("page, action, target", ACTIONS)
def test_admin_actions_are_for_admins(page, action, target, objects, client, admin_client):
    data = {"action": action, "_selected_action": [objects[target].pk]}
    anonymous = client.post(reverse(page), data)
    assert anonymous.status_code == 302 and "/admin/login/" in anonymous["Location"]
    client.force_login(make_moderator())
    assert client.post(reverse(page), data).status_code == 403
    response = admin_client.post(reverse(page), data, follow=True)
    assert response.status_code == 200 and response.context["messages"], action


def test_staff_without_the_permissions_get_no_buttons(objects, client):
    staff = get_user_model().objects.create_user("stan", password="x", is_staff=True)
    from django.contrib.auth.models import Permission

    staff.user_permissions.add(
        *Permission.objects.filter(codename__in=["view_modelversion", "view_trainingimage"])
    )
    client.force_login(staff)
    page = client.get(reverse(REGISTRY)).text
    detail = client.get(
        reverse("admin:classifier_modelversion_change", args=[objects["candidate"].pk])
    ).text
    images = client.get(reverse(IMAGES), {"suspected": "yes"}).text
    assert "Train new version" not in page and "Promote to active" not in detail
    assert "Relabel as" not in images and "Find suspected label errors" not in images
    assert client.post(_button(*BUTTONS[0], objects)).status_code == 403


# --- The whole loop ----------------------------------------------------------------------


def test_the_loop_moderators_correct_a_mislabelled_model_and_retraining_fixes_it(
    tmp_path,
    media,
    seller,
    admin_user,
    sent_trainings,
    django_capture_on_commit_callbacks,
    backbone_runs,
):
    """A dataset made of earlier ads' photos, imported with its two folders swapped, gives a
    model that misroutes ads. Sellers post those photos again; moderators put them in the
    right category, which relabels them. Retraining gives a model that routes the same kind
    of ads right; promoting it changes the live predictions; rolling back restores them."""
    per_class = 36
    import_drawn(
        tmp_path,
        {"laptop": drawn("phone", range(per_class)), "phone": drawn("laptop", range(per_class))},
        stored=True,
    )
    bad = train_candidate(admin_user)
    retraining.promote(bad, admin_user)
    # Training went through the backbone once per training photo and kept the features,
    # under the version's backbone; the evaluation photos were never needed.
    assert bad.backbone == backbone_id(TINY_SIZE)
    kept = kept_features(bad.backbone)
    assert set(kept) == training_subset_ids() and len(kept) == bad.trained_on
    assert ImageFeatures.objects.count() == len(kept)
    assert sum(backbone_runs) == len(kept)

    # It misroutes: phones under Phones go to review as "laptops", and laptops as "phones".
    waiting = [classify(seller, kind, kind, 500) for kind in CLASSES]
    assert all(misrouted(ad, kind) for ad, kind in zip(waiting, CLASSES, strict=True))

    # The photos come back in ads, in the right category; moderators accept them.
    moderator = make_moderator()
    for kind in CLASSES:
        for first in range(0, per_class, 10):
            photos = min(10, per_class - first)
            ad = make_ad(seller, category=kind, kind=kind, seed=first, photos=photos)
            pipeline.classify_ad(ad.pk)
            assert misrouted(ad, kind)
            moderation.decide(ad.pk, moderator, "accept")
    # The same stored photos, relabelled: every label now says what the photo shows.
    assert TrainingImage.objects.count() == 2 * per_class
    for image in TrainingImage.objects.select_related("category"):
        assert image.category.slug == image.original_name.split("-")[0], image
        assert image.source == "moderator"

    backbone_runs.clear()
    good = train_candidate(admin_user)
    # Relabelled, they are the same photos: the second training reused their features.
    assert backbone_runs == []
    assert (good.backbone, good.trained_on) == (bad.backbone, bad.trained_on)
    assert kept_features(good.backbone) == kept  # same rows, computed when they were
    assert ImageFeatures.objects.count() == len(kept)
    bad.refresh_from_db()
    assert good.evaluation["fingerprint"] == bad.evaluation["fingerprint"]
    assert good.evaluation["accuracy"] > 0.9 > 0.1 > bad.evaluation["accuracy"]

    with django_capture_on_commit_callbacks():
        event = retraining.promote(good, admin_user)
    assert event.rescored_ads == len(waiting)  # the misrouted ads nobody decided yet
    for ad_id in Ad.objects.filter(status=Ad.Status.PENDING).values_list("pk", flat=True):
        pipeline.classify_ad(ad_id)  # the inference workers, with the new active version
    # The ads that waited are routed again by the new version: right, and those it is sure
    # of leave the queue by themselves.
    assert all(routed_right(ad, kind) for ad, kind in zip(waiting, CLASSES, strict=True))
    assert {latest_prediction(ad).model_version for ad in waiting} == {good}
    # New ads of the same kind: the live predictions changed.
    new = [classify(seller, kind, kind, seed) for kind in CLASSES for seed in (600, 601)]
    assert all(routed_right(ad, ad.category.slug) for ad in new)
    assert sum(ad.status == Ad.Status.PUBLISHED for ad in waiting + new) >= 3

    # Roll back: the old behaviour returns.
    bad.refresh_from_db()
    with django_capture_on_commit_callbacks():
        retraining.roll_back(bad, admin_user)
    again = classify(seller, "phone", "phone", 700)
    assert misrouted(again, "phone") and latest_prediction(again).model_version == bad
