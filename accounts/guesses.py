"""Each username's budget of password checks from places it is not known at
(``accounts.known``): ``SIGNIN_ACCOUNT_GUESSES`` per ``SIGNIN_LOCKOUT_SECONDS``, from all
addresses together, whoever sends them and however many at once.

The budget is that many slots in the cache (Redis, shared by every web process), each taken
with an atomic add that expires with the window: a check takes a free slot before the
password is hashed, so guesses sent in parallel cannot all slip in against a count read
before any of them finished, and in any window no more checks than slots are made.
"""

from __future__ import annotations

import hashlib
import logging
import math
import time

from django.conf import settings
from django.core.cache import cache

logger = logging.getLogger(__name__)

SLOT_KEY = "signin-guess:{account}:{slot}"


def _keys(username: str) -> list[str]:
    # Hashed: any string may be tried as a username; the key stays short and names no one.
    account = hashlib.sha256(username.encode("utf-8", "surrogatepass")).hexdigest()[:32]
    return [
        SLOT_KEY.format(account=account, slot=slot)
        for slot in range(settings.SIGNIN_ACCOUNT_GUESSES)
    ]


def take(username: str) -> int | None:
    """Takes a slot for one check of ``username``'s password: None, or when none is free,
    the seconds until one is. If the cache is unavailable, the check goes on (the database's
    limits per address still hold) and a warning is logged."""
    from redis.exceptions import RedisError

    window = settings.SIGNIN_LOCKOUT_SECONDS
    keys = _keys(username)
    try:
        ends = time.time() + window
        if any(cache.add(key, ends, timeout=window) for key in keys):
            return None
        taken = cache.get_many(keys).values()
    except (RedisError, OSError) as error:
        logger.warning("sign-in guesses not counted, the cache is unavailable: %s", error)
        return None
    return max(1, math.ceil(min(taken, default=0) - time.time()))


def used(username: str) -> int:
    return len(cache.get_many(_keys(username)))


def reset(username: str) -> None:
    """An admin unlocked the account: its budget is whole again."""
    cache.delete_many(_keys(username))
