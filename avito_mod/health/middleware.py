"""``/healthz`` and ``/readyz``, answered before any other middleware.

Load balancers probe each web process by its address, over plain HTTP, with no session:
first in ``MIDDLEWARE``, the probes never meet the HTTPS redirect (SecurityMiddleware),
the host check (``ALLOWED_HOSTS``: this never calls ``request.get_host()``), sessions,
CSRF, sign-in limits or throttles. They show the state of each part and nothing else.
"""

from __future__ import annotations

from django.conf import settings
from django.http import HttpRequest, HttpResponse, JsonResponse

from . import ALIVE_PATHS, READY_PATHS
from .checks import CHECKS
from .probes import Readiness

readiness = Readiness(CHECKS)


class HealthProbeMiddleware:
    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        path = request.path_info
        if path not in ALIVE_PATHS + READY_PATHS:
            return self.get_response(request)
        if request.method not in ("GET", "HEAD"):
            response = JsonResponse({"detail": "Use GET or HEAD."}, status=405)
            response["Allow"] = "GET, HEAD"
        elif path in ALIVE_PATHS:
            response = JsonResponse({"status": "alive"})
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
