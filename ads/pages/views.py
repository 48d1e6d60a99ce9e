"""The sellers' web pages: sign up, *My ads*, an ad with its live status, *New ad*, *Edit ad*.

Server-rendered and thin. Creating and editing go through the REST API from the page's
script (``ads/static/ads/ad_form.js``, with the session and its CSRF token), so the pages
and the API cannot disagree on what an ad may be; the pages only read. Each *New ad* page
carries a key of its own that its script sends as the post's ``Idempotency-Key``: one
page, at most one ad, by the API's one rule (``services.create_ad``).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from django.conf import settings
from django.contrib.auth import login
from django.contrib.auth.decorators import login_required
from django.contrib.auth.forms import UserCreationForm
from django.core.paginator import Paginator
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.views.decorators.http import require_http_methods, require_safe

from ads.verdicts import SURE_SUGGESTIONS, is_sure, verdict_of
from avito_mod.throttling import page_wait, wait_in_words

from ..models import Ad, AdQuerySet, Category
from ..throttling import SignupAddressThrottle

ADS_PER_PAGE = 25

# What a seller reads on a status badge; "needs review" is the moderators' word.
BADGES = {
    Ad.Status.PENDING: "Pending",
    Ad.Status.PUBLISHED: "Published",
    Ad.Status.NEEDS_REVIEW: "In review",
    Ad.Status.REJECTED: "Rejected",
}
PENDING_NOTE = "Your photos are being checked; this takes a few seconds."


@dataclass(frozen=True)
class StatusView:
    """An ad's status as the seller reads it: a badge and, when there is one, the reason."""

    status: str
    badge: str
    reason: str

    @classmethod
    def of(cls, ad: Ad) -> StatusView:
        return cls(ad.status, BADGES[ad.status], _reason(ad))


def _reason(ad: Ad) -> str:
    if ad.status == Ad.Status.NEEDS_REVIEW and ad.review_reason:
        reason = Ad.ReviewReason(ad.review_reason).label
        if ad.suggested_category is not None:
            looks = "they look like" if ad.review_reason in SURE_SUGGESTIONS else "perhaps"
            reason += f"; {looks} {ad.suggested_category.name}"
        return f"{reason}. A moderator will decide."
    if ad.status == Ad.Status.REJECTED and ad.rejection_reason:
        reason = Ad.RejectionReason(ad.rejection_reason).label
        return f"{reason}: {ad.rejection_note}" if ad.rejection_note else reason
    if ad.status == Ad.Status.PENDING:
        return PENDING_NOTE
    return ""


def status_texts() -> dict:
    """The texts the page's script needs to show a status it polled (the same as above)."""
    return {
        "badges": {str(status): text for status, text in BADGES.items()},
        "review_reasons": dict(Ad.ReviewReason.choices),
        "rejection_reasons": dict(Ad.RejectionReason.choices),
        "pending_note": PENDING_NOTE,
        "sure_suggestions": sorted(SURE_SUGGESTIONS),
        "category_names": dict(Category.objects.values_list("slug", "name")),
    }


def own_ads(user) -> AdQuerySet:
    # Staff may see every ad (visible_to), but these pages are a seller's own: others' ads
    # are the admin's business, and the API would refuse to let staff edit them anyway.
    return Ad.objects.visible_to(user).filter(seller=user)


@require_safe
def home(request):
    return redirect("sellers:my-ads" if request.user.is_authenticated else "sellers:login")


@require_http_methods(["GET", "HEAD", "POST"])
def signup(request):
    """A plain seller account (never staff), signed in at once."""
    if request.user.is_authenticated:
        return redirect("sellers:my-ads")
    form = UserCreationForm(request.POST or None)
    if request.method == "POST":
        # Every attempt counts, valid or not: accounts are not made in bulk from one network.
        wait = page_wait(request, SignupAddressThrottle())
        if wait is not None:
            return _too_many_signups(request, form, wait)
        if form.is_valid():
            user = form.save()
            # Named: axes' backend comes first in AUTHENTICATION_BACKENDS, and only refuses.
            login(request, user, backend="django.contrib.auth.backends.ModelBackend")
            return redirect("sellers:my-ads")
    return render(request, "sellers/signup.html", {"form": form})


