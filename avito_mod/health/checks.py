"""What ``/readyz`` looks at: one function per part, which returns when the part works and
raises ``Down`` (with a reason that is safe to show) when it does not.

Each runs in a thread of its own (``probes``); the clients' own connect and read timeouts
are set where they have them, so that a thread stuck on a hung peer ends by itself.
"""

from __future__ import annotations

import copy
import re
import traceback
import uuid
from collections.abc import Callable

from django.conf import settings
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from django.db import DatabaseError, connections
from django.db.utils import load_backend

from avito_mod.broker import probe_client

# The clients' own limits: a connect or read that takes longer has failed.
REDIS_TIMEOUT_SECONDS = 1.0
POSTGRES_CONNECT_TIMEOUT_SECONDS = 2  # libpq's smallest
PROBE_BYTES = b"avito-mod readiness probe\n"


class Down(Exception):
    """The part does not work; the message says why and holds no secret."""


def database() -> None:
    """``SELECT 1`` on a connection of the probe's own, opened and closed each time: the
    request threads' kept connections are left alone, and a new connection proves that the
    server takes new ones."""
    params = copy.deepcopy(connections.settings["default"])
    if params["ENGINE"].endswith("postgresql"):
        params["OPTIONS"].setdefault("connect_timeout", POSTGRES_CONNECT_TIMEOUT_SECONDS)
    probe = load_backend(params["ENGINE"]).DatabaseWrapper(params, "default")
    try:
        with probe.cursor() as cursor:
            cursor.execute("SELECT 1")
            cursor.fetchone()
    except DatabaseError as error:
        # psycopg keeps an attempt that timed out, and its socket, in a reference cycle
        # with the error until the garbage collector runs: a socket more left open to a
        # hung server on every probe. Clearing the finished frames frees it now.
        for raised in (error, error.__cause__):
            if raised is not None:
                traceback.clear_frames(raised.__traceback__)
        raise Down(public_reason(error)) from None
    finally:
        probe.close()


def broker() -> None:
    """The broker's Redis answers a PING (over TCP, or the embedded one's Unix socket)."""
    url = settings.CELERY_BROKER_URL
    scheme = url.split("://", 1)[0]
    if scheme not in ("redis", "rediss", "redis+socket"):
        raise Down(f"no readiness check for a {scheme}:// broker")
    _ping_redis(settings.BROKER_REDIS_URL)


def _ping_redis(url: str) -> None:
    import redis

    # A client per probe: no pooled connection outlives a probe.
    client = probe_client(url, timeout=REDIS_TIMEOUT_SECONDS)
    try:
        client.ping()
    except (redis.RedisError, OSError) as error:
        raise Down(public_reason(error)) from error
    finally:
        client.close()


def storage() -> None:
    """A small object written, read back and deleted through Django's storage API, under a
    name of its own: probes of several processes never meet, and it works the same on the
    local disk and on object storage."""
    name = f"health/{uuid.uuid4().hex}.probe"
    try:
        name = default_storage.save(name, ContentFile(PROBE_BYTES))
        try:
            with default_storage.open(name, "rb") as stored:
                if stored.read() != PROBE_BYTES:
                    raise Down("storage gave back other bytes than were written")
        finally:
            default_storage.delete(name)
    except OSError as error:
        raise Down(public_reason(error)) from error


# The apps above add theirs (``register``): the classifier, its "model" check.
CHECKS: dict[str, Callable[[], None]] = {
    "database": database,
    "broker": broker,
    "storage": storage,
}


def register(name: str, check: Callable[[], None]) -> None:
    """Add ``check`` to /readyz under ``name``: it raises ``Down`` when its part is not
    ready. From an app's ``ready()``, before the first request builds the probes."""
    CHECKS[name] = check


_URL_CREDENTIALS = re.compile(r"(\w+://)[^/@\s]+@")
_PASSWORD = re.compile(r"(password\s*=\s*)\S+", re.IGNORECASE)


def public_reason(error: BaseException, limit: int = 200) -> str:
    """The error's first line, with any credentials in it masked."""
    lines = str(error).strip().splitlines()
    text = lines[0] if lines else type(error).__name__
    text = _URL_CREDENTIALS.sub(r"\1***@", text)
    text = _PASSWORD.sub(r"\1***", text)
    return text[:limit]
