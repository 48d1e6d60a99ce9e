"""Routing an ad: its photos classified by the serving model, the policy applied, its status
set. What the inference worker runs.

Idempotent and safe under at-least-once delivery: predictions are unique per (photo,
model version), and the ad's new status is written by a conditional update that only
succeeds while the ad is still pending and unchanged since it was read. A duplicate
delivery, a retry, or an ad edited mid-flight therefore never routes an ad twice.
"""

from __future__ import annotations

import logging
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import timedelta

import numpy as np
from django.conf import settings
from django.db import transaction
from django.db.models import Value
from django.db.models.functions import Coalesce
from django.utils import timezone

from ads.models import Ad, AdImage
from ads.verdicts import PhotoVerdict, verdict_of
from classifier.ml.preprocess import ImageError
from classifier.models import ModelVersion, Prediction
from classifier.services import ClassifierError, classify_images, shadow
from classifier.services.artifacts import ArtifactMismatch
from classifier.services.evidence import review_only_classes

from . import audit
from .policy import Routing, decide, review

logger = logging.getLogger(__name__)


def classify_ad(ad_id: int) -> str:
    """Classify a pending ad's photos and route it. Returns what happened, for logs."""
    ad = Ad.objects.select_related("category").filter(pk=ad_id).first()
    if ad is None or ad.status != Ad.Status.PENDING:
        return "skipped: not pending"
    images = list(ad.images.order_by("position", "id"))
    version = ModelVersion.objects.serving()
    scored = None
    if version is None:
        routing = review(Ad.ReviewReason.MODEL_UNAVAILABLE)
    else:
        routing, scored = _classify_and_decide(ad, images, version)
    outcome = _apply(ad, routing, version)
    if scored is not None:
        # Only once the ad is routed: the version in shadow can neither change nor delay it.
        _score_in_shadow(ad, images, version, routing, scored)
    return outcome


@dataclass
class _Scored:
    """What routing learnt of an ad's photos, which the version in shadow reuses."""

    features: dict[int, np.ndarray]  # the served backbone's, by photo (fresh ones only)
    has_duplicate: bool


def _classify_and_decide(
    ad: Ad, images: list[AdImage], version: ModelVersion
) -> tuple[Routing, _Scored | None]:
    try:
        verdicts, features = _predict(images, version)
    except ArtifactMismatch as error:
        logger.error("ad %s: model v%s refused: %s", ad.pk, version.number, error)
        return review(Ad.ReviewReason.MODEL_UNVERIFIED), None
    except ClassifierError as error:
        logger.error("ad %s: model v%s unavailable: %s", ad.pk, version.number, error)
        return review(Ad.ReviewReason.MODEL_UNAVAILABLE), None
    except (ImageError, OSError) as error:
        logger.error("ad %s: a photo could not be classified: %s", ad.pk, error)
        return review(Ad.ReviewReason.CLASSIFICATION_FAILED), None
    scored = _Scored(features, _has_duplicate_photo(ad, images))
    routing = decide(
        ad.category,
        verdicts,
        version.classes,
        version.threshold,
        has_duplicate=scored.has_duplicate,
        review_only=review_only_classes(version),
    )
    return routing, scored


def _predict(
    images: list[AdImage], version: ModelVersion
) -> tuple[list[PhotoVerdict], dict[int, np.ndarray]]:
    """One batch for all photos; reuses predictions a previous delivery already stored.
    Also returns the backbone features of the photos classified now, by photo id (none
    for a version served as one whole model)."""
    stored = {
        p.image_id: p for p in Prediction.objects.filter(image__in=images, model_version=version)
    }
    missing = [image for image in images if image.pk not in stored]
    features = {}
    if missing:
        # Side by side: from a bucket each read is a request, whose waits then overlap.
        with ThreadPoolExecutor(len(missing), thread_name_prefix="photo-reader") as readers:
            contents = list(readers.map(_read, missing))
        started = time.perf_counter()
        results = classify_images(contents, version)
        per_photo_ms = (time.perf_counter() - started) * 1000 / len(missing)
        new = [
            Prediction(
                image=image,
                model_version=version,
                category=result.category,
                confidence=result.confidence,
                probabilities=result.probabilities,
                none_of_these=result.none_of_these,
                imagenet_labels=result.looks_like,
                latency_ms=round(per_photo_ms, 3),
            )
            for image, result in zip(missing, results, strict=True)
        ]
        Prediction.objects.bulk_create(new, ignore_conflicts=True)
        stored |= {
            p.image_id: p
            for p in Prediction.objects.filter(image__in=missing, model_version=version)
        }
        features = {
            image.pk: result.features
            for image, result in zip(missing, results, strict=True)
            if result.features is not None
        }
    return [verdict_of(stored[image.pk]) for image in images], features


