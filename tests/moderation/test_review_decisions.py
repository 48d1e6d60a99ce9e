"""The review queue's three decisions (accept, recategorize, reject), one ad at a time and in
bulk, and the training labels they leave behind."""

from __future__ import annotations

import pytest
from django.test import Client
from django.urls import reverse

from ads.models import Ad, Category
from classifier.models import TrainingImage
from moderation import pipeline
from moderation.models import ModerationDecision
from tests.support.factories import make_ad
from tests.support.review_queue import (
    REASON,
    REJECT,
    bulk,
    decide,
    in_review,
    labels,
    landed_on_queue,
    said,
    unchanged,
)

pytestmark = pytest.mark.django_db


# --- Accept ---------------------------------------------------------------------


def test_accept_publishes_in_the_sellers_category_and_labels_the_photos(
    moderator_client, moderator, seller, media
):
    ad = in_review(seller, photos=2)

    response = decide(moderator_client, ad, "accept")

    assert landed_on_queue(response)
    assert "“iPhone 12” accepted: published in Phones. 2 photos labelled Phones" in said(response)
    ad.refresh_from_db()
    assert (ad.status, ad.category.slug, ad.review_reason) == ("published", "phone", "")
    decision = ModerationDecision.objects.get(ad=ad)
    assert (decision.moderator, decision.action) == (moderator, "accept")
    assert (decision.from_category.slug, decision.to_category.slug) == ("phone", "phone")
    assert decision.review_reason == REASON.LOW_CONFIDENCE
    assert labels(ad) == [("phone", False, "moderator")] * 2
    for image in ad.images.all():
        training = TrainingImage.objects.get(sha256=image.sha256)
        assert training.decision == decision
        assert training.file.read() == image.file.read()  # a copy, through storage


def test_an_admin_may_decide_too(admin_client, admin_user, seller, media):
    one, two = in_review(seller), in_review(seller)

    response = decide(admin_client, one, "accept")
    assert landed_on_queue(response) and "accepted" in said(response)
    response = bulk(admin_client, "reject_selected", [two], reason="prohibited")
    assert landed_on_queue(response) and "rejected: Prohibited item" in said(response)

    assert Ad.objects.get(pk=one.pk).status == Ad.Status.PUBLISHED
    assert Ad.objects.get(pk=two.pk).status == Ad.Status.REJECTED
    assert set(ModerationDecision.objects.values_list("moderator", flat=True)) == {admin_user.pk}


# --- Recategorize ---------------------------------------------------------------


def test_recategorize_publishes_in_the_suggested_category_from_the_real_pipeline(
    moderator_client, tiny_version, seller, media
):
    ad = make_ad(seller, category="phone", kind="laptop", seed=700)
    pipeline.classify_ad(ad.pk)
    ad.refresh_from_db()
    assert (ad.status, ad.suggested_category.slug) == ("needs_review", "laptop")
    routed_for = ad.review_reason

    response = decide(moderator_client, ad, "recategorize")

    assert landed_on_queue(response)
    assert "recategorized: published in Laptops (the seller chose Phones)" in said(response)
    ad.refresh_from_db()
    assert (ad.status, ad.category.slug) == ("published", "laptop")
    decision = ModerationDecision.objects.get(ad=ad)
    assert (decision.action, decision.from_category.slug, decision.to_category.slug) == (
        "recategorize",
        "phone",
        "laptop",
    )
    # What the pipeline said stays on the decision; the published ad no longer carries it.
    assert (decision.review_reason, ad.review_reason) == (routed_for, "")
    assert labels(ad) == [("laptop", False, "moderator")]


def test_recategorize_in_a_chosen_category_when_there_is_no_suggestion(
    moderator_client, seller, media
):
    ad = in_review(seller, reason=REASON.LOW_CONFIDENCE)
    laptop = Category.objects.get(slug="laptop")

    response = decide(moderator_client, ad, "recategorize", category=laptop.pk)

    assert "published in Laptops" in said(response)
    assert Ad.objects.get(pk=ad.pk).category == laptop
    assert labels(ad) == [("laptop", False, "moderator")]


def test_recategorize_without_suggestion_or_choice_says_so_and_changes_nothing(
    moderator_client, seller, media
):
    ad = in_review(seller)

    response = decide(moderator_client, ad, "recategorize")

    assert landed_on_queue(response)
    assert "has no suggested category: choose the category" in said(response)
    assert unchanged(ad)


def test_recategorize_into_the_sellers_own_category_is_refused(moderator_client, seller, media):
    ad = in_review(seller)

    response = decide(moderator_client, ad, "recategorize", category=ad.category_id)

    assert "is already in Phones: accept it instead" in said(response)
    assert unchanged(ad)


# --- Reject ---------------------------------------------------------------------


def test_reject_as_not_the_product_keeps_the_photos_as_negative_examples(
    moderator_client, seller, media
):
    ad = in_review(seller, photos=2)

    response = decide(moderator_client, ad, "reject", reason="not_product")

    assert landed_on_queue(response)
    assert "rejected: Not the product. 2 photos kept as “not the product” examples" in said(
        response
    )
    ad.refresh_from_db()
    assert (ad.status, ad.rejection_reason) == ("rejected", "not_product")
    decision = ModerationDecision.objects.get(ad=ad)
    assert (decision.action, decision.to_category, decision.rejection_reason) == (
        "reject",
        None,
        "not_product",
    )
    assert labels(ad) == [(None, True, "moderator")] * 2


