"""Model versions: their artifacts, the shared int8 backbone, promotions and rollbacks."""

from __future__ import annotations

from django.conf import settings
from django.db import models, transaction
from django.db.models import Q
from django.utils import timezone


class ModelVersionQuerySet(models.QuerySet):
    def active(self) -> ModelVersion | None:
        return self.filter(status=ModelVersion.Status.ACTIVE).first()

    def serving(self) -> ModelVersion | None:
        """The active version with only what classifying reads: its large JSON fields
        (metrics, training curves, the photos it trained on) took ~4 ms to load and decode
        on every quick check and every classified ad."""
        return self.filter(status=ModelVersion.Status.ACTIVE).only(*SERVING_FIELDS).first()


# What classifying reads of a version (the active one, and one in shadow); the backbone id
# names the ImageNet head its labels come from.
SERVING_FIELDS = (
    "number",
    "status",
    "classes",
    "input_size",
    "threshold",
    "serving_artifact",
    "served_backbone",
    "backbone",
    "evidence",
)


def artifact_path(instance: ModelVersion, filename: str) -> str:
    return f"models/v{instance.number}/{filename}"


class ServedBackbone(models.Model):
    """The frozen pretrained backbone in int8 LiteRT, converted once per backbone id and
    shared by every version retrained on it: a retrain then stores only its heads instead
    of converting and calibrating the whole network again (~25 s of every retrain)."""

    backbone = models.CharField(max_length=100, unique=True, help_text="Its backbone id.")
    artifact = models.FileField(upload_to="backbones/", max_length=200)
    artifact_sha256 = models.CharField(max_length=64, blank=True, editable=False)
    calibrated_on = models.PositiveIntegerField(
        help_text="Training photos whose activations set the int8 ranges."
    )
    # The same network in float32, built from the installed weights package where a worker
    # asked for it (services/serving_forms.py): faster than int8 on CPUs without VNNI.
    float32_artifact = models.FileField(upload_to="backbones/", max_length=200, blank=True)
    float32_artifact_sha256 = models.CharField(max_length=64, blank=True, editable=False)
    created_at = models.DateTimeField(default=timezone.now)

    def __str__(self) -> str:
        return f"{self.backbone} (int8)"


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
        upload_to=artifact_path,
        max_length=200,
        blank=True,
        help_text="LiteRT model for serving, or its heads when it has a served backbone",
    )
    # Recorded when the files are stored; every load compares (services/artifacts.py).
    artifact_sha256 = models.CharField(max_length=64, blank=True, editable=False)
    serving_artifact_sha256 = models.CharField(max_length=64, blank=True, editable=False)
    served_backbone = models.ForeignKey(
        ServedBackbone,
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="versions",
        help_text="Served as this int8 backbone, then the heads in the serving artifact; "
        "empty: the serving artifact is the whole model.",
    )
    threshold = models.FloatField(
        null=True,
        blank=True,
        help_text="Confidence at or above which the model decides alone.",
    )
    metrics = models.JSONField(default=dict, blank=True)
    history = models.JSONField(default=dict, blank=True)
    # On the held-out evaluation set, at the version's threshold; recomputed for the
    # active version whenever a candidate is measured, so the two share the same photos.
    evaluation = models.JSONField(default=dict, blank=True)
    # Per class, the counts that say whether the category may publish alone
    # (``services.evidence``): small, read by the workers for every ad.
    evidence = models.JSONField(default=dict, blank=True)
    trained_on = models.PositiveIntegerField(default=0, help_text="Number of training images")
    # ``photo_keys`` of each photo trained on (validation split included): says how many
    # of today's evaluation photos a version has seen.
    training_photos = models.JSONField(default=list, blank=True)
    backbone = models.CharField(
        max_length=100,
        blank=True,
        help_text="The pretrained backbone and input it builds on; empty: trained from scratch.",
    )
    with_shipped_features = models.BooleanField(
        default=True,
        help_text="Trained on the shipped photos' features as well as the database's "
        "(services.shipped); an admin may leave them out.",
    )
    error = models.TextField(blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    activated_at = models.DateTimeField(null=True, blank=True)
    requested_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    started_at = models.DateTimeField(null=True, blank=True, help_text="When training began")
    finished_at = models.DateTimeField(null=True, blank=True)
    heartbeat_at = models.DateTimeField(
        null=True, blank=True, help_text="The training run's last sign of life"
    )
    progress = models.JSONField(default=dict, blank=True)
    data_as_of = models.DateTimeField(
        null=True,
        blank=True,
        help_text="When the training images were read: labels given later are not in it.",
    )
    # In shadow: the workers score every new photo with it too, and never route by it
    # (``classifier.services.shadow``). ``shadow_since`` stays after it leaves: its figures' start.
    in_shadow = models.BooleanField(default=False)
    shadow_since = models.DateTimeField(null=True, blank=True)

    objects = ModelVersionQuerySet.as_manager()

    class Meta:
        ordering = ["-number"]
        constraints = [
            models.UniqueConstraint(
                fields=["status"], condition=Q(status="active"), name="one_active_model_version"
            ),
            # One training at a time: the training queue has one worker process.
            models.UniqueConstraint(
                fields=["status"], condition=Q(status="training"), name="one_training_model_version"
            ),
            # One version in shadow at a time, and only a candidate: promoting it ends it.
            models.UniqueConstraint(
                fields=["in_shadow"], condition=Q(in_shadow=True), name="one_shadow_model_version"
            ),
            models.CheckConstraint(
                condition=Q(in_shadow=False) | Q(status="candidate"),
                name="only_candidates_in_shadow",
            ),
        ]
        permissions = [
            ("train_modelversion", "Can train new model versions and check training labels"),
            ("promote_modelversion", "Can promote and roll back model versions"),
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
            self.in_shadow = False  # an active version routes: it is no longer in shadow
            self.save(update_fields=["status", "activated_at", "in_shadow"])

    def mark_failed(self, error: str) -> bool:
        """Fail a version still training; False if it is no longer training (cancelled)."""
        now = timezone.now()
        failed = ModelVersion.objects.filter(pk=self.pk, status=self.Status.TRAINING).update(
            status=self.Status.FAILED, error=error, finished_at=now
        )
        if failed:
            self.status, self.error, self.finished_at = self.Status.FAILED, error, now
        return bool(failed)

    def claim_training(self) -> bool:
        """Start training this version, once: a second delivery of the task gets False."""
        now = timezone.now()
        claimed = ModelVersion.objects.filter(
            pk=self.pk, status=self.Status.TRAINING, started_at__isnull=True
        ).update(started_at=now, heartbeat_at=now)
        if claimed:
            self.started_at = self.heartbeat_at = now
        return bool(claimed)

    def record_progress(self, progress: dict) -> bool:
        """Store how far training is (a conditional update: training runs outside any
        transaction); False when the version stopped training meanwhile (cancelled)."""
        now = timezone.now()
        progress = progress | {"updated_at": now.isoformat()}
        return bool(
            ModelVersion.objects.filter(pk=self.pk, status=self.Status.TRAINING).update(
                progress=progress, heartbeat_at=now
            )
        )


class ModelVersionEvent(models.Model):
    """A change of the active version: who made which version active, instead of which; or
    a version put in shadow or taken out of it (``previous``: the active version then)."""

    class Action(models.TextChoices):
        PROMOTE = "promote", "Promoted"
        AUTO_PROMOTE = "auto_promote", "Promoted automatically"
        ROLLBACK = "rollback", "Rolled back"
        SHADOW_START = "shadow_start", "Put in shadow"
        SHADOW_END = "shadow_end", "Left shadow"

    version = models.ForeignKey(ModelVersion, on_delete=models.PROTECT, related_name="events")
    previous = models.ForeignKey(
        ModelVersion,
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="+",
        help_text="The version that was active before",
    )
    action = models.CharField(max_length=20, choices=Action.choices)
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    note = models.TextField(blank=True)
    # A promotion the guard refused (the candidate worse than the active version on a
    # class, ``retraining.promotion_guard``), made anyway: what it said, and the admin's why.
    refused = models.TextField(blank=True, help_text="What the promotion guard said")
    override_reason = models.TextField(
        blank=True, help_text="Why an admin promoted it despite the guard"
    )
    rescored_ads = models.PositiveIntegerField(
        default=0, help_text="Ads in review sent back to be classified by the new version"
    )
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        previous = f" (was v{self.previous.number})" if self.previous else ""
        return f"v{self.version.number} {self.get_action_display().lower()}{previous}"
