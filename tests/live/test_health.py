"""``/healthz`` and ``/readyz`` of a real web server (gunicorn, as the Procfile starts it),
its database and Redis reached through proxies that a test cuts, hangs and restores; its
storage and model broken and repaired on disk and in the registry.

Every probe is sent as a load balancer sends it: to the server's address with a Host header
that is no allowed host, over plain HTTP with the HTTPS redirect on.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

import pytest
import requests
from django.conf import settings
from django.db import connection

from avito_mod.broker import embedded_server as embedded_broker
from avito_mod.health.checks import public_reason
from avito_mod.health.probes import REUSE_SECONDS, Readiness
from bench.pipeline import free_port
from tests.support.live import ROOT, answers, wait_for
from tests.support.s3 import CREDENTIALS
from tests.support.tcp_proxy import FaultyLink

LOAD_BALANCER_HOST = "10.0.0.7"  # the address a load balancer probes: no allowed host
ANSWER_WITHIN = 2.0
BACK_WITHIN = 10.0
# Ignored by PostgreSQL's trust authentication; must never show in an answer.
DATABASE_PASSWORD = "probe-secret-pw"

# The server reads the test database, so the tests need it set up (a transaction of the
# test's own around each, on a connection the server does not use).
live = pytest.mark.django_db
# A test that changes the registry for the server to see commits it; Django restores the
# migrations' rows after it (serialized rollback).
committing = pytest.mark.django_db(transaction=True, serialized_rollback=True)
on_postgres = pytest.mark.skipif(
    connection.vendor != "postgresql", reason="the tests run on SQLite (no DATABASE_URL)"
)
on_redis = pytest.mark.skipif(
    not settings.REDIS_URL, reason="no REDIS_URL: the embedded broker is on a socket, no proxy"
)


@dataclass
class Server:
    url: str
    log: Path
    media: Path
    env: dict
    process: subprocess.Popen

    def probe(self, path: str = "/readyz") -> tuple[int, dict, float]:
        """Status, JSON body and seconds taken; fails a probe slower than ANSWER_WITHIN."""
        started = time.monotonic()
        response = requests.get(
            self.url + path,
            headers={"Host": LOAD_BALANCER_HOST},
            timeout=10,
            allow_redirects=False,
        )
        seconds = time.monotonic() - started
        assert DATABASE_PASSWORD not in response.text
        assert seconds < ANSWER_WITHIN, f"{path} took {seconds:.2f} s: {response.text}"
        return response.status_code, response.json(), seconds

    def probe_together(self, probes: int) -> list[tuple[int, dict, float]]:
        with ThreadPoolExecutor(probes) as pool:
            return list(pool.map(lambda _: self.probe(), range(probes)))

    def threads(self) -> int:
        """Threads of the server's one worker process (Linux)."""
        master = self.process.pid
        (worker,) = Path(f"/proc/{master}/task/{master}/children").read_text().split()
        status = Path(f"/proc/{worker}/status").read_text()
        return int(re.search(r"^Threads:\s+(\d+)$", status, re.MULTILINE).group(1))

    def until(self, wanted, within: float) -> tuple[dict, float]:
        """Probe until ``wanted(status, body)``; the body and the seconds it took."""
        started = time.monotonic()
        while True:
            status, body, _ = self.probe()
            elapsed = time.monotonic() - started
            if wanted(status, body):
                assert elapsed < within, f"{status} {body} only after {elapsed:.2f} s"
                return body, elapsed
            assert elapsed < within, f"still {status} {body} after {elapsed:.2f} s"
            time.sleep(0.1)

    def down(self, part: str, within: float = ANSWER_WITHIN) -> tuple[dict, float]:
        """Probes, from REUSE_SECONDS after a fault (until then, the last results stand),
        until one names ``part`` down."""
        time.sleep(REUSE_SECONDS)
        return self.until(lambda status, body: status == 503 and part in body["down"], within)

    def ready(self, within: float = BACK_WITHIN) -> tuple[dict, float]:
        return self.until(lambda status, body: status == 200, within)