def _score_in_shadow(
    ad: Ad, images: list[AdImage], version: ModelVersion, routing: Routing, scored: _Scored
) -> None:
    """The version in shadow, if any, answers on the ad's photos, and the policy says what
    it would have done with the ad (``classifier.services.shadow``); nothing is routed by it. Its
    failure is logged and leaves the ad as routed."""
    candidate = shadow.in_shadow()
    if candidate is None:
        return
    try:
        answers = shadow.score(candidate, version, images, scored.features, _read)
    except (ClassifierError, ImageError, OSError, ValueError) as error:
        logger.error("ad %s: v%s in shadow could not score it: %s", ad.pk, candidate.number, error)
        return
    would = decide(
        ad.category,
        [verdict_of(answer) for answer in answers],
        candidate.classes,
        candidate.threshold,
        has_duplicate=scored.has_duplicate,
        review_only=review_only_classes(candidate),
    )
    shadow.record_routing(
        ad, candidate, version, (routing.status, routing.reason), (would.status, would.reason)
    )


def _read(image: AdImage) -> bytes:
    with image.file.open("rb") as handle:
        return handle.read()


def _has_duplicate_photo(ad: Ad, images: list[AdImage]) -> bool:
    """A photo identical or near-identical (same perceptual hash) to another seller's."""
    return (
        AdImage.objects.filter(phash__in=[image.phash for image in images])
        .exclude(ad__seller_id=ad.seller_id)
        .exists()
    )


def _apply(ad: Ad, routing: Routing, version: ModelVersion | None = None) -> str:
    now = timezone.now()
    # An ad re-scored by a newly active version kept its decided_at: back in review, it
    # keeps its place in the queue. (A seller's edit clears it: the ad starts again.)
    decided_at = (
        Coalesce("decided_at", Value(now)) if routing.status == Ad.Status.NEEDS_REVIEW else now
    )
    with transaction.atomic():
        claimed = Ad.objects.filter(
            pk=ad.pk, status=Ad.Status.PENDING, updated_at=ad.updated_at
        ).update(
            status=routing.status,
            review_reason=routing.reason,
            suggested_category=routing.suggested_category,
            decided_at=decided_at,
        )
        # Published alone: perhaps drawn for the live audit too. In the same transaction,
        # so that a published ad was either drawn or not, never lost between the two.
        audited = claimed and routing.status == Ad.Status.PUBLISHED
        audited = audited and audit.sample(ad, version, now)
    if not claimed:
        # Edited while we classified: the edit may not have asked for a new run (a price
        # change), so ask again rather than leave the ad pending until the sweep.
        if Ad.objects.filter(pk=ad.pk, status=Ad.Status.PENDING).exists():
            enqueue([ad.pk])
        return "skipped: changed meanwhile"
    outcome = f"{routing.status} {routing.reason}".strip()
    # One line per routing, with the version: an ad routed twice by one version would be a
    # broken claim (bench/faults.py counts these lines).
    logger.info("ad %s routed by model v%s: %s", ad.pk, version.number if version else "-", outcome)
    if audited:
        logger.info("ad %s drawn for the live audit of automatic decisions", ad.pk)
    return outcome


# --- Enqueueing ---------------------------------------------------------------------


def on_classification_requested(sender, ad_ids: list[int], **kwargs) -> None:
    """An ad was posted or changed (``ads.signals.classification_requested``)."""
    enqueue(ad_ids)


