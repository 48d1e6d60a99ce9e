"""The live audit of automatic decisions: which ads are drawn (at the configured rate, once),
how an audit shows in the review queue while its ad stays published, and how moderators'
answers (the queue's own decisions) keep, recategorize or reject the ad and label its
photos. The estimates drawn from the answers: tests/moderation/test_audit_estimates.py."""

from __future__ import annotations

import itertools
import math
import subprocess
import sys
from io import StringIO
from pathlib import Path

import pytest
from django.contrib.auth import get_user_model
from django.core.exceptions import PermissionDenied
from django.core.management import call_command
from django.urls import reverse
from django.utils import timezone

from ads.models import Ad, Category
from classifier.models import TrainingImage
from moderation import audit, pipeline, services
from moderation.models import Audit
from tests.moderation.test_pipeline import ad_with
from tests.support.factories import make_ad

pytestmark = pytest.mark.django_db

QUEUE = "admin:moderation_reviewitem_changelist"
_seeds = itertools.count(5000, 10)


def make_moderator(username: str = "mona"):
    call_command(
        "create_account", username, role="moderator", password="a-long-pass-phrase",
        stdout=StringIO(),
    )  # fmt: skip
    return get_user_model().objects.get(username=username)


@pytest.fixture
def moderator(db):
    return make_moderator()


@pytest.fixture
def moderator_client(client, moderator):
    client.force_login(moderator)
    return client


def published_and_audited(seller, settings, *, category: str = "phone", photos: int = 1) -> Ad:
    """An ad as the pipeline leaves one it published alone and drew for the audit."""
    settings.MODERATION_AUDIT_RATE = 1.0
    ad = make_ad(seller, category=category, photos=photos, seed=next(_seeds))
    ad.publish()
    assert audit.sample(ad, None, ad.decided_at)
    return ad


def answer(client, ad, action: str, **data):
    url = reverse(f"admin:moderation_reviewitem_{action}", args=[ad.pk])
    return client.post(url, data, follow=True)


def said(response) -> str:
    return " | ".join(str(message) for message in response.context["messages"])


def labels(ad) -> list[tuple[str | None, bool]]:
    shas = ad.images.values_list("sha256", flat=True)
    rows = TrainingImage.objects.filter(sha256__in=shas).select_related("category")
    return sorted((row.category and row.category.slug, row.not_product) for row in rows)


