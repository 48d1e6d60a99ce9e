"""Celery tasks of the classifier: thin wrappers that take ids; the work is in
``classifier.services.retraining``. (Classifying an ad is routing it: ``moderation.tasks``.)

Training and label checks go to the training queue, the sweeps to the inference queue
(settings.CELERY_TASK_ROUTES). Training is never redelivered after
its worker died (no reject on worker loss): the worker's main process marks the version
failed when the training's process dies; a second delivery, or the sweep, does when the
whole worker died; it is never trained again and again.
"""

from billiard.exceptions import WorkerLostError
from celery import shared_task
from celery.signals import task_failure
from django.db import connections

from .services import retraining, serving_forms


@shared_task(acks_late=True, reject_on_worker_lost=False)
def train_version(version_id: int) -> str:
    return retraining.run_training(version_id)


@shared_task(acks_late=True, reject_on_worker_lost=False)
def find_label_errors(check_id: int) -> str:
    return retraining.run_label_check(check_id)


@shared_task
def build_serving_forms(backbone_id: int) -> str:
    """The training queue (TensorFlow there): a backbone's float32 form, built once."""
    return serving_forms.build_float32(backbone_id)


@shared_task
def fail_stalled_training() -> int:
    return retraining.fail_stalled_training()


@shared_task
def scheduled_training() -> str:
    return retraining.scheduled_training()


@task_failure.connect
def training_process_died(sender=None, exception=None, args=(), **kwargs) -> None:
    """In the worker's main process, when a task's process died (SIGKILL, out of memory):
    a training is not redelivered, so it is marked failed now rather than by the sweep."""
    if not isinstance(exception, WorkerLostError) or sender is None or not args:
        return
    try:
        retraining.training_process_died(sender.name, args[0], str(exception))
    finally:
        connections.close_all()  # the next pool process is forked from this one
