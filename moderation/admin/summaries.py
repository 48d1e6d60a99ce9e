"""What a decision tells the moderator: what was done, and what the photos taught the model."""

from __future__ import annotations

from ads.models import Ad
from classifier.models import TrainingImage

from ..models import ModerationDecision

Action = ModerationDecision.Action


def summary(decisions: list[ModerationDecision]) -> str:
    """What happened, for the moderator: the decisions (all of one action) and the labels."""
    first = decisions[0]
    if len(decisions) == 1:
        said = _outcome(first)
    else:
        titles = ", ".join(f"“{decision.ad}”" for decision in decisions)
        said = f"{len(decisions)} ads {first.get_action_display().lower()}: {titles}."
    counted = [getattr(decision, "labelled_photos", None) for decision in decisions]
    if None in counted:
        labelled = TrainingImage.objects.filter(decision__in=decisions).count()
    else:  # said by the decisions just taken
        labelled = sum(counted)
    photos = f"{labelled} photo{'' if labelled == 1 else 's'}"
    if first.rejection_reason == Ad.RejectionReason.NOT_PRODUCT:
        return f"{said} {photos} kept as “not the product” examples for training."
    if first.action == Action.REJECT:
        return f"{said} The photos give no training label."
    category = f" {first.to_category}" if len(decisions) == 1 else ""
    return f"{said} {photos} labelled{category} for training."


def _outcome(decision: ModerationDecision) -> str:
    audited = hasattr(decision, "audit")  # the answer to an audit of an automatic decision
    if decision.action == Action.ACCEPT and audited:
        return f"“{decision.ad}” confirmed: it stays published in {decision.to_category}."
    if decision.action == Action.ACCEPT:
        return f"“{decision.ad}” accepted: published in {decision.to_category}."
    if decision.action == Action.RECATEGORIZE:
        return (
            f"“{decision.ad}” recategorized: published in {decision.to_category} "
            f"(the seller chose {decision.from_category})."
        )
    return f"“{decision.ad}” rejected: {decision.get_rejection_reason_display()}."
