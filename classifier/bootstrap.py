"""The shipped default: categories Laptops and Phones, and a trained model to serve them.

Run once by a data migration, so that a fresh ``migrate`` gives a working classifier.
"""

from __future__ import annotations

import json
from pathlib import Path

from django.core.files.base import ContentFile

DEFAULT_MODEL_DIR = Path(__file__).resolve().parent / "default_model"
DEFAULT_CATEGORIES = {"laptop": "Laptops", "phone": "Phones"}


def install_defaults(category_model, model_version_model) -> None:
    """Create the default categories and register the shipped model as active v1.

    Takes the model classes as arguments so a migration can pass its historical ones.
    Does nothing to a registry that already has versions.
    """
    for slug, name in DEFAULT_CATEGORIES.items():
        category_model.objects.get_or_create(slug=slug, defaults={"name": name})
    manifest_path = DEFAULT_MODEL_DIR / "manifest.json"
    if not manifest_path.exists() or model_version_model.objects.exists():
        return
    manifest = json.loads(manifest_path.read_text())
    version = model_version_model(
        number=1,
        status="active",
        classes=manifest["classes"],
        input_size=manifest["input_size"],
        threshold=manifest["threshold"],
        metrics=manifest["metrics"],
        history=manifest["history"],
        trained_on=manifest["trained_on"],
    )
    for field, filename in (("artifact", "model.keras"), ("serving_artifact", "model.tflite")):
        content = ContentFile((DEFAULT_MODEL_DIR / filename).read_bytes())
        getattr(version, field).save(filename, content, save=False)
    version.save()
