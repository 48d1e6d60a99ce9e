"""Claims are enforced: an ad another moderator holds (an unexpired claim) is decided only
by taking it over explicitly, which the decision records; an expired claim holds nothing.
Every way to decide is checked: the service, a row's or the detail page's button (JSON and
POST-and-redirect), and the bulk actions."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from ads.models import Ad
from moderation import services
from moderation.models import ModerationDecision, ReviewClaim
from tests.support.factories import make_moderator
from tests.support.review_queue import (
    JSON,
    QUEUE,
    action_url,
    bulk,
    decide,
    in_review,
    said,
    unchanged,
)

pytestmark = pytest.mark.django_db


@pytest.fixture
def otto(db):
    return make_moderator("otto")


@pytest.fixture
def held(seller, media, otto) -> Ad:
    """An ad in review at the top of otto's queue: his claim holds it for a few minutes."""
    ad = in_review(seller)
    assert services.claim(otto, [ad.pk]) == {ad.pk}
    return ad


def test_the_service_refuses_an_ad_another_moderator_holds(held, moderator):
    with pytest.raises(services.HeldByAnother, match="is held by otto until") as refused:
        services.decide(held.pk, moderator, "accept")

    assert refused.value.holder == "otto"
    assert unchanged(held) and not ModerationDecision.objects.exists()
    assert ReviewClaim.objects.get(ad=held).moderator.username == "otto"  # still his


def test_taking_over_decides_it_and_records_whose_claim_it_overrode(held, moderator, otto):
    decision = services.decide(held.pk, moderator, "accept", takeover=True)

    assert decision.moderator == moderator and decision.took_over_from == otto
    assert Ad.objects.get(pk=held.pk).status == Ad.Status.PUBLISHED
    assert not ReviewClaim.objects.filter(ad=held).exists()  # it left the queue


def test_the_holder_decides_their_own_ad_without_a_takeover(held, otto):
    decision = services.decide(held.pk, otto, "reject", reason=Ad.RejectionReason.DUPLICATE)
    assert decision.took_over_from is None


def test_an_expired_claim_frees_the_ad(held, moderator):
    ReviewClaim.objects.filter(ad=held).update(expires_at=timezone.now() - timedelta(seconds=1))

    decision = services.decide(held.pk, moderator, "accept")

    assert decision.took_over_from is None
    assert Ad.objects.get(pk=held.pk).status == Ad.Status.PUBLISHED


def test_an_unclaimed_ad_is_decided_as_before(seller, media, moderator):
    ad = in_review(seller)
    assert services.decide(ad.pk, moderator, "accept").took_over_from is None


def test_the_queues_script_gets_409_naming_the_holder(held, moderator_client):
    answer = moderator_client.post(action_url(held, "accept"), **JSON)

    assert answer.status_code == 409
    body = answer.json()
    assert body["held_by"] == "otto"
    assert "“" in body["message"] and "is held by otto until" in body["message"]
    assert unchanged(held)

    taken = moderator_client.post(action_url(held, "accept"), {"takeover": "1"}, **JSON)
    assert taken.status_code == 200 and "undo" in taken.json()
    assert ModerationDecision.objects.get(ad=held).took_over_from.username == "otto"


def test_the_button_without_script_says_who_holds_it(held, moderator_client):
    response = decide(moderator_client, held, "reject", reason="duplicate")

    assert response.redirect_chain[-1] == (reverse(QUEUE), 302)
    assert "is held by otto until" in said(response)
    assert unchanged(held)


def test_the_detail_page_offers_the_takeover_and_records_it(held, moderator_client):
    page = moderator_client.get(reverse("admin:moderation_reviewitem_change", args=[held.pk]))
    assert "Take over from otto" in page.text
    assert f'name="takeover" value="1" form="decide-{held.pk}"' in page.text

    response = decide(moderator_client, held, "accept", takeover="1")

    assert "is held by" not in said(response)
    assert ModerationDecision.objects.get(ad=held).took_over_from.username == "otto"


def test_the_detail_page_of_an_unheld_ad_offers_no_takeover(seller, media, moderator_client):
    ad = in_review(seller)
    page = moderator_client.get(reverse("admin:moderation_reviewitem_change", args=[ad.pk]))
    assert page.status_code == 200 and 'name="takeover"' not in page.text


def test_a_bulk_action_decides_the_free_ads_and_names_the_held_one(
    held, seller, media, moderator_client
):
    free = in_review(seller)

    response = bulk(moderator_client, "accept_selected", [held, free])

    assert "is held by otto until" in said(response)
    assert Ad.objects.get(pk=free.pk).status == Ad.Status.PUBLISHED
    assert unchanged(held)


def test_the_decision_log_shows_the_takeover(held, moderator, admin_client):
    decision = services.decide(held.pk, moderator, "accept", takeover=True)
    page = admin_client.get(
        reverse("admin:moderation_moderationdecision_change", args=[decision.pk])
    )
    assert page.status_code == 200
    assert "Took over from" in page.text and "otto" in page.text


def test_a_held_ad_stays_out_of_others_queues_and_anonymous_takes_nothing(held, moderator_client):
    ids = [ad.pk for ad in moderator_client.get(reverse(QUEUE)).context["cl"].result_list]
    assert held.pk not in ids
    assert Client().post(action_url(held, "accept"), {"takeover": "1"}).status_code == 302
    assert unchanged(held)  # anonymous: to the sign-in page, nothing decided


def test_the_queue_counts_one_way_when_others_hold_ads(held, seller, moderator_client):
    # Django's search bar said "1 result (2 total)" beside "1 ad in review": the ad otto holds
    # is simply not in mona's queue. A search still says what it leaves out of the whole.
    free = in_review(seller)
    page = moderator_client.get(reverse(QUEUE))
    assert [ad.pk for ad in page.context["cl"].result_list] == [free.pk]
    html = page.content.decode()
    assert "1 ad in review" in html
    assert "result (" not in html and "total</a>" not in html

    searched = moderator_client.get(reverse(QUEUE), {"q": free.title}).content.decode()
    assert '1 result (<a href="?">2 total</a>)' in searched
