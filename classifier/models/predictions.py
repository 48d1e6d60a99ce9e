"""What a model version said about each ad photo."""

from __future__ import annotations

from django.db import models
from django.utils import timezone

from .versions import ModelVersion


class Prediction(models.Model):
    """One model version's answer for one ad photo; unique so a retried task adds nothing."""

    image = models.ForeignKey("ads.AdImage", on_delete=models.CASCADE, related_name="predictions")
    model_version = models.ForeignKey(
        ModelVersion, on_delete=models.PROTECT, related_name="predictions"
    )
    category = models.CharField(max_length=50, help_text="Predicted category slug")
    confidence = models.FloatField()
    probabilities = models.JSONField(default=dict, help_text="Category slug to probability")
    latency_ms = models.FloatField(default=0.0, help_text="Inference time of the batch, per photo")
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [
            models.UniqueConstraint(
                fields=["image", "model_version"], name="one_prediction_per_image_and_version"
            )
        ]

    def __str__(self) -> str:
        return f"{self.category} ({self.confidence:.2f})"
