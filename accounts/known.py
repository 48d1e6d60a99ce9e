"""An account's known places: the addresses it signed in from with its password (recorded
in the database) and the browsers it did (a signed cookie, ``KNOWN_DEVICE_COOKIE``), for
``SIGNIN_KNOWN_DAYS``. A sign-in from one of them is its owner's: guesses from elsewhere,
however many, do not lock it out (``accounts.guesses``)."""

from __future__ import annotations

from datetime import timedelta

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core import signing
from django.http import HttpRequest, HttpResponse
from django.utils import timezone

from .models import KnownSignIn

KNOWN_DEVICE_COOKIE = "known_device"
_SALT = "accounts.known-device"


def _max_age() -> int:
    return settings.SIGNIN_KNOWN_DAYS * 24 * 3600


def is_known(request, username: str, address: str | None) -> bool:
    """Whether ``username`` signed in with its password from this browser or address."""
    cookie = request.COOKIES.get(KNOWN_DEVICE_COOKIE)
    if cookie:
        try:
            if signing.loads(cookie, salt=_SALT, max_age=_max_age()) == username:
                return True
        except signing.BadSignature:  # forged, or expired: no more than a stranger
            pass
    if address is None:
        return False
    since = timezone.now() - timedelta(days=settings.SIGNIN_KNOWN_DAYS)
    field = get_user_model().USERNAME_FIELD
    return KnownSignIn.objects.filter(
        **{f"user__{field}": username}, address=address, last_at__gte=since
    ).exists()


def remember(request: HttpRequest, user, address: str | None) -> None:
    """A sign-in with the right password: its address is recorded, and its browser gets the
    cookie (set on the response by ``accounts.middleware``)."""
    if address is not None:
        KnownSignIn.objects.update_or_create(
            user=user, address=address, defaults={"last_at": timezone.now()}
        )
    request.known_device = signing.dumps(user.get_username(), salt=_SALT)


def set_cookie(request: HttpRequest, response: HttpResponse) -> None:
    value = getattr(request, "known_device", None)
    if value is not None:
        response.set_cookie(
            KNOWN_DEVICE_COOKIE,
            value,
            max_age=_max_age(),
            secure=settings.SESSION_COOKIE_SECURE,
            httponly=True,
            samesite="Lax",
        )
