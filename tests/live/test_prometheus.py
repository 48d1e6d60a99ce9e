"""``GET /metrics`` for Prometheus: who may read it, and the platform's series after a small
real run (uploads through the API, a real Celery worker, a moderator's decision, training
runs), scraped over HTTP and read back with Prometheus's own parser."""

from __future__ import annotations

import subprocess
import sys
from datetime import timedelta

import pytest
import requests
from django.utils import timezone
from rest_framework.authtoken.models import Token

from ads.models import Ad, Category
from avito_mod.env import env_networks
from classifier.models import ModelVersion, Prediction
from classifier.services import retraining
from moderation import services as moderation
from moderation.metrics import DatabaseCollector
from tests.support.factories import make_moderator
from tests.support.images import jpeg_bytes
from tests.support.live import ROOT, celery_worker, wait_for
from tests.support.retraining import drawn, import_drawn, train_candidate
from tests.support.scrapes import TOKEN, scrape, value

pytestmark = pytest.mark.django_db


# --- Who may read it ---------------------------------------------------------------


def test_closed_with_a_clear_message_when_nothing_is_configured(client, settings):
    settings.METRICS_TOKEN, settings.METRICS_ALLOWED_NETWORKS = "", []
    response = client.get("/metrics")
    assert response.status_code == 403
    assert "closed" in response.text
    assert "METRICS_TOKEN" in response.text and "METRICS_ALLOWED_NETWORKS" in response.text


def test_the_token_is_required_when_set(client, settings):
    settings.METRICS_TOKEN, settings.METRICS_ALLOWED_NETWORKS = TOKEN, []
    missing = client.get("/metrics")
    assert missing.status_code == 401
    assert missing["WWW-Authenticate"] == 'Bearer realm="metrics"'
    assert client.get("/metrics", headers={"Authorization": "Bearer wrong"}).status_code == 401
    assert client.get("/metrics", headers={"Authorization": f"Token {TOKEN}"}).status_code == 401
    good = client.get("/metrics", headers={"Authorization": f"Bearer {TOKEN}"})
    assert good.status_code == 200
    assert good["Content-Type"].startswith("text/plain; version=")
    assert "avito_ads{" in good.text
    assert client.post("/metrics", headers={"Authorization": f"Bearer {TOKEN}"}).status_code == 405


def test_the_client_address_must_be_in_an_allowed_network_when_set(client, settings):
    settings.METRICS_TOKEN = ""
    settings.METRICS_ALLOWED_NETWORKS = [*networks("10.0.0.0/8")]
    refused = client.get("/metrics")  # the test client is 127.0.0.1
    assert refused.status_code == 403 and "METRICS_ALLOWED_NETWORKS" in refused.text
    settings.METRICS_ALLOWED_NETWORKS = [*networks("10.0.0.0/8, 127.0.0.1")]
    assert client.get("/metrics").status_code == 200


def test_behind_a_proxy_the_proxys_own_address_does_not_open_it(client, settings):
    settings.METRICS_TOKEN = ""
    settings.METRICS_ALLOWED_NETWORKS = [*networks("127.0.0.0/8")]  # the proxy's address
    settings.REST_FRAMEWORK = settings.REST_FRAMEWORK | {"NUM_PROXIES": 1}
    outside = client.get("/metrics", headers={"X-Forwarded-For": "203.0.113.9"})
    assert outside.status_code == 403
    inside = client.get("/metrics", headers={"X-Forwarded-For": "127.0.0.5"})
    assert inside.status_code == 200


def test_with_both_set_both_are_required(client, settings):
    settings.METRICS_TOKEN = TOKEN
    settings.METRICS_ALLOWED_NETWORKS = [*networks("10.0.0.0/8")]
    bearer = {"Authorization": f"Bearer {TOKEN}"}
    assert client.get("/metrics", headers=bearer).status_code == 403
    settings.METRICS_ALLOWED_NETWORKS = [*networks("127.0.0.1")]
    assert client.get("/metrics").status_code == 401
    assert client.get("/metrics", headers=bearer).status_code == 200


