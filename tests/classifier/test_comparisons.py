"""Comparisons that say how sure they are, and a worse model cannot go live: the verdict in
words on the version's page, the banner's real reasons, the promotion guard (the button,
the command, auto-promotion) and its override with a reason kept in the events."""

from __future__ import annotations

from datetime import timedelta
from io import StringIO

import pytest
from django.core.management import CommandError, call_command
from django.urls import reverse

from classifier import services
from classifier.admin.registry import duration
from classifier.models import ModelVersion, ModelVersionEvent
from classifier.services import retraining
from classifier.services.comparing import compare
from tests.support.images import CLASSES, FOUR_CLASSES, write_dataset
from tests.support.tiny import register_version

pytestmark = pytest.mark.django_db


def import_evaluation(tmp_path, settings, per_class=15, start=300, classes=CLASSES):
    settings.CLASSIFIER_EVALUATION_PERCENT = 100
    folder = write_dataset(
        tmp_path / f"eval-{start}", per_class=per_class, start=start, classes=classes
    )
    services.import_images(folder)


def page_of(admin_client, version) -> str:
    url = reverse("admin:classifier_modelversion_change", args=[version.pk])
    return admin_client.get(url).text


def messages_of(response) -> str:
    return " | ".join(str(m) for m in response.context["messages"])


@pytest.fixture
def right_and_wrong(tiny_package, tmp_path, settings, media):
    """The active version right on the 30 evaluation photos, a candidate wrong on all (the
    same network, its outputs named the other way round), both measured."""
    import_evaluation(tmp_path, settings)
    active = register_version(tiny_package)
    active.activate()
    candidate = register_version(tiny_package, classes=CLASSES[::-1])
    services.forget_loaded_models()
    retraining.after_training(candidate)
    candidate.refresh_from_db()
    active.refresh_from_db()
    return active, candidate


def test_the_same_model_twice_on_30_photos_is_too_few_photos_to_tell(
    tiny_package, tmp_path, settings, media, admin_client
):
    import_evaluation(tmp_path, settings)
    active = register_version(tiny_package)
    active.activate()
    candidate = register_version(tiny_package)
    retraining.after_training(candidate)

    comparison = compare(ModelVersion.objects.get(pk=active.pk), candidate)
    assert [str(row.verdict) for row in comparison.rows] == [
        "too few photos (about 90 more needed)",
        "too few photos (about 105 more needed)",
        "too few photos (about 105 more needed)",
    ]
    page = page_of(admin_client, candidate)
    assert (
        f"V{candidate.number} against v{active.number}, Laptops and Phones: too few photos "
        "(about 90 more needed) (30 photos; 0 right for"
    ) in page
    assert "Both measured on the same 30 held-out photos." in page
    assert "Each share with its 95 % interval (Wilson)." in page
    assert "100.0% (88.6%–100.0%)" in page  # 30 of 30 right, and its interval


def test_a_candidate_worse_on_a_category_is_refused_with_which_and_by_how_much(
    right_and_wrong, admin_client
):
    active, candidate = right_and_wrong
    refused = retraining.promotion_guard(candidate)
    assert refused.startswith(f"v{candidate.number} is worse than v{active.number} on Laptops: ")
    assert (
        f"Phones: worse: 15 more of the 15 photos right for v{active.number} "
        "(-100.0% accuracy, p = 6.1e-05)"
    ) in refused

    with pytest.raises(retraining.PromotionRefused, match="To promote it anyway, write why"):
        retraining.promote(candidate, None)
    url = reverse("admin:classifier_modelversion_promote", args=[candidate.pk])
    response = admin_client.post(url, follow=True)
    assert f"Not promoted: v{candidate.number} is worse than" in messages_of(response)
    assert ModelVersion.objects.active() == active
    # The page says why, and offers the override with a reason.
    page = page_of(admin_client, candidate)
    assert "<strong>Promotion refused:</strong>" in page and 'name="override_reason"' in page
    assert "worse on Laptops, Phones" in page


def test_an_empty_reason_does_not_override_the_guard(right_and_wrong, admin_client):
    _, candidate = right_and_wrong
    url = reverse("admin:classifier_modelversion_promote", args=[candidate.pk])
    response = admin_client.post(url, {"override_reason": "   "}, follow=True)
    assert "the reason to promote it anyway is empty" in messages_of(response)
    assert not ModelVersionEvent.objects.exists()


