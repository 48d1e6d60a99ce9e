from __future__ import annotations

import json
import uuid

from django.apps import apps
from django.conf import settings
from django.core.validators import MinValueValidator
from django.db import models
from django.db.models import Prefetch, Q
from django.utils import timezone


class CategoryQuerySet(models.QuerySet):
    def active(self):
        return self.filter(active=True)


class Category(models.Model):
    """A marketplace category. The classifier's classes are category slugs.

    What deactivating a category means (the one statement of the rule; docs/categories.md,
    "Deactivating a category", says it for admins):

    - Sellers: no new ad in it, and no ad moved into it (``ads.services``); the API and
      the pages list active categories only. Its ads stay as they are: published ones
      stay published, rejected ones rejected.
    - Ads of it in review stay in the queue. Moderators may recategorize them (to an
      active category) or reject them, not accept them in it (``moderation.services``).
    - Routing (``moderation.policy``): an ad in it is never published by the model: it
      goes to review as ``category_inactive``, with an active category suggested when its
      photos point to one; a photo predicted as an inactive category is never a reason to
      publish, nor a suggestion.
    - Training images labelled with it are kept but left out of training and of the
      evaluation set while it is inactive (``classifier.services.trainable_images``);
      the next version trained does not know it. The active version, which may know it,
      keeps serving.
    - Reactivated, all of this is undone: its photos count again.
    """

    name = models.CharField(max_length=100, unique=True)
    slug = models.SlugField(max_length=50, unique=True)
    active = models.BooleanField(
        default=True,
        help_text=(
            "Inactive: sellers cannot post in it; its ads are never published by the model; "
            "its training photos are kept but not trained on."
        ),
    )

    objects = CategoryQuerySet.as_manager()

    class Meta:
        ordering = ["name"]
        verbose_name_plural = "categories"

    def __str__(self) -> str:
        return self.name


class AdQuerySet(models.QuerySet):
    def visible_to(self, user) -> AdQuerySet:
        """The one place that says who sees which ads: sellers their own, staff all."""
        if not user.is_authenticated:
            return self.none()
        if user.is_staff:
            return self.all()
        return self.filter(seller=user)

    def in_review(self) -> AdQuerySet:
        """The moderators' queue: ads waiting for a human, oldest first (by entering review)."""
        return self.filter(status=Ad.Status.NEEDS_REVIEW).order_by("decided_at", "pk")

    def with_photos(self) -> AdQuerySet:
        """Categories, photos and their predictions in a fixed number of queries."""
        prediction = apps.get_model("classifier", "Prediction")
        return self.select_related("category", "suggested_category").prefetch_related(
            "images",
            Prefetch(
                "images__predictions",
                # Only the version's number is shown; its metrics and history are large JSON
                # that would otherwise be decoded again for every prediction.
                queryset=prediction.objects.select_related("model_version").defer(
                    "model_version__metrics", "model_version__history"
                ),
            ),
        )


