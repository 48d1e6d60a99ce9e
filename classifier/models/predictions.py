"""What a model version said about each ad photo."""

from __future__ import annotations

from django.db import models
from django.utils import timezone

from .versions import ModelVersion

# What a photo looks like, as people read it: the likeliest categories, at most three,
# those under 5 % left out (with six categories the tail is noise).
TOP_SHOWN = 3
TOP_AT_LEAST = 0.05


def top_categories(probabilities: dict[str, float]) -> list[tuple[str, float]]:
    """The likeliest categories first, as (slug, probability); the first is always there."""
    ranked = sorted(probabilities.items(), key=lambda item: (-item[1], item[0]))[:TOP_SHOWN]
    return ranked[:1] + [item for item in ranked[1:] if item[1] >= TOP_AT_LEAST]


def top_categories_text(probabilities: dict[str, float]) -> str:
    """For example "laptop 71% · tablet 22%"."""
    return " · ".join(f"{slug} {p:.0%}" for slug, p in top_categories(probabilities))


class Prediction(models.Model):
    """One model version's answer for one ad photo; unique so a retried task adds nothing."""

    image = models.ForeignKey("ads.AdImage", on_delete=models.CASCADE, related_name="predictions")
    model_version = models.ForeignKey(
        ModelVersion, on_delete=models.PROTECT, related_name="predictions"
    )
    category = models.CharField(max_length=50, help_text="Predicted category slug")
    confidence = models.FloatField()
    probabilities = models.JSONField(default=dict, help_text="Category slug to probability")
    none_of_these = models.BooleanField(
        null=True, help_text="Shows none of the categories (unknown: the version cannot tell)"
    )
    imagenet_labels = models.JSONField(
        default=list,
        blank=True,
        help_text="What the photo looks like to ImageNet: [[name, probability], ...], likeliest "
        "first; empty when the version gives no backbone features",
    )
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

    def top_text(self) -> str:
        """Its likeliest categories with their probabilities (``top_categories_text``), or
        "none of these" first when the photo shows none of them."""
        text = top_categories_text(self.probabilities or {self.category: self.confidence})
        return f"none of these ({text})" if self.none_of_these else text

    def looks_like_text(self) -> str:
        """Its ImageNet labels, e.g. "mobile phone 81% · iPod 6%"; empty when it has none."""
        return " · ".join(f"{name} {p:.0%}" for name, p in self.imagenet_labels or [])
