"""The training and evaluation sets as training and measuring read them: backbone features
(kept per photo and backbone) for training, pixels for measuring the served model."""

from __future__ import annotations

import hashlib
from collections import Counter
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

import numpy as np
from django.conf import settings
from django.db.models import Count, QuerySet

from ads.models import Category
from ads.uploads import decode

from ..ml.dataset import DatasetError, scan_class_folders
from ..ml.preprocess import ImageError, letterbox, preprocess_batch
from ..models import (
    ImageFeatures,
    TrainingImage,
)
from . import shipped
from .errors import ClassifierError
from .importing import ImportReport, assign_subsets, read_folder


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
    # Features of photos moderators rejected as "not the product" (the none-of-these
    # detector learns from them), (m, 2, F).
    others: np.ndarray | None = None
    # The last ``from_shipped`` photos are shipped ones: features only, no bytes to read.
    from_shipped: int = 0
    # A folder's photos: which an import into an empty database would hold out.
    held_out: np.ndarray | None = None

    def pixels(self, indices, size: int) -> np.ndarray:
        return preprocess_batch([self.read[i]() for i in indices], size)

    def select(self, keep: np.ndarray) -> LabelledSet:
        """The photos where ``keep`` (a boolean mask) is true: a folder's, with their bytes."""
        indices = np.flatnonzero(keep)
        return LabelledSet(
            self.classes,
            self.features[indices],
            self.labels[indices],
            [self.hashes[i] for i in indices],
            self.unreadable,
            sha256=[self.sha256[i] for i in indices],
            read=[self.read[i] for i in indices],
            held_out=None if self.held_out is None else self.held_out[indices],
        )

    @property
    def readable(self) -> np.ndarray:
        """The indices of the photos whose bytes can be read (calibration, checks)."""
        return np.arange(len(self.read))


def usable_images() -> QuerySet:
    """Labelled photos that count: not excluded, and with a category (negative, "not the
    product" examples have no class among the model's categories)."""
    return TrainingImage.objects.filter(not_product=False, excluded=False)


def trainable_images() -> QuerySet:
    """The usable photos of active categories: what training and the evaluation set read.
    An inactive category's photos are kept, and count again once it is active again
    (see ``ads.models.Category``)."""
    return usable_images().filter(category__active=True)


@dataclass(frozen=True)
class CategoryPhotos:
    """An active category's usable photos (in the database, and the shipped ones a retrain
    adds: ``shipped``), and whether training may use it."""

    category: Category
    train: int
    evaluation: int
    needed: int  # CLASSIFIER_MIN_PHOTOS_PER_CATEGORY
    shipped_train: int = 0
    shipped_evaluation: int = 0

    @property
    def all_train(self) -> int:
        return self.train + self.shipped_train

    @property
    def too_few(self) -> bool:
        return self.all_train < self.needed


def photos_per_category(with_shipped: bool = True) -> list[CategoryPhotos]:
    """Every active category with its usable training and evaluation photos, by name."""
    rows = trainable_images().values_list("category_id", "subset").annotate(n=Count("id"))
    counts = Counter({(category, subset): n for category, subset, n in rows.order_by()})
    categories = list(Category.objects.active())
    extra = shipped.counts({c.slug for c in categories}) if with_shipped else {}
    train, evaluation = TrainingImage.Subset.TRAIN, TrainingImage.Subset.EVALUATION
    return [
        CategoryPhotos(
            category,
            counts[category.pk, train],
            counts[category.pk, evaluation],
            settings.CLASSIFIER_MIN_PHOTOS_PER_CATEGORY,
            extra.get((category.slug, train), 0),
            extra.get((category.slug, evaluation), 0),
        )
        for category in categories
    ]


def require_enough_photos(with_shipped: bool = True) -> None:
    """``ClassifierError`` naming the active categories with too few training photos: a
    version is trained over every active category, and needs examples of each."""
    short = [row for row in photos_per_category(with_shipped) if row.too_few]
    if short:
        raise ClassifierError(too_few_message(short))


def too_few_message(short: list[CategoryPhotos]) -> str:
    said = ", ".join(f"{row.category.name} ({row.all_train})" for row in short)
    return (
        f"too few training photos in {said}: every active category needs at least "
        f"{short[0].needed} (photos held out for evaluation do not count); add example "
        "photos, or deactivate the category"
    )


