"""Promotion and rollback (the review queue re-scored), auto-promotion, and fair comparisons:
what each version trained on."""

from __future__ import annotations

import pytest
from django.urls import reverse

from ads.models import Ad
from classifier import services
from classifier.models import (
    LabelCheck,
    ModelVersion,
    ModelVersionEvent,
    TrainingImage,
)
from classifier.services import fairness, retraining
from moderation import pipeline
from moderation import services as moderation
from tests.support.factories import make_ad, make_moderator
from tests.support.images import CLASSES
from tests.support.retraining import (
    REASON,
    REGISTRY,
    Status,
    classify,
    drawn,
    import_drawn,
    latest_prediction,
    messages_of,
    prediction_version,
    routed_right,
    write_folder,
)
from tests.support.tiny import register_version

pytestmark = pytest.mark.django_db


# --- Promotion, rollback, re-scoring -------------------------------------------------


def test_promote_and_roll_back_are_recorded_and_workers_follow_without_a_restart(
    admin_client, tiny_version, tiny_package, seller, media
):
    before = classify(seller, "phone", "phone", 910)
    assert prediction_version(before) == tiny_version.number
    candidate = register_version(tiny_package)

    response = admin_client.post(
        reverse("admin:classifier_modelversion_promote", args=[candidate.pk]), follow=True
    )

    assert f"Model v{candidate.number} is now active (was v{tiny_version.number})" in (
        messages_of(response)
    )
    # The same process, its model cache untouched: the next task loads the new version.
    after = classify(seller, "phone", "phone", 911)
    assert prediction_version(after) == candidate.number

    tiny_version.refresh_from_db()
    assert tiny_version.status == Status.RETIRED
    response = admin_client.post(
        reverse("admin:classifier_modelversion_rollback", args=[tiny_version.pk]), follow=True
    )
    assert f"Model v{tiny_version.number} is now active" in messages_of(response)
    assert prediction_version(classify(seller, "phone", "phone", 912)) == tiny_version.number

    events = list(ModelVersionEvent.objects.order_by("created_at", "id"))
    assert [(e.action, e.version, e.previous, e.user.username) for e in events] == [
        ("promote", candidate, tiny_version, "admin"),
        ("rollback", tiny_version, candidate, "admin"),
    ]
    page = admin_client.get(reverse("admin:classifier_modelversion_change", args=[candidate.pk]))
    assert "Promoted" in page.text and "Rolled back" in page.text


def test_the_history_pages_list_promotions_and_label_checks(admin_client, tiny_version):
    candidate = ModelVersion.objects.create(number=ModelVersion.next_number(), status="candidate")
    retraining.promote(candidate, None, note="by hand")
    LabelCheck.objects.create(status="failed", error="out of memory")
    events = admin_client.get(reverse("admin:classifier_modelversionevent_changelist"))
    checks = admin_client.get(reverse("admin:classifier_labelcheck_changelist"))
    assert events.status_code == checks.status_code == 200
    assert "by hand" in events.text and "out of memory" in checks.text


def test_only_candidates_are_promoted_and_retired_versions_rolled_back(tiny_version, admin_user):
    failed = ModelVersion.objects.create(number=ModelVersion.next_number(), status=Status.FAILED)
    with pytest.raises(services.ClassifierError, match="only a candidate version can be promoted"):
        retraining.promote(failed, admin_user)
    with pytest.raises(services.ClassifierError, match="only a retired version can be rolled"):
        retraining.roll_back(tiny_version, admin_user)
    assert not ModelVersionEvent.objects.exists()