def networks(value: str):
    """Networks parsed as settings.py parses METRICS_ALLOWED_NETWORKS."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("METRICS_ALLOWED_NETWORKS", value)
        return env_networks("METRICS_ALLOWED_NETWORKS")


def test_bad_settings_stop_start_up_with_a_message():
    for variable, bad, said in (
        ("METRICS_TOKEN", "short", "at least 24 characters"),
        ("METRICS_ALLOWED_NETWORKS", "10.0.0.0/8,intranet", "'intranet'"),
    ):
        run = subprocess.run(
            [sys.executable, "-c", "import avito_mod.settings"],
            cwd=ROOT, env={"PATH": "/usr/bin:/bin", variable: bad},
            capture_output=True, text=True, timeout=60,
        )  # fmt: skip
        assert run.returncode != 0
        assert variable in run.stderr and said in run.stderr, run.stderr[-2000:]


# --- The series after a small real run --------------------------------------------------


def test_the_figures_are_read_in_six_queries(django_assert_num_queries):
    with django_assert_num_queries(6):
        families = list(DatabaseCollector().collect())
    assert {f.name for f in families} >= {"avito_ads", "avito_inference_seconds"}


def test_with_the_database_down_the_scrape_says_so_and_keeps_the_process_series():
    script = (
        "import django; django.setup();"
        "from django.test import Client;"
        "r = Client(HTTP_HOST='localhost').get('/metrics', headers={'Authorization': "
        f"'Bearer {TOKEN}'}});"
        "print(r.status_code); print(r.content.decode())"
    )
    run = subprocess.run(
        [sys.executable, "-c", script],
        cwd=ROOT,
        env={
            "PATH": "/usr/bin:/bin",
            "DJANGO_SETTINGS_MODULE": "avito_mod.settings",
            "METRICS_TOKEN": TOKEN,
            # Nothing listens on port 1.
            "DATABASE_URL": "postgres://postgres@127.0.0.1:1/avito_mod",
        },
        capture_output=True,
        text=True,
        timeout=60,
    )
    status, _, text = run.stdout.partition("\n")
    assert status == "200", run.stdout[-2000:] + run.stderr[-2000:]
    samples = scrape(text)
    assert value(samples, "avito_metrics_database_up") == 0
    assert not any(name.startswith("avito_ads") for name, _ in samples)
    assert (
        value(
            samples, "django_db_new_connection_errors_total", alias="default", vendor="postgresql"
        )
        >= 1
    )
    assert "the database cannot be read" in run.stderr


def _post_ad(url: str, token: str, kinds: list[str]) -> int:
    files = [
        ("photos", (f"{kind}{n}.jpg", jpeg_bytes(kind, 5000 + n), "image/jpeg"))
        for n, kind in enumerate(kinds)
    ]
    response = requests.post(
        f"{url}/api/v1/ads/",
        data={"title": "For sale", "description": "", "price": "99", "category": "phone"},
        files=files,
        headers={"Authorization": f"Token {token}"},
        timeout=30,
    )
    assert response.status_code == 201, response.text
    return response.json()["id"]


def _routed(ad_ids: list[int]) -> bool:
    return not Ad.objects.filter(pk__in=ad_ids, status=Ad.Status.PENDING).exists()


def _small_run(url: str, seller, tmp_path) -> str:
    """Uploads classified by the running worker, a decision, a pending ad, two training
    runs; then the scrape's text."""
    token = Token.objects.create(user=seller).key
    published = _post_ad(url, token, ["phone", "phone"])
    first, second = (_post_ad(url, token, ["laptop"]) for _ in range(2))
    wait_for(lambda: _routed([published, first, second]), 60, lambda: "ads still pending")
    assert Ad.objects.get(pk=published).status == Ad.Status.PUBLISHED
    assert set(
        Ad.objects.filter(pk__in=[first, second]).values_list("review_reason", flat=True)
    ) == {Ad.ReviewReason.CATEGORY_MISMATCH}
    moderation.decide(first, make_moderator(), "recategorize")
    # Never enqueued (as when the broker is down at upload): it waits for classification.
    pending = Ad.objects.create(
        seller=seller, title="Pending", price=1, category=Category.objects.get(slug="phone")
    )
    # Training runs: one fails (a single category), one succeeds.
    import_drawn(tmp_path, {"phone": drawn("phone", range(12))}, name="one")
    failed = retraining.request_training(None)
    assert retraining.run_training(failed.pk).startswith(f"v{failed.number} failed")
    import_drawn(tmp_path, {"laptop": drawn("laptop", range(12))}, name="two")
    assert train_candidate(None).status == ModelVersion.Status.CANDIDATE

    # Known waits: the pending ad since 2 minutes, the one left in review since 5; set last,
    # so that the trainings (slow on busy cores) add nothing to them.
    now = timezone.now()
    Ad.objects.filter(pk=pending.pk).update(updated_at=now - timedelta(seconds=120))
    Ad.objects.filter(pk=second).update(decided_at=now - timedelta(seconds=300))
    # One request on its connection: no server thread left holding a database session.
    headers = {"Authorization": f"Bearer {TOKEN}", "Connection": "close"}
    response = requests.get(f"{url}/metrics", headers=headers, timeout=30)
    assert response.status_code == 200
    return response.text