def start_server(tmp: Path, env: dict) -> Server:
    port = free_port()
    media = tmp / "media"
    # The registry's model files, as the test database's migrations stored them.
    shutil.copytree(settings.MEDIA_ROOT, media)
    env = (
        {
            key: value
            for key, value in os.environ.items()
            if not key.startswith(("DATABASE_URL", "REDIS_URL", "DJANGO_"))
        }
        | {
            "DJANGO_SETTINGS_MODULE": "avito_mod.test_settings",
            "AVITO_TEST_DATABASE_NAME": str(connection.settings_dict["NAME"]),
            "AVITO_TEST_MEDIA_ROOT": str(media),
            "AVITO_TEST_SCRATCH": str(tmp),  # its own embedded broker's folder, if it has one
            # Production's answers: no debug, plain HTTP redirected to HTTPS, allowed hosts only.
            "DJANGO_DEBUG": "false",
            "DJANGO_SECRET_KEY": "health-test-" + "k" * 40,
            "DJANGO_HTTPS": "true",
            "AVITO_BIND": f"127.0.0.1:{port}",
            "WEB_CONCURRENCY": "1",
            "PATH": f"{os.path.dirname(sys.executable)}:{os.environ['PATH']}",
            "TF_CPP_MIN_LOG_LEVEL": "2",
        }
        | env
    )
    log = tmp / "web.log"
    with log.open("w") as output:
        process = subprocess.Popen(
            [sys.executable, "-m", "gunicorn", "avito_mod.wsgi", "--config",
             "avito_mod/gunicorn.conf.py"],
            cwd=ROOT, env=env, stdout=output, stderr=output,
        )  # fmt: skip
    server = Server(f"http://127.0.0.1:{port}", log, media, env, process)
    wait_for(lambda: answers(server.url, "/healthz"), 60, log.read_text)
    return server


def stop_server(server: Server) -> None:
    server.process.terminate()
    try:
        server.process.wait(30)
    except subprocess.TimeoutExpired:
        server.process.kill()
    print(server.log.read_text()[-4000:])


@pytest.fixture(scope="module")
def links(django_db_setup):
    """Proxies to this run's PostgreSQL and Redis (None where the tests do not use them)."""
    database = None
    if connection.vendor == "postgresql":
        db = connection.settings_dict
        database = FaultyLink(int(db["PORT"] or 5432), db["HOST"] or "127.0.0.1")
    redis = None
    if settings.REDIS_URL:
        from redis.connection import parse_url

        where = parse_url(settings.REDIS_URL)
        redis = FaultyLink(int(where.get("port", 6379)), where.get("host", "127.0.0.1"))
    yield {"database": database, "redis": redis}
    for link in (database, redis):
        if link is not None:
            link.close()


def through(links) -> dict:
    """A server's environment for this run's database and broker, through the proxies."""
    env = {}
    if links["database"] is not None:
        db = connection.settings_dict
        env["DATABASE_URL"] = (
            f"postgres://{quote(db['USER'])}:{DATABASE_PASSWORD}@127.0.0.1:"
            f"{links['database'].port}/{quote(db['NAME'])}"
        )
    if links["redis"] is not None:
        number = settings.REDIS_URL.rstrip("/").rsplit("/", 1)[-1]
        env["REDIS_URL"] = f"redis://127.0.0.1:{links['redis'].port}/{number}"
    else:  # this run's embedded broker, on its socket
        env["REDIS_URL"] = settings.BROKER_REDIS_URL
    return env


@pytest.fixture(scope="module")
def server(links, tmp_path_factory):
    """The web server on this run's database and broker, through the proxies."""
    server = start_server(tmp_path_factory.mktemp("probed"), through(links))
    yield server
    stop_server(server)


@pytest.fixture(scope="module")
def bucket(s3_server):
    """The S3 API server behind a proxy, holding the registry's model files as the
    migrations stored them, under a prefix of this module's own."""
    prefix = f"health-{uuid.uuid4().hex[:8]}"
    client = s3_server.client()
    media = Path(settings.MEDIA_ROOT)
    for path in media.rglob("*"):
        if path.is_file():
            key = f"{prefix}/{path.relative_to(media)}"
            client.put_object(Bucket="avito-tests", Key=key, Body=path.read_bytes())
    link = FaultyLink(s3_server.port)
    yield (
        link,
        CREDENTIALS
        | {
            "AVITO_STORAGE_URL": f"s3://avito-tests/{prefix}",
            "AVITO_S3_ENDPOINT_URL": f"http://127.0.0.1:{link.port}",
        },
    )
    link.close()


@pytest.fixture(scope="module")
def bucket_server(links, bucket, tmp_path_factory):
    """The web server with its files in the bucket, reached through the proxy."""
    link, env = bucket
    server = start_server(tmp_path_factory.mktemp("bucket"), through(links) | env)
    yield server, link
    link.restore()
    stop_server(server)


@pytest.fixture
def link(request, links):
    """The proxy named by the test's parameter, restored after the test whatever happened."""
    proxy = links[request.param]
    yield proxy
    proxy.restore()


