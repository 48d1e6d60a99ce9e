"""One shipped model: a release carries only its default model's files, and the manifests
of the defaults before it (``classifier.bootstrap``). An install keeps the earlier models
it registered, their files in its own storage, and can roll back to them.

The releases here are made by the tests: real tiny models trained on drawn photos, one
served as one whole file (as v1–v3 shipped), one as the int8 backbone then the heads (as
v4 and v5 ship)."""

from __future__ import annotations

import json
import shutil
from io import StringIO
from pathlib import Path

import pytest
from django.core.management import call_command
from django.urls import reverse

from ads.models import Category
from classifier.bootstrap import (
    DEFAULT_MODEL_DIR,
    SHIPPED,
    Shipped,
    ShippedModelMissing,
    install_shipped_models,
    manifest_of,
)
from classifier.ml.features import backbone_id
from classifier.models import ModelVersion, ServedBackbone
from classifier.services import (
    ClassifierError,
    classify_images,
    forget_loaded_models,
    predictor_for,
    promotion,
)
from classifier.services.fairness import folder_photo_keys
from tests.support.images import CLASSES, jpeg_bytes
from tests.support.live import ROOT
from tests.support.tiny import TINY_SIZE, tiny_config

pytestmark = pytest.mark.django_db

Status = ModelVersion.Status


@pytest.fixture(scope="session")
def heads_package(dataset_dir):
    """The int8 backbone at the tiny size, and heads (with the none-of-these detector)
    trained on its features, packaged as a release ships them."""
    from classifier.ml.dataset import load_folder
    from classifier.ml.export import backbone_litert_bytes
    from classifier.ml.features import compute
    from classifier.ml.split import near_duplicate_groups
    from classifier.ml.train import package, train

    data = load_folder(dataset_dir, TINY_SIZE)
    groups = near_duplicate_groups(data.hashes)
    result = train(compute(data.pixels), data.labels, list(CLASSES), groups, tiny_config())
    backbone = backbone_litert_bytes(TINY_SIZE, data.pixels[:16])
    return backbone, package(result, lambda i: data.pixels[i], backbone)


def write_release(folder: Path, package, photos: list[str], backbone: bytes | None = None):
    """A shipped model's folder, as ``build_default_model`` writes it: ``backbone`` given,
    served as that backbone then the heads; else as one whole model."""
    folder.mkdir(parents=True)
    manifest = {
        "classes": list(CLASSES),
        "input_size": TINY_SIZE,
        "backbone": backbone_id(TINY_SIZE),
        "threshold": package.metrics["threshold"],
        "trained_on": len(photos),
        "built_with": "tests/classifier/test_shipped_models.py",
        "metrics": package.metrics,
        "history": {},
        "training_photos": photos,
    }
    if backbone is None:
        (folder / "model.keras").write_bytes(package.keras_bytes)
        (folder / "model.tflite").write_bytes(package.serving_bytes)
    else:
        manifest["calibrated_on"] = 16
        (folder / "backbone.tflite").write_bytes(backbone)
        (folder / "heads.npz").write_bytes(package.serving_bytes)
    (folder / "manifest.json").write_text(json.dumps(manifest))
    return folder


@pytest.fixture
def releases(tmp_path, dataset_dir, tiny_package, heads_package):
    """An old default (whole model, trained on half the photos) and the new one (served
    as heads, on all of them), each in a folder of its own, and an empty registry."""
    ModelVersion.objects.all().delete()
    ServedBackbone.objects.all().delete()
    forget_loaded_models()  # primary keys repeat between tests: start like a fresh process
    photos = folder_photo_keys(dataset_dir)
    old = write_release(tmp_path / "old-default", tiny_package, photos[::2])
    backbone, heads = heads_package
    new = write_release(tmp_path / "new-default", heads, photos, backbone)
    return old, new


def next_release(old: Path, new: Path, tmp_path: Path) -> Shipped:
    """The release after ``old``: ``new``'s files, and of ``old`` only its manifest (its
    folder is gone, as v1–v4's are from the repository)."""
    kept = tmp_path / "earlier" / f"{old.name}.json"
    kept.parent.mkdir(exist_ok=True)
    shutil.copy(old / "manifest.json", kept)
    shutil.rmtree(old)
    return Shipped(new, (kept,))


def install(shipped: Shipped) -> str:
    return install_shipped_models(Category, ModelVersion, ServedBackbone, shipped)


def registry() -> list[tuple]:
    return list(
        ModelVersion.objects.order_by("number").values_list(
            "number", "status", "threshold", "serving_artifact", "serving_artifact_sha256"
        )
    )


@pytest.fixture
def upgraded(media, releases, tmp_path):
    """An install on the old default, then the next release: (old version, new version)."""
    old, new = releases
    assert install(Shipped(old)) == "Registered the shipped model old-default as v1, now active."
    said = install(next_release(old, new, tmp_path))
    assert said == "Registered the shipped model new-default as v2, now active."
    return ModelVersion.objects.get(number=1), ModelVersion.objects.get(number=2)


def test_a_fresh_install_gets_the_default_active_and_a_second_run_changes_nothing(media, releases):
    _, new = releases

    said = install(Shipped(new))

    assert said == "Registered the shipped model new-default as v1, now active."
    version = ModelVersion.objects.get()
    assert version.status == Status.ACTIVE
    assert version.served_backbone.backbone == version.backbone == backbone_id(TINY_SIZE)
    assert version.training_photos == manifest_of(new)["training_photos"]
    laptop, phone = classify_images([jpeg_bytes("laptop", 1), jpeg_bytes("phone", 1)], version)
    assert (laptop.category, phone.category) == ("laptop", "phone")
    before = registry()
    assert install(Shipped(new)) == "The shipped model v1 is registered already."
    assert registry() == before