def test_promotion_rescores_the_ads_in_review_that_depend_on_the_model(
    tiny_version, tiny_package, seller, other_seller, media, django_capture_on_commit_callbacks
):
    wrong = register_version(tiny_package, classes=CLASSES[::-1], status="candidate")
    retraining.promote(wrong, None)
    misrouted = classify(seller, "phone", "phone", 920)  # the wrong model: a "laptop"
    still_doubtful = make_ad(seller, kind="laptop", seed=921)  # a laptop under phones
    still_doubtful.send_to_review(REASON.LOW_CONFIDENCE)
    copied = make_ad(seller, kind="phone", seed=922)
    copied.send_to_review(REASON.DUPLICATE_PHOTO)
    published = make_ad(other_seller, kind="laptop", seed=923)
    published.publish()
    rejected = make_ad(other_seller, kind="laptop", seed=924)
    rejected.reject("prohibited")
    assert misrouted.status == Ad.Status.NEEDS_REVIEW  # as a "laptop", or unsure
    waiting_since = Ad.objects.get(pk=still_doubtful.pk).decided_at
    tiny_version.refresh_from_db()

    with django_capture_on_commit_callbacks() as sent:
        event = retraining.roll_back(tiny_version, None)

    assert event.rescored_ads == 2 and len(sent) == 1  # enqueued after commit
    statuses = dict(Ad.objects.values_list("pk", "status"))
    assert statuses[misrouted.pk] == statuses[still_doubtful.pk] == Ad.Status.PENDING
    assert statuses[copied.pk] == Ad.Status.NEEDS_REVIEW
    assert (statuses[published.pk], statuses[rejected.pk]) == ("published", "rejected")
    # Pending while re-scored: no moderator can decide it meanwhile.
    with pytest.raises(moderation.NotInReview, match="is being classified again"):
        moderation.decide(misrouted.pk, make_moderator(), "accept")

    for ad in (misrouted, still_doubtful):
        pipeline.classify_ad(ad.pk)  # what the workers do with the enqueued ads
    # Seen right now: published by itself if the model is sure (else back, low confidence).
    assert routed_right(misrouted, "phone")
    assert latest_prediction(misrouted).model_version == tiny_version
    doubtful = Ad.objects.get(pk=still_doubtful.pk)
    assert doubtful.status == Ad.Status.NEEDS_REVIEW  # a laptop under Phones, still
    assert latest_prediction(doubtful).category == "laptop"
    assert doubtful.decided_at == waiting_since  # its place in the queue


# --- Auto-promotion -------------------------------------------------------------------


@pytest.fixture
def evaluation_photos(tmp_path, media, settings):
    settings.CLASSIFIER_EVALUATION_PERCENT = 100
    import_drawn(tmp_path, {k: drawn(k, range(300, 315)) for k in CLASSES})


def evaluation_keys() -> list[str]:
    """``training_photos`` for a version trained on every photo of the evaluation set."""
    return fairness.photo_keys(
        TrainingImage.objects.filter(subset="evaluation").values_list("sha256", flat=True)
    )


def test_auto_promotion_is_off_by_default(tiny_package, evaluation_photos):
    active = register_version(tiny_package, classes=CLASSES[::-1])
    active.activate()
    candidate = register_version(tiny_package)

    retraining.after_training(candidate)

    assert ModelVersion.objects.active() == active
    active.refresh_from_db()
    assert candidate.evaluation["accuracy"] > 0.9 > 0.1 > active.evaluation["accuracy"]
    assert "auto_promotion" not in candidate.evaluation


def test_auto_promotion_promotes_a_clearly_better_candidate(
    tiny_package, tiny_training_photos, evaluation_photos, settings
):
    settings.CLASSIFIER_AUTO_PROMOTE_MARGIN = 0.05
    active = register_version(
        tiny_package, classes=CLASSES[::-1], training_photos=tiny_training_photos
    )
    active.activate()
    candidate = register_version(tiny_package, training_photos=tiny_training_photos)

    retraining.after_training(candidate)

    assert ModelVersion.objects.active() == candidate
    event = ModelVersionEvent.objects.get()
    assert (event.action, event.user, event.previous) == ("auto_promote", None, active)
    assert event.note.startswith("promoted automatically: accuracy ")


def test_auto_promotion_keeps_the_active_version_when_the_candidate_is_not_better_enough(
    tiny_package, tiny_training_photos, evaluation_photos, settings
):
    settings.CLASSIFIER_AUTO_PROMOTE_MARGIN = 0.01
    active = register_version(tiny_package, training_photos=tiny_training_photos)
    active.activate()
    candidate = register_version(tiny_package, training_photos=tiny_training_photos)

    retraining.after_training(candidate)

    assert ModelVersion.objects.active() == active
    candidate.refresh_from_db()
    assert candidate.evaluation["auto_promotion"].startswith("not promoted: accuracy")
    assert not ModelVersionEvent.objects.exists()


