"""The shipped defaults: categories Laptops and Phones, and trained models to serve them.

Five models ship: v1, the from-scratch CNN of the first releases; v2, on the pretrained
EfficientNet-Lite0 backbone; v3, on the same backbone with its last block's features too;
v4, v3's recipe served as the int8 backbone then the heads, so that it also tells photos of
none of the categories (``classifier.ml.none_of_these``); v5, the default, the same recipe
on EfficientNet-Lite1. Migrations install them, so that a fresh ``migrate`` gives a working
classifier (v5 active, the others kept for rollback), and an existing install gets the new
ones as new versions.

The backbone of each model served as heads (v4: Lite0, v5: Lite1) becomes the served
backbone of its id (``ServedBackbone``), which retrains on that backbone then reuse instead
of converting their own; where a retrain converted one already, the shipped heads are served
after that one.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from django.core.files.base import ContentFile
from django.utils import timezone

MODELS_DIR = Path(__file__).resolve().parent / "default_model"
FIRST_MODEL_DIR = MODELS_DIR / "v1"
# The models on the pretrained backbone, oldest first; the last is the default.
PRETRAINED_MODEL_DIRS = tuple(MODELS_DIR / f"v{number}" for number in (2, 3, 4, 5))
DEFAULT_MODEL_DIR = PRETRAINED_MODEL_DIRS[-1]
DEFAULT_CATEGORIES = {"laptop": "Laptops", "phone": "Phones"}


def manifest_of(model_dir: Path) -> dict:
    return json.loads((model_dir / "manifest.json").read_text())


def install_defaults(category_model, model_version_model) -> None:
    """Create the default categories and, in an empty registry, register v1 as active.

    Takes the model classes as arguments so that migration 0002 can pass its historical
    ones (which have no ``training_photos`` or ``backbone`` yet: ``install_default_model``
    fills those in).
    """
    for slug, name in DEFAULT_CATEGORIES.items():
        category_model.objects.get_or_create(slug=slug, defaults={"name": name})
    if model_version_model.objects.exists():
        return
    version = _version(model_version_model, FIRST_MODEL_DIR, number=1, status="active")
    version.save()


def served_as_heads(model_dir: Path) -> bool:
    """The model ships as heads for the shared int8 backbone (v4 on), not one whole file."""
    return (model_dir / "heads.npz").exists()


def install_shipped_models(category_model, model_version_model, backbone_model=None) -> str:
    """Bring a registry up to date with the shipped models; returns what was done.

    v1 gets its list of training photos. Each model on the pretrained backbone is registered
    once, under the next free number. The default (the newest) becomes the active version
    when the active one is a shipped model (or none is), and is left as a candidate when an
    admin has promoted a version of their own. A release may change a shipped model's
    threshold (the same heads, another error target): its registered copy follows.

    Models served as heads need ``backbone_model`` (the ``ServedBackbone`` class): the
    migrations that predate it pass none, and leave those models to a later migration.
    """
    install_defaults(category_model, model_version_model)
    first = _shipped(model_version_model, FIRST_MODEL_DIR)
    if first is not None and not first.training_photos:
        first.training_photos = manifest_of(FIRST_MODEL_DIR).get("training_photos", [])
        first.save(update_fields=["training_photos"])
    dirs = [d for d in PRETRAINED_MODEL_DIRS if backbone_model or not served_as_heads(d)]
    return " ".join(_install(model_version_model, d, backbone_model) for d in dirs)


def _install(model_version_model, model_dir: Path, backbone_model=None) -> str:
    registered = _shipped(model_version_model, model_dir)
    if registered is not None:
        return _follow_threshold(registered, manifest_of(model_dir))
    active = model_version_model.objects.filter(status="active").first()
    shipped = [_shipped(model_version_model, d) for d in (FIRST_MODEL_DIR, *PRETRAINED_MODEL_DIRS)]
    shipped_ids = {version.pk for version in shipped if version is not None}
    take_over = model_dir == DEFAULT_MODEL_DIR and (active is None or active.pk in shipped_ids)
    last = model_version_model.objects.order_by("-number").first()
    # An older shipped model arrives retired: kept for rollback, never offered as new.
    status = "candidate" if model_dir == DEFAULT_MODEL_DIR else "retired"
    version = _version(
        model_version_model, model_dir, number=(last.number if last else 0) + 1, status=status
    )
    if served_as_heads(model_dir):
        version.served_backbone = _backbone(backbone_model, model_dir)
    version.save()
    if take_over:
        model_version_model.objects.filter(status="active").update(status="retired")
        model_version_model.objects.filter(pk=version.pk).update(
            status="active", activated_at=timezone.now()
        )
        return f"Registered the shipped model {model_dir.name} as v{version.number}, now active."
    if model_dir != DEFAULT_MODEL_DIR:
        return f"Registered the shipped model {model_dir.name} as v{version.number} (retired)."
    return (
        f"Registered the shipped model {model_dir.name} as candidate v{version.number}; "
        f"v{active.number}, promoted by an admin, stays active (promote the new one in the "
        "model registry)."
    )


def _shipped(model_version_model, model_dir: Path):
    """The registry's copy of a shipped model, or None. Models on the pretrained backbone
    are known by their backbone and training photos; v1, trained from scratch, by its
    threshold and training size (its rows predate any other mark)."""
    manifest = manifest_of(model_dir)
    found = model_version_model.objects.filter(
        trained_on=manifest["trained_on"], classes=manifest["classes"]
    )
    if manifest.get("backbone"):
        found = found.filter(
            backbone=manifest["backbone"], training_photos=manifest["training_photos"]
        )
        # v3 and v4 share their photos and backbone: the served form tells them apart.
        if any(f.name == "served_backbone" for f in model_version_model._meta.get_fields()):
            found = found.filter(served_backbone__isnull=not served_as_heads(model_dir))
    else:
        found = found.filter(threshold=manifest["threshold"])
    return found.order_by("number").first()


def _follow_threshold(version, manifest: dict) -> str:
    if version.threshold == manifest["threshold"]:
        return f"The shipped model v{version.number} is registered already."
    before = version.threshold
    version.threshold = manifest["threshold"]
    version.metrics = manifest["metrics"]
    version.save(update_fields=["threshold", "metrics"])
    return (
        f"The shipped model v{version.number} now decides alone from confidence "
        f"{version.threshold:.4f} (was {before:.4f}): automatic errors at most "
        f"{manifest['metrics']['target_risk']:.0%} on its out-of-fold answers."
    )


def _version(model_version_model, model_dir: Path, number: int, status: str):
    manifest = manifest_of(model_dir)
    version = model_version_model(
        number=number,
        status=status,
        classes=manifest["classes"],
        input_size=manifest["input_size"],
        threshold=manifest["threshold"],
        metrics=manifest["metrics"],
        history=manifest["history"],
        trained_on=manifest["trained_on"],
    )
    for field in ("training_photos", "backbone"):
        if hasattr(version, field):  # not on the model migration 0002 passes
            setattr(version, field, manifest.get(field, getattr(version, field)))
    files = (("artifact", "model.keras"), ("serving_artifact", "model.tflite"))
    if served_as_heads(model_dir):  # its Keras form is not shipped: the heads say it all
        files = (("serving_artifact", "heads.npz"),)
    for field, filename in files:
        content = (model_dir / filename).read_bytes()
        getattr(version, field).save(filename, ContentFile(content), save=False)
        if hasattr(version, f"{field}_sha256"):  # not on older migrations' models
            setattr(version, f"{field}_sha256", hashlib.sha256(content).hexdigest())
    return version


def _backbone(backbone_model, model_dir: Path):
    """The served backbone of the model's backbone id: the one a retrain converted here,
    else the shipped one, installed now."""
    manifest = manifest_of(model_dir)
    existing = backbone_model.objects.filter(backbone=manifest["backbone"]).first()
    if existing is not None:
        return existing
    content = (model_dir / "backbone.tflite").read_bytes()
    backbone = backbone_model(
        backbone=manifest["backbone"],
        calibrated_on=manifest["calibrated_on"],
        artifact_sha256=hashlib.sha256(content).hexdigest(),
    )
    backbone.artifact.save(
        f"{manifest['input_size']}px-int8.tflite", ContentFile(content), save=False
    )
    backbone.save()
    return backbone
