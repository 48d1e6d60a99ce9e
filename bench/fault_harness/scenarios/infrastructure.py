"""Faults of the services the project stands on: Redis and PostgreSQL going away, and the
database's answer to a commit lost on the way."""

from __future__ import annotations

import threading
import time

from bench.pipeline import free_port, wait_http, web_server_command

from ..dbproxy import CommitAnswerLoser
from ..harness import Harness, Result
from ..sellers import Tally
from ..services import Postgres, Proc


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


def commit_answer_lost(h: Harness) -> Result:
    """The database's answer to an ad's COMMIT lost (the ad saved; the web server's
    connection gone before it heard so) for every one of a burst of uploads, through a
    second web server (the Procfile's, one process) whose database connections pass through
    a proxy that drops them at that moment. Each client gets a ``503`` and sends the same
    post again under its Idempotency-Key: the retry must be answered with the first ``201``
    (``Idempotent-Replayed: true``), nothing saved twice; the ad, whose classification was
    to be requested after the commit, is sent to classification by the replay (the beat
    sweep would, 30-40 s later, for a client that never retried)."""
    result, tally = Result("commit-answer-lost"), Tally()
    proxy = CommitAnswerLoser(h.postgres.port)
    proxy.start()
    port = free_port()
    command, web_env = web_server_command(port, processes=1)
    env = h.env | web_env | {"DATABASE_URL": Postgres.url_on(proxy.port)}
    web = Proc("web-commit", command, env, h.logs / "web-commit.log")
    web.start()
    try:
        wait_http(f"http://127.0.0.1:{port}/api/v1/categories/", 90)
        n = h.args.commit_ads
        proxy.arm(n)
        h.sellers.at(f"http://127.0.0.1:{port}").burst(n, tally, "commit-answer-lost", n)
    finally:
        web.stop()
        proxy.close()
    answered = time.monotonic()
    h.account(result, tally, answered, h.args.deadline + h.sweep_s)
    result.notes.append(
        f"{proxy.lost} of {n} commits done and their answers lost; {tally.replayed} retries "
        "answered with the first 201"
    )
    if proxy.lost != n:
        result.problems.append(f"the answer was lost after {proxy.lost} commits, not {n}")
    if tally.replayed != proxy.lost or len(tally.ids) != n:
        result.problems.append(
            f"{tally.replayed} replayed, {len(tally.ids)} 201s for {proxy.lost} lost answers"
        )
    return result
