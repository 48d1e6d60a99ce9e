import os
import subprocess
import sys

import pytest
from django.db import IntegrityError, connection, transaction
from django.urls import reverse

from ads.models import Category
from classifier.bootstrap import DEFAULT_MODEL_DIR, manifest_of
from classifier.ml.features import backbone_id
from classifier.models import ModelVersion, ServedBackbone, TrainingImage
from classifier.services import ClassifierError, classify_images, predictor_for
from tests.support.images import jpeg_bytes

pytestmark = pytest.mark.django_db


def test_ci_runs_on_postgresql():
    if not os.environ.get("AVITO_REQUIRE_POSTGRES"):
        pytest.skip("AVITO_REQUIRE_POSTGRES is not set (local run on SQLite)")
    assert connection.vendor == "postgresql"


def test_migrate_creates_the_default_categories():
    assert set(Category.objects.values_list("slug", "name")) >= {
        ("laptop", "Laptops"),
        ("phone", "Phones"),
    }


def test_migrate_installs_the_shipped_default_model_active():
    """v5, classifier heads on EfficientNet-Lite1 served as the int8 backbone then the
    heads (which tells photos of none of the categories): the one model a fresh install
    has (the earlier defaults no longer ship: tests/classifier/test_shipped_models.py)."""
    default = manifest_of(DEFAULT_MODEL_DIR)
    version = ModelVersion.objects.get()
    assert (version.number, version.status) == (1, ModelVersion.Status.ACTIVE)
    assert version.served_backbone.backbone == version.backbone
    assert version.classes == default["classes"] == ["laptop", "phone"]
    assert version.threshold == default["threshold"]
    assert version.backbone == default["backbone"] == backbone_id(version.input_size)
    assert version.training_photos and version.training_photos == default["training_photos"]
    assert version.trained_on == default["trained_on"] == len(version.training_photos)
    laptop, phone = classify_images([jpeg_bytes("laptop", 1), jpeg_bytes("phone", 1)], version)
    assert 0.0 < laptop.confidence <= 1.0
    assert set(laptop.probabilities) == {"laptop", "phone"}
    assert sum(phone.probabilities.values()) == pytest.approx(1.0, abs=2 / 256)  # int8
    assert predictor_for(version).input_size == default["input_size"]


def test_activating_a_version_retires_the_previous_one(tiny_version):
    newer = ModelVersion.objects.create(
        number=ModelVersion.next_number(), status=ModelVersion.Status.CANDIDATE
    )
    newer.activate()
    tiny_version.refresh_from_db()
    assert tiny_version.status == ModelVersion.Status.RETIRED
    assert ModelVersion.objects.active() == newer
    assert newer.activated_at is not None


def test_a_failed_version_cannot_be_activated(db):
    failed = ModelVersion.objects.create(number=ModelVersion.next_number(), status="failed")
    with pytest.raises(ValueError, match="failed and cannot be activated"):
        failed.activate()


def test_the_database_allows_one_active_version_only(tiny_version):
    with pytest.raises(IntegrityError), transaction.atomic():
        ModelVersion.objects.create(number=ModelVersion.next_number(), status="active")


def test_a_missing_artifact_is_a_clear_error_and_a_failing_system_check(tiny_version):
    from django.core.checks import run_checks

    tiny_version.serving_artifact.storage.delete(tiny_version.serving_artifact.name)
    tiny_version.serving_artifact.name = "models/gone/model.tflite"
    tiny_version.save()
    with pytest.raises(ClassifierError, match="could not be loaded"):
        predictor_for(tiny_version)
    assert "classifier.E001" in [message.id for message in run_checks()]


def test_no_active_model_is_a_system_check_warning(db):
    from django.core.checks import run_checks

    ModelVersion.objects.filter(status="active").update(status="retired")
    assert "classifier.W001" in [message.id for message in run_checks()]


@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_tensorflow_is_never_imported_to_serve(tiny_version, tmp_path, child_env):
    """Web and worker processes classify with LiteRT; importing TensorFlow would cost ~500 MB."""
    photo = tmp_path / "photo.jpg"
    photo.write_bytes(jpeg_bytes("phone", 3))
    script = (
        "import sys, django; django.setup();"
        "from django.core.management import call_command;"
        "import classifier.admin, classifier.services;"
        f"call_command('classify', {str(photo)!r});"
        "heavy = sorted(m for m in ('tensorflow', 'keras') if m in sys.modules);"
        "print('HEAVY', heavy)"
    )
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, env=child_env, timeout=120
    )
    assert result.returncode == 0, result.stderr
    assert "HEAVY []" in result.stdout
    assert "phone" in result.stdout


# --- Admin ----------------------------------------------------------------------