def _too_many_signups(request, form: UserCreationForm, wait: int):
    form.errors.clear()
    form.add_error(
        None,
        "Too many accounts were created from your network just now; try again in "
        f"{wait_in_words(wait)}.",
    )
    response = render(request, "sellers/signup.html", {"form": form}, status=429)
    response["Retry-After"] = str(wait)
    return response


@require_safe
@login_required
def my_ads(request):
    ads = own_ads(request.user).select_related("category", "suggested_category")
    page = Paginator(ads, ADS_PER_PAGE).get_page(request.GET.get("page"))
    rows = [(ad, StatusView.of(ad)) for ad in page]
    return render(request, "sellers/my_ads.html", {"page": page, "rows": rows})


@require_safe
@login_required
def ad_detail(request, pk: int):
    ad = get_object_or_404(own_ads(request.user).with_photos(), pk=pk)
    texts = status_texts()
    context = {
        "ad": ad,
        "state": StatusView.of(ad),
        "photos": photos_with_predictions(ad, texts["category_names"]),
        "status_texts": texts,
        "api_url": reverse("ads:ad-detail", args=[ad.pk]),
    }
    return render(request, "sellers/ad_detail.html", context)


def photos_with_predictions(ad: Ad, names: dict[str, str]) -> list[tuple]:
    return [(image, prediction_text(image.latest_prediction(), names)) for image in ad.images.all()]


def prediction_text(prediction, names: dict[str, str]) -> str:
    """What the model saw in a photo, as the page's script words it too."""
    if prediction is None:
        return "Not checked yet"
    name = names.get(prediction.category, prediction.category)
    sure = is_sure(verdict_of(prediction), prediction.model_version.threshold)
    if prediction.none_of_these:
        if sure:
            return "Does not look like any of our categories"
        return f"Not sure what this shows (perhaps {name}); a moderator will look"
    if sure:
        return f"Looks like {name} ({prediction.confidence:.0%})"
    return f"Not sure: perhaps {name} ({prediction.confidence:.0%}); a moderator will look"


@require_safe
@login_required
def ad_new(request):
    return render(request, "sellers/ad_form.html", _form_context(ad=None))


@require_safe
@login_required
def ad_edit(request, pk: int):
    ad = get_object_or_404(own_ads(request.user).with_photos(), pk=pk)
    names = dict(Category.objects.values_list("slug", "name"))
    context = _form_context(ad=ad) | {"current_photos": photos_with_predictions(ad, names)}
    return render(request, "sellers/ad_form.html", context)


def _form_context(ad: Ad | None) -> dict:
    categories = list(Category.objects.active())
    if ad is not None and ad.category not in categories:
        categories.append(ad.category)  # an inactive category still names the ad's own
    return {
        "ad": ad,
        "categories": categories,
        # A published or rejected ad keeps its category and photos (the API refuses them).
        "photos_editable": ad is None or ad.is_editable,
        "max_photos": settings.ADS_MAX_PHOTOS,
        "max_photo_bytes": settings.ADS_MAX_PHOTO_BYTES,
        "max_ad_photo_bytes": settings.ADS_MAX_AD_PHOTO_BYTES,
        # For the page's script.
        "config": {
            "classify_url": reverse("quick-check"),
            "save_url": reverse("ads:ad-detail", args=[ad.pk]) if ad else reverse("ads:ad-list"),
            "save_method": "PATCH" if ad else "POST",
            # New for each New ad page, sent as its post's Idempotency-Key: a second click,
            # or a retry after an answer that was lost, gets the one ad the first made.
            "idempotency_key": None if ad else str(uuid.uuid4()),
            # The ad's page, where its status shows; the script puts the saved ad's id in.
            "done_url": _url_template("sellers:ad"),
            "max_photos": settings.ADS_MAX_PHOTOS,
            "max_photo_bytes": settings.ADS_MAX_PHOTO_BYTES,
            "max_ad_photo_bytes": settings.ADS_MAX_AD_PHOTO_BYTES,
        },
    }


def _url_template(name: str) -> str:
    """The URL of ``name`` with ``{id}`` where its one integer argument goes."""
    placeholder = 2**31 - 1  # digits no other part of the URL contains
    return reverse(name, args=[placeholder]).replace(str(placeholder), "{id}")
