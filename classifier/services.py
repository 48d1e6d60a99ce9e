"""Workflows of the classifier: labelled photos (imported, or from moderators' decisions),
training, evaluating, serving.

Commands, admin actions and (later) tasks call these; they hold no logic of their own.
TensorFlow is imported only inside ``train_new_version``; serving uses LiteRT.
"""

from __future__ import annotations

import hashlib
import logging
import threading
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from django.conf import settings
from django.core.files.base import ContentFile
from django.db import transaction

from ads.models import AdImage, Category

from .ml.dataset import DatasetError, load_folder, perceptual_hash, scan_class_folders
from .ml.predict import Predictor
from .ml.preprocess import ImageError, decode_image, letterbox
from .models import ModelVersion, TrainingImage, training_image_path

logger = logging.getLogger(__name__)


class ClassifierError(Exception):
    """A request the classifier cannot serve; the message is meant for a person."""


# --- Importing labelled photos ----------------------------------------------------


@dataclass
class ImportReport:
    imported: Counter = field(default_factory=Counter)
    duplicates: int = 0
    unreadable: list[tuple[str, str]] = field(default_factory=list)


@dataclass
class _Candidate:
    category: str
    data: bytes
    name: str
    sha256: str
    phash: str
    width: int
    height: int


def decode(data: bytes):
    """Decode a photo with the project's pixel cap (see ``preprocess.decode_image``)."""
    return decode_image(data, max_pixels=settings.CLASSIFIER_MAX_IMAGE_PIXELS)


def import_images(
    directory: Path,
    source: str = TrainingImage.Source.IMPORT,
    create_categories: bool = False,
) -> ImportReport:
    """Import ``DIR/<category-slug>/*`` as labelled training images, all or nothing.

    Unreadable files are reported and skipped; exact duplicates (same bytes, already
    imported or twice in the folder) are counted and skipped.
    """
    folders = scan_class_folders(directory)
    categories = _categories_for(sorted(folders), create_categories)
    report = ImportReport()
    known = set(TrainingImage.objects.values_list("sha256", flat=True))
    candidates = []
    for slug, paths in folders.items():
        for path in paths:
            candidate = _read_candidate(slug, path, report)
            if candidate is None:
                continue
            if candidate.sha256 in known:
                report.duplicates += 1
                continue
            known.add(candidate.sha256)
            candidates.append(candidate)
    _save_training_images(candidates, categories, source)
    report.imported.update(c.category for c in candidates)
    return report


def _categories_for(slugs: list[str], create: bool) -> dict[str, Category]:
    found = {c.slug: c for c in Category.objects.filter(slug__in=slugs)}
    missing = [slug for slug in slugs if slug not in found]
    if missing and not create:
        known = ", ".join(Category.objects.values_list("slug", flat=True)) or "none yet"
        raise DatasetError(
            f"no category with slug {', '.join(missing)} (known: {known}); "
            "rename the folder or pass --create-categories"
        )
    return found | {slug: _new_category(slug) for slug in missing}


def _new_category(slug: str) -> Category:
    return Category(slug=slug, name=slug.replace("-", " ").replace("_", " ").title())


def _read_candidate(slug: str, path: Path, report: ImportReport) -> _Candidate | None:
    data = path.read_bytes()
    try:
        image = decode(data)
    except ImageError as error:
        report.unreadable.append((str(path), str(error)))
        return None
    return _Candidate(
        category=slug,
        data=data,
        name=path.name,
        sha256=hashlib.sha256(data).hexdigest(),
        phash=f"{perceptual_hash(image):016x}",
        width=image.width,
        height=image.height,
    )


def _save_training_images(candidates: list[_Candidate], categories, source: str) -> None:
    saved_files = []
    try:
        with transaction.atomic():
            for category in categories.values():
                if category.pk is None:
                    category.save()
            for candidate in candidates:
                image = TrainingImage(
                    category=categories[candidate.category],
                    source=source,
                    sha256=candidate.sha256,
                    phash=candidate.phash,
                    width=candidate.width,
                    height=candidate.height,
                    original_name=candidate.name[:255],
                )
                image.file.save(candidate.name, ContentFile(candidate.data), save=False)
                saved_files.append(image.file.name)
                image.save()
    except BaseException:
        # The rows rolled back; the files must go too, or storage fills with orphans.
        for name in saved_files:
            TrainingImage.file.field.storage.delete(name)
        raise


# --- Labels from moderators' decisions ----------------------------------------------


