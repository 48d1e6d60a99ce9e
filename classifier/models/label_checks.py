"""Label checks: a run of confident learning over the labelled photos."""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.utils import timezone


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
