"""Health probes for load balancers and orchestrators.

``/healthz``: the process answers (nothing else is looked at). ``/readyz``: the database,
the broker, storage and the active model each answer, within a deadline even when one of
them hangs. ``/readyz/workers``: an inference worker and a training worker are alive (their
heartbeats in the broker, ``avito_mod.workers``); apart from ``/readyz``, which is the web
process's own readiness. All are answered by ``HealthProbeMiddleware``, first in
``MIDDLEWARE``.
"""

import logging

ALIVE_PATHS = ("/healthz", "/healthz/")
READY_PATHS = ("/readyz", "/readyz/")
WORKERS_PATHS = ("/readyz/workers", "/readyz/workers/")


class QuietProbes(logging.Filter):
    """Keeps ``django.request`` from logging each 503 of ``/readyz`` as a server error: the
    checks log each change of state once (``probes``)."""

    def filter(self, record: logging.LogRecord) -> bool:
        path = getattr(getattr(record, "request", None), "path_info", "")
        return path not in ALIVE_PATHS + READY_PATHS + WORKERS_PATHS
