"""What the fault-injection harness (``bench/faults.py``) found, kept as fast tests: a
training's process dying, the active model's file breaking, the database or Redis going
away."""

from __future__ import annotations

import socket

import pytest
from billiard.exceptions import WorkerLostError
from django.core.files.base import ContentFile
from django.db import OperationalError
from django.urls import reverse
from rest_framework.test import APIClient

from ads.api.views import AdViewSet
from ads.throttling import UploadAddressThrottle, UploadUserThrottle
from classifier import tasks
from classifier.bootstrap import DEFAULT_MODEL_DIR, manifest_of
from classifier.models import LabelCheck, ModelVersion
from classifier.services import retraining
from moderation import tasks as moderation_tasks
from tests.support.factories import store_shipped_files

# The served form of the shipped default model, the active version after a fresh migrate.
SHIPPED_HEADS = DEFAULT_MODEL_DIR / "heads.npz"
PAGES = ("admin:index", "admin:moderation_reviewitem_changelist")


@pytest.fixture
def lost(monkeypatch):
    """What the worker's main process does when a task's pool process was SIGKILLed."""
    # It then closes its database connection; here that would end the test's transaction.
    monkeypatch.setattr(tasks.connections, "close_all", lambda: None)
    return _lost


def _lost(task, object_id: int) -> None:
    tasks.training_process_died(
        sender=task, exception=WorkerLostError("signal 9 (SIGKILL)"), args=(object_id,)
    )


def test_a_training_whose_process_was_killed_is_failed_at_once(db, lost):
    active = ModelVersion.objects.active()
    version = retraining.request_training(None)
    assert version.claim_training()

    lost(tasks.train_version, version.pk)

    version.refresh_from_db()
    assert version.status == ModelVersion.Status.FAILED
    assert "SIGKILL" in version.error
    assert ModelVersion.objects.active() == active


def test_a_label_check_whose_process_was_killed_is_failed_at_once(db, lost):
    check = LabelCheck.objects.create()

    lost(tasks.find_label_errors, check.pk)

    assert LabelCheck.objects.get(pk=check.pk).status == LabelCheck.Status.FAILED


def test_other_tasks_lost_with_their_worker_touch_no_training(db, lost):
    version = retraining.request_training(None)

    lost(moderation_tasks.classify_ad, version.pk)  # redelivered instead: nothing to fail

    version.refresh_from_db()
    assert version.status == ModelVersion.Status.TRAINING


def _put_model_file(content: bytes) -> ModelVersion:
    version = ModelVersion.objects.active()
    storage = version.serving_artifact.storage
    storage.delete(version.serving_artifact.name)
    storage.save(version.serving_artifact.name, ContentFile(content))
    return version


@pytest.mark.parametrize("page", PAGES)
def test_the_admin_warns_when_the_active_model_cannot_be_loaded(admin_client, media, page):
    version = _put_model_file(b"not a model" * 100)

    html = admin_client.get(reverse(page)).content.decode()

    assert f"The active model v{version.number} cannot be loaded" in html
    assert "classifier.E001" in html


def test_the_admin_says_nothing_when_the_active_model_loads(admin_client, media):
    store_shipped_files()  # the shipped backbone, which v5's heads follow
    version = _put_model_file(SHIPPED_HEADS.read_bytes())
    assert version.backbone == manifest_of(DEFAULT_MODEL_DIR)["backbone"]  # its own file

    html = admin_client.get(reverse("admin:index")).content.decode()

    assert "cannot be loaded" not in html


def test_the_database_going_away_is_a_503_not_a_500(seller, monkeypatch):
    def unreachable(self):
        raise OperationalError("connection to server failed: Connection refused")

    monkeypatch.setattr(AdViewSet, "get_queryset", unreachable)
    client = APIClient(raise_request_exception=False)
    client.force_authenticate(seller)

    response = client.get("/api/v1/ads/")

    assert response.status_code == 503
    assert response["Retry-After"] == "5"
    assert "database is unavailable" in response.json()["detail"]


@pytest.mark.parametrize("throttle", [UploadUserThrottle, UploadAddressThrottle])
def test_uploads_are_not_refused_while_the_rate_limit_store_is_down(settings, seller, rf, throttle):
    with socket.socket() as sock:  # a port nothing listens on: Redis stopped
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    settings.CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": f"redis://127.0.0.1:{port}/0",
        }
    }
    request = rf.post("/api/v1/ads/")
    request.user = seller

    assert throttle().allow_request(request, None)
