"""Moderators' decisions on ads in review: the one place that says what a decision does.

A decision is taken on the ad's row, locked, inside one transaction, and only while the ad
is in review. Two moderators deciding the same ad at once, or a seller editing or deleting
it meanwhile, therefore never decide it twice: the first wins, the others get
``NotInReview`` and change nothing. (PostgreSQL locks the row; SQLite, which has no row
locks, serialises writing transactions, which begin IMMEDIATE in this project's settings.)

An ad the model published alone and drawn for the live audit (``moderation.audit``) is
decided the same way while it waits in the queue: accepting (confirming) keeps it
published, recategorizing or rejecting it corrects the model, and the decision is the
audit's answer.

A decision also labels the ad's photos for training: accepted or recategorized photos get
the published category, photos rejected as "not the product" become negative examples, and
other rejections give no label.
"""

from __future__ import annotations

from datetime import timedelta

from django.conf import settings
from django.core.exceptions import PermissionDenied
from django.db import transaction
from django.utils import timezone

from accounts.roles import DECIDE_AD
from ads.models import Ad, Category
from classifier.services import label_photos, labels_of, unlabel

from . import audit
from .models import Audit, ModerationDecision, ReviewClaim

Action = ModerationDecision.Action
Reason = Ad.RejectionReason


class DecisionError(Exception):
    """A decision that cannot be taken; the message is meant for the moderator."""


class NotInReview(DecisionError):
    """The ad left the queue (decided, edited by its seller, deleted) before the decision."""


class HeldByAnother(DecisionError):
    """Another moderator holds the ad (an unexpired claim): they may be deciding it now."""

    def __init__(self, ad: Ad, claim: ReviewClaim):
        self.holder = claim.moderator.get_username()
        until = timezone.localtime(claim.expires_at)
        super().__init__(
            f"“{ad}” is held by {self.holder} until {until:%H:%M:%S}; nothing done. "
            "Take it over to decide it anyway."
        )


def decide(
    ad_id: int,
    moderator,
    action: str,
    *,
    category: Category | None = None,
    reason: str = "",
    note: str = "",
    takeover: bool = False,
) -> ModerationDecision:
    """Accept, recategorize or reject ad ``ad_id`` as ``moderator`` and label its photos.

    ``category`` is used by recategorize (default: the ad's suggested category), ``reason``
    by reject (a ``Ad.RejectionReason``); ``note`` may go with any decision and is required
    for a rejection for another reason. An ad another moderator holds (an unexpired claim)
    is decided only with ``takeover``, which the decision records. Raises ``DecisionError``
    with a message for the moderator: ``NotInReview`` when the ad is no longer in the queue,
    ``HeldByAnother`` when another holds it.
    """
    if not moderator.has_perm(DECIDE_AD):
        raise PermissionDenied(f"{moderator} may not decide ads in review")
    action = _action(action)
    note = note.strip()
    with transaction.atomic():
        ad = _locked_ad(ad_id)
        opened = _check_in_review(ad_id, ad)
        holder = _check_claim(ad, moderator, takeover)
        photos = list(ad.images.all())
        labels_before = labels_of(photos, lock=True)  # what an undo puts back
        decision = _record(ad, moderator, action, category, reason, note, holder, labels_before)
        if opened is not None:
            audit.answer(opened, decision)
        if action == Action.REJECT:
            ad.reject(decision.rejection_reason, note)
        else:
            ad.publish(decision.to_category if action == Action.RECATEGORIZE else None)
        _label(photos, decision, stored={row["sha256"] for row in labels_before})
        ReviewClaim.objects.filter(ad=ad).delete()  # it left the queue
    return decision


def _locked_ad(ad_id: int) -> Ad | None:
    """The ad, its row locked, read with its categories and its claim's holder in the same
    query: each query of a decision is a round trip on its critical path."""
    return (
        Ad.objects.select_related("category", "suggested_category", "claim__moderator")
        # Only the ad's row: locking its category's would queue every decision in it.
        .select_for_update(of=("self",))
        .filter(pk=ad_id)
        .first()
    )


def _action(action: str) -> str:
    if action not in Action.values:
        raise DecisionError(f"unknown decision {action!r}: {', '.join(Action.values)}")
    return Action(action)


