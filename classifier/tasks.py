"""Celery tasks: thin wrappers that take ids; the work is in ``classifier.pipeline`` and
``classifier.retraining``.

Classification and the sweeps go to the inference queue; training and label checks to the
training queue (settings.CELERY_TASK_ROUTES). Classification is delivered at least once
(acks_late, reject on worker loss) and is idempotent. Training is never redelivered after
its worker died (no reject on worker loss): a second delivery, or the sweep, marks the
version failed instead of training it again and again.
"""

from celery import shared_task
from django.db import OperationalError

from . import pipeline, retraining


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


@shared_task(acks_late=True, reject_on_worker_lost=False)
def train_version(version_id: int) -> str:
    return retraining.run_training(version_id)


@shared_task(acks_late=True, reject_on_worker_lost=False)
def find_label_errors(check_id: int) -> str:
    return retraining.run_label_check(check_id)


@shared_task
def fail_stalled_training() -> int:
    return retraining.fail_stalled_training()


@shared_task
def scheduled_training() -> str:
    return retraining.scheduled_training()
