"""The review queue's helpers: an ad in review, a moderator made as an operator makes one,
decisions through the queue's buttons, bulk actions and its script, and what they leave."""

from __future__ import annotations

import itertools
from io import StringIO

from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.urls import reverse

from ads.models import Ad, Category
from classifier.models import Prediction, TrainingImage
from moderation.models import ModerationDecision
from tests.support.factories import make_ad

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


def predict(ad, version, category: str, confidence: float = 0.93) -> None:
    for image in ad.images.all():
        Prediction.objects.create(
            image=image, model_version=version, category=category, confidence=confidence
        )


JSON = {"HTTP_ACCEPT": "application/json"}


def decide_in_place(client, ad, action: str, **data):
    return client.post(action_url(ad, action), data, **JSON)


def undo_url(decision_id: int) -> str:
    return reverse("admin:moderation_reviewitem_undo", args=[decision_id])


def queue_ids(client) -> list[int]:
    return [ad.pk for ad in client.get(reverse(QUEUE)).context["cl"].result_list]
