"""Labelled photos the classifier trains and is evaluated on, and their backbone features
kept per photo."""

from __future__ import annotations

from django.conf import settings
from django.db import models
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

    class Subset(models.TextChoices):
        TRAIN = "train", "Training"
        EVALUATION = "evaluation", "Evaluation (held out)"

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
    # Chosen once, when the photo is first stored, and never changed by training: versions
    # are compared on the same held-out photos, and near-copies share a side.
    subset = models.CharField(
        max_length=20,
        choices=Subset.choices,
        default=Subset.TRAIN,
        help_text="Training, or the held-out evaluation set on which versions are compared.",
    )
    labelled_at = models.DateTimeField(default=timezone.now, help_text="When the label was given")
    excluded = models.BooleanField(
        default=False, help_text="Left out of training and evaluation (the label is kept)."
    )
    excluded_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    excluded_at = models.DateTimeField(null=True, blank=True)
    exclusion_reason = models.CharField(max_length=200, blank=True)
    relabelled_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    relabelled_at = models.DateTimeField(null=True, blank=True)
    relabelled_from = models.ForeignKey(
        Category, on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    # Set by the last label check (confident learning): the class the model, trained
    # without this photo, confidently sees instead of the given label.
    suspected_category = models.ForeignKey(
        Category, on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    suspected_confidence = models.FloatField(null=True, blank=True)
    suspected_margin = models.FloatField(
        null=True,
        blank=True,
        help_text="Probability of the suspected class minus that of the given label.",
    )
    suspected_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [
            models.Index(fields=["category", "source"]),
            models.Index(fields=["subset", "excluded"]),
        ]
        constraints = [
            models.CheckConstraint(
                condition=Q(category__isnull=False, not_product=False)
                | Q(category__isnull=True, not_product=True),
                name="training_image_category_or_not_product",
            )
        ]

    def __str__(self) -> str:
        # No category yet while an admin's form is being corrected: still nameable.
        label = "not the product" if self.not_product else getattr(self.category, "slug", "—")
        return f"{label}: {self.original_name or self.sha256[:12]}"

    def exclude(self, user, reason: str = "") -> None:
        """Leave the photo out of training and evaluation; its label is kept."""
        self.excluded, self.excluded_by, self.excluded_at = True, user, timezone.now()
        self.exclusion_reason = reason[:200]
        self.save(update_fields=["excluded", "excluded_by", "excluded_at", "exclusion_reason"])

    def include(self) -> None:
        self.excluded, self.excluded_by, self.excluded_at, self.exclusion_reason = (
            False,
            None,
            None,
            "",
        )
        self.save(update_fields=["excluded", "excluded_by", "excluded_at", "exclusion_reason"])

    def relabel(self, category: Category, user) -> None:
        """An admin's correction; the source stays (where the photo came from)."""
        if category.pk == self.category_id:
            raise ValueError(f"{self} is already labelled {category}")
        self.relabelled_from = self.category
        self.category, self.not_product = category, False
        self.relabelled_by, self.relabelled_at = user, timezone.now()
        self.labelled_at = self.relabelled_at
        self.clear_suspicion(save=False)
        self.save(
            update_fields=[
                "category",
                "not_product",
                "relabelled_from",
                "relabelled_by",
                "relabelled_at",
                "labelled_at",
                *SUSPICION_FIELDS,
            ]
        )

    def clear_suspicion(self, save: bool = True) -> None:
        for name in SUSPICION_FIELDS:
            setattr(self, name, None)
        if save:
            self.save(update_fields=SUSPICION_FIELDS)


SUSPICION_FIELDS = [
    "suspected_category",
    "suspected_confidence",
    "suspected_margin",
    "suspected_at",
]


# How ModelVersion.training_photos names a photo: the first hex digits of its sha256.
PHOTO_KEY_DIGITS = 16


def photo_keys(sha256s) -> list[str]:
    """What ``ModelVersion.training_photos`` holds for photos with these sha256s, sorted."""
    return sorted({sha256[:PHOTO_KEY_DIGITS] for sha256 in sha256s})


class ImageFeatures(models.Model):
    """A training photo's pooled backbone features, kept so that retraining a head takes
    seconds: computed once per (photo, backbone), for the photo and its mirror image."""

    image = models.ForeignKey(TrainingImage, on_delete=models.CASCADE, related_name="features")
    backbone = models.CharField(max_length=100)
    # float16, shape (2, n_features): the photo, then its mirror image.
    data = models.BinaryField()
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        verbose_name_plural = "image features"
        constraints = [
            models.UniqueConstraint(fields=["image", "backbone"], name="one_features_per_backbone")
        ]

    def __str__(self) -> str:
        return f"features of {self.image_id} ({self.backbone})"
