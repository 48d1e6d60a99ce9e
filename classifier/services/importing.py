"""Importing labelled photos from a folder per category, and the subset (training or
evaluation) each new photo joins, once and for all."""

from __future__ import annotations

import hashlib
from collections import Counter
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
            if candidate is None:
                continue
            hashes = {candidate.photo.sha256, candidate.original_sha256}
            if hashes & known:
                report.duplicates += 1
                continue
            known |= hashes
            candidates.append(candidate)
    return candidates


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
    return assign_subsets(photos, list(TrainingImage.objects.values_list("phash", "subset")))


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