@pytest.mark.django_db(transaction=True, serialized_rollback=True)
@pytest.mark.slow
def test_every_series_after_a_small_run(
    tiny_version, seller, live_server, child_env, tmp_path, settings
):
    settings.METRICS_TOKEN = TOKEN
    with celery_worker(tmp_path / "worker.log", child_env):
        samples = scrape(_small_run(live_server.url, seller, tmp_path))

    def ads(status):
        return value(samples, "avito_ads", status=status)

    assert (ads("published"), ads("needs_review"), ads("pending"), ads("rejected")) == (2, 1, 1, 0)
    assert value(samples, "avito_ads_in_review", reason="category_mismatch") == 1
    assert value(samples, "avito_ads_in_review", reason="low_confidence") == 0
    assert value(samples, "avito_queue_ads", queue="review") == 1
    assert value(samples, "avito_queue_ads", queue="classification") == 1
    assert 300 <= value(samples, "avito_queue_oldest_wait_seconds", queue="review") < 360
    assert 120 <= value(samples, "avito_queue_oldest_wait_seconds", queue="classification") < 180

    version = str(tiny_version.number)
    assert value(samples, "avito_photos_classified_total", model_version=version) == 4
    latencies = list(
        Prediction.objects.filter(model_version=tiny_version).values_list("latency_ms", flat=True)
    )
    assert value(samples, "avito_inference_seconds_count", model_version=version) == 4
    assert value(samples, "avito_inference_seconds_sum", model_version=version) == pytest.approx(
        sum(latencies) / 1000
    )
    for bound in ("0.001", "0.01", "0.1", "1.0"):
        expected = sum(1 for ms in latencies if ms <= float(bound) * 1000)
        assert (
            value(samples, "avito_inference_seconds_bucket", model_version=version, le=bound)
            == expected
        )
    assert value(samples, "avito_inference_seconds_bucket", model_version=version, le="+Inf") == 4

    assert value(samples, "avito_training_runs_total", outcome="succeeded") == 1
    assert value(samples, "avito_training_runs_total", outcome="failed") == 1
    assert value(samples, "avito_training_runs_running") == 0
    assert ModelVersion.objects.active() == tiny_version  # the candidate was not promoted
    assert value(samples, "avito_active_model_version") == tiny_version.number

    assert value(samples, "avito_moderation_decisions_total", action="recategorize") == 1
    assert value(samples, "avito_moderation_decisions_total", action="accept") == 0
    assert value(samples, "avito_moderation_decisions_undone_total", action="recategorize") == 0
    assert value(samples, "avito_metrics_database_up") == 1

    # django-prometheus: this process's requests (the uploads among them) and queries.
    uploads = value(
        samples,
        "django_http_requests_total_by_view_transport_method_total",
        view="ads:ad-list",
        transport="http",
        method="POST",
    )
    assert uploads >= 3
    assert any(name == "django_db_execute_total" for name, _ in samples)