# --- The settings ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("variable", "bad", "said"),
    [
        ("MODERATION_AUDIT_RATE", "2%", "must be a number, not '2%'"),
        ("MODERATION_AUDIT_RATE", "2", "must be between 0.0 and 1.0, not 2.0"),
        ("MODERATION_AUDIT_WINDOW_DAYS", "0", "must be at least 1, not 0"),
    ],
)
def test_a_bad_audit_setting_stops_start_up_with_a_message(variable, bad, said):
    run = subprocess.run(
        [sys.executable, "-c", "import avito_mod.settings"],
        cwd=Path(__file__).resolve().parents[2], env={"PATH": "/usr/bin:/bin", variable: bad},
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert run.returncode != 0
    assert f"{variable} {said}" in run.stderr, run.stderr[-2000:]


# --- The draw ---------------------------------------------------------------------------


def test_the_draw_takes_every_ad_at_rate_1_and_none_at_0():
    ids = range(1, 5001)
    assert all(audit.drawn(ad_id, 1.0, key="k") for ad_id in ids)
    assert not any(audit.drawn(ad_id, 0.0, key="k") for ad_id in ids)


@pytest.mark.parametrize("key", ["a-secret-key", "another-secret-key"])
def test_the_draw_at_2_percent_takes_2_percent_of_ids_whatever_their_order(key):
    """Each of 20,000 ids is drawn with probability 0.02, independently: the count lies
    within 4.5 standard deviations of 400 (a bound a fair draw breaks once in 150,000
    keys), and so do the counts among odd and among even ids (no pattern in the ids)."""
    n, rate = 20_000, 0.02
    drawn = [ad_id for ad_id in range(1, n + 1) if audit.drawn(ad_id, rate, key=key)]
    assert abs(len(drawn) - n * rate) <= 4.5 * math.sqrt(n * rate * (1 - rate))
    half = n // 2
    for parity in (0, 1):
        count = sum(1 for ad_id in drawn if ad_id % 2 == parity)
        assert abs(count - half * rate) <= 4.5 * math.sqrt(half * rate * (1 - rate))


def test_the_draw_is_the_same_for_an_ad_every_time_and_depends_on_the_key():
    first = [audit.drawn(ad_id, 0.5, key="k1") for ad_id in range(200)]
    assert first == [audit.drawn(ad_id, 0.5, key="k1") for ad_id in range(200)]
    assert first != [audit.drawn(ad_id, 0.5, key="k2") for ad_id in range(200)]


# --- Through the real pipeline ------------------------------------------------------------


def test_an_ad_published_alone_is_audited_and_stays_published(
    tiny_version, seller, media, settings
):
    settings.MODERATION_AUDIT_RATE = 1.0
    ad = ad_with(seller, "phone", "phone")

    assert pipeline.classify_ad(ad.pk) == "published"

    ad.refresh_from_db()
    assert ad.status == Ad.Status.PUBLISHED and ad.review_reason == ""
    sampled = Audit.objects.get(ad=ad)
    assert (sampled.category.slug, sampled.model_version, sampled.decision) == (
        "phone",
        tiny_version,
        None,
    )
    assert sampled.sampled_at == ad.decided_at


def test_at_rate_0_nothing_is_audited(tiny_version, seller, media, settings):
    settings.MODERATION_AUDIT_RATE = 0.0
    ad = ad_with(seller, "phone", "phone")
    assert pipeline.classify_ad(ad.pk) == "published"
    assert not Audit.objects.exists()


def test_an_ad_sent_to_review_is_never_audited(tiny_version, seller, media, settings):
    settings.MODERATION_AUDIT_RATE = 1.0
    ad = ad_with(seller, "phone", "laptop")
    pipeline.classify_ad(ad.pk)
    assert Ad.objects.get(pk=ad.pk).status == Ad.Status.NEEDS_REVIEW
    assert not Audit.objects.exists()


def test_an_ad_routed_again_or_delivered_twice_is_audited_once(
    tiny_version, seller, media, settings
):
    settings.MODERATION_AUDIT_RATE = 1.0
    ad = ad_with(seller, "phone", "phone")
    pipeline.classify_ad(ad.pk)
    assert pipeline.classify_ad(ad.pk) == "skipped: not pending"  # a second delivery

    Ad.objects.get(pk=ad.pk).return_to_pending()  # routed again, as a re-score would
    assert pipeline.classify_ad(ad.pk) == "published"

    assert Audit.objects.filter(ad=ad).count() == 1
    assert not audit.sample(Ad.objects.get(pk=ad.pk), tiny_version, timezone.now())


# --- In the queue ---------------------------------------------------------------------------


def test_the_queue_lists_an_audit_marked_as_one_with_confirm_instead_of_accept(
    moderator_client, seller, media, settings
):
    waiting = make_ad(seller, seed=next(_seeds))
    waiting.send_to_review(Ad.ReviewReason.LOW_CONFIDENCE)
    audited = published_and_audited(seller, settings)
    published_only = make_ad(seller, seed=next(_seeds))
    published_only.publish()

    page = moderator_client.get(reverse(QUEUE))

    listed = {ad.pk for ad in page.context["cl"].result_list}
    assert listed == {waiting.pk, audited.pk}
    assert "Audit: published automatically by the model — check it" in page.text
    assert "Confirm</button>" in page.text and "Accept</button>" in page.text
    audits_only = moderator_client.get(reverse(QUEUE), {"kind": "audit"})
    assert [ad.pk for ad in audits_only.context["cl"].result_list] == [audited.pk]
    detail = moderator_client.get(reverse("admin:moderation_reviewitem_change", args=[audited.pk]))
    assert "Audit: published automatically by the model" in detail.text


def test_confirming_keeps_the_ad_published_and_labels_its_photos(
    moderator_client, moderator, seller, media, settings
):
    ad = published_and_audited(seller, settings, photos=2)

    response = answer(moderator_client, ad, "accept")

    assert "“iPhone 12” confirmed: it stays published in Phones" in said(response)
    ad.refresh_from_db()
    assert (ad.status, ad.category.slug) == (Ad.Status.PUBLISHED, "phone")
    answered = Audit.objects.get(ad=ad)
    assert (answered.decision.action, answered.decision.moderator) == ("accept", moderator)
    assert labels(ad) == [("phone", False)] * 2
    assert ad.pk not in {
        a.pk for a in moderator_client.get(reverse(QUEUE)).context["cl"].result_list
    }


def test_recategorizing_an_audit_moves_the_ad_and_labels_its_photos(
    moderator_client, seller, media, settings
):
    ad = published_and_audited(seller, settings)
    laptops = Category.objects.get(slug="laptop")

    response = answer(moderator_client, ad, "recategorize", category=laptops.pk)

    assert "recategorized: published in Laptops" in said(response)
    ad.refresh_from_db()
    assert (ad.status, ad.category) == (Ad.Status.PUBLISHED, laptops)
    assert Audit.objects.get(ad=ad).decision.to_category == laptops
    assert Audit.objects.get(ad=ad).category.slug == "phone"  # what the model decided
    assert labels(ad) == [("laptop", False)]


def test_rejecting_an_audit_as_not_the_product_unpublishes_it(
    moderator_client, client, seller, media, settings
):
    ad = published_and_audited(seller, settings)

    answer(moderator_client, ad, "reject", reason="not_product")

    ad.refresh_from_db()
    assert (ad.status, ad.rejection_reason) == (Ad.Status.REJECTED, "not_product")
    assert labels(ad) == [(None, True)]
    assert Audit.objects.get(ad=ad).decision.rejection_reason == "not_product"


def test_an_answered_audit_cannot_be_answered_again(moderator_client, seller, media, settings):
    ad = published_and_audited(seller, settings)
    answer(moderator_client, ad, "accept")

    again = answer(moderator_client, ad, "reject", reason="not_product")

    assert "was already decided by mona" in said(again)
    ad.refresh_from_db()
    assert ad.status == Ad.Status.PUBLISHED
    assert ad.decisions.count() == 1


def test_an_ad_published_without_an_audit_cannot_be_decided(moderator, seller, media):
    ad = make_ad(seller, seed=next(_seeds))
    ad.publish()
    with pytest.raises(services.NotInReview, match="already decided"):
        services.decide(ad.pk, moderator, "reject", reason="not_product")


def test_undoing_an_answer_republishes_the_ad_and_reopens_the_audit_counted_once(
    moderator, seller, media, settings
):
    ad = published_and_audited(seller, settings)
    published_at = ad.decided_at
    laptops = Category.objects.get(slug="laptop")
    first = services.decide(ad.pk, moderator, "recategorize", category=laptops)

    services.undo(first.pk, moderator)

    ad.refresh_from_db()
    assert (ad.status, ad.category.slug, ad.decided_at) == ("published", "phone", published_at)
    assert Audit.objects.get(ad=ad).decision is None
    assert labels(ad) == []
    services.decide(ad.pk, moderator, "accept")
    (phones,) = audit.live_errors(30)
    assert (phones.answered, phones.wrong) == (1, 0)


def test_an_undone_rejection_of_an_audit_republishes_it(moderator, seller, media, settings):
    ad = published_and_audited(seller, settings)
    rejected = services.decide(ad.pk, moderator, "reject", reason="other", note="a replica")
    services.undo(rejected.pk, moderator)
    ad.refresh_from_db()
    assert (ad.status, ad.rejection_reason, ad.rejection_note) == ("published", "", "")


# --- Who may answer ---------------------------------------------------------------------------


def test_only_moderators_answer_audits(client, staff, seller, media, settings):
    ad = published_and_audited(seller, settings)
    with pytest.raises(PermissionDenied):
        services.decide(ad.pk, staff, "reject", reason="not_product")
    client.force_login(staff)
    assert (
        client.post(reverse("admin:moderation_reviewitem_reject", args=[ad.pk])).status_code == 403
    )
    client.force_login(seller)
    refused = client.post(reverse("admin:moderation_reviewitem_accept", args=[ad.pk]))
    assert refused.status_code == 302 and "/admin/login/" in refused["Location"]
    ad.refresh_from_db()
    assert ad.status == Ad.Status.PUBLISHED and not ad.decisions.exists()


def test_sellers_never_see_that_their_ad_is_audited(client, seller, media, settings):
    ad = published_and_audited(seller, settings)
    client.force_login(seller)
    for url in (f"/api/v1/ads/{ad.pk}/", f"/ads/{ad.pk}/", "/ads/"):
        response = client.get(url)
        assert response.status_code == 200, url
        assert "audit" not in response.content.decode().lower(), url
    assert client.get(f"/api/v1/ads/{ad.pk}/").json()["status"] == "published"