def _check_in_review(ad_id: int, ad: Ad | None) -> Audit | None:
    """Raises ``NotInReview`` unless the ad is in review or published with an open audit;
    returns that audit (locked), or None for an ad in review."""
    if ad is None:
        raise NotInReview(f"Ad {ad_id} no longer exists (its seller deleted it); nothing done.")
    if ad.status == Ad.Status.NEEDS_REVIEW:
        return None
    opened = audit.open_audit(ad)
    if opened is not None:
        return opened
    if ad.status == Ad.Status.PENDING:
        raise NotInReview(
            f"“{ad}” left the queue: it is being classified again (its seller changed it, "
            "or a newly active model version re-scores it); nothing done."
        )
    last = ad.decisions.filter(undone_at__isnull=True).select_related("moderator").first()
    by = ""
    if last is not None and last.moderator is not None:
        by = f" by {last.moderator} at {timezone.localtime(last.created_at):%H:%M:%S}"
    raise NotInReview(
        f"“{ad}” was already decided{by} ({ad.get_status_display().lower()}); nothing done."
    )


def _check_claim(ad: Ad, moderator, takeover: bool):
    """The moderator whose unexpired claim on ``ad`` (read with it) this decision takes
    over, or None; raises ``HeldByAnother`` unless ``takeover``. An expired claim holds
    nothing."""
    claim = getattr(ad, "claim", None)
    if claim is None or claim.moderator_id == moderator.pk or claim.expires_at <= timezone.now():
        return None
    if not takeover:
        raise HeldByAnother(ad, claim)
    return claim.moderator


def _record(
    ad: Ad,
    moderator,
    action: str,
    category: Category | None,
    reason: str,
    note: str,
    took_over_from,
    labels_before: list[dict],
) -> ModerationDecision:
    to_category, rejection_reason = None, ""
    if action == Action.ACCEPT:
        to_category = _seller_category(ad)
    elif action == Action.RECATEGORIZE:
        to_category = _new_category(ad, category)
    else:
        rejection_reason = _rejection_reason(ad, reason, note)
    return ModerationDecision.objects.create(
        ad=ad,
        moderator=moderator,
        action=action,
        from_category=ad.category,
        to_category=to_category,
        review_reason=ad.review_reason,
        rejection_reason=rejection_reason,
        note=note,
        suggested_category=ad.suggested_category,
        in_review_since=ad.decided_at,
        labels_before=labels_before,
        took_over_from=took_over_from,
    )


def _seller_category(ad: Ad) -> Category:
    # No ad is published in an inactive category (see ads.models.Category).
    if not ad.category.active:
        raise DecisionError(
            f"{ad.category} is no longer an active category: recategorize “{ad}” or reject it."
        )
    return ad.category


def _new_category(ad: Ad, category: Category | None) -> Category:
    category = category or ad.suggested_category
    if category is None:
        raise DecisionError(
            f"“{ad}” has no suggested category: choose the category to publish it in."
        )
    if not category.active:
        raise DecisionError(f"{category} is not an active category; choose another.")
    if category.pk == ad.category_id:
        raise DecisionError(f"“{ad}” is already in {category}: accept it instead.")
    return category


def _rejection_reason(ad: Ad, reason: str, note: str) -> str:
    if reason not in Reason.values:
        raise DecisionError(f"Choose why “{ad}” is rejected.")
    if reason == Reason.OTHER and not note:
        raise DecisionError(f"Say in the note why “{ad}” is rejected.")
    return Reason(reason)


def _label(photos, decision: ModerationDecision, stored: set[str]) -> None:
    # ``stored``: the photos already training images, their rows locked by this decision.
    labelled = []
    if decision.action != Action.REJECT:
        labelled = label_photos(photos, decision.to_category, decision, stored)
    elif decision.rejection_reason == Reason.NOT_PRODUCT:
        labelled = label_photos(photos, None, decision, stored)
    # Prohibited, duplicate or other: nothing about the photos' category was learned.
    decision.labelled_photos = len(labelled)  # for the moderator's summary, without a query


def undo(decision_id: int, moderator) -> Ad:
    """Take back ``moderator``'s own decision, within ``MODERATION_UNDO_SECONDS``: the ad
    goes back to the queue as it was (category, reason, suggestion, place) and the labels
    the decision gave its photos are taken back. The decision stays in the history, marked
    undone. Raises ``DecisionError`` with a message for the moderator."""
    if not moderator.has_perm(DECIDE_AD):
        raise PermissionDenied(f"{moderator} may not decide ads in review")
    with transaction.atomic():
        decision = (
            ModerationDecision.objects.select_for_update()
            .filter(pk=decision_id, moderator=moderator)
            .first()
        )
        if decision is None:
            raise DecisionError("There is no such decision of yours to undo.")
        ad = Ad.objects.select_for_update().filter(pk=decision.ad_id).first()
        _check_undoable(decision, ad)
        unlabel(decision, decision.labels_before)
        answered = audit.answered_by(decision)
        if answered is not None:
            # An audit's answer: published again as the model left it, the audit open.
            ad.back_to_published(decision.from_category, decision.in_review_since)
            audit.reopen(answered)
        else:
            ad.back_to_review(
                decision.from_category,
                decision.review_reason,
                decision.suggested_category,
                decision.in_review_since,
            )
        decision.undone_at = timezone.now()
        decision.save(update_fields=["undone_at"])
    return ad


