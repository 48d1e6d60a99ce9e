"""A decision's answer says who holds the queue page's ads (``moderation.admin.queue``,
``queue_claims.claims_answer``): the page's script asks with the decision instead of in
requests of its own, so that the next key never waits behind them; and what one decision,
one poll and one claim cost in queries."""

from __future__ import annotations

import pytest
from django.test import Client
from django.urls import reverse

from ads.models import Ad
from moderation import services
from moderation.models import ModerationDecision, ReviewClaim
from tests.support.factories import make_moderator
from tests.support.review_queue import QUEUE, in_review, queue_ids

pytestmark = pytest.mark.django_db

CLAIMS = "admin:moderation_reviewitem_claims"
JSON = {"HTTP_ACCEPT": "application/json"}


@pytest.fixture
def otto_client(db):
    other = Client()
    other.force_login(make_moderator("otto"))
    return other


def decide(client, ad: int, action: str = "accept", **data):
    url = reverse(f"admin:moderation_reviewitem_{action}", args=[ad])
    return client.post(url, data, **JSON)


def ids(ads) -> str:
    return ",".join(str(ad) for ad in ads)


def test_a_decision_answers_who_holds_the_pages_other_ads(
    moderator_client, moderator, otto_client, seller, media, settings
):
    settings.MODERATION_CLAIM_TOP = 2
    ads = [in_review(seller).pk for _ in range(6)]
    queue_ids(moderator_client)  # holds 0 and 1
    queue_ids(otto_client)  # 2 and 3
    services.decide(ads[5], make_moderator("ada"), "accept")

    answer = decide(moderator_client, ads[0], ads=ids(ads[1:])).json()

    assert "accepted" in answer["message"]
    assert answer["claims"] == {
        "mine": [ads[1]],
        "held": {str(ads[2]): "otto", str(ads[3]): "otto"},
        "gone": [ads[5]],
    }
    assert not ReviewClaim.objects.filter(ad_id=ads[4]).exists()  # nothing held unasked


def test_a_decision_that_leaves_few_ads_held_holds_the_next_batch(
    moderator_client, otto_client, seller, media, settings
):
    settings.MODERATION_CLAIM_TOP = 2
    ads = [in_review(seller).pk for _ in range(8)]
    queue_ids(moderator_client)  # 0, 1
    queue_ids(otto_client)  # 2, 3

    answer = decide(moderator_client, ads[0], ads=ids(ads[1:]), hold="1").json()

    # Hers kept, Otto's left to him, the next two nobody held taken; no more than two new.
    assert answer["claims"]["mine"] == [ads[1], ads[4], ads[5]]
    held = ReviewClaim.objects.filter(moderator__username="mona").values_list("ad_id", flat=True)
    assert sorted(held) == [ads[1], ads[4], ads[5]]
    assert ModerationDecision.objects.get().ad_id == ads[0]


def test_a_refused_decision_still_says_who_holds_what(
    moderator_client, otto_client, seller, media, settings
):
    settings.MODERATION_CLAIM_TOP = 1
    ads = [in_review(seller).pk for _ in range(3)]
    queue_ids(otto_client)  # Otto holds 0

    response = decide(moderator_client, ads[0], ads=ids(ads[1:]), hold="1")

    assert response.status_code == 409
    assert response.json()["held_by"] == "otto"
    assert response.json()["claims"] == {"mine": [ads[1]], "held": {}, "gone": []}
    assert Ad.objects.get(pk=ads[0]).status == Ad.Status.NEEDS_REVIEW


def test_a_bad_list_of_ads_with_a_decision_is_a_400_and_decides_nothing(
    moderator_client, seller, media
):
    ad = in_review(seller).pk
    queue_ids(moderator_client)

    response = decide(moderator_client, ad, ads="1,two", hold="1")

    assert response.status_code == 400
    assert "a comma-separated list of ad ids" in response.json()["message"]
    assert Ad.objects.get(pk=ad).status == Ad.Status.NEEDS_REVIEW


def test_more_counts_the_ads_waiting_beyond_the_page_that_nobody_else_holds(
    moderator_client, otto_client, seller, media, settings
):
    settings.MODERATION_CLAIM_TOP = 2
    ads = [in_review(seller).pk for _ in range(7)]
    queue_ids(otto_client)  # Otto holds 0 and 1
    page = queue_ids(moderator_client)  # 2 to 6
    assert page == ads[2:]

    def more(asked) -> int:
        answer = moderator_client.get(reverse(CLAIMS), {"ads": ids(asked), "more": "1"}).json()
        return answer["more"]

    assert more(page) == 0  # Otto's two are not waiting for her
    assert more(page[:3]) == 2
    assert more([]) == 5  # an empty page asks too
    assert "more" not in moderator_client.get(reverse(CLAIMS), {"ads": ids(page)}).json()
    # A decision that leaves few rows asks the same.
    assert (
        decide(moderator_client, page[0], ads=ids(page[1:3]), more="1").json()["claims"]["more"]
        == 2
    )


