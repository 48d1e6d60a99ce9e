"""Workflows of the classifier: labelled photos (imported, or from moderators' decisions),
the training and evaluation sets, training, evaluating, serving.

Commands, admin actions and tasks call these; they hold no logic of their own. Retraining
from the admin (the training queue, promotion, rollback, label checks) is in
``classifier.retraining``. TensorFlow is imported only inside training; serving uses LiteRT.
"""

from __future__ import annotations

import hashlib
import logging
import threading
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime
from functools import partial
from pathlib import Path

import numpy as np
from django.conf import settings
from django.core.files.base import ContentFile
from django.db import IntegrityError, transaction
from django.db.models import Count, Q, QuerySet
from django.utils import timezone

from ads.models import AdImage, Category
from ads.uploads import CleanPhoto, decode, read_capped, safe_name, stored_form

from .ml.dataset import DatasetError, load_folder, scan_class_folders
from .ml.predict import Predictor
from .ml.preprocess import ImageError, letterbox, preprocess_batch
from .ml.split import assign_held_out
from .models import (
    SUSPICION_FIELDS,
    ImageFeatures,
    ModelVersion,
    TrainingImage,
    training_image_path,
)

logger = logging.getLogger(__name__)


class ClassifierError(Exception):
    """A request the classifier cannot serve; the message is meant for a person."""


class TrainingCancelled(ClassifierError):
    """The version stopped training while it trained (an admin cancelled it)."""


# --- Importing labelled photos ----------------------------------------------------


@dataclass
class ImportReport:
    imported: Counter = field(default_factory=Counter)
    duplicates: int = 0
    unreadable: list[tuple[str, str]] = field(default_factory=list)


@dataclass
class _Candidate:
    category: str
    photo: CleanPhoto
    original_sha256: str  # of the file as it was in the folder


def import_images(
    directory: Path,
    source: str = TrainingImage.Source.IMPORT,
    create_categories: bool = False,
) -> ImportReport:
    """Import ``DIR/<category-slug>/*`` as labelled training images, all or nothing.

    Each file is accepted or refused by the rules ad photos follow (``ads.uploads``) and
    stored re-encoded like them (as it is, when it is in that form already). Refused files
    are reported (with their sanitized names) and skipped; exact duplicates (same bytes as
    a stored photo, as it was or re-encoded, or twice in the folder) are counted and skipped.
    """
    folders = scan_class_folders(directory)
    categories = _categories_for(sorted(folders), create_categories)
    report = ImportReport()
    known = set(TrainingImage.objects.values_list("sha256", flat=True))
    candidates = read_folder(folders, known, report)
    _save_training_images(candidates, categories, source)
    report.imported.update(candidate.category for candidate in candidates)
    return report


def read_folder(folders: dict[str, list[Path]], known: set[str], report) -> list[_Candidate]:
    """The folder's photos in their stored form, in import order, without those unreadable
    (reported) or already ``known`` (counted as duplicates)."""
    candidates = []
    for slug, paths in folders.items():
        for path in paths:
            candidate = _read_candidate(slug, path, report)
            if candidate is None:
                continue
            hashes = {candidate.photo.sha256, candidate.original_sha256}
            if hashes & known:
                report.duplicates += 1
                continue
            known |= hashes
            candidates.append(candidate)
    return candidates


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
    # A file name may hold escape codes or a right-to-left override: never print it raw.
    name = safe_name(path.name)
    try:
        with path.open("rb") as handle:
            data = read_capped(handle)
        photo = stored_form(decode(data), name, data)
    except ImageError as error:
        report.unreadable.append((str(path.parent / name), str(error)))
        return None
    return _Candidate(slug, photo, hashlib.sha256(data).hexdigest())


