"""Faults of the services the project stands on: Redis and PostgreSQL going away."""

from __future__ import annotations

import threading
import time

from ..harness import Harness, Result
from ..sellers import Tally


def redis_down(h: Harness) -> Result:
    """Redis stopped while ads are uploaded, then started again, empty: its queue is gone,
    and the beat sweep re-enqueues what stayed pending."""
    result, tally = Result("redis-down"), Tally()
    h.redis.stop()
    started = time.monotonic()
    h.sellers.burst(h.args.redis_ads, tally, "redis-down", 4)
    result.notes.append(f"{h.args.redis_ads} uploads in {time.monotonic() - started:.1f}s")
    from ads.models import Ad

    still = h.db(lambda: Ad.objects.filter(pk__in=tally.ids, status="pending").count())
    result.notes.append(f"pending while Redis was down: {still}/{len(tally.ids)}")
    if set(tally.statuses) != {201}:
        result.problems.append(f"uploads refused while Redis was down: {tally.statuses}")
    h.redis.start()
    back = time.monotonic()
    h.account(result, tally, back, h.args.deadline + h.sweep_s)
    return result


def postgres_restart(h: Harness) -> Result:
    """PostgreSQL stopped for a few seconds and started again while workers classify and
    sellers upload."""
    result, tally = Result("postgres-restart"), Tally()
    stop = threading.Event()
    h.sellers.burst(h.args.batch, tally, "postgres-restart", 6)
    threads = h.sellers.background(tally, "postgres-restart", stop, sellers=3)
    time.sleep(0.5)
    h.postgres.stop()
    time.sleep(h.args.pg_down)
    h.postgres.start()
    back = time.monotonic()
    time.sleep(2)
    stop.set()
    for thread in threads:
        thread.join()
    from django.db import connections

    connections.close_all()
    h.account(result, tally, back, h.args.deadline)
    return result