@pytest.mark.parametrize(
    "reason, note", [("prohibited", ""), ("duplicate", ""), ("other", "phone number in photo")]
)
def test_other_rejections_give_no_label(moderator_client, seller, media, reason, note):
    ad = in_review(seller)

    response = decide(moderator_client, ad, "reject", reason=reason, note=note)

    assert landed_on_queue(response)
    assert f"rejected: {REJECT(reason).label}. The photos give no training label." in said(response)
    ad.refresh_from_db()
    assert (ad.status, ad.rejection_reason, ad.rejection_note) == ("rejected", reason, note)
    assert ModerationDecision.objects.get(ad=ad).note == note
    assert not TrainingImage.objects.exists()


def test_reject_needs_a_reason_and_other_needs_a_note(moderator_client, seller, media):
    ad = in_review(seller)

    assert "Choose why “iPhone 12” is rejected" in said(decide(moderator_client, ad, "reject"))
    response = decide(moderator_client, ad, "reject", reason="other", note="  ")
    assert "Say in the note why" in said(response)
    response = decide(moderator_client, ad, "reject", reason="spam")
    assert "Nothing done: reason: Select a valid choice" in said(response)
    assert unchanged(ad)


def test_the_seller_sees_why_the_ad_was_rejected(moderator_client, seller, media):
    ad = in_review(seller)
    decide(moderator_client, ad, "reject", reason="other", note="Blurry photos")

    api = Client()
    api.force_login(seller)
    data = api.get(reverse("ads:ad-detail", args=[ad.pk])).json()

    assert (data["status"], data["rejection_reason"], data["rejection_note"]) == (
        "rejected",
        "other",
        "Blurry photos",
    )


# --- Bulk actions ---------------------------------------------------------------


def test_bulk_accept(moderator_client, seller, other_seller, media):
    ads = [in_review(seller, title="Pixel 7"), in_review(other_seller, title="Pixel 8")]

    response = bulk(moderator_client, "accept_selected", ads)

    assert landed_on_queue(response)
    assert "2 ads accepted: “Pixel 7”, “Pixel 8”. 2 photos labelled for training." in said(response)
    assert set(Ad.objects.values_list("status", flat=True)) == {"published"}
    assert ModerationDecision.objects.filter(action="accept").count() == 2


def test_bulk_recategorize_in_the_chosen_category(moderator_client, seller, media):
    ads = [in_review(seller), in_review(seller)]
    laptop = Category.objects.get(slug="laptop")

    response = bulk(moderator_client, "recategorize_selected", ads, category=laptop.pk)

    assert landed_on_queue(response) and "2 ads recategorized" in said(response)
    assert set(Ad.objects.values_list("category__slug", "status")) == {("laptop", "published")}
    assert TrainingImage.objects.filter(category=laptop).count() == 2


def test_bulk_recategorize_uses_each_suggestion_and_reports_ads_without_one(
    moderator_client, seller, media
):
    mismatch = REASON.CATEGORY_MISMATCH
    suggested = in_review(seller, title="Laptop", reason=mismatch, suggested="laptop")
    unsure = in_review(seller, title="Unsure")

    response = bulk(moderator_client, "recategorize_selected", [suggested, unsure])

    assert "“Unsure” has no suggested category" in said(response)
    assert "“Laptop” recategorized: published in Laptops" in said(response)
    assert Ad.objects.get(pk=suggested.pk).category.slug == "laptop"
    assert unchanged(unsure)


def test_bulk_reject_as_not_the_product(moderator_client, seller, media):
    ads = [in_review(seller), in_review(seller, photos=2)]

    response = bulk(moderator_client, "reject_selected", ads, reason="not_product")

    assert landed_on_queue(response)
    assert "2 ads rejected" in said(response) and "3 photos kept as “not the product”" in said(
        response
    )
    assert set(Ad.objects.values_list("status", "rejection_reason")) == {
        ("rejected", "not_product")
    }
    assert TrainingImage.objects.filter(not_product=True, category=None).count() == 3


def test_bulk_reject_for_another_reason_needs_the_note(moderator_client, seller, media):
    ad = in_review(seller)

    response = bulk(moderator_client, "reject_selected", [ad], reason="other")
    assert "Say in the note why" in said(response)
    assert unchanged(ad)

    response = bulk(moderator_client, "reject_selected", [ad], reason="other", note="Spam")
    assert Ad.objects.get(pk=ad.pk).rejection_note == "Spam"


def test_bulk_action_on_an_ad_that_left_the_queue_says_so(moderator_client, seller, media):
    gone, still = in_review(seller, title="Gone"), in_review(seller, title="Still")
    gone.publish()

    response = bulk(moderator_client, "accept_selected", [gone, still])

    assert "“Gone” was already decided" in said(response)
    assert "“Still” accepted" in said(response)
    assert ModerationDecision.objects.get().ad == still
