"""Answers for failures of the services behind the web process."""

from __future__ import annotations

import logging

from django.db import OperationalError
from django.http import HttpRequest, HttpResponse, JsonResponse

from .storage import unreachable

logger = logging.getLogger(__name__)

RETRY_AFTER_SECONDS = 5


class DatabaseUnavailableMiddleware:
    """A database that cannot be reached (restarting, failing over, out of connections) is
    a ``503`` with ``Retry-After``, not a ``500``: the failure is the server's and passes.
    An upload that failed before its commit left nothing behind (its files are deleted
    again); one that failed just after it is an ad that the requeue sweep classifies, and
    that a retry with the post's ``Idempotency-Key`` gets the answer of.

    Django checks each kept connection before a request (``CONN_HEALTH_CHECKS``), so the
    first request after the database is back is served normally.
    """

    message = "The database is unavailable for a moment; try again shortly."

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        return self.get_response(request)

    def process_exception(self, request: HttpRequest, exception: Exception):
        if not isinstance(exception, OperationalError):
            return None
        logger.error(
            "%s %s: database unavailable: %s",
            request.method,
            request.path,
            exception,
            exc_info=True,
        )
        return _unavailable(request, self.message)


def _unavailable(request: HttpRequest, message: str) -> HttpResponse:
    if request.path.startswith("/api/"):
        response = JsonResponse({"detail": message}, status=503)
    else:
        response = HttpResponse(message, content_type="text/plain", status=503)
    response["Retry-After"] = str(RETRY_AFTER_SECONDS)
    return response


class StorageUnavailableMiddleware:
    """The bucket that holds the photos and models (AVITO_STORAGE_URL) unreachable or
    failing on its side is a ``503`` with ``Retry-After`` too, once boto3's own retries
    are spent: an upload then stored nothing that a row names, and can be sent again."""

    message = "The file storage is unavailable for a moment; try again shortly."

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        return self.get_response(request)

    def process_exception(self, request: HttpRequest, exception: Exception):
        if not unreachable(exception):
            return None
        logger.error(
            "%s %s: storage unavailable: %s", request.method, request.path, exception, exc_info=True
        )
        return _unavailable(request, self.message)
