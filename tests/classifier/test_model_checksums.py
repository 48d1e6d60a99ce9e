"""Verified models: the registry records each artifact's SHA-256, and a process serves a
file only while it is the one recorded, noticing a replacement without a restart."""

from __future__ import annotations

import hashlib

import pytest
from django.core.files.base import ContentFile
from django.urls import reverse

from ads.models import Ad
from classifier.bootstrap import DEFAULT_MODEL_DIR
from classifier.models import ModelVersion
from classifier.services import ClassifierError, predictor_for
from classifier.services.artifacts import ArtifactMismatch
from moderation import pipeline
from tests.moderation.test_pipeline import ad_with
from tests.support.s3 import storage_wanted

# In the S3 pass too (-m s3, see .ci/run): this module stores or reads files.
pytestmark = [pytest.mark.django_db, pytest.mark.s3]


def _stored_bytes(file) -> bytes:
    with file.open("rb") as handle:
        return handle.read()


def _replace(file, content: bytes) -> None:
    """What an operator's copy (or a disk fault) does: other bytes under the same name."""
    file.storage.delete(file.name)
    file.storage.save(file.name, ContentFile(content))


def test_migrate_records_the_checksums_of_the_shipped_model():
    version = ModelVersion.objects.get()  # the shipped default: heads for its backbone
    expected = hashlib.sha256((DEFAULT_MODEL_DIR / "heads.npz").read_bytes()).hexdigest()
    assert version.serving_artifact_sha256 == expected
    backbone = (DEFAULT_MODEL_DIR / "backbone.tflite").read_bytes()
    assert version.served_backbone.artifact_sha256 == hashlib.sha256(backbone).hexdigest()
    assert not version.artifact and not version.artifact_sha256  # no Keras form ships


def test_a_registered_version_records_what_it_stored(tiny_version):
    for field in ("artifact", "serving_artifact"):
        stored = _stored_bytes(getattr(tiny_version, field))
        assert getattr(tiny_version, f"{field}_sha256") == hashlib.sha256(stored).hexdigest()


def test_a_loaded_model_notices_its_file_replaced_without_a_restart(tiny_version, settings):
    settings.CLASSIFIER_ARTIFACT_CHECK_SECONDS = 0
    original = _stored_bytes(tiny_version.serving_artifact)
    first = predictor_for(tiny_version)
    assert predictor_for(tiny_version) is first  # unchanged file: the loaded copy

    _replace(tiny_version.serving_artifact, original[:-64] + b"\0" * 64)
    with pytest.raises(ArtifactMismatch, match=f"model v{tiny_version.number}: .* replaced"):
        predictor_for(tiny_version)
    with pytest.raises(ArtifactMismatch):  # and keeps refusing: no stale copy is kept
        predictor_for(tiny_version)

    _replace(tiny_version.serving_artifact, original)  # the recorded file is back
    assert predictor_for(tiny_version).probabilities is not None


def test_a_copy_that_keeps_size_and_modification_time_is_still_noticed(tiny_version, settings):
    """``cp -p`` or ``rsync -t`` of another file of the same size: only the change time,
    which no copy preserves, tells."""
    import os

    if storage_wanted() == "s3":
        pytest.skip("a copy on the local disk; in a bucket the ETag tells (test_object_storage)")
    settings.CLASSIFIER_ARTIFACT_CHECK_SECONDS = 0
    path = tiny_version.serving_artifact.path
    before = os.stat(path)
    predictor_for(tiny_version)
    original = _stored_bytes(tiny_version.serving_artifact)
    with open(path, "r+b") as handle:  # same size, in place
        handle.write(original[::-1])
    os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns))

    with pytest.raises(ArtifactMismatch):
        predictor_for(tiny_version)


def test_between_checks_the_loaded_copy_is_served_without_touching_storage(tiny_version, settings):
    settings.CLASSIFIER_ARTIFACT_CHECK_SECONDS = 3600
    first = predictor_for(tiny_version)
    tiny_version.serving_artifact.storage.delete(tiny_version.serving_artifact.name)
    assert predictor_for(tiny_version) is first
    settings.CLASSIFIER_ARTIFACT_CHECK_SECONDS = 0
    with pytest.raises(ClassifierError, match="could not be loaded"):
        predictor_for(tiny_version)


def test_a_version_without_a_recorded_checksum_is_refused(tiny_version):
    ModelVersion.objects.filter(pk=tiny_version.pk).update(serving_artifact_sha256="")
    tiny_version.refresh_from_db()
    with pytest.raises(ArtifactMismatch, match="no recorded SHA-256"):
        predictor_for(tiny_version)


def test_an_ad_classified_by_a_replaced_model_goes_to_review_with_its_reason(
    tiny_version, seller, settings
):
    settings.CLASSIFIER_ARTIFACT_CHECK_SECONDS = 0
    predictor_for(tiny_version)  # loaded and verified, as in a running worker
    original = _stored_bytes(tiny_version.serving_artifact)
    _replace(tiny_version.serving_artifact, original[::-1])
    ad = ad_with(seller, "phone", "phone")

    pipeline.classify_ad(ad.pk)

    ad.refresh_from_db()
    assert (ad.status, ad.review_reason) == (
        Ad.Status.NEEDS_REVIEW,
        Ad.ReviewReason.MODEL_UNVERIFIED,
    )


def test_the_admin_banner_names_the_version_whose_file_was_replaced(tiny_version, admin_client):
    _replace(tiny_version.serving_artifact, b"\0" * 2048)

    html = admin_client.get(reverse("admin:index")).content.decode()

    assert f"The active model v{tiny_version.number} cannot be loaded" in html
    assert "is not the file the registry recorded" in html
    assert "(model_unverified)" in html


def test_the_registry_shows_each_files_checksum(tiny_version, admin_client):
    page = reverse("admin:classifier_modelversion_change", args=[tiny_version.pk])

    html = admin_client.get(page).content.decode()

    assert tiny_version.serving_artifact_sha256 in html
    assert tiny_version.artifact_sha256 in html
