"""Importing labelled photos from a folder per category, and the subset (training or
evaluation) each new photo joins, once and for all."""

from __future__ import annotations

import hashlib
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from django.conf import settings
from django.core.files.base import ContentFile
from django.db import transaction

from ads.models import Category
from ads.uploads import CleanPhoto, decode, read_capped, safe_name, stored_form

from ..ml.dataset import DatasetError, scan_class_folders
from ..ml.preprocess import ImageError
from ..ml.split import assign_held_out
from ..models import (
    TrainingImage,
)
from . import shipped


@dataclass
class ImportReport:
    imported: Counter = field(default_factory=Counter)
    duplicates: int = 0
    unreadable: list[tuple[str, str]] = field(default_factory=list)
    # (name, what it duplicates): a stored training image and its label, or another file.
    duplicate_names: list[tuple[str, str]] = field(default_factory=list)


@dataclass
class _Candidate:
    category: str
    photo: CleanPhoto
    original_sha256: str  # of the file as it was in the folder
    shown: str = ""  # how reports name it


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
    categories = categories_for(sorted(folders), create_categories)
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
            if candidate is not None and _is_new(candidate, known, report):
                candidates.append(candidate)
    return candidates


def import_photos(
    category: Category, files: Iterable[tuple[str, bytes]], report: ImportReport | None = None
) -> ImportReport:
    """Import photos given as (name, bytes), an admin's upload, as training images labelled
    ``category``, read and stored as ``import_images`` does. Refused files and duplicates
    are reported by name (as given: sanitize it first) and skipped; the others are stored
    together (all or none of them, if storage fails). ``files`` may be a generator: each
    file's bytes are let go once read."""
    report = report or ImportReport()
    stored = set(TrainingImage.objects.values_list("sha256", flat=True))
    known, candidates = set(stored), []
    for shown, data in files:
        candidate = _candidate(category.slug, safe_name(shown), data, report, shown)
        if candidate is not None and _is_new(candidate, known, report):
            candidates.append(candidate)
    _name_duplicates(report, stored)
    _save_training_images(candidates, {category.slug: category}, TrainingImage.Source.IMPORT)
    report.imported.update(candidate.category for candidate in candidates)
    return report


def _is_new(candidate: _Candidate, known: set[str], report: ImportReport) -> bool:
    """False, and counted as a duplicate, when the photo (as sent, or in its stored form)
    is ``known``; else it becomes known."""
    hashes = {candidate.photo.sha256, candidate.original_sha256}
    if hashes & known:
        report.duplicates += 1
        report.duplicate_names.append((candidate.shown, candidate.photo.sha256))
        return False
    known |= hashes
    return True


def _name_duplicates(report: ImportReport, stored: set[str]) -> None:
    """Say what each duplicate duplicates: a stored training image (with its label), or
    another file of the same upload."""
    labels = {
        image.sha256: str(image.category or "not the product")
        for image in TrainingImage.objects.filter(
            sha256__in=[sha256 for _, sha256 in report.duplicate_names if sha256 in stored]
        ).select_related("category")
    }
    report.duplicate_names = [
        (
            name,
            f"already a training image ({labels[sha256]})"
            if sha256 in labels
            else "the same photo as another file sent",
        )
        for name, sha256 in report.duplicate_names
    ]


def categories_for(slugs: list[str], create: bool) -> dict[str, Category]:
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
    except ImageError as error:
        report.unreadable.append((str(path.parent / name), str(error)))
        return None
    return _candidate(slug, name, data, report, shown=str(path.parent / name))


def _candidate(
    slug: str, name: str, data: bytes, report: ImportReport, shown: str = ""
) -> _Candidate | None:
    """The photo ``data`` in its stored form, or None when refused (reported as ``shown``,
    default ``name``) by the rules ad photos follow (``ads.uploads``)."""
    try:
        photo = stored_form(decode(data), name, data)
    except ImageError as error:
        report.unreadable.append((shown or name, str(error)))
        return None
    return _Candidate(slug, photo, hashlib.sha256(data).hexdigest(), shown or name)


def _save_training_images(candidates: list[_Candidate], categories, source: str) -> None:
    saved_files = []
    try:
        with transaction.atomic():
            for category in categories.values():
                if category.pk is None:
                    category.save()
            photos = [candidate.photo for candidate in candidates]
            subsets = subsets_for([(photo.sha256, photo.phash) for photo in photos])
            images = []
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
                images.append(image)
            # A shipped photo brings its features: no second pass of the backbone.
            shipped.reuse_features(images)
    except BaseException:
        # The rows rolled back; the files must go too, or storage fills with orphans.
        for name in saved_files:
            TrainingImage.file.field.storage.delete(name)
        raise


def subsets_for(photos: list[tuple[str, str]]) -> list[str]:
    """The subset (training or evaluation) of each new photo, given as (sha256, pHash hex).

    Chosen once, when the photo is stored: a near-copy of a stored photo, or of a shipped
    one (``shipped``: its copy takes the side the shipped model was measured with), takes
    its side (re-posts must not be on both sides), any other photo is held out for
    evaluation by a fixed coin toss on its content (CLASSIFIER_EVALUATION_PERCENT % of them).
    """
    known = [*shipped.known_sides(), *TrainingImage.objects.values_list("phash", "subset")]
    return assign_subsets(photos, known)


def assign_subsets(photos: list[tuple[str, str]], known: list[tuple[str, str]]) -> list[str]:
    held_out = assign_held_out(
        [(sha256, int(phash, 16)) for sha256, phash in photos],
        [int(phash, 16) for phash, _ in known],
        [subset == TrainingImage.Subset.EVALUATION for _, subset in known],
        settings.CLASSIFIER_EVALUATION_PERCENT,
    )
    return [
        TrainingImage.Subset.EVALUATION if out else TrainingImage.Subset.TRAIN for out in held_out
    ]