def test_a_decision_costs_the_same_few_queries_whatever_the_page_asks_about(
    moderator_client, seller, media, settings, django_assert_max_num_queries
):
    settings.MODERATION_CLAIM_TOP = 2
    ads = [in_review(seller, photos=3).pk for _ in range(55)]
    queue_ids(moderator_client)

    # Session, user, permissions (2), the ad with its categories and claim, its photos,
    # their labels, the decision, the ad, the training set's hashes, the training images,
    # the claim, the audit in the summary; a savepoint and its release in a test.
    with django_assert_max_num_queries(15):
        assert decide(moderator_client, ads[0]).status_code == 200
    # Asking who holds the page's ads: two more, for 2 ads as for 50.
    for decided, asked in ((ads[1], ads[3:5]), (ads[2], ads[3:53])):
        with django_assert_max_num_queries(17):
            assert decide(moderator_client, decided, ads=ids(asked)).status_code == 200
    # Holding the next ones, too: one transaction of five.
    with django_assert_max_num_queries(24):
        assert decide(moderator_client, ads[3], ads=ids(ads[4:]), hold="1").status_code == 200
    held = ReviewClaim.objects.filter(moderator__username="mona").values_list("ad_id", flat=True)
    assert sorted(held) == ads[4:6]


def test_a_poll_on_a_short_queue_is_a_few_small_queries(
    moderator_client, seller, media, django_assert_max_num_queries
):
    ads = [in_review(seller).pk for _ in range(2)]
    queue_ids(moderator_client)

    # Session, user, permissions (2), the ads still in the queue, their claims, and
    # whether more wait: never the queue's page.
    with django_assert_max_num_queries(7):
        answer = moderator_client.get(reverse(CLAIMS), {"ads": ids(ads), "more": "1"}).json()
    assert answer == {"mine": ads, "held": {}, "gone": [], "more": 0}


def test_the_shipped_photos_sides_are_worked_out_once_per_set(settings):
    """Every decision that labels photos places them by the shipped photos' sides: worked
    out once per set read, not for each decision."""
    from classifier.bootstrap import DEFAULT_MODEL_DIR
    from classifier.services import shipped

    settings.CLASSIFIER_SHIPPED_FEATURES = str(DEFAULT_MODEL_DIR / "features.npz")
    sides = shipped.known_sides()

    assert len(sides) == len(shipped.shipped_photos().phashes) > 1000
    assert shipped.known_sides() is sides
    settings.CLASSIFIER_SHIPPED_FEATURES = "off"
    assert shipped.known_sides() == ()


def test_a_top_up_asks_for_the_rows_it_needs_not_a_page(moderator_client, seller, media, settings):
    settings.MODERATION_CLAIM_TOP = 2
    ads = [in_review(seller).pk for _ in range(12)]

    page = moderator_client.get(reverse(QUEUE), {"rows": "3", "kind": "review"})

    assert [ad.pk for ad in page.context["cl"].result_list] == ads[:3]
    assert b'name="_changelist_filters" value="kind=review"' in page.content  # not rows
    assert page.context["queue_state"]["mine"] == ads[:2]  # held as on any load
    assert (
        len(moderator_client.get(reverse(QUEUE), {"rows": "999"}).context["cl"].result_list) == 12
    )
    for bad in ("0", "-1", "two", ""):
        response = moderator_client.get(reverse(QUEUE), {"rows": bad})
        assert response.status_code == 400
        assert "rows: how many rows of the queue to show" in response.text


def test_an_ad_decided_as_it_is_claimed_is_not_held(moderator, seller, media):
    """The claim of an ad read as waiting just before another moderator's decision released
    its claim and took it: the claim must not hold the decided ad (a key on it would be
    refused as already decided)."""
    ads = [in_review(seller).pk for _ in range(2)]
    otto = make_moderator("otto")
    assert services.claim(otto, [ads[0]]) == {ads[0]}
    services.decide(ads[0], otto, "accept")  # releases otto's claim

    held = services.claim(moderator, ads)  # her page still lists ads[0]

    assert held == {ads[1]}
    assert list(ReviewClaim.objects.values_list("ad_id", flat=True)) == [ads[1]]
