"""``/healthz`` and ``/readyz``, answered before any other middleware.

Load balancers probe each web process by its address, over plain HTTP, with no session:
first in ``MIDDLEWARE``, the probes never meet the HTTPS redirect (SecurityMiddleware),
the host check (``ALLOWED_HOSTS``: this never calls ``request.get_host()``), sessions,
CSRF, sign-in limits or throttles. They show the state of each part and nothing else.
"""

from __future__ import annotations

from django.conf import settings
from django.http import HttpRequest, HttpResponse, JsonResponse

from avito_mod import workers

from . import ALIVE_PATHS, READY_PATHS, WORKERS_PATHS
from .checks import CHECKS
from .probes import Readiness

readiness = Readiness(CHECKS)


class HealthProbeMiddleware:
    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        path = request.path_info
        if path not in ALIVE_PATHS + READY_PATHS + WORKERS_PATHS:
            return self.get_response(request)
        if request.method not in ("GET", "HEAD"):
            response = JsonResponse({"detail": "Use GET or HEAD."}, status=405)
            response["Allow"] = "GET, HEAD"
        elif path in ALIVE_PATHS:
            response = JsonResponse({"status": "alive"})
        elif path in WORKERS_PATHS:
            body, status = workers_body()
            response = JsonResponse(body, status=status)
        else:
            body, status = ready_body()
            response = JsonResponse(body, status=status)
        if request.method == "HEAD":
            response.content = b""
        response["Cache-Control"] = "no-store"
        response["X-Content-Type-Options"] = "nosniff"
        return response


def ready_body() -> tuple[dict, int]:
    outcomes = readiness.probe(settings.READYZ_DEADLINE_SECONDS)
    down = [name for name, outcome in outcomes.items() if not outcome.up]
    checks = {}
    for name, outcome in outcomes.items():
        checks[name] = {"status": "up" if outcome.up else "down"}
        checks[name]["ms"] = round(outcome.seconds * 1000)
        if not outcome.up:
            checks[name]["reason"] = outcome.reason
    body = {"status": "not ready" if down else "ready", "down": down, "checks": checks}
    return body, 503 if down else 200


def workers_body() -> tuple[dict, int]:
    """Each kind of worker: up while one of them beat within WORKER_STALE_AFTER_SECONDS."""
    try:
        queues = workers.liveness()
    except workers.Unknown as error:
        reason = f"the workers' heartbeats cannot be read from the broker: {error}"
        return {"status": "unknown", "down": list(workers.roles()), "reason": reason}, 503
    down = [role for role, queue in queues.items() if not queue.up]
    body = {"status": "not ready" if down else "ready", "down": down, "queues": {}}
    for role, queue in queues.items():
        last = queue.last_seen
        body["queues"][role] = {
            "status": "up" if queue.up else "down",
            "queue": queue.queue,
            "workers": queue.alive,
            "last_seen_s": None if last is None else round(last, 1),
        }
        if not queue.up:
            body["queues"][role]["reason"] = (
                "no worker has ever answered"
                if last is None
                else f"no worker has answered for {workers.ago(last)}"
            )
    return body, 503 if down else 200
