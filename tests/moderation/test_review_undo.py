"""Decisions in place (the queue's script, answered in JSON) and their undo."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.core.exceptions import PermissionDenied
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from ads.models import Ad, Category
from classifier.models import TrainingImage
from moderation import services
from moderation.models import ModerationDecision
from tests.support.review_queue import (
    JSON,
    QUEUE,
    REASON,
    REJECT,
    decide_in_place,
    in_review,
    labels,
    make_moderator,
    undo_url,
)

pytestmark = pytest.mark.django_db


# --- Decisions in place (the queue's script) and undo ----------------------------------


def test_a_decision_in_place_answers_with_what_was_done_and_its_undo_puts_everything_back(
    moderator_client, seller, media, django_capture_on_commit_callbacks
):
    from classifier.services import label_photos

    ad = in_review(seller, photos=2, suggested="laptop", reason=REASON.CATEGORY_MISMATCH)
    known, new = ad.images.all()
    label_photos([known], Category.objects.get(slug="phone"))  # labelled before, elsewhere
    earlier = TrainingImage.objects.values().get(sha256=known.sha256)
    queued_at = Ad.objects.get(pk=ad.pk).decided_at

    response = decide_in_place(moderator_client, ad, "recategorize")

    assert response.status_code == 200
    decision = ModerationDecision.objects.get(ad=ad)
    assert response.json() == {
        "message": f"“{ad}” recategorized: published in Laptops (the seller chose Phones). "
        "2 photos labelled Laptops for training.",
        "undo": undo_url(decision.pk),
    }
    assert Ad.objects.get(pk=ad.pk).status == Ad.Status.PUBLISHED
    assert labels(ad) == [("laptop", False, "moderator")] * 2
    stored = TrainingImage.objects.get(sha256=new.sha256).file
    assert stored.storage.exists(stored.name)

    with django_capture_on_commit_callbacks(execute=True):  # the file goes after the commit
        undone = moderator_client.post(decision_url := undo_url(decision.pk), **JSON)

    assert undone.status_code == 200 and "is back in the queue" in undone.json()["message"]
    back = Ad.objects.get(pk=ad.pk)
    assert (back.status, back.category.slug, back.review_reason) == (
        Ad.Status.NEEDS_REVIEW,
        "phone",
        REASON.CATEGORY_MISMATCH,
    )
    assert back.suggested_category.slug == "laptop" and back.decided_at == queued_at
    # The photo labelled before has its earlier label back; the one it stored is gone.
    assert TrainingImage.objects.values().get(sha256=known.sha256) == earlier
    assert not TrainingImage.objects.filter(sha256=new.sha256).exists()
    assert not stored.storage.exists(stored.name)
    decision.refresh_from_db()
    assert decision.undone_at is not None  # kept in the history, marked undone
    assert ad.pk in [
        row.pk for row in moderator_client.get(reverse(QUEUE)).context["cl"].result_list
    ]

    again = moderator_client.post(decision_url, **JSON)
    assert again.status_code == 409 and "already undone" in again.json()["message"]
    # And it can be decided again, as any ad in review.
    assert decide_in_place(moderator_client, ad, "accept").status_code == 200


def test_undoing_a_rejection_clears_the_reason_and_the_negative_examples(
    moderator_client, seller, media
):
    ad = in_review(seller, photos=1)
    decide_in_place(moderator_client, ad, "reject", reason=REJECT.NOT_PRODUCT)
    assert labels(ad) == [(None, True, "moderator")]
    decision = ModerationDecision.objects.get(ad=ad)

    assert moderator_client.post(undo_url(decision.pk)).status_code == 302  # no script: back
    assert unchanged_but_for_history(ad)


def unchanged_but_for_history(ad) -> bool:
    fresh = Ad.objects.get(pk=ad.pk)
    return (
        fresh.status == Ad.Status.NEEDS_REVIEW
        and fresh.category_id == ad.category_id
        and (fresh.rejection_reason, fresh.rejection_note) == ("", "")
        and not labels(ad)
    )


def test_undo_is_only_for_the_deciding_moderator_in_time_and_while_nothing_changed(
    moderator_client, seller, media, settings
):
    other = Client()
    other.force_login(make_moderator("otto"))
    ads = [in_review(seller) for _ in range(4)]
    decisions = []
    for ad in ads:
        decide_in_place(moderator_client, ad, "accept")
        decisions.append(ModerationDecision.objects.get(ad=ad))

    refused = other.post(undo_url(decisions[0].pk), **JSON)
    assert refused.status_code == 409 and "no such decision of yours" in refused.json()["message"]

    ModerationDecision.objects.filter(pk=decisions[1].pk).update(
        created_at=timezone.now() - timedelta(seconds=settings.MODERATION_UNDO_SECONDS + 1)
    )
    late = moderator_client.post(undo_url(decisions[1].pk), **JSON)
    assert late.status_code == 409 and "Too late to undo" in late.json()["message"]

    ads[2].delete()  # by its seller, meanwhile
    gone = moderator_client.post(undo_url(decisions[2].pk), **JSON)
    assert gone.status_code == 409 and "no longer exists" in gone.json()["message"]

    Ad.objects.filter(pk=ads[3].pk).update(status=Ad.Status.REJECTED)  # an admin, meanwhile
    changed = moderator_client.post(undo_url(decisions[3].pk), **JSON)
    assert changed.status_code == 409 and "changed since the decision" in changed.json()["message"]

    for ad in ads[:2]:
        assert Ad.objects.get(pk=ad.pk).status == Ad.Status.PUBLISHED
    assert not ModerationDecision.objects.filter(undone_at__isnull=False).exists()


def test_a_decision_in_place_on_an_ad_decided_meanwhile_is_a_409_that_says_by_whom(
    moderator_client, seller, media
):
    ad = in_review(seller)
    other = Client()
    other.force_login(make_moderator("otto"))
    decide_in_place(other, ad, "accept")

    response = decide_in_place(moderator_client, ad, "reject", reason=REJECT.DUPLICATE)

    assert response.status_code == 409
    assert "was already decided by otto" in response.json()["message"]
    bad = decide_in_place(moderator_client, in_review(seller), "reject", reason="nonsense")
    assert bad.status_code == 400 and "Nothing done" in bad.json()["message"]


def test_only_moderators_may_undo_and_only_by_post(client, staff, seller, moderator, media):
    ad = in_review(seller)
    decision = services.decide(ad.pk, moderator, "accept")
    url = undo_url(decision.pk)

    client.force_login(seller)
    assert client.post(url).status_code == 302  # to the admin's sign-in page
    client.force_login(staff)
    assert client.post(url).status_code == 403
    client.force_login(moderator)
    assert client.get(url).status_code == 405
    assert Ad.objects.get(pk=ad.pk).status == Ad.Status.PUBLISHED
    with pytest.raises(PermissionDenied):
        services.undo(decision.pk, staff)
