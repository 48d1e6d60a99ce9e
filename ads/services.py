"""Workflows of ads: creating, editing and deleting an ad together with its photos.

Every photo is validated and re-encoded before anything is written. The files are then
written to storage *before* the short transaction that creates the rows, so that no
database lock is held while storage (possibly remote) is slow; if the transaction fails,
the files just written are deleted again. Classification is requested only after commit:
a task sent inside the transaction could run before the rows exist. That request is a
*robust* commit hook: it runs inside the block that deletes the files on failure, so an
error there (the database gone just after the commit) must not delete the photos of an ad
that exists; it is logged, and the requeue sweep sends the ad later.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from decimal import Decimal
from typing import IO

from django.core.exceptions import ValidationError
from django.core.files.base import ContentFile
from django.db import transaction

from .models import Ad, AdImage, Category
from .uploads import CleanPhoto, clean_photos

EDITABLE_FIELDS = frozenset({"title", "description", "price", "category"})


class AdNotEditable(Exception):
    """The ad's category or photos cannot change in its current status."""


def request_classification(ad_id: int) -> None:
    """Send ad ``ad_id`` through classification; called once the ad's rows are committed."""
    from classifier.pipeline import enqueue

    enqueue([ad_id])


def create_ad(
    seller,
    *,
    title: str,
    description: str = "",
    price: Decimal,
    category: Category,
    photos: list[IO[bytes]],
) -> Ad:
    """Create a pending ad with its photos, all or nothing, and request its classification."""
    _check_category(category)
    ad = Ad(seller=seller, title=title, description=description, price=price, category=category)
    ad.full_clean()
    cleaned = clean_photos(photos)
    with _stored(cleaned) as names, transaction.atomic():
        ad.save()
        _create_images(ad, cleaned, names)
        _classify_on_commit(ad)
    return ad


def update_ad(ad: Ad, *, photos: list[IO[bytes]] | None = None, **changes) -> Ad:
    """Change an ad's fields and optionally replace all its photos.

    A new category or new photos are accepted only while the ad is pending or in review;
    they send it back to pending and through classification again.
    """
    unknown = set(changes) - EDITABLE_FIELDS
    if unknown:
        raise TypeError(f"update_ad() cannot change {', '.join(sorted(unknown))}")
    new_category = "category" in changes and changes["category"].pk != ad.category_id
    reclassify = new_category or photos is not None
    if new_category:
        _check_category(changes["category"])
    if reclassify:
        _check_editable(ad)
    for field, value in changes.items():
        setattr(ad, field, value)
    ad.full_clean()
    cleaned = clean_photos(photos) if photos is not None else []
    with _stored(cleaned) as names, transaction.atomic():
        # The pipeline may have routed the ad since it was read: decide on the locked row.
        locked = Ad.objects.select_for_update().get(pk=ad.pk)
        if reclassify:
            _check_editable(locked)
        ad.save(update_fields=[*changes, "updated_at"])
        if photos is not None:
            _replace_images(ad, cleaned, names)
        if reclassify:
            ad.return_to_pending()
            _classify_on_commit(ad)
    return ad


def delete_ad(ad: Ad) -> None:
    """Delete an ad, its photos' rows and, once that is committed, their files."""
    names = list(ad.images.values_list("file", flat=True))
    with transaction.atomic():
        ad.delete()
        _delete_files_on_commit(names)


def delete_photos(images) -> None:
    """Delete single photos (a moderator removing one) and, after commit, their files."""
    images = list(images)
    with transaction.atomic():
        AdImage.objects.filter(pk__in=[image.pk for image in images]).delete()
        _delete_files_on_commit([image.file.name for image in images])


def _classify_on_commit(ad: Ad) -> None:
    # robust: after the commit the ad exists whatever happens here (see the module's note).
    transaction.on_commit(lambda: request_classification(ad.pk), robust=True)


def _check_category(category: Category) -> None:
    if not category.active:
        raise ValidationError({"category": f"category {category.slug!r} is not active"})


def _check_editable(ad: Ad) -> None:
    if not ad.is_editable:
        raise AdNotEditable(
            f"the ad is {ad.get_status_display().lower()}; its category and photos can "
            "change only while it is pending or needs review"
        )


def _storage():
    return AdImage._meta.get_field("file").storage


@contextmanager
def _stored(photos: list[CleanPhoto]) -> Iterator[list[str]]:
    """Write ``photos`` to storage under random names; delete them if the block fails."""
    field = AdImage._meta.get_field("file")
    names: list[str] = []
    try:
        for photo in photos:
            name = field.generate_filename(None, "photo.jpg")
            names.append(field.storage.save(name, ContentFile(photo.data)))
        yield names
    except BaseException:
        for name in names:
            field.storage.delete(name)
        raise


def _create_images(ad: Ad, photos: list[CleanPhoto], names: list[str]) -> None:
    AdImage.objects.bulk_create(
        AdImage(
            ad=ad,
            file=name,
            position=position,
            sha256=photo.sha256,
            phash=photo.phash,
            width=photo.width,
            height=photo.height,
            original_name=photo.original_name,
        )
        for position, (photo, name) in enumerate(zip(photos, names, strict=True))
    )


def _replace_images(ad: Ad, photos: list[CleanPhoto], names: list[str]) -> None:
    old_names = list(ad.images.values_list("file", flat=True))
    ad.images.all().delete()  # their predictions go with them
    _create_images(ad, photos, names)
    _delete_files_on_commit(old_names)


def _delete_files_on_commit(names: list[str]) -> None:
    storage = _storage()
    for name in names:
        # robust: the rows are gone for good; a storage hiccup is logged, not a failed request.
        transaction.on_commit(lambda name=name: storage.delete(name), robust=True)