@pytest.mark.parametrize("active_trained_on", ["evaluation photos", "unknown photos"])
def test_auto_promotion_refuses_an_unfair_comparison(
    active_trained_on, tiny_package, tiny_training_photos, evaluation_photos, settings
):
    """The active version's figures on photos it trained on (or may have) flatter it: even
    a candidate far better on them is not promoted, and the verdict says why."""
    settings.CLASSIFIER_AUTO_PROMOTE_MARGIN = 0.05
    seen = evaluation_keys() if active_trained_on == "evaluation photos" else []
    active = register_version(tiny_package, classes=CLASSES[::-1], training_photos=seen)
    active.activate()
    candidate = register_version(tiny_package, training_photos=tiny_training_photos)

    retraining.after_training(candidate)

    assert ModelVersion.objects.active() == active
    assert not ModelVersionEvent.objects.exists()
    why = {
        "evaluation photos": f"v{active.number} trained on 30 of these 30 photos",
        "unknown photos": f"which photos v{active.number} trained on is unknown",
    }[active_trained_on]
    verdict = ModelVersion.objects.get(pk=candidate.pk).evaluation["auto_promotion"]
    assert verdict.startswith(f"not promoted, not a fair comparison: {why} — accuracy ")


# --- Fair comparisons: what each version trained on -----------------------------------


def version_page(admin_client, version: ModelVersion) -> str:
    return admin_client.get(reverse("admin:classifier_modelversion_change", args=[version.pk])).text


def test_the_registry_says_when_a_version_trained_on_the_evaluation_photos(
    admin_client, tiny_package, tiny_training_photos, evaluation_photos
):
    """The shipped v1's case: trained on the photos of a dataset later imported, it is
    measured on photos it has seen; the page says so instead of offering a verdict."""
    active = register_version(tiny_package, training_photos=[*evaluation_keys()[:20], "0" * 16])
    active.activate()
    candidate = register_version(tiny_package, training_photos=tiny_training_photos)
    retraining.after_training(candidate)

    page = version_page(admin_client, candidate)
    listing = admin_client.get(reverse(REGISTRY)).text

    assert f"v{active.number} (active): trained on 20 of the 30 evaluation photos." in page
    assert f"v{candidate.number} (this version): trained on 0 of the 30 evaluation photos." in page
    assert (
        f"<strong>Not a fair comparison: v{active.number} trained on 20 of these 30 photos."
        "</strong> The figures below are no verdict on which version is better."
    ) in page
    assert "Both measured on the same 30 held-out photos." in page  # figures still shown
    # Its own page, and the list, say it too.
    own = version_page(admin_client, active)
    assert f"Not a fair measure: v{active.number} trained on 20 of these 30 photos." in own
    assert listing.count("trained on 20 of the 30 evaluation photos") == 1


def test_a_version_that_did_not_record_its_training_photos_is_unknown_not_zero(
    admin_client, tiny_package, tiny_training_photos, evaluation_photos
):
    active = register_version(tiny_package)  # training_photos empty: unknown
    active.activate()
    candidate = register_version(tiny_package, training_photos=tiny_training_photos)
    retraining.after_training(candidate)

    page = version_page(admin_client, candidate)

    assert fairness.seen_in_training(active).count is None
    assert (
        f"v{active.number} (active): trained on an unknown number of the 30 evaluation photos."
        in page
    )
    assert f"Not a fair comparison: which photos v{active.number} trained on is unknown." in page
    assert f"v{active.number} (active): trained on 0" not in page
    assert f"v{candidate.number} (this version): trained on 0 of the 30 evaluation" in page


def test_training_photos_are_the_photos_an_import_of_the_folder_stores(tmp_path, media):
    """The shipped manifest's list is computed this way from the shared dataset: a
    re-encoded photo and one already in the stored form both match what an import stores,
    and a file the import refuses is left out."""
    layout = {"laptop": drawn("laptop", range(3)), "phone": drawn("phone", range(3))}
    folder = write_folder(tmp_path / "data", layout)
    write_folder(folder, {"phone": drawn("phone", range(3, 5))}, stored=True)
    (folder / "phone" / "broken.jpg").write_bytes(b"\xff\xd8 not a photo")

    services.import_images(folder)

    stored = TrainingImage.objects.values_list("sha256", flat=True)
    assert fairness.folder_photo_keys(folder) == fairness.photo_keys(stored)
    assert len(fairness.photo_keys(stored)) == 8
