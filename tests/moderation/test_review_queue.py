"""The moderators' review queue: the page, the three decisions, who may take them, what
happens when two people act at once, and the training labels decisions leave behind."""

from __future__ import annotations

import itertools
import threading
from datetime import timedelta
from io import StringIO

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.core.exceptions import PermissionDenied
from django.core.management import call_command
from django.db import IntegrityError, connection, transaction
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from ads import services as ad_services
from ads.models import Ad, Category
from classifier.models import ModelVersion, Prediction, TrainingImage
from classifier.services import labelled_set
from moderation import pipeline, services
from moderation.models import ModerationDecision, ReviewClaim
from moderation.roles import MODERATOR_PERMISSIONS, MODERATORS_GROUP
from tests.support.factories import make_ad

pytestmark = pytest.mark.django_db

QUEUE = "admin:moderation_reviewitem_changelist"
REASON = Ad.ReviewReason
REJECT = Ad.RejectionReason
ACTIONS = ("accept", "recategorize", "reject")
# Every ad gets photos of its own: training labels are per photo content.
_seeds = itertools.count(1000, 10)


def in_review(seller, *, photos=1, category="phone", suggested=None, seed=None, **fields) -> Ad:
    reason = fields.pop("reason", REASON.LOW_CONFIDENCE)
    seed = next(_seeds) if seed is None else seed
    ad = make_ad(seller, photos=photos, category=category, seed=seed, **fields)
    ad.send_to_review(reason, Category.objects.get(slug=suggested) if suggested else None)
    return ad


def action_url(ad, action: str) -> str:
    return reverse(f"admin:moderation_reviewitem_{action}", args=[ad.pk])


def decide(client, ad, action: str, **data):
    return client.post(action_url(ad, action), data, follow=True)


def bulk(client, action: str, ads, **data):
    selected = {"action": action, "_selected_action": [ad.pk for ad in ads]}
    return client.post(reverse(QUEUE), selected | data, follow=True)


def said(response) -> str:
    return " | ".join(str(message) for message in response.context["messages"])


def landed_on_queue(response) -> bool:
    return response.redirect_chain[-1] == (reverse(QUEUE), 302) and response.status_code == 200


def labels(ad) -> list[tuple[str | None, bool, str]]:
    shas = ad.images.values_list("sha256", flat=True)
    rows = TrainingImage.objects.filter(sha256__in=shas).select_related("category")
    return sorted((r.category and r.category.slug, r.not_product, r.source) for r in rows)


def unchanged(ad) -> bool:
    fresh = Ad.objects.get(pk=ad.pk)
    return (
        fresh.status == Ad.Status.NEEDS_REVIEW
        and fresh.category_id == ad.category_id
        and not ModerationDecision.objects.filter(ad=ad).exists()
        and not labels(ad)
    )


def make_moderator(username: str):
    """A moderator account made as an operator makes one (``create_account``)."""
    password = "a-long-pass-phrase"
    call_command("create_account", username, role="moderator", password=password, stdout=StringIO())
    return get_user_model().objects.get(username=username)


@pytest.fixture
def moderator(db):
    return make_moderator("mona")


@pytest.fixture
def moderator_client(client, moderator):
    client.force_login(moderator)
    return client


@pytest.fixture
def version(db):
    return ModelVersion.objects.create(
        number=ModelVersion.next_number(),
        status=ModelVersion.Status.CANDIDATE,
        classes=["laptop", "phone"],
    )


def predict(ad, version, category: str, confidence: float = 0.93) -> None:
    for image in ad.images.all():
        Prediction.objects.create(
            image=image, model_version=version, category=category, confidence=confidence
        )


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


# --- Decisions in place (the queue's script) and undo ----------------------------------

JSON = {"HTTP_ACCEPT": "application/json"}


def decide_in_place(client, ad, action: str, **data):
    return client.post(action_url(ad, action), data, **JSON)


def undo_url(decision_id: int) -> str:
    return reverse("admin:moderation_reviewitem_undo", args=[decision_id])


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


# --- A team on one queue: claims ---------------------------------------------------------


def queue_ids(client) -> list[int]:
    return [ad.pk for ad in client.get(reverse(QUEUE)).context["cl"].result_list]


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
