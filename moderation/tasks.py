"""Celery tasks of moderation: thin wrappers that take ids; the work is in
``moderation.pipeline``. They go to the inference queue (settings.CELERY_TASK_ROUTES).
Classification is delivered at least once (acks_late, reject on worker loss) and is
idempotent."""

from celery import shared_task
from django.db import OperationalError

from . import pipeline


@shared_task(
    autoretry_for=(OperationalError,),  # the database restarting: try again shortly
    retry_backoff=2,
    retry_backoff_max=60,
    max_retries=8,
)
def classify_ad(ad_id: int) -> str:
    return pipeline.classify_ad(ad_id)


@shared_task
def requeue_stale_ads() -> int:
    return pipeline.requeue_stale_ads()