@live
def test_ready_when_every_part_answers(server):
    status, body, seconds = server.probe()
    assert status == 200, body
    assert body["status"] == "ready" and body["down"] == []
    assert set(body["checks"]) == {"database", "broker", "storage", "model"}
    assert all(check["status"] == "up" for check in body["checks"].values())
    assert server.probe("/healthz")[:2] == (200, {"status": "alive"})


@live
def test_probes_pass_the_host_check_and_the_https_redirect_that_pages_meet(server):
    """The same request to a page is refused (unknown host) or redirected (plain HTTP)."""
    page = requests.get(
        server.url + "/accounts/login/",
        headers={"Host": LOAD_BALANCER_HOST},
        allow_redirects=False,
        timeout=10,
    )
    assert page.status_code == 400
    page = requests.get(server.url + "/accounts/login/", allow_redirects=False, timeout=10)
    assert page.status_code == 301 and page.headers["Location"].startswith("https://")
    probe = requests.head(server.url + "/readyz", headers={"Host": LOAD_BALANCER_HOST}, timeout=10)
    assert probe.status_code == 200 and probe.headers["Cache-Control"] == "no-store"


@live
@on_postgres
@pytest.mark.parametrize("link", ["database"], indirect=True)
def test_postgres_stopped_is_named_within_2_s_and_ready_again_after(server, link):
    server.ready()
    link.cut()
    body, _ = server.down("database")
    assert body["checks"]["database"]["reason"]
    for _ in range(3):  # every probe answers, and none is logged as a server error
        server.down("database")
    link.restore()
    _, back_after = server.ready()
    assert back_after < BACK_WITHIN
    log = server.log.read_text()
    assert "Service Unavailable" not in log
    assert log.count("readiness: database is down") == 1


@live
@on_postgres
@pytest.mark.parametrize("link", ["database"], indirect=True)
def test_postgres_hanging_is_named_within_2_s_and_ready_again_after(server, link):
    server.ready()
    link.hang()
    link.reset_counts()
    body, _ = server.down("database")
    assert body["checks"]["database"]["reason"] == "no answer within 1.5 s"
    # Load balancers keep probing, several at once: each probe answers in time, and each
    # check stuck on the database (its own, the model's registry read) holds one thread,
    # not one per probe. (The database check's thread ends at its connect timeout, 2 s,
    # and the next probe starts another: one more or less.)
    threads = []
    for _ in range(4):
        for status, body, _ in server.probe_together(4):
            assert status == 503 and "database" in body["down"]
        threads.append(server.threads())
    assert max(threads[1:]) <= threads[0] + 1, threads
    # And one connection each: an attempt that timed out is closed, not left to the
    # garbage collector.
    assert link.most_open <= 2, link.most_open
    link.restore()
    server.ready()


@live
@on_redis
@pytest.mark.parametrize("link", ["redis"], indirect=True)
def test_redis_stopped_is_named_within_2_s_and_ready_again_after(server, link):
    server.ready()
    link.cut()
    body, _ = server.down("broker")
    assert body["down"] == ["broker"]
    assert "refused" in body["checks"]["broker"]["reason"].lower()
    link.restore()
    server.ready()


@live
@on_redis
@pytest.mark.parametrize("link", ["redis"], indirect=True)
def test_redis_hanging_costs_one_connection_at_a_time(server, link):
    server.ready()
    link.hang()
    link.reset_counts()
    server.down("broker")
    # Several load balancers at once, for a while: one PING waits on Redis at a time.
    for _ in range(4):
        for status, body, _ in server.probe_together(4):
            assert status == 503 and body["down"] == ["broker"]
    assert link.most_open == 1
    link.restore()
    server.ready()


@live
def test_storage_failing_is_named_and_ready_again_after(server):
    server.ready()
    moved = server.media.with_name("media-moved")
    server.media.rename(moved)
    server.media.write_text("not a folder: nothing can be stored here")
    try:
        body, _ = server.down("storage")
        assert body["checks"]["storage"]["status"] == "down"
    finally:
        server.media.unlink()
        moved.rename(server.media)
    server.ready()


@live
@pytest.mark.parametrize("fault", ["cut", "hang"])
def test_bucket_unreachable_is_named_within_2_s_and_ready_again_after(bucket_server, fault):
    server, link = bucket_server
    body, _ = server.ready()
    assert body["checks"]["storage"]["status"] == "up"
    getattr(link, fault)()
    try:
        body, _ = server.down("storage")
        # The model's files are in the bucket too: its check may see it gone as well.
        assert set(body["down"]) <= {"storage", "model"}, body
    finally:
        link.restore()
    _, back = server.ready()
    assert back < BACK_WITHIN


