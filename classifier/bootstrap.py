"""The shipped defaults: categories Laptops and Phones, and the default model to serve them.

One model ships, in ``default_model/v5/``: classifier heads on the int8 EfficientNet-Lite1
backbone, with the none-of-these detector (``classifier.ml.none_of_these``). Migrations
install it, so that a fresh ``migrate`` gives a working classifier, and an install on an
earlier default gets it as a new version, active where a shipped model was.

The defaults shipped before it (v1–v4) are no longer in the repository: their files are in
git history (``default_model/README.md`` names the commits). Their manifests stay, in
``default_model/earlier/``: an install that registered them keeps them in its registry and
their files in its storage, and the manifests are how their registered copies are known
(a shipped model active there gives way to the new default; v1 learns its training
photos; a threshold a release moved is followed).

The backbone of a default served as heads becomes the served backbone of its id
(``ServedBackbone``), which retrains on that backbone then reuse instead of converting
their own; where a retrain converted one already, the shipped heads are served after that
one.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

from django.core.files.base import ContentFile
from django.utils import timezone

MODELS_DIR = Path(__file__).resolve().parent / "default_model"
DEFAULT_CATEGORIES = {"laptop": "Laptops", "phone": "Phones"}


@dataclass(frozen=True)
class Shipped:
    """What a release ships: the default model's folder (``manifest.json`` and its files),
    and the manifests of the defaults shipped before it, oldest first."""

    default: Path
    earlier: tuple[Path, ...] = ()

    def earlier_manifests(self) -> list[tuple[str, dict]]:
        return [(path.stem, json.loads(path.read_text())) for path in self.earlier]


SHIPPED = Shipped(
    MODELS_DIR / "v5", tuple(MODELS_DIR / "earlier" / f"v{n}.json" for n in range(1, 5))
)
DEFAULT_MODEL_DIR = SHIPPED.default


class ShippedModelMissing(RuntimeError):
    """The shipped default model's folder lacks a file it needs."""


def manifest_of(model_dir: Path) -> dict:
    path = model_dir / "manifest.json"
    if not path.is_file():
        raise ShippedModelMissing(f"The shipped model's manifest {path} is missing.")
    return json.loads(path.read_text())


def served_as_heads(manifest: dict) -> bool:
    """Served as the int8 backbone then the heads (v4 on), not as one whole file: only
    such a model records how many photos calibrated its backbone."""
    return "calibrated_on" in manifest


def files_of(manifest: dict) -> dict[str, str]:
    """``{registry field: file name}`` a shipped model's folder holds, its backbone's
    aside. A model served as heads ships no Keras form: the heads say it all."""
    if served_as_heads(manifest):
        return {"serving_artifact": "heads.npz"}
    return {"artifact": "model.keras", "serving_artifact": "model.tflite"}


def install_default_categories(category_model) -> None:
    for slug, name in DEFAULT_CATEGORIES.items():
        category_model.objects.get_or_create(slug=slug, defaults={"name": name})


def install_shipped_models(
    category_model, model_version_model, backbone_model=None, shipped: Shipped = SHIPPED
) -> str:
    """Bring a registry up to date with the shipped models; returns what was done.

    The default model is registered once, under the next free number; it becomes the
    active version when the active one is a shipped model (this release's or an earlier
    one's) or none is, and is left as a candidate when an admin has promoted a version of
    their own. The registered copy of any shipped model follows the threshold its release
    sets (the same heads, another error target), and learns its training photos if it was
    registered before versions recorded them.

    A default served as heads needs ``backbone_model`` (the ``ServedBackbone`` class): the
    migrations that predate it pass none, and leave the default to a later migration.
    """
    install_default_categories(category_model)
    said = [
        _follow(model_version_model, name, manifest)
        for name, manifest in shipped.earlier_manifests()
    ]
    manifest = manifest_of(shipped.default)
    if backbone_model is not None or not served_as_heads(manifest):
        said.append(_install(model_version_model, shipped, backbone_model))
    return " ".join(filter(None, said))


def _follow(model_version_model, name: str, manifest: dict) -> str:
    """An earlier default's registered copy brought up to its release ("" if there is
    none: its files are no longer shipped, so an install without it does not get it)."""
    registered = _registered(model_version_model, manifest)
    if registered is None:
        return ""
    _learn_training_photos(registered, manifest)
    if registered.threshold == manifest["threshold"]:
        return ""
    return _follow_threshold(registered, manifest)


