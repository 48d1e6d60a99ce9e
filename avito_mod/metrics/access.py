"""Who may read ``/metrics``: the one place that decides (settings ``METRICS_TOKEN`` and
``METRICS_ALLOWED_NETWORKS``). The figures say how busy the platform is and how its model
does: never public, and closed until an operator opens it."""

from __future__ import annotations

import hmac
import ipaddress

from django.conf import settings
from django.http import HttpRequest, HttpResponse

from avito_mod.throttling import client_address

CLOSED = (
    "The metrics endpoint is closed: set METRICS_TOKEN (scrapes send 'Authorization: Bearer "
    "<token>') and/or METRICS_ALLOWED_NETWORKS (the scraper's addresses) to open it.\n"
)


def refusal(request: HttpRequest) -> HttpResponse | None:
    """The answer to a request that may not read the metrics, or None when it may."""
    token, networks = settings.METRICS_TOKEN, settings.METRICS_ALLOWED_NETWORKS
    if not token and not networks:
        return _plain(403, CLOSED)
    if networks and not _address_allowed(request, networks):
        return _plain(403, "This address may not read the metrics (METRICS_ALLOWED_NETWORKS).\n")
    if token and not _bearer_matches(request, token):
        response = _plain(401, "Send the metrics token: 'Authorization: Bearer <token>'.\n")
        response["WWW-Authenticate"] = 'Bearer realm="metrics"'
        return response
    return None


def _address_allowed(request: HttpRequest, networks) -> bool:
    # The project's client address: a proxy's own address never stands for its clients.
    address = client_address(request)
    if address is None:
        return False
    parsed = ipaddress.ip_address(address)
    if isinstance(parsed, ipaddress.IPv6Address) and parsed.ipv4_mapped is not None:
        parsed = parsed.ipv4_mapped
    return any(parsed in network for network in networks)


def _bearer_matches(request: HttpRequest, token: str) -> bool:
    scheme, _, given = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() != "bearer":
        return False
    return hmac.compare_digest(given.strip().encode(), token.encode())


def _plain(status: int, text: str) -> HttpResponse:
    return HttpResponse(text, status=status, content_type="text/plain; charset=utf-8")
