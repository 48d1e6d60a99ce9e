"""The training images' labels: from moderators' decisions, excluded or included by admins,
relabelled as the label check suggests, summed up per category, exported."""

from __future__ import annotations

import logging
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from django.core.files.base import ContentFile
from django.db import transaction
from django.db.models import Count, Q
from django.utils import timezone

from ads.models import AdImage, Category

from ..ml.dataset import DatasetError
from ..models import (
    SUSPICION_FIELDS,
    ModelVersion,
    TrainingImage,
    training_image_path,
)
from .datasets import (
    usable_images,
)
from .importing import subsets_for

logger = logging.getLogger(__name__)


def label_photos(
    photos: list[AdImage], category: Category | None, decision=None, stored: set[str] | None = None
) -> list[TrainingImage]:
    """Keep ad photos as training images labelled ``category``, or as "not the product"
    (negative) examples when ``category`` is None; returns the labelled rows.

    Training images are unique by content: a photo already stored (imported, or labelled by
    an earlier decision) keeps its file and takes this newer label, since a moderator who
    has just looked at it outranks an older label. Call it inside the decision's
    transaction. A photo whose file is missing from storage is logged and left unlabelled.
    ``stored``: the photos already stored (sha256), when the caller read them, locked, in
    this transaction (``labels_of(photos, lock=True)``).
    """
    photos = list({photo.sha256: photo for photo in photos}.values())
    if stored is None:
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
        TrainingImage.objects.values("category__name", "category__active", "not_product")
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
    return [row | {"category": _summary_label(row)} for row in rows]


def _summary_label(row: dict) -> str:
    if row["not_product"]:
        return "not the product"
    if not row["category__active"]:
        return f"{row['category__name']} (inactive: not trained on)"
    return row["category__name"]


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


# What a decision overwrites on a photo that is already a training image: an undo puts
# these back.
LABEL_FIELDS = [
    "category_id",
    "not_product",
    "source",
    "decision_id",
    "labelled_at",
    "relabelled_from_id",
    "relabelled_by_id",
    "relabelled_at",
    "suspected_category_id",
    "suspected_confidence",
    "suspected_margin",
    "suspected_at",
]


def labels_of(photos: list[AdImage], lock: bool = False) -> list[dict]:
    """The labels ``photos`` already have as training images, as JSON-ready dicts; with
    ``lock``, their rows locked until the transaction ends (a decision relabelling them)."""
    shas = {photo.sha256 for photo in photos}
    rows = TrainingImage.objects.filter(sha256__in=shas)
    if lock:
        rows = rows.select_for_update()
    rows = rows.values("sha256", *LABEL_FIELDS)
    return [
        {k: v.isoformat() if isinstance(v, datetime) else v for k, v in row.items()} for row in rows
    ]


def unlabel(decision, labels_before: list[dict]) -> None:
    """Take back ``decision``'s labels: photos it stored leave the training images (their
    files once the transaction commits), photos it relabelled get ``labels_before`` back.
    Photos relabelled since by another decision keep that one's label."""
    earlier = {row["sha256"]: row for row in labels_before}
    storage = TrainingImage.file.field.storage
    for row in TrainingImage.objects.select_for_update().filter(decision=decision):
        if row.sha256 not in earlier:
            name = row.file.name
            row.delete()
            transaction.on_commit(lambda name=name: storage.delete(name))
            continue
        for attribute in LABEL_FIELDS:
            value = earlier[row.sha256][attribute]
            if attribute.endswith("_at") and value is not None:
                value = datetime.fromisoformat(value)
            setattr(row, attribute, value)
        row.save(update_fields=[attribute.removesuffix("_id") for attribute in LABEL_FIELDS])