def _install(model_version_model, shipped: Shipped, backbone_model) -> str:
    folder = shipped.default
    manifest = manifest_of(folder)
    registered = _registered(model_version_model, manifest)
    if registered is not None:
        _learn_training_photos(registered, manifest)
        if registered.threshold == manifest["threshold"]:
            return f"The shipped model v{registered.number} is registered already."
        return _follow_threshold(registered, manifest)
    _check_complete(folder, manifest)
    active = model_version_model.objects.filter(status="active").first()
    manifests = [m for _, m in shipped.earlier_manifests()]
    shipped_ids = {
        version.pk
        for version in (_registered(model_version_model, m) for m in manifests)
        if version is not None
    }
    take_over = active is None or active.pk in shipped_ids
    last = model_version_model.objects.order_by("-number").first()
    version = _version(
        model_version_model, folder, manifest, number=(last.number if last else 0) + 1
    )
    if served_as_heads(manifest):
        version.served_backbone = _backbone(backbone_model, folder, manifest)
    version.save()
    if take_over:
        model_version_model.objects.filter(status="active").update(status="retired")
        model_version_model.objects.filter(pk=version.pk).update(
            status="active", activated_at=timezone.now()
        )
        return f"Registered the shipped model {folder.name} as v{version.number}, now active."
    return (
        f"Registered the shipped model {folder.name} as candidate v{version.number}; "
        f"v{active.number}, promoted by an admin, stays active (promote the new one in the "
        "model registry)."
    )


def _check_complete(folder: Path, manifest: dict) -> None:
    names = list(files_of(manifest).values())
    if served_as_heads(manifest):
        names.append("backbone.tflite")
    missing = [name for name in names if not (folder / name).is_file()]
    if missing:
        raise ShippedModelMissing(
            f"The shipped model {folder.name} is incomplete: {', '.join(missing)} missing "
            f"from {folder} (a partial checkout or copy?); nothing was registered."
        )


def _registered(model_version_model, manifest: dict):
    """The registry's copy of a shipped model, or None. Models on the pretrained backbone
    are known by their backbone and training photos; v1, trained from scratch, by its
    threshold and training size (its rows predate any other mark)."""
    found = model_version_model.objects.filter(
        trained_on=manifest["trained_on"], classes=manifest["classes"]
    )
    if manifest.get("backbone"):
        found = found.filter(
            backbone=manifest["backbone"], training_photos=manifest["training_photos"]
        )
        # v3 and v4 share their photos and backbone: the served form tells them apart.
        if any(f.name == "served_backbone" for f in model_version_model._meta.get_fields()):
            found = found.filter(served_backbone__isnull=not served_as_heads(manifest))
    else:
        found = found.filter(threshold=manifest["threshold"])
    return found.order_by("number").first()


def _learn_training_photos(version, manifest: dict) -> None:
    """v1 was registered before versions recorded the photos they trained on."""
    if hasattr(version, "training_photos") and not version.training_photos:
        version.training_photos = manifest.get("training_photos", [])
        version.save(update_fields=["training_photos"])


def _follow_threshold(version, manifest: dict) -> str:
    before = version.threshold
    version.threshold = manifest["threshold"]
    version.metrics = manifest["metrics"]
    version.save(update_fields=["threshold", "metrics"])
    return (
        f"The shipped model v{version.number} now decides alone from confidence "
        f"{version.threshold:.4f} (was {before:.4f}): automatic errors at most "
        f"{manifest['metrics']['target_risk']:.0%} on its out-of-fold answers."
    )


def _version(model_version_model, folder: Path, manifest: dict, number: int):
    version = model_version_model(
        number=number,
        status="candidate",
        classes=manifest["classes"],
        input_size=manifest["input_size"],
        threshold=manifest["threshold"],
        metrics=manifest["metrics"],
        history=manifest["history"],
        trained_on=manifest["trained_on"],
        training_photos=manifest.get("training_photos", []),
        backbone=manifest.get("backbone", ""),
    )
    for field, filename in files_of(manifest).items():
        content = (folder / filename).read_bytes()
        getattr(version, field).save(filename, ContentFile(content), save=False)
        setattr(version, f"{field}_sha256", hashlib.sha256(content).hexdigest())
    return version


def _backbone(backbone_model, folder: Path, manifest: dict):
    """The served backbone of the model's backbone id: the one a retrain converted here,
    else the shipped one, installed now."""
    existing = backbone_model.objects.filter(backbone=manifest["backbone"]).first()
    if existing is not None:
        return existing
    content = (folder / "backbone.tflite").read_bytes()
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
