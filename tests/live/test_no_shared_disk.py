"""The main flow with no shared disk: the web server, the inference worker and the training
worker each get a data folder of their own (AVITO_DATA_DIR, the media folder), as on
separate machines, and share only PostgreSQL, Redis and the bucket (the S3 API server of
tests/support/s3.py). A seller uploads, the worker classifies, a moderator decides in the review
queue, an admin retrains on the training worker and promotes, and the new version serves;
then no process has written a file to its own disk's media folder.

SQLite is a file and the embedded broker a socket of one machine, so this needs DATABASE_URL
and REDIS_URL: it is skipped without them, except in CI (or with AVITO_REQUIRE_POSTGRES),
where that fails."""

from __future__ import annotations

import os
from contextlib import ExitStack, contextmanager
from io import StringIO
from pathlib import Path

import pytest
import requests
from django.conf import settings
from django.core.management import call_command
from django.db import connection
from django.urls import reverse
from rest_framework.authtoken.models import Token

from ads.models import Ad, AdImage
from bench.pipeline import free_port, web_server_command
from classifier import services
from classifier.models import ModelVersion, Prediction, TrainingImage
from tests.support.factories import store_shipped_files
from tests.support.images import jpeg_bytes, write_dataset
from tests.support.live import ROOT, answers, celery_worker, wait_for
from tests.support.s3 import IN_CI

pytestmark = pytest.mark.django_db(transaction=True, serialized_rollback=True)

PASSWORD = "a-long-pass-phrase"


@pytest.fixture
def shared_services():
    """PostgreSQL and Redis, the only things the processes share besides the bucket."""
    missing = [
        name
        for name, present in (
            ("PostgreSQL (DATABASE_URL)", connection.vendor == "postgresql"),
            ("Redis (REDIS_URL)", bool(settings.REDIS_URL)),
        )
        if not present
    ]
    if missing:
        reason = f"needs {' and '.join(missing)}: SQLite and the embedded broker are one machine's"
        if IN_CI or os.environ.get("AVITO_REQUIRE_POSTGRES"):
            pytest.fail(reason)
        pytest.skip(reason)


def machine(folder: Path, place) -> dict[str, str]:
    """A process's environment as on a machine of its own: the test database, this run's
    queues, the bucket, and a data folder (media, scratch, logs) that no other process sees."""
    folder.mkdir(parents=True)
    return (
        os.environ
        | place.env()
        | {
            "DJANGO_SETTINGS_MODULE": "avito_mod.test_settings",
            "AVITO_TEST_DATABASE_NAME": connection.settings_dict["NAME"],
            "AVITO_DATA_DIR": str(folder),
            "AVITO_TEST_SCRATCH": str(folder),
            "AVITO_TEST_MEDIA_ROOT": str(folder / "media"),
            "AVITO_MEDIA_ROOT": str(folder / "media"),
            "TF_CPP_MIN_LOG_LEVEL": "2",
        }
    )


@contextmanager
def web_server(folder: Path, env: dict[str, str]):
    """The Procfile's gunicorn (one process, four threads) on a free port."""
    import subprocess

    port = free_port()
    command, own = web_server_command(port, processes=1)
    log = folder / "web.log"
    with log.open("w") as output:
        process = subprocess.Popen(command, cwd=ROOT, env=env | own, stdout=output, stderr=output)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_for(lambda: answers(url), 60, log.read_text)
        yield url
    finally:
        process.terminate()
        process.wait(30)
        print(log.read_text()[-3000:])


def signed_in(url: str, username: str) -> requests.Session:
    """A browser session of ``username`` signed in to the admin."""
    session = requests.Session()
    session.get(f"{url}/admin/login/", timeout=10)
    answer = session.post(
        f"{url}/admin/login/",
        data={
            "username": username,
            "password": PASSWORD,
            "csrfmiddlewaretoken": session.cookies["csrftoken"],
            "next": "/admin/",
        },
        timeout=10,
    )
    assert answer.ok and "sessionid" in session.cookies, answer.text[-500:]
    session.headers["X-CSRFToken"] = session.cookies["csrftoken"]
    return session


def post_ad(url: str, token: str, category: str, photos: list[tuple[str, int]]) -> int:
    answer = requests.post(
        f"{url}/api/v1/ads/",
        data={"title": "For sale", "price": "99", "category": category},
        files=[
            ("photos", (f"{n}.jpg", jpeg_bytes(kind, seed), "image/jpeg"))
            for n, (kind, seed) in enumerate(photos)
        ],
        headers={"Authorization": f"Token {token}"},
        timeout=60,
    )
    assert answer.status_code == 201, answer.text
    return answer.json()["id"]


