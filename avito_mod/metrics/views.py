"""``GET /metrics``: Prometheus's text format, for the scrapers ``access.py`` lets in."""

from __future__ import annotations

import os

import prometheus_client
from django.conf import settings
from django.http import HttpRequest, HttpResponse
from django.utils.module_loading import import_string
from django.views.decorators.http import require_GET
from prometheus_client import multiprocess

from avito_mod.workers import WorkersCollector

from .access import refusal


class _ThisProcess:
    """The figures prometheus_client keeps in this process (one-process servers, tests)."""

    def collect(self):
        return prometheus_client.REGISTRY.collect()


@require_GET
def metrics(request: HttpRequest) -> HttpResponse:
    refused = refusal(request)
    if refused is not None:
        return refused
    registry = prometheus_client.CollectorRegistry()
    # First, so that the process's figures below count this scrape's queries too.
    registry.register(import_string(settings.METRICS_DATABASE_COLLECTOR)())
    registry.register(WorkersCollector())
    registry.register(import_string(settings.METRICS_SERVING_COLLECTOR)())
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        # gunicorn's processes (avito_mod/gunicorn.conf.py): the sum over all of them, so
        # that the process that happens to answer speaks for the whole server.
        multiprocess.MultiProcessCollector(registry)
    else:
        registry.register(_ThisProcess())
    return HttpResponse(
        prometheus_client.generate_latest(registry),
        content_type=prometheus_client.CONTENT_TYPE_LATEST,
    )
