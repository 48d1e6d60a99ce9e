"""Workers the health checks can see (``avito_mod.workers``): each worker's heartbeat in the
broker, read by ``/readyz/workers``, the pulse page, the admin index's notice and
``/metrics``; a real worker killed shows as gone within the bar (30 s)."""

from __future__ import annotations

import os
import signal
import time

import pytest
import redis
import requests
from django.conf import settings

from avito_mod import workers
from tests.support.factories import make_ad
from tests.support.live import celery_worker, wait_for

METRICS_TOKEN = "worker-health-metrics-token-0123456789"


@pytest.fixture
def beats():
    """The broker's Redis, with this run's heartbeats cleared before and after the test."""
    client = redis.Redis.from_url(settings.BROKER_REDIS_URL)
    keys = [workers.KEY.format(queue=queue) for queue in workers.roles().values()]
    client.delete(*keys)
    yield client
    client.delete(*keys)
    client.close()


def beat(client, role: str, worker: str, seconds_ago: float) -> None:
    queue = workers.roles()[role]
    workers.record_beat(client, worker, [queue], at=time.time() - seconds_ago)


def probe(client) -> tuple[int, dict]:
    response = client.get("/readyz/workers", HTTP_HOST="10.0.0.7")
    return response.status_code, response.json()


def test_workers_that_beat_recently_are_ready(client, beats):
    beat(beats, "inference", "celery@a", 2)
    beat(beats, "inference", "celery@b", 40)  # gone
    beat(beats, "training", "training@a", 4)
    status, body = probe(client)
    assert status == 200 and body["status"] == "ready" and body["down"] == []
    assert body["queues"]["inference"]["workers"] == ["celery@a"]
    assert 1.5 < body["queues"]["inference"]["last_seen_s"] < 5


def test_no_training_worker_is_named_with_how_long_it_has_been_gone(client, beats):
    beat(beats, "inference", "celery@a", 1)
    beat(beats, "training", "training@a", 125)
    status, body = probe(client)
    assert status == 503 and body["down"] == ["training"]
    assert body["queues"]["training"]["reason"] == "no worker has answered for 2 min"
    assert body["queues"]["inference"]["status"] == "up"


def test_a_worker_never_seen_is_said_so(client, beats):
    status, body = probe(client)
    assert status == 503 and body["down"] == ["inference", "training"]
    assert body["queues"]["inference"]["reason"] == "no worker has ever answered"
    assert body["queues"]["inference"]["last_seen_s"] is None


def test_a_broker_that_does_not_answer_makes_the_workers_unknown(client, settings):
    settings.BROKER_REDIS_URL = "unix:///nonexistent/redis.sock"
    started = time.monotonic()
    status, body = probe(client)
    assert time.monotonic() - started < 1
    assert status == 503 and body["status"] == "unknown"
    assert "cannot be read from the broker" in body["reason"]


@pytest.mark.django_db
def test_the_admin_index_says_ads_wait_with_no_inference_worker(admin_client, beats, seller, media):
    beat(beats, "inference", "celery@a", 130)
    for seed in range(3):
        make_ad(seller, seed=seed)
    page = admin_client.get("/admin/").content.decode()
    assert "No inference worker for 2 min: 3 ads waiting for classification." in page

    beat(beats, "inference", "celery@a", 1)
    assert "No inference worker" not in admin_client.get("/admin/").content.decode()


@pytest.mark.django_db
def test_no_notice_when_no_ad_waits(admin_client, beats):
    assert "No inference worker" not in admin_client.get("/admin/").content.decode()


@pytest.mark.django_db
def test_the_pulse_page_shows_each_kind_of_worker(admin_client, beats):
    beat(beats, "inference", "celery@a", 3)
    page = admin_client.get("/admin/moderation/reviewitem/pulse/").content.decode()
    assert "celery@a" in page
    assert "<strong>no worker</strong>" in page  # no training worker


@pytest.mark.django_db
def test_metrics_have_each_queues_workers(client, beats, settings):
    settings.METRICS_TOKEN = METRICS_TOKEN
    beat(beats, "inference", "celery@a", 2)
    beat(beats, "training", "training@a", 60)
    text = client.get("/metrics", HTTP_AUTHORIZATION=f"Bearer {METRICS_TOKEN}").content.decode()
    assert 'avito_worker_up{queue="inference"} 1.0' in text
    assert 'avito_worker_up{queue="training"} 0.0' in text
    assert 'avito_workers{queue="inference"} 1.0' in text
    last = next(line for line in text.splitlines() if line.startswith("avito_worker_last_seen"))
    assert 'queue="inference"' in last and 1.5 < float(last.split()[-1]) < 5
    assert "avito_worker_heartbeats_readable 1.0" in text


@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_a_killed_inference_worker_shows_in_readyz_workers_within_30_s(
    live_server, beats, child_env, tmp_path, settings
):
    """A real worker, beating every second as it would every 5 s; gone 3 s after its last
    beat (15 s by default: a kill shows within 15-20 s, under the bar of 30 s)."""
    settings.WORKER_STALE_AFTER_SECONDS = 3
    url = f"{live_server.url}/readyz/workers"

    def inference() -> dict:
        return requests.get(url, timeout=2).json()["queues"]["inference"]

    env = child_env | {"WORKER_HEARTBEAT_SECONDS": "1"}
    with celery_worker(tmp_path / "worker.log", env) as worker:
        wait_for(lambda: inference()["status"] == "up", 20, lambda: str(inference()))
        assert inference()["workers"] == [f"worker@{os.uname().nodename}"]
        os.kill(worker.pid, signal.SIGKILL)
        killed = time.monotonic()
        wait_for(lambda: inference()["status"] == "down", 30, lambda: str(inference()))
        assert time.monotonic() - killed < settings.WORKER_STALE_AFTER_SECONDS + 3
