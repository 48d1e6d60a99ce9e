"""Which Celery workers are alive, and when each last answered.

Each worker writes a heartbeat to the broker's Redis every ``WORKER_HEARTBEAT_SECONDS``
(5 s), from its own event loop (``Heartbeat``, a consumer step): a worker whose main process
is killed, hung or cut off from the broker stops beating. The beats are a sorted set per
queue (worker name → the time of its last beat), so reading them is one command per queue:
cheap enough for every health probe, the pulse page, the admin index and each scrape of
``/metrics``, and it reaches every worker on every machine that shares the broker. Asking
the workers instead (Celery's ``inspect().ping()``) waits out its whole timeout for the
answers and costs every worker a reply per probe.

A queue is up while one of its workers beat within ``WORKER_STALE_AFTER_SECONDS`` (15 s).
The times are the hosts' clocks (kept in step by NTP on real machines).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from dataclasses import dataclass

from celery import bootsteps
from django.conf import settings

from .broker import probe_client

logger = logging.getLogger(__name__)

KEY = "avito-mod:workers:{queue}"
# A worker that has not beat for a week is forgotten (renamed, moved, retired).
FORGET_AFTER_SECONDS = 7 * 24 * 3600
READ_TIMEOUT_SECONDS = 0.4  # connect and read each: a probe answers within a second


def roles() -> dict[str, str]:
    """The kinds of worker the platform needs, and the queue each listens on."""
    return {
        "inference": settings.CLASSIFIER_INFERENCE_QUEUE,
        "training": settings.CLASSIFIER_TRAINING_QUEUE,
    }


def record_beat(client, worker: str, queues: list[str], at: float | None = None) -> None:
    at = time.time() if at is None else at
    pipe = client.pipeline(transaction=False)
    for queue in queues:
        key = KEY.format(queue=queue)
        pipe.zadd(key, {worker: at})
        pipe.zremrangebyscore(key, 0, at - FORGET_AFTER_SECONDS)
    pipe.execute()


class Heartbeat(bootsteps.StartStopStep):
    """Beats for the worker's queues on its consumer's timer (``avito_mod/celery.py``
    adds it), once the task consumer knows them; again after a reconnection."""

    requires = {"celery.worker.consumer.tasks:Tasks"}

    def __init__(self, parent, **kwargs):
        super().__init__(parent, **kwargs)
        self.timer_ref = None
        self.client = None
        self.failing = False

    def start(self, parent) -> None:
        self.client = probe_client(settings.BROKER_REDIS_URL, timeout=1.0)
        queues = sorted(queue.name for queue in parent.task_consumer.queues)
        self.beat(parent.hostname, queues)
        self.timer_ref = parent.timer.call_repeatedly(
            settings.WORKER_HEARTBEAT_SECONDS, self.beat, (parent.hostname, queues), priority=10
        )

    def stop(self, parent) -> None:
        if self.timer_ref is not None:
            self.timer_ref.cancel()
            self.timer_ref = None
        if self.client is not None:
            self.client.close()

    shutdown = stop

    def beat(self, worker: str, queues: list[str]) -> None:
        import redis

        try:
            record_beat(self.client, worker, queues)
        except (redis.RedisError, OSError) as error:
            if not self.failing:  # said once, not every few seconds
                logger.warning("heartbeat not written (broker unreachable): %s", error)
            self.failing = True
            return
        if self.failing:
            logger.info("heartbeat written again")
        self.failing = False


class Unknown(Exception):
    """The beats cannot be read (the broker does not answer); the message says why."""


@dataclass(frozen=True)
class QueueWorkers:
    role: str  # inference, training
    queue: str
    seen: dict[str, float]  # each worker's name → seconds since its last beat

    @property
    def last_seen(self) -> float | None:
        """Seconds since any worker of the queue last answered (None: never)."""
        return min(self.seen.values()) if self.seen else None

    @property
    def alive(self) -> list[str]:
        limit = settings.WORKER_STALE_AFTER_SECONDS
        return sorted(name for name, ago in self.seen.items() if ago <= limit)

    @property
    def up(self) -> bool:
        return bool(self.alive)


def liveness() -> dict[str, QueueWorkers]:
    """Each role's workers as their beats say; raises ``Unknown`` if they cannot be read."""
    import redis

    wanted = roles()
    client = probe_client(settings.BROKER_REDIS_URL, timeout=READ_TIMEOUT_SECONDS)
    try:
        pipe = client.pipeline(transaction=False)
        for queue in wanted.values():
            pipe.zrange(KEY.format(queue=queue), 0, -1, withscores=True)
        answers = pipe.execute()
    except (redis.RedisError, OSError) as error:
        raise Unknown(str(error).strip().splitlines()[0][:200] or type(error).__name__) from error
    finally:
        client.close()
    now = time.time()
    return {
        role: QueueWorkers(role, queue, {name.decode(): max(0.0, now - at) for name, at in beats})
        for (role, queue), beats in zip(wanted.items(), answers, strict=True)
    }


def ago(seconds: float) -> str:
    """``45 s``, ``2 min``, ``3 h``, ``2 days``: how long, as a notice says it."""
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 90 * 60:
        return f"{seconds / 60:.0f} min"
    if seconds < 36 * 3600:
        return f"{seconds / 3600:.0f} h"
    return f"{seconds / 86400:.0f} days"


class WorkersCollector:
    """``/metrics``: each role's workers (registered per scrape by the view)."""

    def collect(self) -> Iterator:
        from prometheus_client.core import GaugeMetricFamily

        readable = GaugeMetricFamily(
            "avito_worker_heartbeats_readable",
            "1 when the workers' heartbeats could be read from the broker, else 0",
        )
        try:
            queues = liveness()
        except Unknown as error:
            logger.warning("metrics: the workers' heartbeats cannot be read: %s", error)
            readable.add_metric([], 0)
            yield readable
            return
        readable.add_metric([], 1)
        up = GaugeMetricFamily(
            "avito_worker_up",
            "1 while a worker of the queue beat within WORKER_STALE_AFTER_SECONDS",
            labels=["queue"],
        )
        count = GaugeMetricFamily("avito_workers", "Workers of the queue alive", labels=["queue"])
        last = GaugeMetricFamily(
            "avito_worker_last_seen_seconds",
            "Seconds since a worker of the queue last beat (absent: none ever did)",
            labels=["queue"],
        )
        for role, workers in queues.items():
            up.add_metric([role], 1 if workers.up else 0)
            count.add_metric([role], len(workers.alive))
            if workers.last_seen is not None:
                last.add_metric([role], workers.last_seen)
        yield from (readable, up, count, last)