def decided(ad_id: int) -> Ad:
    wait_for(
        lambda: Ad.objects.get(pk=ad_id).status != Ad.Status.PENDING,
        90,
        lambda: f"ad {ad_id} still pending",
    )
    return Ad.objects.select_related("category", "suggested_category").get(pk=ad_id)


def files_on_disk(folder: Path) -> list[Path]:
    return [path for path in (folder / "media").rglob("*") if path.is_file()]


def test_upload_classify_review_retrain_and_promote_share_only_database_broker_and_bucket(
    shared_services, s3_storage, media, tiny_version, seller, tmp_path
):
    for role in ("moderator", "admin"):
        call_command("create_account", role, role=role, password=PASSWORD, stdout=StringIO())
    token = Token.objects.create(user=seller).key
    store_shipped_files()  # the shipped int8 backbone, which a retrain at 240 px reuses
    # Labelled photos to retrain on, imported by an operator (this process: its own disk too).
    services.import_images(write_dataset(tmp_path / "dataset", per_class=24, start=7000))
    folders = {role: tmp_path / role for role in ("web", "inference", "training")}
    envs = {role: machine(folder, s3_storage) for role, folder in folders.items()}

    with ExitStack() as running:
        url = running.enter_context(web_server(folders["web"], envs["web"]))
        running.enter_context(
            celery_worker(folders["inference"] / "inference.log", envs["inference"])
        )
        running.enter_context(
            celery_worker(
                folders["training"] / "training.log",
                envs["training"],
                queue=settings.CLASSIFIER_TRAINING_QUEUE,
            )
        )

        # A seller posts over HTTP; the inference worker reads the photos from the bucket.
        matching = post_ad(url, token, "phone", [("phone", 4000), ("phone", 4001)])
        mismatched = post_ad(url, token, "phone", [("laptop", 4002)])
        assert decided(matching).status == Ad.Status.PUBLISHED
        flagged = decided(mismatched)
        assert (flagged.status, flagged.review_reason) == (
            Ad.Status.NEEDS_REVIEW,
            Ad.ReviewReason.CATEGORY_MISMATCH,
        )
        assert flagged.suggested_category.slug == "laptop"
        assert Prediction.objects.filter(model_version=tiny_version).count() == 3

        # The web process streams a photo from the bucket to its seller.
        photo = AdImage.objects.filter(ad_id=matching).first()
        shown = requests.get(
            f"{url}/api/v1/ads/{matching}/photos/{photo.pk}/",
            headers={"Authorization": f"Token {token}"},
            timeout=30,
        )
        with photo.file.open("rb") as stored:
            assert shown.status_code == 200 and shown.content == stored.read()

        # A moderator recategorizes in the review queue: the web process copies the photo
        # to the training images, in the bucket.
        moderator = signed_in(url, "moderator")
        answer = moderator.post(
            url + reverse("admin:moderation_reviewitem_recategorize", args=[mismatched]),
            headers={"Accept": "application/json"},
            timeout=30,
        )
        assert answer.status_code == 200, answer.text
        flagged.refresh_from_db()
        assert (flagged.status, flagged.category.slug) == (Ad.Status.PUBLISHED, "laptop")
        label = TrainingImage.objects.get(decision__ad_id=mismatched)
        assert label.file.name in s3_storage.stored_keys()

        # An admin retrains: the training worker reads the images and writes the new
        # version's files to the bucket; the admin promotes it.
        admin = signed_in(url, "admin")
        trained = admin.post(url + reverse("admin:classifier_modelversion_train"), timeout=30)
        assert trained.ok, trained.text[-500:]
        version = ModelVersion.objects.get(status=ModelVersion.Status.TRAINING)
        wait_for(
            lambda: ModelVersion.objects.get(pk=version.pk).status != ModelVersion.Status.TRAINING,
            600,
            lambda: (folders["training"] / "training.log").read_text()[-3000:],
        )
        version.refresh_from_db()
        assert version.status == ModelVersion.Status.CANDIDATE, version.error
        assert version.trained_on > 0 and version.serving_artifact.name in s3_storage.stored_keys()
        promoted = admin.post(
            url + reverse("admin:classifier_modelversion_promote", args=[version.pk]), timeout=60
        )
        assert promoted.ok, promoted.text[-500:]
        version.refresh_from_db()
        assert version.status == ModelVersion.Status.ACTIVE

        # The running inference worker loads the new version from the bucket and serves it.
        served = decided(post_ad(url, token, "phone", [("phone", 4003)]))
        assert Prediction.objects.get(image__ad=served).model_version == version

    # No process wrote a stored file to its own disk; the bucket holds them all.
    for role, folder in folders.items():
        assert files_on_disk(folder) == [], role
    assert not media.exists() or not any(media.rglob("*"))
    keys = s3_storage.stored_keys()
    for prefix in ("ads/", "training/", f"models/v{version.number}/"):
        assert any(key.startswith(prefix) for key in keys), prefix
