"""The moderators' review queue: the page, the training labels decisions leave behind, a team
on one queue (claims), and the queue's pulse. (The decisions: test_review_decisions.py;
who may take them: test_review_access.py; undo: test_review_undo.py.)"""

from __future__ import annotations

from datetime import timedelta
from io import StringIO

import pytest
from django.contrib.auth.models import Group
from django.core.management import call_command
from django.db import IntegrityError, connection, transaction
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from accounts.roles import MODERATOR_PERMISSIONS, MODERATORS_GROUP
from ads.models import Ad, Category
from classifier.models import TrainingImage
from classifier.services import labelled_set
from moderation import services
from moderation.models import ModerationDecision, ReviewClaim
from tests.support.factories import make_ad, make_moderator
from tests.support.review_queue import (
    QUEUE,
    REASON,
    REJECT,
    action_url,
    decide,
    in_review,
    labels,
    predict,
    queue_ids,
    said,
)

pytestmark = pytest.mark.django_db


# --- The queue page ---------------------------------------------------------------


def test_the_queue_lists_only_ads_in_review_oldest_first(moderator_client, seller, media):
    newest, oldest, middle = in_review(seller), in_review(seller), in_review(seller)
    now = timezone.now()
    for ad, minutes in ((newest, 1), (oldest, 30), (middle, 10)):
        Ad.objects.filter(pk=ad.pk).update(decided_at=now - timedelta(minutes=minutes))
    make_ad(seller, title="pending")
    in_review(seller).publish()
    in_review(seller).reject(REJECT.PROHIBITED)

    response = moderator_client.get(reverse(QUEUE))

    assert response.status_code == 200
    assert [ad.pk for ad in response.context["cl"].result_list] == [oldest.pk, middle.pk, newest.pk]
    assert "30\xa0minutes" in response.text  # how long the oldest has waited
    assert '<h1 class="visually-hidden">Review queue</h1>' in response.text  # in the crumbs


def test_the_queue_filters_by_reason_category_prediction_and_searches(
    moderator_client, seller, other_seller, version, media
):
    mismatch = in_review(seller, title="Dell XPS", reason=REASON.CATEGORY_MISMATCH)
    predict(mismatch, version, "laptop")
    laptop_ad = in_review(other_seller, title="ThinkPad", category="laptop")
    predict(laptop_ad, version, "phone", 0.4)
    unsure = in_review(seller, title="Galaxy")
    predict(unsure, version, "phone", 0.5)
    laptop = Category.objects.get(slug="laptop")

    def listed(**params):
        response = moderator_client.get(reverse(QUEUE), params)
        assert response.status_code == 200
        return {ad.pk for ad in response.context["cl"].result_list}

    assert listed() == {mismatch.pk, laptop_ad.pk, unsure.pk}
    assert listed(review_reason__exact="category_mismatch") == {mismatch.pk}
    assert listed(category__id__exact=laptop.pk) == {laptop_ad.pk}
    assert listed(predicted="laptop") == {mismatch.pk}
    assert listed(predicted="phone") == {laptop_ad.pk, unsure.pk}
    assert listed(q="thinkpad") == {laptop_ad.pk}
    assert listed(q="other_seller") == {laptop_ad.pk}


def test_the_queue_shows_photos_predictions_reason_and_seller(
    moderator_client, seller, version, media
):
    ad = in_review(seller, photos=2, reason=REASON.CATEGORY_MISMATCH, suggested="laptop", price=199)
    predict(ad, version, "laptop", 0.93)

    page = moderator_client.get(reverse(QUEUE)).text

    for image in ad.images.all():
        url = reverse("ads:ad-photo", args=[ad.pk, image.pk])
        assert f'<a href="{url}" target="_blank"' in page and f'src="{url}"' in page
        assert moderator_client.get(url).status_code == 200  # a moderator may see photos
    assert page.count("laptop 93%") == 2
    for shown in ("iPhone 12", "199", "Phones", "Laptops", "Photos do not match", "seller"):
        assert shown in page
    # One click each, in the row's own form (outside the changelist's form).
    assert f'<form id="decide-{ad.pk}" method="post" hidden>' in page
    assert f'formaction="{action_url(ad, "accept")}"' in page
    assert 'name="reason" value="not_product"' in page


