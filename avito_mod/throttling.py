"""Rate limits, counted in the default cache (the broker's Redis, so that every web process
counts together): per account, and per client address signed in or not (several
accounts behind one address share its limit).

The client address is DRF's rule, in one place: the connection's address, or the
``X-Forwarded-For`` entry ``REST_FRAMEWORK["NUM_PROXIES"]`` deep (``DJANGO_NUM_PROXIES``), so
that a client cannot choose its own. Each throttle names the setting that holds its rate
(``number/second|minute|hour|day``), read when a request is checked. Every refusal, the
API's and the pages', says how long to wait in words (``wait_in_words``) and in seconds in
``Retry-After``.
"""

from __future__ import annotations

import ipaddress
import logging
import math

from django.conf import settings
from django.http import HttpRequest
from rest_framework import exceptions
from rest_framework.throttling import BaseThrottle, SimpleRateThrottle, UserRateThrottle

logger = logging.getLogger(__name__)


class _RateFromSetting:
    rate_setting: str

    def get_rate(self) -> str:
        return getattr(settings, self.rate_setting)

    def allow_request(self, request, view) -> bool:
        # The counters' store down (Redis stopped) must not turn every upload into a 500:
        # uploads keep working while the broker is down (the ads wait, pending). Let the
        # request through, loudly; the limits count again once the store is back.
        from redis.exceptions import RedisError

        try:
            return super().allow_request(request, view)
        except (RedisError, OSError) as error:
            logger.warning("%s not counted, its store is unavailable: %s", self.scope, error)
            return True


def client_address(request: HttpRequest) -> str | None:
    """The client's address by the rule above; the connection's when the forwarded entry is
    not an address at all (a client writing its own header through too few proxies)."""
    for candidate in (BaseThrottle().get_ident(request), request.META.get("REMOTE_ADDR")):
        try:
            return str(ipaddress.ip_address(candidate))
        except ValueError:
            continue
    return None


class AccountThrottle(_RateFromSetting, UserRateThrottle):
    """Per signed-in account (per address for anonymous requests)."""


class AddressThrottle(_RateFromSetting, SimpleRateThrottle):
    """Per client address, whoever is signed in."""

    def get_cache_key(self, request, view) -> str:
        return self.cache_format % {"scope": self.scope, "ident": self.get_ident(request)}


def wait_in_words(seconds: float) -> str:
    """A wait as a person says it, rounded up so that it is never shorter than the
    ``Retry-After`` beside it: "40 seconds", "51 minutes", "2 hours 5 minutes"."""
    seconds = max(1, math.ceil(seconds))
    if seconds < 60:
        return _counted(seconds, "second")
    minutes = math.ceil(seconds / 60)
    if minutes < 60:
        return _counted(minutes, "minute")
    hours, minutes = divmod(minutes, 60)
    return _counted(hours, "hour") + (f" {_counted(minutes, 'minute')}" if minutes else "")


def _counted(count: int, unit: str) -> str:
    return f"{count} {unit}{'' if count == 1 else 's'}"


class Throttled(exceptions.Throttled):
    """DRF's ``429`` with the wait in words in its detail; DRF's exception handler still
    sets ``Retry-After`` in seconds from ``wait``."""

    def __init__(self, wait: float | None, detail: str):
        when = f"in {wait_in_words(wait)}" if wait is not None else "later"
        super().__init__(detail=f"{detail} Try again {when}.")
        self.wait = None if wait is None else max(1, math.ceil(wait))


class ExplainedThrottling:
    """For an API view: a 429 that says what was limited and how long to wait."""

    throttled_message = "Too many requests."

    def throttled(self, request, wait) -> None:
        raise Throttled(wait, detail=self.throttled_message)


def page_wait(request: HttpRequest, *throttles: SimpleRateThrottle) -> int | None:
    """For a plain Django page: counts ``request`` with each throttle, as the API does.
    None when allowed; otherwise the seconds to wait (for ``Retry-After``)."""
    waits = [throttle.wait() for throttle in throttles if not throttle.allow_request(request, None)]
    if not waits:
        return None
    return max(1, math.ceil(max(wait or 1 for wait in waits)))
