"""The platform's own series, read from the database when Prometheus scrapes ``/metrics``
(``avito_mod.metrics``, which finds this collector by the METRICS_DATABASE_COLLECTOR
setting: it sits below the apps it counts). Here, at the top layer, because it counts what
every app keeps.

Ads, the queues, predictions, training runs, decisions and audits all live in the database, which
every web process and worker host shares: counting them at scrape time (six aggregate
queries) gives the same answer whichever web process answers, survives restarts, and needs
no port on the worker hosts. The inference latency is the one each worker measured and
stored with its predictions (``Prediction.latency_ms``: the batch's time per photo).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator

from django.conf import settings
from django.db import DatabaseError
from django.db.models import Count, Min, Q, Sum
from django.utils import timezone
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)

from ads.models import Ad
from classifier.models import ModelVersion, Prediction

from . import audit
from .models import ModerationDecision

logger = logging.getLogger(__name__)

# Seconds per photo: int8 inference takes about 5 ms a photo on one core.
INFERENCE_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)
TRAINED = (ModelVersion.Status.CANDIDATE, ModelVersion.Status.ACTIVE, ModelVersion.Status.RETIRED)


class DatabaseCollector:
    """A prometheus_client collector (registered per scrape by the view, never globally, so
    that nothing else can make it query the database)."""

    def collect(self) -> Iterator[Metric]:
        started = time.perf_counter()
        try:
            families = list(_from_database())
        except DatabaseError as error:
            # The web server's own series still go out, with the outage stated.
            logger.warning("metrics: the database cannot be read: %s", error)
            families = []
        up = GaugeMetricFamily(
            "avito_metrics_database_up", "1 when the figures below could be read, else 0"
        )
        up.add_metric([], 1 if families else 0)
        took = GaugeMetricFamily(
            "avito_metrics_collect_seconds", "Time this scrape took to read the figures"
        )
        took.add_metric([], time.perf_counter() - started)
        yield from (*families, up, took)


def _from_database() -> Iterator[Metric]:
    versions = list(ModelVersion.objects.values("pk", "number", "status", "finished_at"))
    yield from ads_and_queues()
    yield from predictions({v["pk"]: v["number"] for v in versions})
    yield from training(versions)
    yield from decisions()
    yield from audits()


def ads_and_queues() -> Iterator[Metric]:
    # COUNT(*) by status alone is read from the status index; only the two queues' rows
    # (few, next to all the published ones) are read for their reasons and ages.
    counts = dict(Ad.objects.order_by().values_list("status").annotate(n=Count("*")))
    waiting = list(
        Ad.objects.filter(status__in=(Ad.Status.PENDING, Ad.Status.NEEDS_REVIEW))
        .order_by()
        .values("status", "review_reason")
        .annotate(n=Count("*"), since_decided=Min("decided_at"), since_updated=Min("updated_at"))
    )
    by_status = GaugeMetricFamily("avito_ads", "Ads by status", labels=["status"])
    for status in Ad.Status.values:
        by_status.add_metric([status], counts.get(status, 0))
    in_review = GaugeMetricFamily(
        "avito_ads_in_review", "Ads waiting for a moderator, by why", labels=["reason"]
    )
    reviewed = [r for r in waiting if r["status"] == Ad.Status.NEEDS_REVIEW]
    for reason in Ad.ReviewReason.values:
        in_review.add_metric(
            [reason], sum(r["n"] for r in reviewed if r["review_reason"] == reason)
        )
    yield from (by_status, in_review)
    yield from queues(waiting)


def queues(rows: list[dict]) -> Iterator[Metric]:
    """The classification queue (pending ads, waiting since their upload or last edit) and
    the review queue (waiting since they entered review, as the moderators' queue orders)."""
    length = GaugeMetricFamily("avito_queue_ads", "Ads waiting in a queue", labels=["queue"])
    wait = GaugeMetricFamily(
        "avito_queue_oldest_wait_seconds",
        "How long the oldest ad in a queue has waited (0: empty)",
        labels=["queue"],
    )
    now = timezone.now()
    for queue, status, since in (
        ("classification", Ad.Status.PENDING, "since_updated"),
        ("review", Ad.Status.NEEDS_REVIEW, "since_decided"),
    ):
        waiting = [r for r in rows if r["status"] == status]
        length.add_metric([queue], sum(r["n"] for r in waiting))
        oldest = min((r[since] for r in waiting if r[since] is not None), default=None)
        wait.add_metric([queue], (now - oldest).total_seconds() if oldest else 0.0)
    yield from (length, wait)


def predictions(version_numbers: dict[int, int]) -> Iterator[Metric]:
    buckets = {
        f"le{i}": Count("pk", filter=Q(latency_ms__lte=b * 1000))
        for i, b in enumerate(INFERENCE_BUCKETS)
    }
    rows = (
        Prediction.objects.order_by()
        .values("model_version_id")
        .annotate(n=Count("pk"), total_ms=Sum("latency_ms"), **buckets)
    )
    classified = CounterMetricFamily(
        "avito_photos_classified",
        "Ad photos classified, by model version",
        labels=["model_version"],
    )
    latency = HistogramMetricFamily(
        "avito_inference_seconds",
        "Inference time per photo (its batch's time shared by its photos), by model version",
        labels=["model_version"],
    )
    for row in rows:
        version = str(version_numbers[row["model_version_id"]])
        classified.add_metric([version], row["n"])
        counts = [(str(b), row[f"le{i}"]) for i, b in enumerate(INFERENCE_BUCKETS)]
        latency.add_metric([version], counts + [("+Inf", row["n"])], (row["total_ms"] or 0) / 1000)
    yield from (classified, latency)


def training(versions: list[dict]) -> Iterator[Metric]:
    """Training runs are the versions trained here; the shipped ones never ran (no end)."""
    runs = CounterMetricFamily(
        "avito_training_runs", "Training runs that ended, by outcome", labels=["outcome"]
    )
    succeeded = sum(1 for v in versions if v["status"] in TRAINED and v["finished_at"])
    failed = sum(1 for v in versions if v["status"] == ModelVersion.Status.FAILED)
    runs.add_metric(["succeeded"], succeeded)
    runs.add_metric(["failed"], failed)
    running = GaugeMetricFamily("avito_training_runs_running", "Training runs under way or queued")
    running.add_metric([], sum(1 for v in versions if v["status"] == ModelVersion.Status.TRAINING))
    active = GaugeMetricFamily(
        "avito_active_model_version", "The active model version's number (0: none)"
    )
    active.add_metric(
        [], next((v["number"] for v in versions if v["status"] == ModelVersion.Status.ACTIVE), 0)
    )
    yield from (runs, running, active)


def decisions() -> Iterator[Metric]:
    rows = {
        row["action"]: row
        for row in ModerationDecision.objects.order_by()
        .values("action")
        .annotate(n=Count("pk"), undone=Count("pk", filter=Q(undone_at__isnull=False)))
    }
    made = CounterMetricFamily(
        "avito_moderation_decisions",
        "Moderators' decisions, by action (undone ones included)",
        labels=["action"],
    )
    undone = CounterMetricFamily(
        "avito_moderation_decisions_undone",
        "Decisions their moderator undid, by action",
        labels=["action"],
    )
    for action in ModerationDecision.Action.values:
        row = rows.get(action, {"n": 0, "undone": 0})
        made.add_metric([action], row["n"])
        undone.add_metric([action], row["undone"])
    yield from (made, undone)


def audits() -> Iterator[Metric]:
    """The live audit of automatic decisions over MODERATION_AUDIT_WINDOW_DAYS, per category
    the model published ads in: the error rate with its 95 % interval (only where some audit
    was answered: no answer is no figure, not 0), and the counts it rests on."""
    days = settings.MODERATION_AUDIT_WINDOW_DAYS
    window = f" over the last {days} days (MODERATION_AUDIT_WINDOW_DAYS)"
    labels = ["category"]
    families = {
        "rate": GaugeMetricFamily(
            "avito_audit_error_rate",
            "Share of audited automatic decisions that moderators corrected" + window,
            labels=labels,
        ),
        "low": GaugeMetricFamily(
            "avito_audit_error_rate_low", "Lower end of its 95 % Wilson interval", labels=labels
        ),
        "high": GaugeMetricFamily(
            "avito_audit_error_rate_high", "Upper end of its 95 % Wilson interval", labels=labels
        ),
        "answered": GaugeMetricFamily(
            "avito_audits_answered", "Audits moderators answered" + window, labels=labels
        ),
        "wrong": GaugeMetricFamily(
            "avito_audits_wrong", "Audits whose ad moderators corrected" + window, labels=labels
        ),
        "waiting": GaugeMetricFamily(
            "avito_audits_waiting", "Audits waiting for a moderator" + window, labels=labels
        ),
    }
    for error in audit.live_errors(days):
        slug = [error.category.slug]
        families["answered"].add_metric(slug, error.answered)
        families["wrong"].add_metric(slug, error.wrong)
        families["waiting"].add_metric(slug, error.waiting)
        if error.answered:
            low, high = error.interval
            families["rate"].add_metric(slug, error.rate)
            families["low"].add_metric(slug, low)
            families["high"].add_metric(slug, high)
    yield from families.values()
