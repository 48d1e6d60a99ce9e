"""Who may decide in the review queue, and what happens to an ad that left the queue or that
two moderators decide at once."""

from __future__ import annotations

import threading

import pytest
from django.core.exceptions import PermissionDenied
from django.db import connection
from django.test import Client
from django.urls import reverse

from ads import services as ad_services
from ads.models import Ad, Category
from classifier.models import TrainingImage
from moderation import services
from moderation.models import ModerationDecision
from tests.support.review_queue import (
    ACTIONS,
    QUEUE,
    action_url,
    decide,
    in_review,
    landed_on_queue,
    make_moderator,
    said,
    unchanged,
)

pytestmark = pytest.mark.django_db


# --- Who may decide ---------------------------------------------------------------


def refused_requests(ad):
    """One POST per way of deciding: each row action, each bulk action."""
    for action in ACTIONS:
        yield action_url(ad, action), {"reason": "not_product"}
    for action in ACTIONS:
        data = {"action": f"{action}_selected", "_selected_action": [ad.pk]}
        yield reverse(QUEUE), data | {"reason": "not_product"}


@pytest.mark.parametrize("who", ["seller", "anonymous"])
def test_sellers_and_strangers_are_sent_to_the_admin_login(client, seller, media, who):
    ad = in_review(seller, suggested="laptop")
    if who == "seller":
        client.force_login(seller)

    for url, data in refused_requests(ad):
        response = client.post(url, data)
        assert response.status_code == 302 and "/admin/login/" in response["Location"], url

    assert unchanged(ad)


def test_staff_outside_the_moderators_group_are_refused(client, staff, seller, media):
    ad = in_review(seller, suggested="laptop")
    client.force_login(staff)

    for url, data in refused_requests(ad):
        assert client.post(url, data).status_code == 403, url
    assert client.get(reverse(QUEUE)).status_code == 403
    assert "Review queue" not in client.get(reverse("admin:index")).text
    assert unchanged(ad)


def test_deciding_needs_the_decide_permission_even_through_the_service(staff, seller, media):
    ad = in_review(seller)
    with pytest.raises(PermissionDenied):
        services.decide(ad.pk, staff, "accept")
    assert unchanged(ad)


@pytest.mark.parametrize("action", ACTIONS)
def test_get_on_an_action_url_changes_nothing(moderator_client, seller, media, action):
    ad = in_review(seller, suggested="laptop")

    response = moderator_client.get(action_url(ad, action), {"reason": "not_product"})

    assert response.status_code == 405
    assert unchanged(ad)


def test_a_post_without_csrf_token_is_refused(moderator, seller, media):
    ad = in_review(seller)
    client = Client(enforce_csrf_checks=True)
    client.force_login(moderator)

    assert client.post(action_url(ad, "accept")).status_code == 403
    bulk = {"action": "accept_selected", "_selected_action": [ad.pk]}
    assert client.post(reverse(QUEUE), bulk).status_code == 403
    assert unchanged(ad)

    client.get(reverse(QUEUE))  # the page sets the token cookie the forms carry
    token = client.cookies["csrftoken"].value
    response = client.post(action_url(ad, "accept"), {"csrfmiddlewaretoken": token})
    assert response.status_code == 302
    assert Ad.objects.get(pk=ad.pk).status == Ad.Status.PUBLISHED


# --- An ad that left the queue; two moderators at once ---------------------------


def test_a_second_decision_on_a_decided_ad_changes_nothing(moderator_client, seller, media):
    ad = in_review(seller)
    decide(moderator_client, ad, "accept")

    response = decide(moderator_client, ad, "reject", reason="prohibited")

    assert landed_on_queue(response)
    assert "“iPhone 12” was already decided by mona at" in said(response)
    assert "(published); nothing done." in said(response)
    assert Ad.objects.get(pk=ad.pk).status == Ad.Status.PUBLISHED
    assert ModerationDecision.objects.filter(ad=ad).count() == 1


def test_deciding_an_ad_its_seller_deleted_says_so(
    moderator_client, seller, media, django_capture_on_commit_callbacks
):
    ad = in_review(seller)
    pk, url = ad.pk, action_url(ad, "accept")  # the page the moderator still has open
    with django_capture_on_commit_callbacks(execute=True):
        ad_services.delete_ad(ad)

    response = moderator_client.post(url, follow=True)

    assert landed_on_queue(response)
    assert f"Ad {pk} no longer exists (its seller deleted it); nothing done." in said(response)
    assert not ModerationDecision.objects.exists() and not TrainingImage.objects.exists()


def test_deciding_an_ad_its_seller_edited_back_to_pending_says_so(moderator_client, seller, media):
    ad = in_review(seller)
    ad_services.update_ad(ad, category=Category.objects.get(slug="laptop"))

    response = decide(moderator_client, ad, "accept")

    assert "left the queue: it is being classified again (its seller changed it" in said(response)
    assert Ad.objects.get(pk=ad.pk).status == Ad.Status.PENDING
    assert not ModerationDecision.objects.exists()


@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_two_moderators_deciding_one_ad_at_once_make_one_decision(seller, media):
    mona, max_ = make_moderator("mona"), make_moderator("max")
    ad = in_review(seller, photos=2)
    start = threading.Barrier(2)
    outcomes = []

    def run(moderator, action, **fields):
        try:
            start.wait()
            outcomes.append(services.decide(ad.pk, moderator, action, **fields))
        except services.NotInReview as error:
            outcomes.append(error)
        finally:
            connection.close()  # this thread's own connection

    threads = [
        threading.Thread(target=run, args=(mona, "accept")),
        threading.Thread(target=run, args=(max_, "reject"), kwargs={"reason": "not_product"}),
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)

    decisions = [o for o in outcomes if isinstance(o, ModerationDecision)]
    refusals = [o for o in outcomes if isinstance(o, services.NotInReview)]
    assert (len(decisions), len(refusals)) == (1, 1), outcomes
    assert "was already decided by" in str(refusals[0])
    decision = ModerationDecision.objects.get(ad=ad)
    ad.refresh_from_db()
    expected = "published" if decision.action == "accept" else "rejected"
    assert ad.status == expected
    assert set(TrainingImage.objects.values_list("decision", flat=True)) == {decision.pk}
