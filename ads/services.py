"""Workflows of ads: creating, editing and deleting an ad together with its photos.

Every photo is validated and re-encoded before anything is written. The files are then
written to storage *before* the short transaction that creates the rows, so that no
database lock is held while storage (possibly remote) is slow; if the transaction fails,
the files just written are deleted again. Not when the connection fails while committing,
though: the database may have committed and its answer been lost, and an ad whose photos
are gone is worse than a file no row names (``_saving``). Classification is requested only
after commit: a task sent inside the transaction could run before the rows exist. That
request is a *robust* commit hook: the ad exists whatever happens there (the database gone
just after the commit); the error is logged, and the requeue sweep sends the ad later.

Posting is idempotent per seller and ``Idempotency-Key`` (``Once``): the key is saved with
the ad, in its transaction, together with the answer the post gets. Committed therefore
means that both exist, and a retry after an answer that was lost finds that answer. A
second request with the same key while the first is still in its transaction waits on the
key's unique index until the first commits, and then gets the first's answer too.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import timedelta
from decimal import Decimal
from typing import IO

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.files.base import ContentFile
from django.core.serializers.json import DjangoJSONEncoder
from django.db import IntegrityError, InterfaceError, OperationalError, transaction
from django.utils import timezone

from .models import Ad, AdImage, Category, IdempotencyKey
from .signals import classification_requested
from .uploads import CleanPhoto, clean_photos

logger = logging.getLogger(__name__)

EDITABLE_FIELDS = frozenset({"title", "description", "price", "category"})


class AdNotEditable(Exception):
    """The ad's category or photos cannot change in its current status."""


class KeyReused(Exception):
    """The seller sent this key before, with other content."""


class AlreadyPosted(Exception):
    """A request with the same key and content committed its ad first (a double click)."""

    def __init__(self, earlier: IdempotencyKey) -> None:
        super().__init__(f"ad already posted under key {earlier.key!r}")
        self.earlier = earlier


@dataclass
class Once:
    """Posting an ad under the seller's ``Idempotency-Key``.

    ``fingerprint`` identifies the content sent; ``answer`` words the answer from the new
    ad, in its transaction, to be kept with the key. ``kept`` is the saved key once the
    ad is created.
    """

    key: str
    fingerprint: str
    answer: Callable[[Ad], dict]
    kept: IdempotencyKey | None = None


def request_classification(ad_id: int) -> None:
    """Send ad ``ad_id`` through classification; called once the ad's rows are committed."""
    classification_requested.send(sender=Ad, ad_ids=[ad_id])


def create_ad(
    seller,
    *,
    title: str,
    description: str = "",
    price: Decimal,
    category: Category,
    photos: list[IO[bytes]],
    once: Once | None = None,
) -> Ad:
    """Create a pending ad with its photos, all or nothing, and request its classification.

    With ``once``, its key is saved with the ad; ``AlreadyPosted`` (or ``KeyReused``, for
    other content) when a concurrent request with the key committed first. Call
    ``earlier_answer`` before, for the keys of requests that finished.
    """
    _check_category(category)
    ad = Ad(seller=seller, title=title, description=description, price=price, category=category)
    ad.full_clean()
    cleaned = clean_photos(photos)
    try:
        with _saving(cleaned) as names:
            ad.save()
            _create_images(ad, cleaned, names)
            if once is not None:
                _keep(seller, once, ad)
            _classify_on_commit(ad)
    except IntegrityError:
        # PostgreSQL made the key's insert wait for the other request's commit.
        earlier = earlier_answer(seller, once) if once is not None else None
        if earlier is None:
            raise
        raise AlreadyPosted(earlier) from None
    return ad


# The commit hook of the post that made an ad sends it right after the commit: a replay
# within this long of the ad's creation may be racing that hook, and leaves the ad to it (or
# to the sweep). A retry after a lost answer comes later: the 503 asks for Retry-After: 5.
RESUME_AFTER = timedelta(seconds=3)


def resume_classification(earlier: IdempotencyKey) -> None:
    """A replayed post's ad that is still pending and was never sent to classification
    (the commit hook did not run: the connection failed right after the commit) is sent
    now, rather than left for the sweep."""
    if (
        earlier.ad_id
        and Ad.objects.filter(
            pk=earlier.ad_id,
            status=Ad.Status.PENDING,
            classification_requested_at__isnull=True,
            created_at__lte=timezone.now() - RESUME_AFTER,
        ).exists()
    ):
        request_classification(earlier.ad_id)


def earlier_answer(seller, once: Once) -> IdempotencyKey | None:
    """The seller's key as an earlier post saved it, or None; ``KeyReused`` when that post
    sent other content."""
    earlier = IdempotencyKey.objects.filter(seller=seller, key=once.key).first()
    if earlier is not None and earlier.fingerprint != once.fingerprint:
        raise KeyReused(
            f"The {once.key!r} Idempotency-Key was already used by this account for a "
            "request with other content; send a new key to post a new ad."
        )
    return earlier


def purge_idempotency_keys() -> int:
    """Forget the keys older than ``ADS_IDEMPOTENCY_KEEP_HOURS``; returns how many."""
    cutoff = timezone.now() - timedelta(hours=settings.ADS_IDEMPOTENCY_KEEP_HOURS)
    deleted, _ = IdempotencyKey.objects.filter(created_at__lt=cutoff).delete()
    return deleted


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
    with _saving(cleaned) as names:
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


def _keep(seller, once: Once, ad: Ad) -> None:
    body = json.dumps(once.answer(ad), cls=DjangoJSONEncoder)
    once.kept = IdempotencyKey.objects.create(
        seller=seller, key=once.key, fingerprint=once.fingerprint, ad=ad, status_code=201, body=body
    )


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
def _saving(photos: list[CleanPhoto]) -> Iterator[list[str]]:
    """Write ``photos`` to storage under random names, then run the block that saves their
    rows in a transaction; delete the files if it fails, unless the commit's outcome is
    unknown."""
    field = AdImage._meta.get_field("file")
    names: list[str] = []
    committing = False
    try:
        _store_all(photos, names)
        with transaction.atomic():
            yield names
            committing = True  # the block is done: only the commit (and its hooks) is left
    except BaseException as error:
        if committing and isinstance(error, OperationalError | InterfaceError):
            logger.warning(
                "the connection failed while committing; keeping the files %s, whose rows "
                "may be saved: %s",
                ", ".join(names),
                error,
            )
        else:
            for name in names:
                field.storage.delete(name)
        raise


# An ad's photos are written side by side: to a bucket, each write is a request whose
# waits then overlap (a third of an upload's time on a local S3 server went to them).
_WRITERS = ThreadPoolExecutor(max_workers=4, thread_name_prefix="photo-writer")


def _store_all(photos: list[CleanPhoto], names: list[str]) -> None:
    """Write ``photos`` under random names, appending each stored name to ``names`` (those
    written, even when another write fails, so that they can be deleted)."""
    field = AdImage._meta.get_field("file")

    def store(photo: CleanPhoto) -> str:
        name = field.generate_filename(None, "photo.jpg")
        return field.storage.save(name, ContentFile(photo.data))

    failure = None
    for future in [_WRITERS.submit(store, photo) for photo in photos]:
        try:
            names.append(future.result())
        except Exception as error:
            failure = failure or error
    if failure is not None:
        raise failure


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