def label_photos(
    photos: list[AdImage], category: Category | None, decision=None
) -> list[TrainingImage]:
    """Keep ad photos as training images labelled ``category``, or as "not the product"
    (negative) examples when ``category`` is None; returns the labelled rows.

    Training images are unique by content: a photo already stored (imported, or labelled by
    an earlier decision) keeps its file and takes this newer label, since a moderator who
    has just looked at it outranks an older label. Call it inside the decision's
    transaction. A photo whose file is missing from storage is logged and left unlabelled.
    """
    photos = list({photo.sha256: photo for photo in photos}.values())
    # Locked so that no one deletes a row this decision relabels before it commits.
    stored = set(
        TrainingImage.objects.select_for_update()
        .filter(sha256__in=[photo.sha256 for photo in photos])
        .values_list("sha256", flat=True)
    )
    rows = []
    for photo in photos:
        row = _labelled_row(photo, category, decision)
        if photo.sha256 not in stored:
            try:
                row.file.name = _copy_to_training(photo, row)
            except FileNotFoundError:
                logger.warning("%s: file %s is missing, not labelled", photo, photo.file.name)
                continue
        rows.append(row)
    # An upsert: a photo another decision stored meanwhile is relabelled, not duplicated.
    TrainingImage.objects.bulk_create(
        rows,
        update_conflicts=True,
        unique_fields=["sha256"],
        update_fields=["category", "not_product", "source", "decision"],
    )
    return rows


def _labelled_row(photo: AdImage, category: Category | None, decision) -> TrainingImage:
    return TrainingImage(
        category=category,
        not_product=category is None,
        source=TrainingImage.Source.MODERATOR,
        decision=decision,
        sha256=photo.sha256,
        phash=photo.phash,
        width=photo.width,
        height=photo.height,
        # Not the seller's file name: it is theirs, and says nothing about the photo.
        original_name=f"ad {photo.ad_id} photo {photo.position + 1}",
    )


def _copy_to_training(photo: AdImage, row: TrainingImage) -> str:
    """Copy an ad photo to its content-addressed training name; returns the stored name."""
    storage = TrainingImage.file.field.storage
    name = training_image_path(row, "photo.jpg")
    if storage.exists(name):
        # Left by a decision that rolled back after writing it: same name, same bytes.
        return name
    with photo.file.open("rb") as handle:
        return storage.save(name, ContentFile(handle.read()))


# --- Training ---------------------------------------------------------------------


@dataclass
class LabelledSet:
    classes: list[str]
    pixels: np.ndarray
    labels: np.ndarray
    hashes: list[int]
    unreadable: list[tuple[str, str]] = field(default_factory=list)


def labelled_set(size: int) -> LabelledSet:
    """Every stored training image, preprocessed, labelled by category slug."""
    # Negative ("not the product") examples have no class among the model's categories.
    images = (
        TrainingImage.objects.filter(not_product=False).select_related("category").order_by("id")
    )
    classes = sorted({image.category.slug for image in images})
    pixels, labels, hashes, unreadable = [], [], [], []
    for image in images:
        with image.file.open("rb") as handle:
            data = handle.read()
        try:
            pixels.append(letterbox(decode(data), size))
        except ImageError as error:
            unreadable.append((image.file.name, str(error)))
            continue
        labels.append(classes.index(image.category.slug))
        hashes.append(int(image.phash, 16))
    if not pixels:
        raise DatasetError("there are no labelled training images; run import_images first")
    return LabelledSet(classes, np.stack(pixels), np.array(labels), hashes, unreadable)


def folder_set(directory: Path, size: int) -> LabelledSet:
    """A folder-per-class dataset whose folder names are existing category slugs."""
    folders = scan_class_folders(directory)
    _categories_for(sorted(folders), create=False)
    loaded = load_folder(directory, size)
    unreadable = [(str(path), reason) for path, reason in loaded.unreadable]
    return LabelledSet(loaded.classes, loaded.pixels, loaded.labels, loaded.hashes, unreadable)


def default_training_config():
    from .ml.train import TrainingConfig

    return TrainingConfig(target_risk=settings.CLASSIFIER_TARGET_RISK)


def train_and_package(data: LabelledSet, config, log_dir: Path | None, callbacks=None):
    """Train on ``data`` and export the result; returns (TrainingResult, Package)."""
    from .ml.split import near_duplicate_groups
    from .ml.train import package, train

    groups = near_duplicate_groups(data.hashes)
    result = train(
        data.pixels,
        data.labels,
        data.classes,
        groups,
        config,
        log_dir=log_dir,
        callbacks=callbacks,
    )
    return result, package(result)