# Reasons another model may answer differently. Not duplicate_photo: that is a fact about
# other sellers' photos, whatever the model says.
RESCORED_REASONS = [
    Ad.ReviewReason.CATEGORY_MISMATCH,
    Ad.ReviewReason.LOW_CONFIDENCE,
    Ad.ReviewReason.MODEL_UNAVAILABLE,
    Ad.ReviewReason.MODEL_UNVERIFIED,
    Ad.ReviewReason.UNKNOWN_CATEGORY,
    Ad.ReviewReason.CLASSIFICATION_FAILED,
    # A version that knows more categories may know what the photo shows.
    Ad.ReviewReason.NONE_OF_THESE,
    # A new version may have the evidence its category lacked.
    Ad.ReviewReason.REVIEW_ONLY,
]


def send_back_for_rescoring(sender, version: ModelVersion, **kwargs) -> list[int]:
    """A new active version (``classifier.signals.serving_version_changed``, inside its
    transaction): the ads in review for a model-dependent reason go back to pending (so no
    moderator can decide them meanwhile) and to the queue once committed. They keep
    ``decided_at``, their place in the queue. Returns their ids."""
    in_review = Ad.objects.filter(status=Ad.Status.NEEDS_REVIEW, review_reason__in=RESCORED_REASONS)
    ids = list(in_review.select_for_update().values_list("pk", flat=True))
    in_review.update(
        status=Ad.Status.PENDING,
        review_reason="",
        suggested_category=None,
        updated_at=timezone.now(),
    )
    transaction.on_commit(lambda: enqueue(ids))
    return ids


def enqueue(ad_ids: list[int]) -> int:
    """Send ads to the inference queue; returns how many were sent.

    A broker that is down must not fail the upload: the ads stay pending with their
    request time, and ``requeue_stale_ads`` sends them again once it is back.
    """
    from kombu.exceptions import OperationalError

    from .tasks import classify_ad as classify_ad_task

    Ad.objects.filter(pk__in=ad_ids).update(classification_requested_at=timezone.now())
    sent = 0
    for ad_id in ad_ids:
        try:
            classify_ad_task.delay(ad_id)
        except OperationalError as error:
            logger.warning("ad %s stays pending: broker unavailable (%s)", ad_id, error)
            continue
        sent += 1
    return sent


def requeue_stale_ads() -> int:
    """Enqueue again the pending ads whose classification was asked for long ago: lost with
    a worker that died (the tasks it ran and those it had prefetched), or never sent (the
    broker was down). Returns how many were sent.

    Stale after ADS_REQUEUE_PENDING_AFTER seconds while nothing waits in the inference
    queue: the live workers keep up, so an ad pending that long is in no one's hands. While
    a backlog waits, only after ADS_REQUEUE_BACKLOGGED_AFTER, so that the ads waiting their
    turn in a long queue are not all sent a second time. A second delivery of an ad that was
    not lost after all changes nothing (``_apply`` routes an ad once).
    """
    waiting = waiting_for_inference()
    if waiting is None:
        return 0  # the broker is down: nothing can be sent; the next sweep tries again
    after = settings.ADS_REQUEUE_BACKLOGGED_AFTER if waiting else settings.ADS_REQUEUE_PENDING_AFTER
    cutoff = timezone.now() - timedelta(seconds=after)
    with transaction.atomic():
        stale = list(
            Ad.objects.filter(
                status=Ad.Status.PENDING, classification_requested_at__lt=cutoff
            ).values_list("pk", flat=True)[:1000]
        )
        never = list(
            Ad.objects.filter(
                status=Ad.Status.PENDING,
                classification_requested_at__isnull=True,
                created_at__lt=cutoff,
            ).values_list("pk", flat=True)[:1000]
        )
    if stale or never:
        logger.warning(
            "re-sending %d ad(s) pending for over %d s (%d task(s) waiting in the queue)",
            len(stale) + len(never),
            after,
            waiting,
        )
    return enqueue(stale + never)


def waiting_for_inference() -> int | None:
    """Tasks waiting in the inference queue (not those a worker has taken), or None when
    the broker cannot be reached."""
    from avito_mod.celery import app

    try:
        with app.connection_for_write() as connection:
            connection.ensure_connection(max_retries=1)
            declared = connection.default_channel.queue_declare(
                queue=settings.CLASSIFIER_INFERENCE_QUEUE, passive=False
            )
            return declared.message_count
    except Exception as error:  # kombu raises its transports' own errors
        logger.warning("could not read the inference queue's length: %s", error)
        return None