def test_the_queue_page_makes_as_many_queries_for_12_ads_as_for_3(
    moderator_client, seller, other_seller, version, media
):
    def queries_for_page() -> int:
        with CaptureQueriesContext(connection) as captured:
            response = moderator_client.get(reverse(QUEUE))
        assert response.status_code == 200
        return len(captured)

    def add_ads(n):
        for i in range(n):
            ad = in_review(
                (seller, other_seller)[i % 2],
                photos=2,
                reason=REASON.CATEGORY_MISMATCH,
                suggested="laptop",
            )
            predict(ad, version, "laptop")

    add_ads(3)
    with_3 = queries_for_page()
    add_ads(9)
    with_12 = queries_for_page()

    assert with_12 == with_3


def test_the_detail_page_has_the_decision_buttons_shortcuts_and_history(
    moderator_client, seller, media
):
    ad = in_review(seller, suggested="laptop")

    page = moderator_client.get(reverse("admin:moderation_reviewitem_change", args=[ad.pk]))

    assert page.status_code == 200
    for key in ("a", "c", "1", "2", "3", "4"):
        assert f'data-shortcut="{key}"' in page.text
    assert 'addEventListener("keydown"' in page.text
    assert "Moderation history" in page.text
    assert "Laptops (suggested)" in page.text


def test_a_decision_shows_in_the_ads_history(moderator_client, admin_client, seller, media):
    ad = in_review(seller)
    decide(moderator_client, ad, "reject", reason="duplicate", note="same as ad 7")

    for client in (moderator_client, admin_client):
        page = client.get(reverse("admin:ads_ad_change", args=[ad.pk])).text
        assert "Moderation history" in page
        assert "mona" in page and "Rejected" in page and "same as ad 7" in page


def test_the_queue_cannot_add_edit_or_delete_ads(moderator_client, admin_client, seller, media):
    ad = in_review(seller)
    change = reverse("admin:moderation_reviewitem_change", args=[ad.pk])

    for client in (moderator_client, admin_client):
        assert client.get(reverse("admin:moderation_reviewitem_add")).status_code == 403
        assert client.post(change, {"title": "changed", "price": 1}).status_code == 403
        delete = reverse("admin:moderation_reviewitem_delete", args=[ad.pk])
        assert client.post(delete, {"post": "yes"}).status_code == 403
    assert Ad.objects.get(pk=ad.pk).title == "iPhone 12"


def test_moderators_see_the_queue_but_not_the_model_registry(
    moderator_client, seller, version, media
):
    decide(moderator_client, in_review(seller), "accept")  # makes a training image
    image = TrainingImage.objects.first()

    assert "Review queue" in moderator_client.get(reverse("admin:index")).text
    assert moderator_client.get(reverse(QUEUE)).status_code == 200
    for name, args in (
        ("admin:classifier_modelversion_change", [version.pk]),
        ("admin:classifier_modelversion_add", []),
        ("admin:classifier_trainingimage_change", [image.pk]),
        ("admin:classifier_trainingimage_add", []),
    ):
        assert moderator_client.get(reverse(name, args=args)).status_code == 403, name
    response = moderator_client.post(
        reverse("admin:classifier_modelversion_changelist"),
        {"action": "promote_selected", "_selected_action": [version.pk]},
    )
    assert response.status_code == 403


def test_the_moderators_group_has_exactly_the_roles_permissions(db):
    group = Group.objects.get(name=MODERATORS_GROUP)
    granted = set(group.permissions.values_list("content_type__app_label", "codename"))
    assert granted == set(MODERATOR_PERMISSIONS)
    assert {codename for app, codename in granted if app == "classifier"} == {"view_prediction"}