class Ad(models.Model):
    """A seller's classified ad; its photos decide whether it is published or reviewed."""

    class Status(models.TextChoices):
        PENDING = "pending", "Pending classification"
        PUBLISHED = "published", "Published"
        NEEDS_REVIEW = "needs_review", "Needs review"
        REJECTED = "rejected", "Rejected"

    class ReviewReason(models.TextChoices):
        CATEGORY_MISMATCH = "category_mismatch", "Photos do not match the category"
        LOW_CONFIDENCE = "low_confidence", "The model is not confident"
        DUPLICATE_PHOTO = "duplicate_photo", "A photo is a copy of another seller's photo"
        UNKNOWN_CATEGORY = "unknown_category", "The model does not know this category"
        NONE_OF_THESE = "none_of_these", "A photo shows none of the categories"
        REVIEW_ONLY = "review_only", "The category does not publish alone yet (too little evidence)"
        CATEGORY_INACTIVE = "category_inactive", "The category is no longer active"
        MODEL_UNAVAILABLE = "model_unavailable", "No usable model (none active, or unloadable)"
        MODEL_UNVERIFIED = "model_unverified", "The model file is not the one the registry recorded"
        CLASSIFICATION_FAILED = "classification_failed", "Classification failed"

    class RejectionReason(models.TextChoices):
        NOT_PRODUCT = "not_product", "Not the product"
        PROHIBITED = "prohibited", "Prohibited item"
        DUPLICATE = "duplicate", "Duplicate ad"
        OTHER = "other", "Other (see the note)"

    # Category and photos may change only while the pipeline or a moderator has not decided.
    EDITABLE_STATUSES = (Status.PENDING, Status.NEEDS_REVIEW)

    seller = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="ads"
    )
    title = models.CharField(max_length=200)
    description = models.TextField(blank=True)
    price = models.DecimalField(max_digits=12, decimal_places=2, validators=[MinValueValidator(0)])
    category = models.ForeignKey(Category, on_delete=models.PROTECT, related_name="ads")
    status = models.CharField(
        max_length=20, choices=Status.choices, default=Status.PENDING, db_index=True
    )
    review_reason = models.CharField(max_length=30, choices=ReviewReason.choices, blank=True)
    suggested_category = models.ForeignKey(
        Category, on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    created_at = models.DateTimeField(default=timezone.now)
    updated_at = models.DateTimeField(auto_now=True)
    decided_at = models.DateTimeField(
        null=True, blank=True, help_text="When the ad was last routed or decided."
    )
    classification_requested_at = models.DateTimeField(null=True, blank=True)
    # Set by a moderator's rejection, so that the seller can see why.
    rejection_reason = models.CharField(max_length=20, choices=RejectionReason.choices, blank=True)
    rejection_note = models.TextField(blank=True)

    objects = AdQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [
            models.Index(fields=["status", "created_at"]),
            # The review queue: needs_review ads by when they entered review.
            models.Index(fields=["status", "decided_at"]),
        ]
        constraints = [
            models.CheckConstraint(condition=Q(price__gte=0), name="ad_price_not_negative")
        ]

    def __str__(self) -> str:
        return self.title

    @property
    def is_editable(self) -> bool:
        return self.status in self.EDITABLE_STATUSES

    def publish(self, category: Category | None = None) -> None:
        """Publish the ad; under ``category`` when a moderator recategorizes it."""
        changed: tuple[str, ...] = ()
        if category is not None:
            self.category = category
            changed = ("category",)
        self._route(self.Status.PUBLISHED, reason="", suggested_category=None, also=changed)

    def reject(self, reason: str, note: str = "") -> None:
        """A moderator's refusal; the reason and note are kept for the seller to read."""
        self.rejection_reason = self.RejectionReason(reason)
        self.rejection_note = note
        self._route(
            self.Status.REJECTED,
            reason="",
            suggested_category=None,
            also=("rejection_reason", "rejection_note"),
        )

    def send_to_review(self, reason: str, suggested_category: Category | None = None) -> None:
        self._route(self.Status.NEEDS_REVIEW, reason, suggested_category)

    def back_to_review(self, category: Category, reason: str, suggested_category, since) -> None:
        """Undo a moderator's decision: in review again as it was, in its seller's
        ``category``, at its old place in the queue (``since``)."""
        self._restore(self.Status.NEEDS_REVIEW, category, reason, suggested_category, since)

    def back_to_published(self, category: Category, since) -> None:
        """Undo a moderator's decision on an ad published alone that they were asked to
        check: published again in ``category``, as routed at ``since``."""
        self._restore(self.Status.PUBLISHED, category, "", None, since)

    def _restore(self, status, category: Category, reason, suggested_category, since) -> None:
        self.category = category
        self.rejection_reason, self.rejection_note = "", ""
        self._route(
            status,
            reason,
            suggested_category,
            also=("category", "rejection_reason", "rejection_note"),
        )
        if since is not None:
            self.decided_at = since
            self.save(update_fields=["decided_at"])

    def return_to_pending(self) -> None:
        """Forget the last routing: the ad goes through classification again."""
        self._route(self.Status.PENDING, reason="", suggested_category=None, decided=False)

    def _route(
        self, status, reason, suggested_category, decided: bool = True, also: tuple[str, ...] = ()
    ) -> None:
        self.status = status
        self.review_reason = self.ReviewReason(reason) if reason else ""
        self.suggested_category = suggested_category
        self.decided_at = timezone.now() if decided else None
        self.save(
            update_fields=[
                "status",
                "review_reason",
                "suggested_category",
                "decided_at",
                "updated_at",
                *also,
            ]
        )


def ad_photo_path(instance: AdImage | None, filename: str) -> str:
    # Random, never the uploaded name: names must not leak what sellers called their files.
    name = uuid.uuid4().hex
    return f"ads/{name[:2]}/{name}.jpg"


class AdImage(models.Model):
    """One photo of an ad, as re-encoded for storage (JPEG, no EXIF)."""

    ad = models.ForeignKey(Ad, on_delete=models.CASCADE, related_name="images")
    file = models.FileField(upload_to=ad_photo_path, max_length=200)
    position = models.PositiveSmallIntegerField(default=0)
    sha256 = models.CharField(max_length=64, db_index=True, help_text="Of the stored file")
    phash = models.CharField(max_length=16, db_index=True, help_text="64-bit perceptual hash, hex")
    width = models.PositiveIntegerField()
    height = models.PositiveIntegerField()
    original_name = models.CharField(max_length=255, blank=True)

    class Meta:
        ordering = ["ad", "position", "id"]

    def __str__(self) -> str:
        return f"photo {self.position + 1} of ad {self.ad_id}"

    def latest_prediction(self):
        """The newest Prediction for this photo, or None; uses prefetched rows if present."""
        predictions = list(self.predictions.all())
        return max(predictions, key=lambda p: (p.created_at, p.pk), default=None)


class IdempotencyKey(models.Model):
    """A seller's ``Idempotency-Key`` for posting an ad, with the answer the post was given.

    Saved in the same transaction as the ad: once it is committed both exist, so a retry
    after a lost answer (the database gone between the commit and the answer) finds the
    ad's answer instead of posting it again. Unique per seller; purged after
    ``ADS_IDEMPOTENCY_KEEP_HOURS`` (``ads.services.purge_idempotency_keys``).
    """

    seller = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    key = models.CharField(max_length=255)
    fingerprint = models.CharField(
        max_length=64, help_text="SHA-256 of the request's fields and photos' bytes"
    )
    # Kept when the ad is deleted: a retry still gets the first answer, and posts nothing.
    ad = models.ForeignKey(Ad, on_delete=models.SET_NULL, null=True, blank=True, related_name="+")
    status_code = models.PositiveSmallIntegerField()
    # JSON text rather than a JSONField: PostgreSQL's jsonb would reorder the keys, and a
    # replay is the first answer as it was sent.
    body = models.TextField(help_text="The answer's JSON, as first sent")
    created_at = models.DateTimeField(default=timezone.now, db_index=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["seller", "key"], name="idempotency_key_per_seller")
        ]

    def __str__(self) -> str:
        return f"{self.key} of {self.seller_id}"

    def answer(self) -> dict:
        return json.loads(self.body)
