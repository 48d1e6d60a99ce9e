from __future__ import annotations

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.utils import timezone

from ads.models import Ad, Category


class ReviewItem(Ad):
    """An ad as the review queue shows it: a proxy, so the queue has its own admin and
    permissions (moderators may decide ads here without being allowed to edit them)."""

    class Meta:
        proxy = True
        verbose_name = "ad in review"
        verbose_name_plural = "review queue"
        # No add, change or delete: ads come from sellers, and a decision is not an edit.
        default_permissions = ("view",)
        permissions = [
            ("decide_ad", "Can accept, recategorize or reject ads in review"),
            ("view_queue_pulse", "Can see the review queue's pulse (admins)"),
        ]


class ModerationDecision(models.Model):
    """One moderator's decision on one ad in review: the ad's history, and the provenance
    of the training labels it gave the ad's photos."""

    class Action(models.TextChoices):
        ACCEPT = "accept", "Accepted"
        RECATEGORIZE = "recategorize", "Recategorized"
        REJECT = "reject", "Rejected"

    # Decisions outlive the ad and the moderator's account: labels trained on keep their source.
    ad = models.ForeignKey(
        Ad, on_delete=models.SET_NULL, null=True, blank=True, related_name="decisions"
    )
    moderator = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, related_name="+"
    )
    action = models.CharField(max_length=20, choices=Action.choices)
    from_category = models.ForeignKey(
        Category, on_delete=models.PROTECT, related_name="+", help_text="The seller's category"
    )
    to_category = models.ForeignKey(
        Category,
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="+",
        help_text="The category the ad was published in; empty when rejected",
    )
    review_reason = models.CharField(
        max_length=30,
        choices=Ad.ReviewReason.choices,
        blank=True,
        help_text="Why the pipeline sent the ad to review",
    )
    rejection_reason = models.CharField(
        max_length=20, choices=Ad.RejectionReason.choices, blank=True
    )
    note = models.TextField(blank=True)
    created_at = models.DateTimeField(default=timezone.now, db_index=True)
    # What an undo puts back: the ad's suggestion and place in the queue, and the labels
    # the decision overwrote on photos already among the training images.
    suggested_category = models.ForeignKey(
        Category,
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="+",
        help_text="The category the model suggested",
    )
    in_review_since = models.DateTimeField(null=True, blank=True)
    labels_before = models.JSONField(default=list, blank=True)
    undone_at = models.DateTimeField(
        null=True, blank=True, help_text="Undone by its moderator: the ad went back to review."
    )
    # The claim this decision overrode: the moderator who held the ad when it was taken over.
    took_over_from = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
        help_text="Taken over from this moderator, who held the ad (an unexpired claim)",
    )

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [
            # A rejection has a reason and no category; a publication has a category.
            models.CheckConstraint(
                condition=(Q(action="reject", to_category__isnull=True) & ~Q(rejection_reason=""))
                | (~Q(action="reject") & Q(to_category__isnull=False, rejection_reason="")),
                name="decision_outcome_matches_action",
            )
        ]

    def __str__(self) -> str:
        return f"{self.get_action_display()} ad {self.ad_id} ({self.created_at:%Y-%m-%d %H:%M})"


class ReviewClaim(models.Model):
    """An ad at the top of one moderator's queue, held for them for a few minutes: the
    others' queues skip it, so a team working one queue does not look at the same ads. It
    expires by itself; deciding the ad releases it; an admin may release it."""

    ad = models.OneToOneField(Ad, on_delete=models.CASCADE, related_name="claim")
    moderator = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+"
    )
    expires_at = models.DateTimeField(db_index=True)

    class Meta:
        verbose_name = "claim on an ad in review"
        verbose_name_plural = "claims on ads in review"
        default_permissions = ("view", "delete")

    def __str__(self) -> str:
        return f"ad {self.ad_id} held for {self.moderator} until {self.expires_at:%H:%M:%S}"


class AuditQuerySet(models.QuerySet):
    def open(self) -> AuditQuerySet:
        """Waiting for a moderator's answer, on an ad still published as the model left it."""
        return self.filter(decision__isnull=True, ad__status=Ad.Status.PUBLISHED)

    def answered(self) -> AuditQuerySet:
        return self.filter(decision__isnull=False)


class Audit(models.Model):
    """An ad the pipeline published alone, drawn at random (``MODERATION_AUDIT_RATE``) for a
    moderator to check while it stays published: the answers measure, per category, how
    often automatic decisions are wrong (``moderation.audit``). One per ad, ever."""

    # Kept when the seller deletes the ad: an answered audit still counts.
    ad = models.OneToOneField(
        Ad, on_delete=models.SET_NULL, null=True, blank=True, related_name="audit"
    )
    category = models.ForeignKey(
        Category,
        on_delete=models.PROTECT,
        related_name="+",
        help_text="The category the model published the ad in",
    )
    model_version = models.ForeignKey(
        "classifier.ModelVersion",
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
        help_text="The version that published it",
    )
    sampled_at = models.DateTimeField(
        default=timezone.now, db_index=True, help_text="When the model published the ad"
    )
    # The moderator's answer; cleared again if they undo it.
    decision = models.OneToOneField(
        ModerationDecision,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="audit",
    )

    objects = AuditQuerySet.as_manager()

    class Meta:
        ordering = ["-sampled_at", "-id"]
        default_permissions = ()  # made by the pipeline, answered in the review queue

    def __str__(self) -> str:
        return f"audit of ad {self.ad_id} ({self.category}, {self.sampled_at:%Y-%m-%d})"