def labelled_set(size: int, with_shipped: bool = False) -> LabelledSet:
    """The training subset of the active categories, as backbone features for ``size``
    pixels, labelled by category slug (the classes). Features are computed once per photo
    and backbone, then kept. ``with_shipped`` adds the shipped training photos of the
    active categories (``shipped``) after the database's: those have no ``ids`` and no
    bytes to ``read``."""
    images = trainable_images().filter(subset=TrainingImage.Subset.TRAIN)
    images = list(images.select_related("category").order_by("id"))
    features, unreadable = training_features(images, size)
    kept = [image for image in images if image.pk in features]
    active = set(Category.objects.active().values_list("slug", flat=True))
    extra = shipped.usable(size, active, TrainingImage.Subset.TRAIN) if with_shipped else None
    slugs = [image.category.slug for image in kept] + (extra.slugs if extra else [])
    if not slugs:
        raise DatasetError("there are no labelled training images; run import_images first")
    classes = sorted(set(slugs))
    stacked = [features[image.pk] for image in kept] + (list(extra.features) if extra else [])
    return LabelledSet(
        classes,
        np.stack(stacked),
        np.array([classes.index(slug) for slug in slugs], dtype=int),
        [int(image.phash, 16) for image in kept] + (extra.phashes if extra else []),
        unreadable,
        [image.pk for image in kept],
        [image.sha256 for image in kept] + (extra.sha256 if extra else []),
        [partial(_read_file, image.file) for image in kept],
        others=rejected_features(size),
        from_shipped=len(extra) if extra else 0,
    )


def rejected_features(size: int) -> np.ndarray:
    """The features of the photos kept as "not the product" (not excluded), ``(m, 2, F)``."""
    from ..ml.backbone import FEATURES

    images = list(TrainingImage.objects.filter(not_product=True, excluded=False).order_by("id"))
    features, _ = training_features(images, size)
    if not features:
        return np.zeros((0, 2, FEATURES), dtype=np.float16)
    return np.stack([features[image.pk] for image in images if image.pk in features])


def training_features(images: list[TrainingImage], size: int):
    """``{image id: (2, F) features}`` for ``size`` pixels, computing (and keeping) those not
    kept yet; and the photos that could not be read, as (file, reason)."""
    from ..ml import features as ml_features

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
        chunk, pixels = _read_pixels(missing[start : start + 256], size, unreadable)
        computed = ml_features.compute(pixels) if chunk else []
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


def _read_pixels(images, size: int, unreadable: list) -> tuple[list, np.ndarray]:
    """The images that could be read, and their letterboxed pixels; the others are added
    to ``unreadable`` as (file, reason)."""
    read, pixels = [], []
    for image in images:
        try:
            pixels.append(letterbox(decode(_read_file(image.file)), size))
        except (ImageError, FileNotFoundError) as error:
            unreadable.append((image.file.name, str(error)))
            continue
        read.append(image)
    stacked = np.stack(pixels) if pixels else np.zeros((0, size, size, 3), dtype=np.uint8)
    return read, stacked


def evaluation_set(size: int, classes: list[str]) -> tuple[np.ndarray, np.ndarray, list, list]:
    """The held-out evaluation photos of ``classes`` (a version's) that are active
    categories, in that class order, as the served model takes them: (pixels, labels, ids,
    unreadable)."""
    images = trainable_images().filter(
        subset=TrainingImage.Subset.EVALUATION, category__slug__in=classes
    )
    unreadable = []
    read, pixels = _read_pixels(images.select_related("category").order_by("id"), size, unreadable)
    labels = np.array([classes.index(image.category.slug) for image in read], dtype=int)
    return pixels, labels, [image.pk for image in read], unreadable


def fingerprint(ids: list, labels: list[str]) -> str:
    """Names a set of labelled images: two evaluations compare only on equal fingerprints
    (the same photos with the same labels; a relabelled photo changes it)."""
    pairs = sorted(f"{pk}:{label}" for pk, label in zip(ids, labels, strict=True))
    return hashlib.sha256(",".join(pairs).encode()).hexdigest()[:16]


def folder_set(directory: Path, size: int, training_subset_only: bool = False) -> LabelledSet:
    """A folder-per-class dataset (the folder names are the classes), read as
    ``import_images`` reads it (stored form, duplicates skipped), as backbone features.

    ``training_subset_only`` leaves out the photos an import into an empty database would
    hold out for evaluation, so that a model built from the folder never sees them.
    """
    from ..ml import features as ml_features

    folders = scan_class_folders(directory)
    report = ImportReport()
    candidates = read_folder(folders, set(), report)
    subsets = assign_subsets([(c.photo.sha256, c.photo.phash) for c in candidates], known=[])
    held_out = np.array([subset == TrainingImage.Subset.EVALUATION for subset in subsets])
    if training_subset_only:
        candidates = [c for c, out in zip(candidates, held_out, strict=True) if not out]
        held_out = np.zeros(len(candidates), dtype=bool)
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
        read=[partial(bytes, c.photo.data) for c in candidates],
        held_out=held_out,
    )