def _save_training_images(candidates: list[_Candidate], categories, source: str) -> None:
    saved_files = []
    try:
        with transaction.atomic():
            for category in categories.values():
                if category.pk is None:
                    category.save()
            photos = [candidate.photo for candidate in candidates]
            subsets = subsets_for([(photo.sha256, photo.phash) for photo in photos])
            for candidate, photo, subset in zip(candidates, photos, subsets, strict=True):
                image = TrainingImage(
                    category=categories[candidate.category],
                    source=source,
                    sha256=photo.sha256,
                    phash=photo.phash,
                    width=photo.width,
                    height=photo.height,
                    original_name=photo.original_name,
                    subset=subset,
                )
                # Stored as "<sha256>.jpg" whatever the file was called.
                image.file.save("photo.jpg", ContentFile(photo.data), save=False)
                saved_files.append(image.file.name)
                image.save()
    except BaseException:
        # The rows rolled back; the files must go too, or storage fills with orphans.
        for name in saved_files:
            TrainingImage.file.field.storage.delete(name)
        raise


def subsets_for(photos: list[tuple[str, str]]) -> list[str]:
    """The subset (training or evaluation) of each new photo, given as (sha256, pHash hex).

    Chosen once, when the photo is stored: a near-copy of a stored photo takes its side
    (re-posts must not be on both sides), any other photo is held out for evaluation by a
    fixed coin toss on its content (CLASSIFIER_EVALUATION_PERCENT % of them).
    """
    return _subsets(photos, list(TrainingImage.objects.values_list("phash", "subset")))