def train_new_version(
    data_dir: Path | None = None,
    activate: bool = False,
    config=None,
    callbacks: list | None = None,
) -> ModelVersion:
    """Train a candidate version on the labelled images (or ``data_dir``) and register it.

    The version exists from the start with status "training"; if anything fails it is
    marked failed with the error, and the active version is untouched.
    """
    config = config or default_training_config()
    size = config.architecture.input_size
    data = folder_set(data_dir, size) if data_dir else labelled_set(size)
    version = ModelVersion.objects.create(number=ModelVersion.next_number(), input_size=size)
    try:
        log_dir = Path(settings.CLASSIFIER_TENSORBOARD_DIR) / f"v{version.number}"
        result, packaged = train_and_package(data, config, log_dir, callbacks)
        _save_version(version, result, packaged, data)
    except Exception as error:
        version.mark_failed(f"{type(error).__name__}: {error}")
        raise
    if activate:
        version.activate()
    return version


def _save_version(version: ModelVersion, result, packaged, data: LabelledSet) -> None:
    version.classes = result.classes
    version.metrics = packaged.metrics | {"unreadable_images": len(data.unreadable)}
    version.history = result.history
    version.threshold = packaged.metrics["threshold"]
    version.trained_on = int(len(data.labels))
    version.artifact.save("model.keras", ContentFile(packaged.keras_bytes), save=False)
    version.serving_artifact.save("model.tflite", ContentFile(packaged.litert_bytes), save=False)
    version.status = ModelVersion.Status.CANDIDATE
    version.save()


# --- Serving ----------------------------------------------------------------------

_predictors: dict[tuple[int, str], Predictor] = {}
_predictors_lock = threading.Lock()


def predictor_for(version: ModelVersion) -> Predictor:
    """The version's LiteRT predictor, loaded from storage once per process."""
    if not version.is_usable or not version.serving_artifact:
        raise ClassifierError(f"model v{version.number} has no usable serving artifact")
    key = (version.pk, version.serving_artifact.name)
    with _predictors_lock:
        if key not in _predictors:
            try:
                with version.serving_artifact.open("rb") as handle:
                    content = handle.read()
                predictor = Predictor(
                    content,
                    version.classes,
                    version.input_size,
                    num_threads=settings.CLASSIFIER_INFERENCE_THREADS,
                )
            except (OSError, ValueError, RuntimeError) as error:
                raise ClassifierError(
                    f"model v{version.number} could not be loaded: {error}"
                ) from error
            # Keep one model per process: the active version changes rarely.
            _predictors.clear()
            _predictors[key] = predictor
        return _predictors[key]


def forget_loaded_models() -> None:
    """Drop this process's cached models (tests: a fresh worker process)."""
    with _predictors_lock:
        _predictors.clear()


def resolve_version(number: int | None = None) -> ModelVersion:
    """Version ``number``, or the active one; a clear error when there is none."""
    if number is None:
        version = ModelVersion.objects.active()
        if version is None:
            raise ClassifierError("there is no active model version; train one with --activate")
        return version
    try:
        return ModelVersion.objects.get(number=number)
    except ModelVersion.DoesNotExist:
        numbers = ", ".join(str(n) for n in ModelVersion.objects.values_list("number", flat=True))
        raise ClassifierError(
            f"there is no model version {number} (versions: {numbers or 'none'})"
        ) from None


@dataclass
class Classification:
    category: str
    confidence: float
    probabilities: dict[str, float]


def classify_images(images: list[bytes], version: ModelVersion) -> list[Classification]:
    """Classify several photos in one batch; raises ``ImageError`` for an unreadable one."""
    predictor = predictor_for(version)
    pixels = np.stack([letterbox(decode(data), version.input_size) for data in images])
    results = []
    for row in predictor.probabilities(pixels):
        best = int(row.argmax())
        results.append(
            Classification(
                category=version.classes[best],
                confidence=float(row[best]),
                probabilities={c: float(p) for c, p in zip(version.classes, row, strict=True)},
            )
        )
    return results


def evaluate_version(version: ModelVersion, directory: Path) -> dict:
    """Accuracy, per-class figures, confusion matrix and coverage at the stored threshold."""
    from .ml.metrics import evaluate_probabilities

    predictor = predictor_for(version)
    folders = scan_class_folders(directory)
    unknown = sorted(set(folders) - set(version.classes))
    if unknown:
        raise DatasetError(
            f"folder(s) {', '.join(unknown)} are not classes of model v{version.number} "
            f"({', '.join(version.classes)})"
        )
    loaded = load_folder(directory, version.input_size, classes=version.classes)
    probabilities = np.concatenate(
        [
            predictor.probabilities(loaded.pixels[start : start + 256])
            for start in range(0, len(loaded.pixels), 256)
        ]
    )
    # A version without a threshold decides nothing alone: coverage 0.
    threshold = version.threshold if version.threshold is not None else float("inf")
    report = evaluate_probabilities(probabilities, loaded.labels, version.classes, threshold)
    report["version"] = version.number
    report["unreadable"] = [[str(path), reason] for path, reason in loaded.unreadable]
    return report
