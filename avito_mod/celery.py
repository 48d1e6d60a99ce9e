"""The Celery application. Workers import Django here, never TensorFlow: serving uses LiteRT,
loaded lazily inside each worker child process (see classifier.services.predictor_for)."""

import os
import sys

from celery import Celery
from celery.signals import beat_init, task_postrun, task_prerun, worker_init

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


@worker_init.connect
def close_the_start_up_connection(**kwargs):
    """A worker's main process runs no task; the connection its start-up checks opened would
    stay open and unused for its whole life, since Celery now rarely closes one."""
    from django.db import connections

    connections.close_all()


@task_prerun.connect
@task_postrun.connect
def close_old_database_connections(sender=None, **kwargs):
    """Around each task, what Django does around each request: a database connection past
    CONN_MAX_AGE, or broken (PostgreSQL restarted), is closed, and the next query checks the
    kept one (CONN_HEALTH_CHECKS). Celery's own closing is rare (CELERY_DB_REUSE_MAX)."""
    if getattr(sender.request, "is_eager", False):
        return  # run inside the caller's transaction (tests): not ours to close
    from django.db import close_old_connections

    close_old_connections()
