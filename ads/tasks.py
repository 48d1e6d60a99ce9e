"""Celery tasks of ads: thin wrappers, the work is in ``ads.services`` (inference queue)."""

from celery import shared_task

from . import services


@shared_task
def purge_idempotency_keys() -> int:
    return services.purge_idempotency_keys()