# --- Labels ---------------------------------------------------------------------


def test_training_data_leaves_out_the_negative_examples(moderator_client, seller, media, settings):
    settings.CLASSIFIER_EVALUATION_PERCENT = 0  # every photo in the training subset
    decide(moderator_client, in_review(seller, photos=2), "accept")
    decide(moderator_client, in_review(seller), "reject", reason="not_product")
    assert TrainingImage.objects.count() == 3

    data = labelled_set(32)

    assert data.classes == ["phone"]
    assert len(data.labels) == 2


def test_a_moderators_label_replaces_an_older_label_of_the_same_photo(
    moderator_client, seller, other_seller, media, tmp_path
):
    first = in_review(seller, seed=5)
    photo = first.images.get()
    # The same photo, imported earlier as a phone.
    dataset = tmp_path / "dataset"
    (dataset / "phone").mkdir(parents=True)
    (dataset / "phone" / "x.jpg").write_bytes(photo.file.read())
    call_command("import_images", str(dataset), stdout=StringIO())
    assert labels(first) == [("phone", False, "import")]

    decide(moderator_client, first, "reject", reason="not_product")
    assert labels(first) == [(None, True, "moderator")]

    # Another seller re-posts it; this time it is published as a laptop.
    copy = in_review(other_seller, seed=5)
    assert copy.images.get().sha256 == photo.sha256
    decide(moderator_client, copy, "recategorize", category=Category.objects.get(slug="laptop").pk)

    training = TrainingImage.objects.get()
    assert (training.category.slug, training.not_product) == ("laptop", False)
    assert training.decision == ModerationDecision.objects.get(ad=copy)


def test_a_photo_missing_from_storage_is_left_unlabelled(moderator_client, seller, media):
    ad = in_review(seller, photos=2)
    gone = ad.images.first()
    gone.file.storage.delete(gone.file.name)

    response = decide(moderator_client, ad, "accept")

    assert "accepted" in said(response) and "1 photo labelled Phones" in said(response)
    assert Ad.objects.get(pk=ad.pk).status == Ad.Status.PUBLISHED


def test_a_training_image_has_a_category_or_is_not_the_product_never_both(db):
    phone = Category.objects.get(slug="phone")
    values = {"file": "x.jpg", "source": "import", "phash": "0" * 16, "width": 1, "height": 1}
    for n, label in enumerate(({"category": phone, "not_product": True}, {"category": None})):
        with pytest.raises(IntegrityError), transaction.atomic():
            TrainingImage.objects.create(sha256=str(n) * 64, **values, **label)


# --- A team on one queue: claims ---------------------------------------------------------


def test_two_moderators_on_one_queue_never_see_the_same_ads_at_the_top(
    moderator_client, moderator, seller, media, settings
):
    settings.MODERATION_CLAIM_TOP = 3
    ads = [in_review(seller).pk for _ in range(7)]
    other = Client()
    other.force_login(make_moderator("otto"))

    mine = queue_ids(moderator_client)
    theirs = queue_ids(other)

    assert mine == ads  # the first to come holds the top three...
    assert theirs == ads[3:]  # ...which the other's queue skips: no collision at the top
    held = ReviewClaim.objects.order_by("ad_id")
    assert [(c.ad_id, c.moderator.username) for c in held] == [
        *[(pk, "mona") for pk in ads[:3]],
        *[(pk, "otto") for pk in ads[3:6]],
    ]
    assert queue_ids(moderator_client)[:3] == ads[:3]  # back again: still theirs, renewed
    assert set(queue_ids(moderator_client)).isdisjoint(ads[3:6])

    # Deciding releases the claim; an expired claim frees the ad for anyone.
    services.decide(ads[0], moderator, "accept")
    assert not ReviewClaim.objects.filter(ad_id=ads[0]).exists()
    ReviewClaim.objects.filter(moderator__username="otto").update(
        expires_at=timezone.now() - timedelta(seconds=1)
    )
    assert queue_ids(moderator_client) == ads[1:]