def test_an_install_on_the_old_default_gets_the_new_one_and_keeps_the_old(upgraded):
    old, new = upgraded

    assert (old.status, new.status) == (Status.RETIRED, Status.ACTIVE)
    assert old.served_backbone is None and new.served_backbone is not None
    # The old default's files are this install's own: its release folder is gone.
    assert predictor_for(old).input_size == TINY_SIZE


def test_rolling_back_to_the_old_default_serves_it_from_the_storage(upgraded):
    old, _ = upgraded

    promotion.roll_back(old, None)

    assert ModelVersion.objects.active() == old
    laptop, phone = classify_images([jpeg_bytes("laptop", 2), jpeg_bytes("phone", 2)], old)
    assert (laptop.category, phone.category) == ("laptop", "phone")
    assert set(laptop.probabilities) == set(CLASSES)


def test_a_rolled_back_version_whose_file_is_gone_is_named_with_its_file(upgraded, admin_client):
    old, _ = upgraded
    name = old.serving_artifact.name
    old.serving_artifact.storage.delete(name)

    promotion.roll_back(old, None)

    with pytest.raises(ClassifierError, match=rf"model v{old.number} could not be loaded: .*"):
        predictor_for(old)
    html = admin_client.get(reverse("admin:index")).content.decode()
    assert f"The active model v{old.number} cannot be loaded" in html
    assert Path(name).name in html


def test_a_new_default_waits_as_a_candidate_beside_a_version_an_admin_promoted(
    media, releases, tiny_package, tmp_path, django_user_model
):
    from tests.support.tiny import register_version

    old, new = releases
    install(Shipped(old))
    admin = django_user_model.objects.create_superuser("ada", "ada@example.com", "pw")
    own = register_version(tiny_package)
    promotion.promote(own, admin, override_reason="ours")
    before = registry()

    said = install(next_release(old, new, tmp_path))

    assert said == (
        "Registered the shipped model new-default as candidate v3; v2, promoted by an admin, "
        "stays active (promote the new one in the model registry)."
    )
    assert ModelVersion.objects.active() == own
    assert registry()[:2] == before
    assert ModelVersion.objects.get(number=3).status == Status.CANDIDATE


def test_an_earlier_defaults_copy_follows_the_threshold_its_release_moved(
    media, releases, tmp_path
):
    old, new = releases
    install(Shipped(old))
    shipped = next_release(old, new, tmp_path)
    manifest = json.loads(shipped.earlier[0].read_text())
    before = manifest["threshold"]
    manifest["threshold"] = round(before - 0.01, 4)
    manifest["metrics"] = manifest["metrics"] | {"target_risk": 0.03}
    shipped.earlier[0].write_text(json.dumps(manifest))

    said = install(shipped)

    moved = manifest["threshold"]
    assert f"now decides alone from confidence {moved:.4f} (was {before:.4f})" in said
    old_version = ModelVersion.objects.get(number=1)
    assert old_version.threshold == manifest["threshold"]
    assert old_version.metrics["target_risk"] == 0.03
    assert install(shipped) == "The shipped model v2 is registered already."


def test_a_shipped_model_missing_a_file_is_refused_and_registers_nothing(media, releases):
    _, new = releases
    (new / "heads.npz").unlink()

    with pytest.raises(ShippedModelMissing, match="new-default is incomplete: heads.npz missing"):
        install(Shipped(new))

    assert not ModelVersion.objects.exists() and not ServedBackbone.objects.exists()


# --- The real release --------------------------------------------------------------------


def test_an_install_where_the_shipped_v4_is_active_gets_v5_and_keeps_v4(media):
    """A registry migrated before v5 shipped, v4 active (known by its manifest in
    ``default_model/earlier/``; its files are that install's own): v5 takes over."""
    ModelVersion.objects.all().delete()
    ServedBackbone.objects.all().delete()
    v4 = json.loads(SHIPPED.earlier[3].read_text())
    backbone = ServedBackbone.objects.create(backbone=v4["backbone"], calibrated_on=16)
    fields = ("classes", "input_size", "threshold", "trained_on", "training_photos", "backbone")
    ModelVersion.objects.create(
        number=4, status=Status.ACTIVE, served_backbone=backbone, **{f: v4[f] for f in fields}
    )
    out = StringIO()

    call_command("install_default_model", stdout=out)

    assert "Registered the shipped model v5 as v5, now active." in out.getvalue()
    assert ModelVersion.objects.get(number=4).status == Status.RETIRED
    assert ModelVersion.objects.active().backbone == manifest_of(DEFAULT_MODEL_DIR)["backbone"]


def test_the_repository_ships_one_model_in_at_most_25_mb():
    suffixes = {".tflite", ".npz", ".keras", ".h5", ".pth"}
    files = [p for p in (ROOT / "classifier").rglob("*") if p.suffix in suffixes]
    assert {p.parent for p in files} == {DEFAULT_MODEL_DIR}
    assert sum(p.stat().st_size for p in files) <= 25 * 2**20
    assert [p.stem for p in SHIPPED.earlier] == ["v1", "v2", "v3", "v4"]
    assert all(json.loads(p.read_text())["training_photos"] for p in SHIPPED.earlier)
