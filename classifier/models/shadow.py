"""What the version in shadow said about live traffic: its answer on each new ad photo, and
what the moderation policy would have done with each ad by its answers.

Tables of their own, not rows of ``Prediction``: whatever reads predictions (routing, the
seller's pages and API, the quick check, the review queue's captions, the metrics) can
never come upon a shadow answer.
"""

from __future__ import annotations

from django.db import models
from django.utils import timezone

from .versions import ModelVersion


class ShadowPrediction(models.Model):
    """The version in shadow's answer for one ad photo; unique so a retried task adds
    nothing."""

    image = models.ForeignKey(
        "ads.AdImage", on_delete=models.CASCADE, related_name="shadow_predictions"
    )
    model_version = models.ForeignKey(
        ModelVersion, on_delete=models.PROTECT, related_name="shadow_predictions"
    )
    served_with = models.ForeignKey(
        ModelVersion,
        on_delete=models.PROTECT,
        related_name="+",
        help_text="The active version that routed the ad (whose backbone features it reused)",
    )
    category = models.CharField(max_length=50, help_text="Predicted category slug")
    confidence = models.FloatField()
    probabilities = models.JSONField(default=dict, help_text="Category slug to probability")
    none_of_these = models.BooleanField(
        null=True, help_text="Shows none of the categories (unknown: the version cannot tell)"
    )
    created_at = models.DateTimeField(default=timezone.now, db_index=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [
            models.UniqueConstraint(
                fields=["image", "model_version"], name="one_shadow_prediction_per_image"
            )
        ]

    def __str__(self) -> str:
        return f"v{self.model_version_id} in shadow: {self.category} ({self.confidence:.2f})"


class ShadowRouting(models.Model):
    """One ad as the active version routed it and as the version in shadow would have
    (the same ``moderation.policy`` rule, applied to its answers): the latest routing of
    the ad while that version was in shadow."""

    ad = models.ForeignKey("ads.Ad", on_delete=models.CASCADE, related_name="shadow_routings")
    model_version = models.ForeignKey(
        ModelVersion, on_delete=models.PROTECT, related_name="shadow_routings"
    )
    served_with = models.ForeignKey(ModelVersion, on_delete=models.PROTECT, related_name="+")
    routed_status = models.CharField(max_length=20, help_text="What the active version did")
    routed_reason = models.CharField(max_length=30, blank=True)
    would_status = models.CharField(max_length=20, help_text="What the shadow would have done")
    would_reason = models.CharField(max_length=30, blank=True)
    created_at = models.DateTimeField(default=timezone.now, db_index=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [
            models.UniqueConstraint(
                fields=["ad", "model_version"], name="one_shadow_routing_per_ad"
            )
        ]

    def __str__(self) -> str:
        return f"ad {self.ad_id}: {self.routed_status}; in shadow, {self.would_status}"
