"""The Celery application. Workers import Django here, never TensorFlow: serving uses LiteRT,
loaded lazily inside each worker child process (see classifier.services.predictor_for)."""

import os
import sys

from celery import Celery
from celery.signals import beat_init, worker_init

from .workers import Heartbeat

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "avito_mod.settings")

app = Celery("avito_mod")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()
# Each worker's heartbeat in the broker, for the health checks (avito_mod/workers.py).
app.steps["consumer"].add(Heartbeat)


@worker_init.connect
@beat_init.connect
def refuse_a_role_it_cannot_play(**kwargs):
    """A worker or beat with ``AVITO_ROLE`` set stops at start-up on one-machine settings."""
    import django
    from django.core.exceptions import ImproperlyConfigured

    django.setup()
    from avito_mod.deployment.checks import validate

    try:
        validate()
    except ImproperlyConfigured as problems:
        # Celery logs a signal handler's exception and starts anyway, and once its logging
        # is set up sys.stderr is a logger: say it on the real stderr, then stop.
        print(f"avito-mod: {problems}", file=sys.__stderr__, flush=True)
        raise SystemExit(1) from None
