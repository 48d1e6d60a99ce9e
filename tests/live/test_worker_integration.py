"""End to end on real components: HTTP upload -> broker -> a real Celery worker process ->
database -> final status. In CI the broker is Redis and the database PostgreSQL; locally
the embedded broker (a Valkey server on a socket) and SQLite. The model is a tiny real one
trained in the test run."""

from __future__ import annotations

import pytest
import requests
from django.db import connection
from rest_framework.authtoken.models import Token

from ads.models import Ad
from classifier.models import ModelVersion, Prediction
from tests.support.factories import make_ad
from tests.support.images import jpeg_bytes
from tests.support.live import celery_worker, wait_for

pytestmark = pytest.mark.django_db(transaction=True, serialized_rollback=True)


@pytest.fixture
def worker(tmp_path, child_env):
    """A real prefork worker on this run's inference queue, against the test database."""
    with celery_worker(tmp_path / "worker.log", child_env) as process:
        yield process


def _post_ad(live_server, token: str, category: str, kinds: list[str]) -> requests.Response:
    files = [
        ("photos", (f"{kind}{n}.jpg", jpeg_bytes(kind, 4000 + n), "image/jpeg"))
        for n, kind in enumerate(kinds)
    ]
    return requests.post(
        f"{live_server.url}/api/v1/ads/",
        data={"title": "For sale", "description": "", "price": "99", "category": category},
        files=files,
        headers={"Authorization": f"Token {token}"},
        timeout=30,
    )


def _final(ad_id: int) -> Ad:
    wait_for(
        lambda: Ad.objects.get(pk=ad_id).status != Ad.Status.PENDING,
        60,
        lambda: f"ad {ad_id} still pending",
    )
    return Ad.objects.select_related("suggested_category").get(pk=ad_id)


def test_uploads_are_classified_by_a_real_worker_and_routed(
    tiny_version, seller, live_server, worker
):
    token = Token.objects.create(user=seller).key
    matching = _post_ad(live_server, token, "phone", ["phone", "phone"])
    mismatched = _post_ad(live_server, token, "phone", ["laptop"])
    assert matching.status_code == 201, matching.text
    assert matching.json()["status"] == "pending"
    assert mismatched.status_code == 201, mismatched.text

    published = _final(matching.json()["id"])
    assert published.status == Ad.Status.PUBLISHED
    flagged = _final(mismatched.json()["id"])
    assert flagged.status == Ad.Status.NEEDS_REVIEW
    assert flagged.review_reason == Ad.ReviewReason.CATEGORY_MISMATCH
    assert flagged.suggested_category.slug == "laptop"
    assert Prediction.objects.filter(model_version=tiny_version).count() == 3

    detail = requests.get(
        f"{live_server.url}/api/v1/ads/{flagged.pk}/",
        headers={"Authorization": f"Token {token}"},
        timeout=30,
    ).json()
    assert detail["status"] == "needs_review"
    assert detail["suggested_category"]["slug"] == "laptop"
    prediction = detail["photos"][0]["prediction"]
    assert prediction["category"] == "laptop"
    assert prediction["model_version"] == tiny_version.number


def test_a_running_worker_follows_a_promotion_without_a_restart(
    tiny_version, tiny_package, seller, live_server, worker
):
    from classifier.services.retraining import promote
    from tests.support.tiny import register_version

    token = Token.objects.create(user=seller).key
    before = _final(_post_ad(live_server, token, "phone", ["phone"]).json()["id"])
    assert Prediction.objects.get(image__ad=before).model_version == tiny_version

    candidate = register_version(tiny_package)
    promote(candidate, None)

    after = _final(_post_ad(live_server, token, "phone", ["phone"]).json()["id"])
    assert Prediction.objects.get(image__ad=after).model_version == candidate


def test_a_running_worker_refuses_a_model_file_replaced_under_it(
    tiny_version, seller, live_server, tmp_path, child_env
):
    from django.core.files.base import ContentFile

    token = Token.objects.create(user=seller).key
    env = child_env | {"CLASSIFIER_ARTIFACT_CHECK_SECONDS": "0"}
    with celery_worker(tmp_path / "worker.log", env):
        served = _final(_post_ad(live_server, token, "phone", ["phone"]).json()["id"])
        assert served.status == Ad.Status.PUBLISHED  # loaded and verified

        file = tiny_version.serving_artifact
        with file.open("rb") as handle:
            original = handle.read()
        file.storage.delete(file.name)
        file.storage.save(file.name, ContentFile(original[::-1]))
        refused = _final(_post_ad(live_server, token, "phone", ["phone"]).json()["id"])

        file.storage.delete(file.name)
        file.storage.save(file.name, ContentFile(original))
        again = _final(_post_ad(live_server, token, "phone", ["phone"]).json()["id"])

    assert (refused.status, refused.review_reason) == (
        Ad.Status.NEEDS_REVIEW,
        Ad.ReviewReason.MODEL_UNVERIFIED,
    )
    assert again.status == Ad.Status.PUBLISHED


def test_the_worker_says_in_its_log_which_backbone_form_it_serves(
    seller, live_server, tmp_path, child_env, media
):
    """The shipped v5 (the test settings force its int8 form: no float32 build here)."""
    from tests.support.factories import store_shipped_files

    store_shipped_files()
    shipped = ModelVersion.objects.active()
    log = tmp_path / "worker.log"
    with celery_worker(log, child_env):
        token = Token.objects.create(user=seller).key
        posted = _post_ad(live_server, token, "phone", ["phone"])
        assert posted.status_code == 201, posted.text
        _final(posted.json()["id"])
    said = [line for line in log.read_text().splitlines() if "backbone on" in line]
    assert len(said) == 1, said
    assert f"model v{shipped.number}: serving the int8 backbone on" in said[0]
    assert "forced by CLASSIFIER_SERVING_FORM=int8" in said[0]


def _other_backends() -> list[int]:
    """The PostgreSQL server processes on the test database other than this test's own."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT pid FROM pg_stat_activity"
            " WHERE datname = current_database() AND pid <> pg_backend_pid()"
        )
        return [pid for (pid,) in cursor.fetchall()]


@pytest.mark.skipif(connection.vendor != "postgresql", reason="reads PostgreSQL's pg_stat_activity")
def test_a_worker_keeps_its_database_connection_and_replaces_a_broken_one(
    tiny_version, seller, worker
):
    """No new PostgreSQL connection per task (Celery's default); one that the server
    dropped, as a restart does, is noticed and replaced before the next task uses it."""
    first = _final(make_ad(seller, seed=10).pk)
    [kept] = _other_backends()  # the worker's, still open between tasks
    second = _final(make_ad(seller, seed=20).pk)
    assert _other_backends() == [kept]

    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_terminate_backend(%s)", [kept])
    wait_for(lambda: not _other_backends(), 10, _other_backends)
    third = _final(make_ad(seller, seed=30).pk)

    assert [first.status, second.status, third.status] == [Ad.Status.PUBLISHED] * 3
    assert _other_backends() not in ([], [kept])
