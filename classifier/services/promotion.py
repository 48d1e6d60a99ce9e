"""Promotion and rollback: making a version the active one, and recording who did it.

A candidate is promoted only if it is worse than the active version on no category both
know (``promotion_guard``: McNemar's exact test on the evaluation photos both answered,
``classifier.services.comparing``); an admin overrides the guard by writing why, and the event
keeps the refusal and the reason. Rolling back is never refused: it is the way out.
"""

from __future__ import annotations

from django.core.exceptions import PermissionDenied
from django.db import transaction

from ..models import ModelVersion, ModelVersionEvent
from ..signals import serving_version_changed
from . import ClassifierError, shadow
from .comparing import compare

PROMOTE = "classifier.promote_modelversion"
Action = ModelVersionEvent.Action
Status = ModelVersion.Status


def require(user, permission: str) -> None:
    if user is not None and not user.has_perm(permission):
        raise PermissionDenied(f"{user} may not do this ({permission})")


# Which status a version must have to be made active by each action.
_ALLOWED = {
    Action.PROMOTE: Status.CANDIDATE,
    Action.AUTO_PROMOTE: Status.CANDIDATE,
    Action.ROLLBACK: Status.RETIRED,
}


class PromotionRefused(ClassifierError):
    """The candidate is worse than the active version on a category (``promotion_guard``)
    and no reason to promote it anyway was given."""


def promotion_guard(candidate: ModelVersion, active: ModelVersion | None = None) -> str:
    """Empty when ``candidate`` may go live; otherwise which categories it is worse on
    than the active version, by how much: McNemar's exact test on the evaluation photos
    both answered, p < 0.05 with more of them wrong (``comparing``)."""
    active = active if active is not None else ModelVersion.objects.active()
    if active is None or active.pk == candidate.pk:
        return ""
    comparison = compare(active, candidate)
    if not comparison.worse:
        return ""
    a, b = f"v{active.number}", f"v{candidate.number}"
    found = "; ".join(f"{row.name}: {row.said(a, b)}" for row in comparison.worse)
    return f"{b} is worse than {a} on {found}"


def promote(
    version: ModelVersion, user, note: str = "", override_reason: str | None = None
) -> ModelVersionEvent:
    """Make a candidate the active version, unless the promotion guard refuses it; an
    admin overrides the guard by giving ``override_reason``, kept on the event."""
    refused = promotion_guard(version)
    reason = (override_reason or "").strip()
    if refused and not reason:
        if override_reason is None:
            raise PromotionRefused(
                f"Not promoted: {refused}. To promote it anyway, write why (the reason is "
                "kept in the registry's events)."
            )
        raise PromotionRefused(
            f"Not promoted: the reason to promote it anyway is empty. {refused}."
        )
    kept = reason if refused else ""
    return switch(version, user, Action.PROMOTE, note, refused=refused, override_reason=kept)


def roll_back(version: ModelVersion, user, note: str = "") -> ModelVersionEvent:
    """Make an earlier (retired) version active again."""
    return switch(version, user, Action.ROLLBACK, note)


def switch(
    version: ModelVersion,
    user,
    action: str,
    note: str = "",
    refused: str = "",
    override_reason: str = "",
) -> ModelVersionEvent:
    """Activate ``version`` and record who did it; moderation, told by a signal, sends the
    ads in review whose routing depends on the model back to be classified by it. Any
    version in shadow leaves it."""
    require(user, PROMOTE)
    with transaction.atomic():
        locked = ModelVersion.objects.select_for_update().get(pk=version.pk)
        if locked.status != _ALLOWED[action]:
            verb = "rolled back to" if action == Action.ROLLBACK else "promoted"
            raise ClassifierError(
                f"v{locked.number} is {locked.get_status_display().lower()}: only a "
                f"{_ALLOWED[action].label.lower()} version can be {verb}"
            )
        previous = ModelVersion.objects.active()
        # The version in shadow was measured against ``previous``: its shadow ends here
        # (promoted from shadow, or another version made active), recorded as an event.
        shadow.end_on_switch(locked, user)
        locked.activate()
        answers = serving_version_changed.send(sender=ModelVersion, version=locked)
        rescored = [ad_id for _receiver, ad_ids in answers for ad_id in ad_ids]
        event = ModelVersionEvent.objects.create(
            version=locked,
            previous=previous,
            action=action,
            user=user,
            note=note,
            refused=refused,
            override_reason=override_reason,
            rescored_ads=len(rescored),
        )
    version.refresh_from_db()
    return event