@pytest.fixture
def training_image(tmp_path, settings):
    from io import StringIO

    from django.core.management import call_command

    from tests.support.images import write_dataset

    settings.MEDIA_ROOT = tmp_path / "media"
    call_command("import_images", str(write_dataset(tmp_path / "d", 2)), stdout=StringIO())
    return TrainingImage.objects.first()


def test_admin_lists_and_shows_model_versions(admin_client, tiny_version):
    page = admin_client.get(reverse("admin:classifier_modelversion_changelist"))
    assert page.status_code == 200
    assert f">{tiny_version.number}<" in page.text
    detail = admin_client.get(
        reverse("admin:classifier_modelversion_change", args=[tiny_version.pk])
    )
    assert detail.status_code == 200
    assert "Confusion matrix" in detail.text and "Per-epoch history" in detail.text


def test_admin_promote_action(admin_client, tiny_version):
    other = ModelVersion.objects.create(
        number=ModelVersion.next_number(), status=ModelVersion.Status.CANDIDATE
    )
    response = admin_client.post(
        reverse("admin:classifier_modelversion_changelist"),
        {"action": "promote_selected", "_selected_action": [other.pk]},
        follow=True,
    )
    assert f"Model v{other.number} is now active (was v{tiny_version.number})" in response.text
    assert ModelVersion.objects.active() == other


def test_admin_promote_action_refuses_a_failed_version(admin_client, tiny_version):
    failed = ModelVersion.objects.create(number=ModelVersion.next_number(), status="failed")
    response = admin_client.post(
        reverse("admin:classifier_modelversion_changelist"),
        {"action": "promote_selected", "_selected_action": [failed.pk]},
        follow=True,
    )
    assert "only a candidate version can be promoted" in response.text
    assert ModelVersion.objects.active() == tiny_version


def test_admin_lists_training_images_with_thumbnails(admin_client, training_image):
    page = admin_client.get(reverse("admin:classifier_trainingimage_changelist"))
    assert page.status_code == 200
    assert reverse("classifier:training-image", args=[training_image.pk]) in page.text


def test_training_images_are_served_to_staff_only(client, admin_client, training_image):
    url = reverse("classifier:training-image", args=[training_image.pk])
    response = admin_client.get(url)
    assert response.status_code == 200
    assert response["Content-Type"] == "image/jpeg"
    assert b"".join(response.streaming_content).startswith(b"\xff\xd8")
    anonymous = client.get(url)
    assert anonymous.status_code == 302 and "/admin/login/" in anonymous["Location"]


def test_admin_category_pages(admin_client):
    page = admin_client.get(reverse("admin:ads_category_changelist"))
    assert page.status_code == 200 and "Phones" in page.text
    response = admin_client.post(
        reverse("admin:ads_category_add"), {"name": "Tablets", "slug": "tablet", "active": "on"}
    )
    assert response.status_code == 302
    assert Category.objects.filter(slug="tablet", active=True).exists()


def install_default_model() -> str:
    from io import StringIO

    from django.core.management import call_command

    out = StringIO()
    call_command("install_default_model", stdout=out)
    return out.getvalue()


def registry() -> list[tuple]:
    return list(
        ModelVersion.objects.order_by("number").values_list(
            "number", "status", "backbone", "training_photos", "artifact", "serving_artifact"
        )
    )


def test_install_default_model_on_an_empty_registry_installs_v5_active(media):
    ModelVersion.objects.all().delete()
    ServedBackbone.objects.all().delete()

    said = install_default_model()

    assert said.strip() == "Registered the shipped model v5 as v1, now active."
    default = ModelVersion.objects.get()
    assert default.status == ModelVersion.Status.ACTIVE
    assert default.backbone == manifest_of(DEFAULT_MODEL_DIR)["backbone"]
    assert default.served_backbone.backbone == default.backbone
    assert ServedBackbone.objects.count() == 1
    assert predictor_for(default).heads.none_of_these is not None  # its files are stored
    before = registry()
    assert "registered already" in install_default_model()
    assert registry() == before


def test_the_shipped_threshold_keeps_out_of_fold_errors_under_its_target():
    metrics = manifest_of(DEFAULT_MODEL_DIR)["metrics"]
    assert metrics["target_risk"] == 0.02
    assert metrics["error_at_threshold"] <= metrics["target_risk"]
    assert metrics["coverage_at_threshold"] >= 0.8


def test_classifying_loads_the_active_version_without_its_large_fields():
    """Quick checks and workers read the active version on every request and ad: its
    metrics, training curves and training photos stay in the database."""
    version = ModelVersion.objects.serving()
    assert version == ModelVersion.objects.active()
    assert {"metrics", "history", "training_photos", "evaluation"} <= version.get_deferred_fields()
    assert (version.classes, version.threshold) == (
        ["laptop", "phone"],
        manifest_of(DEFAULT_MODEL_DIR)["threshold"],
    )
