from __future__ import annotations

from django.conf import settings
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


class ModelVersionQuerySet(models.QuerySet):
    def active(self) -> ModelVersion | None:
        return self.filter(status=ModelVersion.Status.ACTIVE).first()

    def serving(self) -> ModelVersion | None:
        """The active version with only what classifying reads: its large JSON fields
        (metrics, training curves, the photos it trained on) took ~4 ms to load and decode
        on every quick check and every classified ad."""
        fields = (
            "number",
            "status",
            "classes",
            "input_size",
            "threshold",
            "serving_artifact",
            "served_backbone",
        )
        return self.filter(status=ModelVersion.Status.ACTIVE).only(*fields).first()


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
    trained_on = models.PositiveIntegerField(default=0, help_text="Number of training images")
    # ``photo_keys`` of each photo trained on (validation split included): says how many
    # of today's evaluation photos a version has seen.
    training_photos = models.JSONField(default=list, blank=True)
    backbone = models.CharField(
        max_length=100,
        blank=True,
        help_text="The pretrained backbone and input it builds on; empty: trained from scratch.",
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
            self.save(update_fields=["status", "activated_at"])

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
    """A change of the active version: who made which version active, instead of which."""

    class Action(models.TextChoices):
        PROMOTE = "promote", "Promoted"
        AUTO_PROMOTE = "auto_promote", "Promoted automatically"
        ROLLBACK = "rollback", "Rolled back"

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
    rescored_ads = models.PositiveIntegerField(
        default=0, help_text="Ads in review sent back to be classified by the new version"
    )
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        previous = f" (was v{self.previous.number})" if self.previous else ""
        return f"v{self.version.number} {self.get_action_display().lower()}{previous}"


class LabelCheck(models.Model):
    """One search for suspected label errors among the training images (confident
    learning on out-of-fold predictions), run on the training queue."""

    class Status(models.TextChoices):
        RUNNING = "running", "Running"
        DONE = "done", "Done"
        FAILED = "failed", "Failed"

    status = models.CharField(max_length=20, choices=Status.choices, default=Status.RUNNING)
    folds = models.PositiveSmallIntegerField(default=3)
    epochs = models.PositiveSmallIntegerField(default=0, help_text="0: the default recipe's")
    requested_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    created_at = models.DateTimeField(default=timezone.now)
    started_at = models.DateTimeField(null=True, blank=True)
    heartbeat_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    progress = models.JSONField(default=dict, blank=True)
    checked = models.PositiveIntegerField(default=0, help_text="Training images checked")
    flagged = models.PositiveIntegerField(default=0, help_text="Suspected label errors found")
    thresholds = models.JSONField(
        default=dict, blank=True, help_text="Per class: mean self-confidence (the bar to flag)"
    )
    error = models.TextField(blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        return f"label check {self.pk} ({self.get_status_display().lower()})"

    def claim(self) -> bool:
        now = timezone.now()
        claimed = LabelCheck.objects.filter(
            pk=self.pk, status=self.Status.RUNNING, started_at__isnull=True
        ).update(started_at=now, heartbeat_at=now)
        if claimed:
            self.started_at = self.heartbeat_at = now
        return bool(claimed)

    def record_progress(self, progress: dict) -> bool:
        now = timezone.now()
        progress = progress | {"updated_at": now.isoformat()}
        return bool(
            LabelCheck.objects.filter(pk=self.pk, status=self.Status.RUNNING).update(
                progress=progress, heartbeat_at=now
            )
        )

    def finish(self, status: str, **fields) -> bool:
        now = timezone.now()
        values = {"status": status, "finished_at": now, **fields}
        done = LabelCheck.objects.filter(pk=self.pk, status=self.Status.RUNNING).update(**values)
        if done:
            for name, value in values.items():
                setattr(self, name, value)
        return bool(done)


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