def _check_undoable(decision: ModerationDecision, ad: Ad | None) -> None:
    seconds = settings.MODERATION_UNDO_SECONDS
    if decision.undone_at is not None:
        raise DecisionError(f"“{ad}”: this decision was already undone.")
    if timezone.now() - decision.created_at > timedelta(seconds=seconds):
        raise DecisionError(f"Too late to undo: a decision can be undone for {seconds} s.")
    if ad is None:
        raise DecisionError("The ad no longer exists (its seller deleted it); nothing undone.")
    left = Ad.Status.REJECTED if decision.action == Action.REJECT else Ad.Status.PUBLISHED
    latest = ad.decisions.filter(undone_at__isnull=True).first()
    if ad.status != left or latest != decision:
        raise DecisionError(
            f"“{ad}” changed since the decision ({ad.get_status_display().lower()}); "
            "nothing undone."
        )


def claim(moderator, ad_ids: list[int]) -> set[int]:
    """Hold ``ad_ids`` (the top of ``moderator``'s queue) for ``moderator`` for
    ``MODERATION_CLAIM_SECONDS``; returns those held for them now. An ad another moderator
    holds stays theirs until their claim expires: the database's one claim per ad decides
    between two moderators claiming at once. An ad no longer in the queue is never held."""
    now = timezone.now()
    until = now + timedelta(seconds=settings.MODERATION_CLAIM_SECONDS)
    with transaction.atomic():  # one write lock on SQLite, not three
        ReviewClaim.objects.filter(ad_id__in=ad_ids, expires_at__lte=now).delete()
        ReviewClaim.objects.bulk_create(
            [ReviewClaim(ad_id=ad_id, moderator=moderator, expires_at=until) for ad_id in ad_ids],
            ignore_conflicts=True,
        )
        mine = ReviewClaim.objects.filter(ad_id__in=ad_ids, moderator=moderator)
        # A decision releases its ad's claim as it takes it: a claim written just after, on
        # an ad read as waiting just before, would hold a decided ad (and the page's key on
        # it would be refused). The decision has committed by now (PostgreSQL waits for it on
        # the claim's row; SQLite writes one at a time), so this sees the ad gone.
        mine.exclude(ad__in=audit.in_queue(Ad.objects.all()).values("pk")).delete()
        mine.update(expires_at=until)  # renewed while they are still at it
        return set(mine.values_list("ad_id", flat=True))


def holder(ad: Ad, moderator):
    """The other moderator who holds ``ad`` now, or None."""
    claim = _others_claim(ad, moderator)
    return claim.moderator if claim else None


def _others_claim(ad: Ad, moderator) -> ReviewClaim | None:
    active = ReviewClaim.objects.filter(ad=ad, expires_at__gt=timezone.now())
    return active.exclude(moderator=moderator).select_related("moderator").first()


def held_by_others(moderator):
    """The ads that other moderators hold now (a subquery for the queue)."""
    active = ReviewClaim.objects.filter(expires_at__gt=timezone.now())
    return active.exclude(moderator=moderator).values("ad_id")


def waiting_beyond(moderator, ad_ids: list[int], most: int) -> int:
    """How many ads of the queue, besides ``ad_ids``, nobody else holds (at most ``most``)."""
    queue = audit.in_queue(Ad.objects.visible_to(moderator)).exclude(pk__in=ad_ids)
    free = queue.exclude(pk__in=held_by_others(moderator)).order_by()
    return len(free.values_list("pk", flat=True)[:most])


def claims_among(moderator, ad_ids) -> tuple[set[int], dict[int, str]]:
    """Of ``ad_ids``, those held for ``moderator`` now and those others hold (ad → holder's
    username): one query, for the queue's live view of who holds what."""
    active = ReviewClaim.objects.filter(ad_id__in=ad_ids, expires_at__gt=timezone.now())
    mine, others = set(), {}
    for ad_id, holder_id, holder in active.values_list(
        "ad_id", "moderator_id", "moderator__username"
    ):
        if holder_id == moderator.pk:
            mine.add(ad_id)
        else:
            others[ad_id] = holder
    return mine, others
