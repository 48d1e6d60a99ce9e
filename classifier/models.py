from __future__ import annotations

from django.db import models, transaction
from django.db.models import Q
from django.utils import timezone

from ads.models import Category


def training_image_path(instance: TrainingImage, filename: str) -> str:
    # Content-addressed: the same photo never lands twice, names reveal nothing.
    suffix = filename.rsplit(".", 1)[-1].lower() if "." in filename else "img"
    return f"training/{instance.sha256[:2]}/{instance.sha256}.{suffix}"


class TrainingImage(models.Model):
    """A photo with a human-verified label: the classifier's training data.

    The label is a category, or "not the product" (a negative example: a moderator
    rejected the photo as showing no product), never both.
    """

    class Source(models.TextChoices):
        IMPORT = "import", "Imported dataset"
        MODERATOR = "moderator", "Moderator decision"

    file = models.FileField(upload_to=training_image_path, max_length=200)
    category = models.ForeignKey(
        Category, on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    not_product = models.BooleanField(
        default=False, help_text="A negative example: shows no product, so has no category."
    )
    source = models.CharField(max_length=20, choices=Source.choices)
    decision = models.ForeignKey(
        "moderation.ModerationDecision",
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="training_images",
        help_text="The moderator's decision that gave the label",
    )
    sha256 = models.CharField(max_length=64, unique=True)
    phash = models.CharField(max_length=16, help_text="64-bit perceptual hash, hex")
    width = models.PositiveIntegerField()
    height = models.PositiveIntegerField()
    original_name = models.CharField(max_length=255, blank=True)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [models.Index(fields=["category", "source"])]
        constraints = [
            models.CheckConstraint(
                condition=Q(category__isnull=False, not_product=False)
                | Q(category__isnull=True, not_product=True),
                name="training_image_category_or_not_product",
            )
        ]

    def __str__(self) -> str:
        label = "not the product" if self.not_product else self.category.slug
        return f"{label}: {self.original_name or self.sha256[:12]}"


class ModelVersionQuerySet(models.QuerySet):
    def active(self) -> ModelVersion | None:
        return self.filter(status=ModelVersion.Status.ACTIVE).first()


def artifact_path(instance: ModelVersion, filename: str) -> str:
    return f"models/v{instance.number}/{filename}"


class ModelVersion(models.Model):
    """One trained classifier: its artifacts, classes, threshold and quality figures."""

    class Status(models.TextChoices):
        TRAINING = "training", "Training"
        CANDIDATE = "candidate", "Candidate"
        ACTIVE = "active", "Active"
        RETIRED = "retired", "Retired"
        FAILED = "failed", "Failed"

    number = models.PositiveIntegerField(unique=True)
    status = models.CharField(max_length=20, choices=Status.choices, default=Status.TRAINING)
    classes = models.JSONField(default=list, help_text="Category slugs, in output order.")
    input_size = models.PositiveIntegerField(default=0)
    artifact = models.FileField(
        upload_to=artifact_path, max_length=200, blank=True, help_text="Full Keras model"
    )
    serving_artifact = models.FileField(
        upload_to=artifact_path, max_length=200, blank=True, help_text="LiteRT model for serving"
    )
    threshold = models.FloatField(
        null=True,
        blank=True,
        help_text="Confidence at or above which the model decides alone.",
    )
    metrics = models.JSONField(default=dict, blank=True)
    history = models.JSONField(default=dict, blank=True)
    trained_on = models.PositiveIntegerField(default=0, help_text="Number of training images")
    error = models.TextField(blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    activated_at = models.DateTimeField(null=True, blank=True)

    objects = ModelVersionQuerySet.as_manager()

    class Meta:
        ordering = ["-number"]
        constraints = [
            models.UniqueConstraint(
                fields=["status"], condition=Q(status="active"), name="one_active_model_version"
            )
        ]

    def __str__(self) -> str:
        return f"v{self.number} ({self.get_status_display().lower()})"

    @classmethod
    def next_number(cls) -> int:
        last = cls.objects.order_by("-number").values_list("number", flat=True).first()
        return (last or 0) + 1

    @property
    def is_usable(self) -> bool:
        return self.status in (self.Status.CANDIDATE, self.Status.ACTIVE, self.Status.RETIRED)

    def activate(self) -> None:
        """Make this the one active version; the previous active one is retired."""
        if not self.is_usable:
            raise ValueError(f"v{self.number} is {self.status} and cannot be activated")
        with transaction.atomic():
            ModelVersion.objects.select_for_update().filter(status=self.Status.ACTIVE).exclude(
                pk=self.pk
            ).update(status=self.Status.RETIRED)
            self.status = self.Status.ACTIVE
            self.activated_at = timezone.now()
            self.save(update_fields=["status", "activated_at"])

    def mark_failed(self, error: str) -> None:
        self.status = self.Status.FAILED
        self.error = error
        self.save(update_fields=["status", "error"])


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