def test_an_admin_overrides_the_guard_with_a_reason_the_events_keep(right_and_wrong, admin_client):
    active, candidate = right_and_wrong
    url = reverse("admin:classifier_modelversion_promote", args=[candidate.pk])
    why = "The evaluation labels of both categories were swapped; relabelling them tomorrow."
    response = admin_client.post(url, {"override_reason": why}, follow=True)

    assert f"Model v{candidate.number} is now active" in messages_of(response)
    event = ModelVersionEvent.objects.get()
    assert (event.action, event.user.username, event.override_reason) == ("promote", "admin", why)
    assert event.refused.startswith(f"v{candidate.number} is worse than v{active.number}")
    page = page_of(admin_client, candidate)
    assert "overridden because:</strong> The evaluation labels" in page
    events = admin_client.get(reverse("admin:classifier_modelversionevent_changelist")).text
    assert "relabelling them tomorrow" in events


def test_the_promote_command_obeys_the_guard(right_and_wrong):
    active, candidate = right_and_wrong
    with pytest.raises(CommandError, match=f"is worse than v{active.number} on Laptops"):
        call_command("promote", candidate.number, stdout=StringIO())
    with pytest.raises(CommandError, match="the reason to promote it anyway is empty"):
        call_command("promote", candidate.number, reason=" ", stdout=StringIO())
    out = StringIO()
    call_command("promote", candidate.number, reason="a drill", stdout=out)
    assert f"Model v{candidate.number} is now active (was v{active.number})." in out.getvalue()
    assert ModelVersionEvent.objects.get().override_reason == "a drill"


def test_auto_promotion_never_promotes_a_candidate_worse_on_a_category(
    tiny_package, tiny_training_photos, tmp_path, settings, media
):
    """With any margin at all (0 here), a candidate the paired test finds worse on a
    category is kept out, and its verdict says which category and by how much."""
    settings.CLASSIFIER_AUTO_PROMOTE_MARGIN = 0.0
    import_evaluation(tmp_path, settings)
    active = register_version(tiny_package, training_photos=tiny_training_photos)
    active.activate()
    candidate = register_version(
        tiny_package, classes=CLASSES[::-1], training_photos=tiny_training_photos
    )
    retraining.after_training(candidate)

    assert ModelVersion.objects.active() == active
    verdict = ModelVersion.objects.get(pk=candidate.pk).evaluation["auto_promotion"]
    assert verdict.startswith(f"not promoted: v{candidate.number} is worse than v{active.number}")


def test_the_banner_names_the_category_one_version_does_not_know(
    tiny_version, four_categories, four_class_package, tmp_path, settings, media, admin_client
):
    import_evaluation(tmp_path, settings, per_class=6, classes=FOUR_CLASSES)
    candidate = register_version(four_class_package, classes=FOUR_CLASSES)
    services.forget_loaded_models()
    retraining.after_training(candidate)
    candidate.refresh_from_db()

    comparison = compare(ModelVersion.objects.get(pk=tiny_version.pk), candidate)
    assert comparison.reasons == [
        f"v{tiny_version.number} does not know Cameras and Watches: compared on Laptops and "
        f"Phones; Cameras and Watches measured for v{candidate.number} alone on 12 photos"
    ]
    assert [row.paired.n for row in comparison.rows] == [12, 6, 6]
    page = page_of(admin_client, candidate)
    assert f"V{tiny_version.number} does not know Cameras and Watches" in page
    assert "Measured on different photos" not in page


def test_the_banner_says_which_photos_one_version_was_not_measured_on(
    tiny_package, tmp_path, settings, media, admin_client
):
    import_evaluation(tmp_path, settings, per_class=10)
    active = register_version(tiny_package)
    active.activate()
    services.measure_on_evaluation_set(active)
    import_evaluation(tmp_path, settings, per_class=3, start=500)  # the set grows
    candidate = register_version(tiny_package)
    services.measure_on_evaluation_set(candidate)

    comparison = compare(ModelVersion.objects.get(pk=active.pk), candidate)
    assert comparison.reasons == [
        f"6 photos were measured for v{candidate.number} only (the evaluation set changed "
        f"since v{active.number} was measured): evaluate v{active.number} again to compare "
        "on them too"
    ]
    assert comparison.rows[0].paired.n == 20
    response = admin_client.post(
        reverse("admin:classifier_modelversion_evaluate", args=[candidate.pk]), follow=True
    )
    assert response.status_code == 200
    assert compare(ModelVersion.objects.get(pk=active.pk), candidate).reasons == []


def test_durations_under_a_minute_are_in_seconds(tiny_version, admin_client):
    start = tiny_version.created_at
    assert duration(start, start + timedelta(seconds=51.2)) == "51 s"
    assert duration(start, start + timedelta(minutes=3, seconds=5)) == "3\xa0minutes"
    ModelVersion.objects.filter(pk=tiny_version.pk).update(
        started_at=start, finished_at=start + timedelta(seconds=51)
    )
    assert "Trained in 51 s." in page_of(admin_client, tiny_version)