def _subsets(photos: list[tuple[str, str]], known: list[tuple[str, str]]) -> list[str]:
    held_out = assign_held_out(
        [(sha256, int(phash, 16)) for sha256, phash in photos],
        [int(phash, 16) for phash, _ in known],
        [subset == TrainingImage.Subset.EVALUATION for _, subset in known],
        settings.CLASSIFIER_EVALUATION_PERCENT,
    )
    return [
        TrainingImage.Subset.EVALUATION if out else TrainingImage.Subset.TRAIN for out in held_out
    ]


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
    new = [photo for photo in photos if photo.sha256 not in stored]
    chosen = subsets_for([(photo.sha256, photo.phash) for photo in new])
    subsets = {photo.sha256: subset for photo, subset in zip(new, chosen, strict=True)}
    rows = []
    for photo in photos:
        row = _labelled_row(photo, category, decision)
        if photo.sha256 not in stored:
            row.subset = subsets[photo.sha256]
            try:
                row.file.name = _copy_to_training(photo, row)
            except FileNotFoundError:
                logger.warning("%s: file %s is missing, not labelled", photo, photo.file.name)
                continue
        rows.append(row)
    # An upsert: a photo another decision stored meanwhile is relabelled, not duplicated.
    # Its subset and exclusion stay; an older suspicion or admin relabel no longer applies.
    TrainingImage.objects.bulk_create(
        rows,
        update_conflicts=True,
        unique_fields=["sha256"],
        update_fields=[
            "category",
            "not_product",
            "source",
            "decision",
            "labelled_at",
            "relabelled_from",
            "relabelled_by",
            "relabelled_at",
            *SUSPICION_FIELDS,
        ],
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
        labelled_at=decision.created_at if decision is not None else timezone.now(),
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


# --- The training and evaluation sets ---------------------------------------------


@dataclass
class LabelledSet:
    """Labelled photos as a head is trained on them: backbone features, and the photos'
    bytes to decode the few whose pixels are needed (validation, int8 calibration)."""

    classes: list[str]
    features: np.ndarray  # (n, 2, F) float16: each photo and its mirror image
    labels: np.ndarray
    hashes: list[int]
    unreadable: list[tuple[str, str]] = field(default_factory=list)
    ids: list[int] = field(default_factory=list)  # TrainingImage ids, when from the database
    sha256: list[str] = field(default_factory=list)  # of each photo's stored form
    read: list = field(default_factory=list)  # per photo, a function returning its bytes

    def pixels(self, indices, size: int) -> np.ndarray:
        return preprocess_batch([self.read[i]() for i in indices], size)


def usable_images() -> QuerySet:
    """Labelled photos that count: not excluded, and with a category (negative, "not the
    product" examples have no class among the model's categories)."""
    return TrainingImage.objects.filter(not_product=False, excluded=False)


def labelled_set(size: int) -> LabelledSet:
    """The training subset, as backbone features for ``size`` pixels, labelled by category
    slug (the classes). Features are computed once per photo and backbone, then kept."""
    images = usable_images().filter(subset=TrainingImage.Subset.TRAIN)
    classes = sorted(set(images.values_list("category__slug", flat=True)))
    images = list(images.select_related("category").order_by("id"))
    features, unreadable = training_features(images, size)
    kept = [image for image in images if image.pk in features]
    if not kept:
        raise DatasetError("there are no labelled training images; run import_images first")
    return LabelledSet(
        classes,
        np.stack([features[image.pk] for image in kept]),
        np.array([classes.index(image.category.slug) for image in kept], dtype=int),
        [int(image.phash, 16) for image in kept],
        unreadable,
        [image.pk for image in kept],
        [image.sha256 for image in kept],
        [partial(_read_file, image.file) for image in kept],
    )


def training_features(images: list[TrainingImage], size: int):
    """``{image id: (2, F) features}`` for ``size`` pixels, computing (and keeping) those not
    kept yet; and the photos that could not be read, as (file, reason)."""
    from .ml import features as ml_features

    backbone = ml_features.backbone_id(size)
    ids = [image.pk for image in images]
    found = {}
    for start in range(0, len(ids), 2000):
        rows = ImageFeatures.objects.filter(
            backbone=backbone, image_id__in=ids[start : start + 2000]
        )
        found |= dict(rows.values_list("image_id", "data"))
    features = {pk: ml_features.from_bytes(data) for pk, data in found.items()}
    missing = [image for image in images if image.pk not in features]
    unreadable = []
    for start in range(0, len(missing), 256):
        chunk, pixels = [], []
        for image in missing[start : start + 256]:
            try:
                pixels.append(letterbox(decode(_read_file(image.file)), size))
                chunk.append(image)
            except (ImageError, FileNotFoundError) as error:
                unreadable.append((image.file.name, str(error)))
        computed = ml_features.compute(np.stack(pixels)) if pixels else []
        rows = [
            ImageFeatures(image=image, backbone=backbone, data=ml_features.to_bytes(values))
            for image, values in zip(chunk, computed, strict=True)
        ]
        # Another training may have stored the same photo's features meanwhile: same values.
        ImageFeatures.objects.bulk_create(rows, ignore_conflicts=True)
        features |= {image.pk: values for image, values in zip(chunk, computed, strict=True)}
    return features, unreadable


def _read_file(field_file) -> bytes:
    with field_file.open("rb") as handle:
        return handle.read()


def evaluation_set(size: int, classes: list[str]) -> tuple[np.ndarray, np.ndarray, list, list]:
    """The held-out evaluation photos of ``classes`` (a version's), in that class order, as
    the served model takes them: (pixels, labels, ids, unreadable)."""
    images = usable_images().filter(
        subset=TrainingImage.Subset.EVALUATION, category__slug__in=classes
    )
    pixels, labels, ids, unreadable = [], [], [], []
    for image in images.select_related("category").order_by("id"):
        try:
            pixels.append(letterbox(decode(_read_file(image.file)), size))
        except (ImageError, FileNotFoundError) as error:
            unreadable.append((image.file.name, str(error)))
            continue
        labels.append(classes.index(image.category.slug))
        ids.append(image.pk)
    stacked = np.stack(pixels) if pixels else np.zeros((0, size, size, 3), dtype=np.uint8)
    return stacked, np.array(labels, dtype=int), ids, unreadable


def fingerprint(ids: list[int]) -> str:
    """Names a set of training images: two evaluations compare only on equal fingerprints."""
    return hashlib.sha256(",".join(map(str, sorted(ids))).encode()).hexdigest()[:16]


def exclude_images(images, user, reason: str = "") -> int:
    """Leave photos out of training and evaluation (their labels are kept)."""
    changed = [image for image in images if not image.excluded]
    for image in changed:
        image.exclude(user, reason)
    return len(changed)


def include_images(images) -> int:
    changed = [image for image in images if image.excluded]
    for image in changed:
        image.include()
    return len(changed)


def relabel_as_suspected(images, user) -> list[TrainingImage]:
    """Take the label the last label check suggests, for the photos that have one."""
    relabelled = []
    for image in images:
        if image.suspected_category_id not in (None, image.category_id):
            image.relabel(image.suspected_category, user)
            relabelled.append(image)
    return relabelled


def training_set_summary() -> list[dict]:
    """Per category: how many photos, by source and subset, excluded, suspected, and
    moderators' labels the active version has not learnt from yet."""
    active = ModelVersion.objects.active()
    since = active.data_as_of if active is not None else None
    new = Q(source=TrainingImage.Source.MODERATOR, excluded=False)
    if since is not None:
        new &= Q(labelled_at__gt=since)
    counted = Q(excluded=False)
    rows = (
        TrainingImage.objects.values("category__name", "not_product")
        .annotate(
            total=Count("id"),
            imported=Count("id", filter=Q(source=TrainingImage.Source.IMPORT)),
            moderator=Count("id", filter=Q(source=TrainingImage.Source.MODERATOR)),
            train=Count("id", filter=counted & Q(subset=TrainingImage.Subset.TRAIN)),
            evaluation=Count("id", filter=counted & Q(subset=TrainingImage.Subset.EVALUATION)),
            left_out=Count("id", filter=Q(excluded=True)),
            suspected=Count("id", filter=Q(suspected_category__isnull=False)),
            new_labels=Count("id", filter=new),
        )
        .order_by("not_product", "category__name")
    )
    return [
        row | {"category": "not the product" if row["not_product"] else row["category__name"]}
        for row in rows
    ]


@dataclass
class ExportReport:
    written: Counter = field(default_factory=Counter)
    missing: list[str] = field(default_factory=list)


def export_dataset(directory: Path, force: bool = False, subset: str | None = None) -> ExportReport:
    """Write the usable labelled photos as ``DIR/<category-slug>/<sha256>.<ext>``, the
    layout ``import_images`` reads. Refuses a non-empty ``DIR`` unless ``force``."""
    directory = Path(directory)
    if directory.exists() and not directory.is_dir():
        raise DatasetError(f"{directory} is not a directory")
    if directory.is_dir() and any(directory.iterdir()) and not force:
        raise DatasetError(f"{directory} is not empty; choose an empty folder or pass --force")
    images = usable_images().select_related("category").order_by("id")
    if subset is not None:
        images = images.filter(subset=subset)
    report = ExportReport()
    for image in images:
        try:
            with image.file.open("rb") as handle:
                data = handle.read()
        except FileNotFoundError:
            report.missing.append(image.file.name)
            continue
        folder = directory / image.category.slug
        folder.mkdir(parents=True, exist_ok=True)
        (folder / Path(image.file.name).name).write_bytes(data)
        report.written[image.category.slug] += 1
    return report


def folder_set(directory: Path, size: int, training_subset_only: bool = False) -> LabelledSet:
    """A folder-per-class dataset (the folder names are the classes), read as
    ``import_images`` reads it (stored form, duplicates skipped), as backbone features.

    ``training_subset_only`` leaves out the photos an import into an empty database would
    hold out for evaluation, so that a model built from the folder never sees them.
    """
    from .ml import features as ml_features

    folders = scan_class_folders(directory)
    report = ImportReport()
    candidates = read_folder(folders, set(), report)
    if training_subset_only:
        photos = [(c.photo.sha256, c.photo.phash) for c in candidates]
        subsets = _subsets(photos, known=[])
        candidates = [
            c
            for c, subset in zip(candidates, subsets, strict=True)
            if subset == TrainingImage.Subset.TRAIN
        ]
    if not candidates:
        raise DatasetError(f"no readable image in {directory}")
    classes = sorted(folders)
    pixels = preprocess_batch([c.photo.data for c in candidates], size)
    return LabelledSet(
        classes,
        ml_features.compute(pixels),
        np.array([classes.index(c.category) for c in candidates], dtype=int),
        [int(c.photo.phash, 16) for c in candidates],
        report.unreadable,
        sha256=[c.photo.sha256 for c in candidates],
        read=[partial(lambda data: data, c.photo.data) for c in candidates],
    )


def default_training_config():
    from .ml.train import TrainingConfig

    return TrainingConfig(target_risk=settings.CLASSIFIER_TARGET_RISK)


def train_and_package(data: LabelledSet, config, log_dir: Path | None, callbacks=None):
    """Train a head on ``data`` and export the served model; returns (TrainingResult,
    Package)."""
    from .ml.split import near_duplicate_groups
    from .ml.train import package, train

    groups = near_duplicate_groups(data.hashes)
    result = train(
        data.features,
        data.labels,
        data.classes,
        groups,
        config,
        log_dir=log_dir,
        callbacks=callbacks,
    )
    return result, package(result, lambda indices: data.pixels(indices, config.input_size))


# --- Training ---------------------------------------------------------------------


def training_data(size: int, data_dir: Path | None = None) -> tuple[LabelledSet, datetime]:
    """The training subset (or a folder's photos), and when it was read."""
    as_of = timezone.now()
    if data_dir is None:
        return labelled_set(size), as_of
    _categories_for(sorted(scan_class_folders(data_dir)), create=False)
    return folder_set(data_dir, size), as_of


def start_version(input_size: int = 0, requested_by=None) -> ModelVersion:
    """A new version in status "training" (``retraining`` trains it). One at a time: the
    database enforces it."""
    try:
        with transaction.atomic():
            return ModelVersion.objects.create(
                number=ModelVersion.next_number(), input_size=input_size, requested_by=requested_by
            )
    except IntegrityError:
        running = ModelVersion.objects.filter(status=ModelVersion.Status.TRAINING).first()
        if running is None:
            raise ClassifierError("another version was registered at the same moment") from None
        raise ClassifierError(f"{describe_training(running)}; wait for it to end") from None


def describe_training(version: ModelVersion) -> str:
    progress = version.progress
    if progress.get("epochs"):
        where = f"{progress.get('stage', 'training')}, epoch {progress['epoch']} of "
        return f"v{version.number} is training ({where}{progress['epochs']})"
    if version.started_at is None:
        return f"v{version.number} is waiting for the training worker"
    return f"v{version.number} is training ({progress.get('stage', 'starting')})"


def train_version(
    version: ModelVersion, data: LabelledSet, data_as_of: datetime, config, callbacks=None
) -> None:
    """Train ``version`` (status "training") on ``data``; a candidate when it succeeds."""
    try:
        log_dir = Path(settings.CLASSIFIER_TENSORBOARD_DIR) / f"v{version.number}"
        result, packaged = train_and_package(data, config, log_dir, callbacks)
        _save_version(version, result, packaged, data, data_as_of)
    except TrainingCancelled:
        raise
    except Exception as error:
        version.mark_failed(f"{type(error).__name__}: {error}")
        raise


def _save_version(version: ModelVersion, result, packaged, data: LabelledSet, as_of) -> None:
    version.artifact.save("model.keras", ContentFile(packaged.keras_bytes), save=False)
    version.serving_artifact.save("model.tflite", ContentFile(packaged.litert_bytes), save=False)
    values = {
        "classes": result.classes,
        "input_size": result.metrics["input_size"],
        "backbone": result.metrics["backbone"],
        "metrics": packaged.metrics | {"unreadable_images": len(data.unreadable)},
        "history": result.history,
        "threshold": packaged.metrics["threshold"],
        "trained_on": int(len(data.labels)),
        # Validation split included.
        "training_photos": sorted({sha256[:16] for sha256 in data.sha256}),
        "artifact": version.artifact.name,
        "serving_artifact": version.serving_artifact.name,
        "data_as_of": as_of,
        "finished_at": timezone.now(),
        "status": ModelVersion.Status.CANDIDATE,
    }
    # Conditional: an admin may have cancelled the run while it trained.
    if not ModelVersion.objects.filter(pk=version.pk, status=version.Status.TRAINING).update(
        **values
    ):
        version.artifact.delete(save=False)
        version.serving_artifact.delete(save=False)
        raise TrainingCancelled(f"v{version.number} was cancelled while it trained")
    version.refresh_from_db()


# --- Serving ----------------------------------------------------------------------

_predictors: dict[tuple[int, str], Predictor] = {}
_predictors_lock = threading.Lock()


def predictor_for(version: ModelVersion) -> Predictor:
    """The version's LiteRT predictor, loaded from storage once per process.

    Keyed by the version: a task that finds another version active loads that one, so
    workers follow promotions and rollbacks without a restart.
    """
    key = (version.pk, version.serving_artifact.name)
    with _predictors_lock:
        if key not in _predictors:
            predictor = load_predictor(version)
            # Keep one model per process: the active version changes rarely.
            _predictors.clear()
            _predictors[key] = predictor
        return _predictors[key]


def load_predictor(version: ModelVersion) -> Predictor:
    """The version's LiteRT predictor, freshly loaded (not cached)."""
    if not version.is_usable or not version.serving_artifact:
        raise ClassifierError(f"model v{version.number} has no usable serving artifact")
    try:
        with version.serving_artifact.open("rb") as handle:
            content = handle.read()
        return Predictor(
            content,
            version.classes,
            version.input_size,
            num_threads=settings.CLASSIFIER_INFERENCE_THREADS,
        )
    except (OSError, ValueError, RuntimeError) as error:
        raise ClassifierError(f"model v{version.number} could not be loaded: {error}") from error


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
    probabilities = _probabilities(predictor, loaded.pixels)
    # A version without a threshold decides nothing alone: coverage 0.
    threshold = version.threshold if version.threshold is not None else float("inf")
    report = evaluate_probabilities(probabilities, loaded.labels, version.classes, threshold)
    report["version"] = version.number
    report["unreadable"] = [[str(path), reason] for path, reason in loaded.unreadable]
    return report


def _probabilities(predictor: Predictor, pixels: np.ndarray) -> np.ndarray:
    return np.concatenate(
        [
            predictor.probabilities(pixels[start : start + 256])
            for start in range(0, len(pixels), 256)
        ]
    )


def measure_on_evaluation_set(version: ModelVersion) -> dict:
    """The version's figures on today's evaluation set (photos of its classes), at its own
    threshold; stored on the version. Two versions' figures compare when their
    ``fingerprint`` (the photos measured on) is the same."""
    from .ml.metrics import evaluate_probabilities

    pixels, labels, ids, unreadable = evaluation_set(version.input_size, version.classes)
    report = {
        "n": int(len(labels)),
        "fingerprint": fingerprint(ids),
        "classes": version.classes,
        "threshold": version.threshold,
        "unreadable": len(unreadable),
        "evaluated_at": timezone.now().isoformat(),
    }
    if len(labels):
        probabilities = _probabilities(load_predictor(version), pixels)
        # A version without a threshold decides nothing alone: coverage 0.
        threshold = version.threshold if version.threshold is not None else float("inf")
        report |= evaluate_probabilities(probabilities, labels, version.classes, threshold)
    ModelVersion.objects.filter(pk=version.pk).update(evaluation=report)
    version.evaluation = report
    return report
