"""One password check at a time per client address, on every way in; and the known-browser
cookie of a sign-in with the right password (``accounts.known``)."""

from __future__ import annotations

import logging
import secrets

from django.core.cache import cache
from django.http import HttpRequest, HttpResponse
from django.urls import reverse

from . import known
from .limits import BUSY, refusal, signin_address

logger = logging.getLogger(__name__)

# Longer than any sign-in takes; a slot left behind by a killed process expires by then.
SLOT_SECONDS = 30
SIGN_IN_URLS = ("api-token", "sellers:login", "admin:login")
SLOT_KEY = "signin-slot:{address}"


class OneSignInAtATimeMiddleware:
    """django-axes counts a failure once its password was checked (about half a second of
    hashing), so guesses sent in parallel would each be let through against the count as
    it stood before any of them failed: up to one per server thread past the limit. While
    a sign-in from an address is being checked, another from the same address is answered
    ``429`` with ``Retry-After: 1``, unchecked and uncounted.

    The slot is held in the cache, which all web processes share (Redis in production). If
    the cache is unavailable, sign-ins go on without it (axes still counts, in the database).
    """

    def __init__(self, get_response):
        self.get_response = get_response
        self._paths: frozenset[str] | None = None

    def __call__(self, request: HttpRequest) -> HttpResponse:
        if request.method != "POST" or request.path not in self.paths():
            return self.get_response(request)
        key = SLOT_KEY.format(address=signin_address(request))
        token = secrets.token_hex(8)
        if not self._take(key, token):
            return refusal(request, BUSY, wait=1)
        try:
            response = self.get_response(request)
        finally:
            self._give_back(key, token)
        known.set_cookie(request, response)  # a sign-in with the right password: its browser
        return response

    def paths(self) -> frozenset[str]:
        if self._paths is None:  # the URL configuration is loaded by the first request
            self._paths = frozenset(reverse(name) for name in SIGN_IN_URLS)
        return self._paths

    @staticmethod
    def _take(key: str, token: str) -> bool:
        from redis.exceptions import RedisError

        try:
            return cache.add(key, token, timeout=SLOT_SECONDS)
        except (RedisError, OSError) as error:
            logger.warning("sign-in not serialized, the cache is unavailable: %s", error)
            return True

    @staticmethod
    def _give_back(key: str, token: str) -> None:
        from redis.exceptions import RedisError

        try:
            if cache.get(key) == token:  # not a slot taken after ours expired
                cache.delete(key)
        except (RedisError, OSError) as error:
            logger.warning("sign-in slot not released (it expires by itself): %s", error)