@pytest.fixture
def registry(django_db_blocker):
    """The test database's model registry, changed for real (committed) and put back."""
    from classifier.models import ModelVersion

    with django_db_blocker.unblock():
        active = ModelVersion.objects.active()
        yield active
        ModelVersion.objects.filter(status="active").exclude(pk=active.pk).update(status="retired")
        ModelVersion.objects.filter(pk=active.pk).update(status="active")


@committing
def test_no_active_model_is_named_and_ready_again_after(server, registry):
    server.ready()
    type(registry).objects.filter(pk=registry.pk).update(status="retired")
    body, _ = server.down("model")
    assert body["down"] == ["model"]
    assert "no active model" in body["checks"]["model"]["reason"]
    type(registry).objects.filter(pk=registry.pk).update(status="active")
    server.ready()


@committing
def test_replaced_model_file_is_named_and_ready_again_after(server, registry):
    server.ready()
    artifact = server.media / registry.serving_artifact.name
    original = artifact.read_bytes()
    artifact.write_bytes(original[:-1] + bytes([original[-1] ^ 1]))
    try:
        # The server looks at its model's files every CLASSIFIER_ARTIFACT_CHECK_SECONDS.
        body, _ = server.down("model", within=settings.CLASSIFIER_ARTIFACT_CHECK_SECONDS + 3)
        assert "not the file the registry recorded" in body["checks"]["model"]["reason"]
    finally:
        artifact.write_bytes(original)
    server.ready()


@pytest.fixture(scope="module")
def embedded_server(django_db_setup, links, tmp_path_factory):
    """The web server on an embedded broker (no REDIS_URL) in its own data folder, and a
    function that stops (False) or starts (True) that broker."""
    env = {}
    if links["database"] is not None:
        env["DATABASE_URL"] = os.environ["DATABASE_URL"]
    tmp = tmp_path_factory.mktemp("embedded")
    broker = {"running": None}

    def broker_running(wanted: bool) -> None:
        if broker["running"] is not None:
            broker["running"].__exit__(None, None, None)
            broker["running"] = None
        if wanted:
            broker["running"] = embedded_broker(tmp / "broker")
            broker["running"].__enter__()

    broker_running(True)
    server = start_server(tmp, env)
    yield server, broker_running
    stop_server(server)
    broker_running(False)


@live
def test_embedded_broker_stopped_is_named_and_ready_again_after_its_restart(embedded_server):
    server, broker_running = embedded_server
    body, _ = server.ready()
    if connection.vendor == "sqlite":
        assert body["checks"]["database"]["status"] == "up"  # the SQLite file
    broker_running(False)
    try:
        body, _ = server.down("broker")
        # Its socket file is gone with it.
        assert "no such file" in body["checks"]["broker"]["reason"].lower()
    finally:
        broker_running(True)
    server.ready()


# --- In this process ---------------------------------------------------------------------


def test_a_hung_check_keeps_one_thread_however_many_probes_come():
    release = threading.Event()
    readiness = Readiness({"stuck": lambda: release.wait(30)})
    try:
        for _ in range(5):
            started = time.monotonic()
            outcome = readiness.probe(deadline=0.2)["stuck"]
            assert time.monotonic() - started < 0.5
            assert not outcome.up and outcome.reason.startswith("no answer")
        threads = [t for t in threading.enumerate() if t.name == "readyz-stuck"]
        assert len(threads) == 1
    finally:
        release.set()
    wait_for(lambda: readiness.probe(deadline=0.2)["stuck"].up, 5)


def test_an_unexpected_error_is_reported_down_and_logged_once_with_its_traceback(caplog):
    def broken():
        raise ZeroDivisionError("division by zero")

    readiness = Readiness({"broken": broken}, reuse_seconds=0)
    for _ in range(3):
        outcome = readiness.probe(deadline=1)["broken"]
        assert not outcome.up
        assert outcome.reason == "unexpected ZeroDivisionError (details in the server log)"
    logged = [r for r in caplog.records if r.name == "avito_mod.health.probes"]
    assert len(logged) == 1 and logged[0].exc_info is not None


def test_reasons_never_show_credentials():
    error = OSError("cannot reach redis://user:s3cret@10.0.0.5:6379/0 (password=hunter2 x)")
    reason = public_reason(error)
    assert "s3cret" not in reason and "hunter2" not in reason
    assert "redis://***@10.0.0.5:6379/0" in reason


def test_probes_take_only_get_and_head(client):
    response = client.post("/healthz", HTTP_HOST=LOAD_BALANCER_HOST)
    assert response.status_code == 405 and response["Allow"] == "GET, HEAD"
