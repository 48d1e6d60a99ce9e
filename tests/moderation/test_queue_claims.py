"""Who holds what, for an open queue page (``moderation.admin.queue_claims``): the poll that
greys others' ads, the claim of the next batch, and what the page is told on loading."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from moderation import services
from moderation.models import ReviewClaim
from tests.support.review_queue import QUEUE, in_review, make_moderator, queue_ids

pytestmark = pytest.mark.django_db

CLAIMS = "admin:moderation_reviewitem_claims"


@pytest.fixture
def mona(db):
    return make_moderator("mona")


@pytest.fixture
def mona_client(client, mona):
    client.force_login(mona)
    return client


@pytest.fixture
def otto_client(db):
    other = Client()
    other.force_login(make_moderator("otto"))
    return other


def ask(client, ads, method="get"):
    ids = ",".join(str(ad) for ad in ads)
    return getattr(client, method)(reverse(CLAIMS), {"ads": ids})


def test_the_poll_names_who_holds_which_ads_and_which_left_the_queue(
    mona_client, mona, otto_client, seller, media, settings
):
    settings.MODERATION_CLAIM_TOP = 2
    ads = [in_review(seller).pk for _ in range(5)]
    queue_ids(mona_client)  # holds ads 0 and 1
    queue_ids(otto_client)  # 2 and 3
    services.decide(ads[1], mona, "accept")

    answer = ask(mona_client, ads).json()

    assert answer == {
        "mine": [ads[0]],
        "held": {str(ads[2]): "otto", str(ads[3]): "otto"},
        "gone": [ads[1]],
    }
    assert ask(otto_client, ads).json()["held"] == {str(ads[0]): "mona"}
    # An expired claim is nobody's.
    ReviewClaim.objects.filter(moderator__username="otto").update(
        expires_at=timezone.now() - timedelta(seconds=1)
    )
    assert ask(mona_client, ads).json()["held"] == {}
    assert ReviewClaim.objects.filter(moderator__username="otto").count() == 2  # GET holds nothing


def test_the_poll_costs_as_many_queries_for_50_ads_as_for_2(mona_client, seller, media):
    ads = [in_review(seller).pk for _ in range(50)]
    queue_ids(mona_client)

    def queries(asked) -> int:
        with CaptureQueriesContext(connection) as captured:
            assert ask(mona_client, asked).status_code == 200
        return len(captured)

    assert queries(ads) == queries(ads[:2])


def test_claiming_holds_the_next_free_ads_and_renews_ones_own(
    mona_client, otto_client, seller, media, settings
):
    settings.MODERATION_CLAIM_TOP = 2
    ads = [in_review(seller).pk for _ in range(8)]
    queue_ids(mona_client)  # 0, 1
    queue_ids(otto_client)  # 2, 3
    old = timezone.now() + timedelta(seconds=5)
    ReviewClaim.objects.filter(moderator__username="mona").update(expires_at=old)

    answer = ask(mona_client, ads, "post").json()

    # Hers renewed, the next two nobody held taken, Otto's left to him; no more than two new.
    assert answer["mine"] == [ads[0], ads[1], ads[4], ads[5]]
    assert answer["held"] == {str(ads[2]): "otto", str(ads[3]): "otto"}
    hers = ReviewClaim.objects.filter(moderator__username="mona")
    assert all(claim.expires_at > old for claim in hers)
    assert not ReviewClaim.objects.filter(ad_id__in=ads[6:]).exists()


def test_an_ad_that_left_the_queue_is_never_claimed(mona_client, mona, seller, media):
    ads = [in_review(seller).pk for _ in range(2)]
    services.decide(ads[0], mona, "accept")

    answer = ask(mona_client, ads, "post").json()

    assert answer == {"mine": [ads[1]], "held": {}, "gone": [ads[0]]}
    assert list(ReviewClaim.objects.values_list("ad_id", flat=True)) == [ads[1]]


@pytest.mark.parametrize(
    "ads, said",
    [
        ("1,two", "a comma-separated list of ad ids"),
        ("1;2", "a comma-separated list of ad ids"),
        (",".join(str(n) for n in range(1, 202)), "at most 200 ads at once, not 201"),
        ("9" * 13, "a comma-separated list of ad ids"),
    ],
)
def test_a_bad_list_of_ads_is_a_400_that_says_why(mona_client, ads, said):
    for method in ("get", "post"):
        response = getattr(mona_client, method)(reverse(CLAIMS), {"ads": ads})
        assert response.status_code == 400
        assert said in response.json()["message"]
    assert not ReviewClaim.objects.exists()


def test_only_moderators_see_or_take_claims(client, seller, staff, media):
    ad = in_review(seller)
    client.force_login(seller)
    assert ask(client, [ad.pk]).status_code == 302  # to the admin's login
    client.force_login(staff)
    assert ask(client, [ad.pk]).status_code == 403
    assert ask(client, [ad.pk], "post").status_code == 403
    assert not ReviewClaim.objects.exists()


def test_the_page_tells_its_script_the_undo_window_and_the_ads_it_holds(
    mona_client, seller, media, settings
):
    settings.MODERATION_UNDO_SECONDS = 45
    settings.MODERATION_CLAIM_TOP = 2
    settings.MODERATION_CLAIMS_POLL_SECONDS = 3
    ads = [in_review(seller).pk for _ in range(3)]

    page = mona_client.get(reverse(QUEUE))

    state = json.loads(page.content.split(b'id="review-state" type="application/json">')[1]
                       .split(b"</script>")[0])  # fmt: skip
    assert state == {
        "decides": True,
        "mine": ads[:2],
        "undo_seconds": 45,
        "poll_seconds": 3,
        "claim_top": 2,
        "claims_url": reverse(CLAIMS),
    }
    assert "undo the last decision (for 45 s)" in page.text
