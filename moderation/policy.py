"""The routing policy: which ads the model may publish alone, and why others go to humans.

An ad is published only when its category is active and every photo is predicted as that
category with a confidence at or above the active version's threshold (the one that keeps
automatic errors under CLASSIFIER_TARGET_RISK on validation), no photo shows none of the
categories, and the category has the evidence to publish alone (enough evaluation photos,
few enough errors; else it is review-only). Everything else fails towards humans, with the
category the photos vote for when it is not the seller's (any number of them; only active
categories are ever suggested: see ``ads.models.Category`` for what deactivating a
category does)."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

from ads.models import Ad, Category
from ads.verdicts import PhotoVerdict, is_confident


@dataclass(frozen=True)
class Routing:
    status: str
    reason: str = ""
    suggested_category: Category | None = None


PUBLISH = Routing(Ad.Status.PUBLISHED)


def review(reason: str, suggested: Category | None = None) -> Routing:
    return Routing(Ad.Status.NEEDS_REVIEW, reason, suggested)


def decide(
    category: Category,
    verdicts: list[PhotoVerdict],
    model_classes: list[str],
    threshold: float | None,
    has_duplicate: bool = False,
    review_only: frozenset[str] = frozenset(),
) -> Routing:
    """Route an ad posted under ``category`` from its photos' verdicts. ``review_only``:
    the model's classes without the evidence to publish alone yet
    (``classifier.services.evidence``): ads the photos would publish in them go to review."""
    reasons = Ad.ReviewReason
    if not category.active:
        return review(reasons.CATEGORY_INACTIVE, _suggestion(category, verdicts))
    if has_duplicate:
        return review(reasons.DUPLICATE_PHOTO, _suggestion(category, verdicts))
    if category.slug not in model_classes:
        return review(reasons.UNKNOWN_CATEGORY)
    if not verdicts or threshold is None:
        return review(reasons.LOW_CONFIDENCE)
    if any(v.none_of_these for v in verdicts):
        # Its category answer means nothing; the other photos may still suggest one.
        shown = [
            v for v in verdicts if not v.none_of_these and is_confident(v.confidence, threshold)
        ]
        return review(reasons.NONE_OF_THESE, _suggestion(category, shown))
    confident = [v for v in verdicts if is_confident(v.confidence, threshold)]
    if any(v.category != category.slug for v in confident):
        return review(reasons.CATEGORY_MISMATCH, _suggestion(category, confident))
    if len(confident) < len(verdicts):
        return review(reasons.LOW_CONFIDENCE, _suggestion(category, verdicts))
    if category.slug in review_only:
        return review(reasons.REVIEW_ONLY)
    return PUBLISH


def _suggestion(category: Category, verdicts: list[PhotoVerdict]) -> Category | None:
    """The photos' vote among the active categories other than the seller's: the one most
    photos show, a tie going to the one they show with more confidence in all. None when
    no photo shows another active category (the moderator then chooses)."""
    votes, confidence = Counter(), Counter()
    for verdict in verdicts:
        if verdict.category != category.slug:
            votes[verdict.category] += 1
            confidence[verdict.category] += verdict.confidence
    candidates = {c.slug: c for c in Category.objects.active().filter(slug__in=list(votes))}
    if not candidates:
        return None
    return candidates[max(candidates, key=lambda slug: (votes[slug], confidence[slug], slug))]