def test_of_two_moderators_claiming_at_once_each_ad_goes_to_one(moderator, media, seller):
    ads = [in_review(seller).pk for _ in range(4)]
    otto = make_moderator("otto")

    first = services.claim(moderator, ads[:3])
    second = services.claim(otto, ads[1:])

    assert first == set(ads[:3]) and second == {ads[3]}
    assert ReviewClaim.objects.count() == 4


def test_an_admin_sees_and_releases_claims(admin_client, moderator_client, seller, media):
    ad = in_review(seller)
    queue_ids(moderator_client)
    claims = reverse("admin:moderation_reviewclaim_changelist")
    page = admin_client.get(claims)
    assert page.status_code == 200 and str(ad) in page.text
    assert moderator_client.get(claims).status_code == 403

    claim = ReviewClaim.objects.get(ad=ad)
    release = {"action": "delete_selected", "_selected_action": [claim.pk], "post": "yes"}
    assert admin_client.post(claims, release).status_code == 302
    assert not ReviewClaim.objects.exists()


# --- The queue's pulse, for admins ---------------------------------------------------------

PULSE = "admin:moderation_reviewitem_pulse"


def test_the_pulse_shows_the_queue_the_pace_and_how_often_the_model_is_followed(
    admin_client, moderator, seller, media
):
    otto = make_moderator("otto")
    waiting = in_review(seller, title="Oldest in the queue")
    Ad.objects.filter(pk=waiting.pk).update(decided_at=timezone.now() - timedelta(hours=5))
    in_review(seller)
    # mona: one recategorization into the suggestion (followed), one accept against it
    # (overruled), one rejection without a suggestion; otto: one accept, then undone.
    services.decide(in_review(seller, suggested="laptop").pk, moderator, "recategorize")
    services.decide(in_review(seller, suggested="laptop").pk, moderator, "accept")
    services.decide(in_review(seller).pk, moderator, "reject", reason=REJECT.DUPLICATE)
    undone = services.decide(in_review(seller).pk, otto, "accept")
    services.undo(undone.pk, otto)
    ModerationDecision.objects.filter(moderator=moderator, action="reject").update(
        created_at=timezone.now() - timedelta(days=2)
    )

    page = admin_client.get(reverse(PULSE))

    assert page.status_code == 200
    figures = page.context["pulse"]
    assert figures["queue_length"] == 3  # two waiting, and the one whose decision was undone
    assert figures["oldest"] == waiting and figures["oldest_waiting"] >= timedelta(hours=5)
    assert [(r.moderator, r.counts, r.total, r.active_hours) for r in figures["moderators"]] == [
        ("mona", {"accept": 1, "recategorize": 1, "reject": 1}, 3, 2)
    ]
    assert figures["followed"]["total"] == 2 and figures["followed"]["share"] == 0.5
    per_day = figures["per_day"]
    assert [n for _, n in per_day["Rejected"]] == [0, 0, 0, 0, 1, 0, 0]
    assert sum(n for _, n in per_day["Accepted"]) == 1  # otto's undone accept is left out
    for chart in ("Decisions per day", "Model&#x27;s suggestion followed"):
        assert f'aria-label="{chart}"' in page.text
    assert "“Oldest in the queue”" in page.text and "50 %" in page.text
    assert reverse(PULSE) in admin_client.get(reverse(QUEUE)).text  # linked from the queue


def test_the_pulse_is_for_admins_only(moderator_client, seller, db):
    assert moderator_client.get(reverse(PULSE)).status_code == 403
    assert reverse(PULSE) not in moderator_client.get(reverse(QUEUE)).text
    assert Client().get(reverse(PULSE)).status_code == 302  # to the admin's sign-in
