"""Failed sign-ins, limited on every way in: ``POST /api/v1/auth/token/``, the sellers'
``/accounts/login/`` and ``/admin/login/``.

django-axes counts each failure in the database, per account at one client address and per
address (whatever usernames it tried), and its authentication backend refuses a locked-out
sign-in before the password is checked (settings: "Sign-in limits"). Guesses at one account
from many addresses are limited by its budget of checks (``accounts.guesses``), which its
owner's known addresses and browsers are spared (``accounts.known``): nobody can lock a
moderator out of her own desk by guessing her password elsewhere. This module gives axes
the client address and the answer (a ``429`` with ``Retry-After`` and the wait in words),
and, once an account's password is given, forgives its failures from that address and
remembers the address and the browser.

The answer is the same for an account that exists and one that does not: axes counts and
locks any username, so a lock-out tells nothing about which names are real.
"""

from __future__ import annotations

import ipaddress
import math
from datetime import datetime, timedelta

from axes.handlers.proxy import AxesProxyHandler
from axes.helpers import get_cool_off, get_failure_limit
from axes.models import AccessAttempt
from django.contrib import admin
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import render
from django.urls import reverse
from django.utils import timezone

from avito_mod.throttling import client_address, wait_in_words

from . import known

LOCKED_OUT = "Too many failed sign-ins for this account or from your network. Try again in {wait}."
TOO_MANY_GUESSES = (
    "Too many sign-ins were tried for this account from networks it is not known on. Try "
    "again in {wait}, or from a device or network you signed in from before."
)
BUSY = "Another sign-in from your network is under way. Try again in a moment."


def signin_address(request: HttpRequest) -> str | None:
    """The address failures are counted against (``AXES_CLIENT_IP_CALLABLE``): the client's,
    by the project's rule (``avito_mod.throttling.client_address``); for IPv6 its /64
    network, which one subscriber usually has whole, so that rotating through it is not a
    fresh address each time."""
    address = client_address(request)
    if address is None:
        return None
    parsed = ipaddress.ip_address(address)
    if isinstance(parsed, ipaddress.IPv6Address):
        if parsed.ipv4_mapped is not None:
            return str(parsed.ipv4_mapped)
        return str(ipaddress.IPv6Network((int(parsed) >> 64 << 64, 64)).network_address)
    return address


def seconds_locked_out(request: HttpRequest, credentials: dict | None) -> int:
    """Seconds until this sign-in would be let through again (at least 1): the longest over
    the counts that reached the limit (the account's, the address's)."""
    AxesProxyHandler.update_request(request)  # the attributes axes reads, if not set yet
    cool_off = get_cool_off(request)
    limit = get_failure_limit(request, credentials)
    handler = AxesProxyHandler.get_implementation()
    ends = [
        _lock_ends(attempts, limit, cool_off)
        for attempts in handler.get_user_attempts(request, credentials)
    ]
    ends = [end for end in ends if end is not None]
    if not ends:  # lifted meanwhile (expired, or cleared by an admin)
        return 1
    return max(1, math.ceil((max(ends) - timezone.now()).total_seconds()))


def _lock_ends(attempts: QuerySet, limit: int, cool_off: timedelta) -> datetime | None:
    """When a count stops being over the limit. Each row is one (username, address, browser)
    with its number of failures and the time of the last; a row stops counting ``cool_off``
    after that time, so the lock ends when the newest rows alone no longer reach the limit."""
    counted = 0
    rows = attempts.order_by("-attempt_time").values_list("attempt_time", "failures_since_start")
    for attempt_time, failures in rows:
        counted += failures
        if counted >= limit:
            return attempt_time + cool_off
    return None


def locked_out_response(
    request: HttpRequest, original_response=None, credentials: dict | None = None
) -> HttpResponse:
    """``AXES_LOCKOUT_CALLABLE``: a locked-out sign-in's answer (the token API calls it too),
    or the one of an account's used-up budget of guesses (``accounts.backends``)."""
    wait = getattr(request, "signin_guesses_wait", None)
    if wait is not None:
        return refusal(request, TOO_MANY_GUESSES.format(wait=wait_in_words(wait)), wait)
    wait = seconds_locked_out(request, credentials)
    return refusal(request, LOCKED_OUT.format(wait=wait_in_words(wait)), wait)


def refusal(request: HttpRequest, message: str, wait: int) -> HttpResponse:
    """A ``429`` with ``Retry-After`` in the shape of the way in: JSON ``{"detail": …}`` for
    the API, a page for the admin's sign-in and one for the sellers'."""
    if request.path.startswith("/api/"):
        response = JsonResponse({"detail": message}, status=429)
    elif request.path.startswith(reverse("admin:index")):
        context = admin.site.each_context(request) | {"title": "Sign-in paused", "message": message}
        response = render(request, "admin/signin_paused.html", context, status=429)
    else:
        response = render(request, "sellers/signin_paused.html", {"message": message}, status=429)
    response["Retry-After"] = str(wait)
    return response


def forget_failures(request: HttpRequest, username: str) -> int:
    """A correct password: the account's failures from this address are forgiven (its owner's
    typing). Its failures from other addresses, and this address's failures on other
    accounts, still count: a sign-in to one's own account must not reset a spraying count."""
    deleted, _ = AccessAttempt.objects.filter(
        username=username, ip_address=signin_address(request)
    ).delete()
    return deleted


def signed_in(request: HttpRequest, user) -> None:
    """The right password: the account's failures from this address are forgiven, and this
    address and browser are known to be its owner's from now on (``accounts.known``)."""
    forget_failures(request, user.get_username())
    known.remember(request, user, signin_address(request))


def signed_in_with_password(sender, request, user, **kwargs) -> None:
    """Receives ``user_logged_in`` (the sellers' and the admin's sign-in pages; not the
    sign-up's, which checked no password but one just chosen: a new address is known then
    too)."""
    if request is not None:
        signed_in(request, user)
