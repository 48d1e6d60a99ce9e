"""What photo file the platform accepts, and the form in which it stores it: the one place
for these rules, whichever way a photo comes in (an ad's photos, the quick check,
``import_images``).

A photo is read up to the byte cap (``ADS_MAX_PHOTO_BYTES``), decoded fully by content
(``classifier.ml.preprocess.decode_image``: JPEG, PNG, WebP, GIF; the first frame of an
animation; EXIF orientation applied; at most ``CLASSIFIER_MAX_IMAGE_PIXELS`` pixels and at
least ``MIN_SIDE`` px on each side; within the decoding budget ``CLASSIFIER_MAX_DECODE_*``
and ``CLASSIFIER_MAX_JPEG_SCANS``) and re-encoded as JPEG. An ad's photos together are at
most ``ADS_MAX_AD_PHOTO_BYTES`` and are checked within ``ADS_MAX_AD_PHOTO_SECONDS`` of CPU:
the photos past it are refused, each named, rather than the request running on.
Re-encoding without passing metadata on drops all of it (EXIF, GPS position, XMP, ICC
profiles) and anything appended to the picture (a zip after a JPEG), and means only pixels
we decoded ourselves are ever stored or served. The name the client gave is kept only as
a label, sanitized.
"""

from __future__ import annotations

import hashlib
import io
import os
import time
import unicodedata
from dataclasses import dataclass
from typing import IO

from django.conf import settings
from django.core.exceptions import ValidationError
from PIL import Image

from .photos import MIN_SIDE, ImageError, TooSlow, decode_image, perceptual_hash

JPEG_QUALITY = 90
# Enough to keep a file's extension when a long name is cut to fit.
_MAX_SUFFIX = 16


@dataclass(frozen=True)
class CleanPhoto:
    """A photo fit for storage: JPEG bytes and what we record about them."""

    data: bytes
    width: int
    height: int
    sha256: str
    phash: str
    original_name: str


def clean_photos(uploads: list[IO[bytes]]) -> list[CleanPhoto]:
    """Validate and re-encode every photo of an ad; one ``ValidationError`` lists all problems."""
    limit = settings.ADS_MAX_PHOTOS
    if not 1 <= len(uploads) <= limit:
        raise ValidationError(
            {"photos": f"an ad needs 1 to {limit} photos; {len(uploads)} were sent"}
        )
    _check_total(uploads)
    cleaned, errors = [], []
    budget = settings.ADS_MAX_AD_PHOTO_SECONDS
    started = time.thread_time()  # the request's own thread: another's work is not counted
    for number, upload in enumerate(uploads, start=1):
        left = budget - (time.thread_time() - started)
        try:
            if left <= 0:
                raise ValidationError(_over_ad_budget(upload, number, budget))
            cleaned.append(clean_photo(upload, number, left))
        except ValidationError as error:
            errors.extend(error.messages)
    if errors:
        raise ValidationError({"photos": errors})
    return cleaned


def _check_total(uploads: list[IO[bytes]]) -> None:
    """Refuse an ad whose photos together are over ``ADS_MAX_AD_PHOTO_BYTES``, before any
    is decoded: the CPU an ad costs grows with its bytes (the body cap, 1 MiB of form above
    this, lets a little more through)."""
    most = settings.ADS_MAX_AD_PHOTO_BYTES
    total = sum(_file_size(upload) or 0 for upload in uploads)
    if total > most:
        raise ValidationError(
            {
                "photos": f"the photos are too large together ({_bytes(total)}; an ad's "
                f"photos may take at most {_bytes(most)}): send fewer or smaller photos"
            }
        )


def _over_ad_budget(upload: IO[bytes], number: int, budget: float) -> str:
    name = safe_name(getattr(upload, "name", "") or "")
    return (
        f"photo {number} ({name!r}): not checked: the ad's photos take too long to check "
        f"together (more than {budget:g} s of CPU): send fewer photos, or smaller ones, or "
        "save progressive JPEGs again as ordinary ones"
    )


def clean_photo(
    upload: IO[bytes], number: int = 1, ad_seconds_left: float | None = None
) -> CleanPhoto:
    """Validate and re-encode photo ``number`` (1-based, for messages) of an upload, its
    decode stopped when the ad's CPU seconds left run out (if less than its own budget)."""
    name = safe_name(getattr(upload, "name", "") or "")
    return stored_form(read_photo(upload, number, ad_seconds_left), name)


def stored_form(image: Image.Image, name: str = "", data: bytes | None = None) -> CleanPhoto:
    """A decoded photo re-encoded as the JPEG we store, with what we record about it.

    ``data``, the file ``image`` was decoded from, is kept as it is when it is a JPEG in
    the stored form already (a dataset exported from the training set, or made of earlier
    ads' photos): encoding it again would change its bytes, hence its identity (sha256),
    and lose quality twice.
    """
    if data is not None and is_stored_form(data, image.size):
        stored = data
    else:
        buffer = io.BytesIO()
        # No exif, icc_profile or xmp passed: none of the upload's metadata survives.
        image.save(buffer, "JPEG", quality=JPEG_QUALITY)
        stored = buffer.getvalue()
    return CleanPhoto(
        data=stored,
        width=image.width,
        height=image.height,
        sha256=hashlib.sha256(stored).hexdigest(),
        phash=f"{perceptual_hash(image):016x}",
        original_name=name,
    )


def is_stored_form(data: bytes, size: tuple[int, int]) -> bool:
    """Whether ``data`` is a JPEG as ``stored_form`` writes them: baseline, RGB, no segment
    but a bare JFIF header (no EXIF, XMP, ICC profile, comment or thumbnail), and nothing
    after the picture's end marker, of the ``size`` decoded (not shrunk to fit the decoding
    budget). Call it on data ``decode`` accepted."""
    with Image.open(io.BytesIO(data)) as image:
        plain = (
            image.format == "JPEG"
            and image.size == size
            and image.mode == "RGB"
            and [(marker, len(body)) for marker, body in image.applist] == [("APP0", 14)]
            and not {"comment", "progressive", "progression"} & set(image.info)
        )
    # Entropy-coded data never holds FF D9 (a literal FF is stuffed as FF 00), so the
    # first end marker after the scan header is the picture's end.
    scan = data.find(b"\xff\xda")
    return plain and scan > 0 and data.find(b"\xff\xd9", scan) == len(data) - 2


def read_photo(
    upload: IO[bytes], number: int = 1, ad_seconds_left: float | None = None
) -> Image.Image:
    """The upload decoded by content (a PIL image), or a ``ValidationError`` naming it."""
    name = safe_name(getattr(upload, "name", "") or "")
    own = settings.CLASSIFIER_MAX_DECODE_SECONDS
    ad_first = ad_seconds_left is not None and ad_seconds_left < own
    try:
        return decode(read_capped(upload), ad_seconds_left if ad_first else own)
    except TooSlow as error:
        if ad_first:  # the ad's seconds ran out, not the photo's own
            budget = settings.ADS_MAX_AD_PHOTO_SECONDS
            raise ValidationError(_over_ad_budget(upload, number, budget)) from None
        raise ValidationError(f"photo {number} ({name!r}): {error}") from None
    except ImageError as error:
        raise ValidationError(f"photo {number} ({name!r}): {error}") from None


def read_capped(handle: IO[bytes]) -> bytes:
    """The file's bytes, or ``ImageError`` when it is over ``ADS_MAX_PHOTO_BYTES``."""
    cap = settings.ADS_MAX_PHOTO_BYTES
    if hasattr(handle, "seek"):
        handle.seek(0)
    # Read one byte past the cap rather than trust a declared size.
    data = handle.read(cap + 1)
    if len(data) > cap:
        size = _file_size(handle)
        got, most = _bytes(size) if size else f"more than {_bytes(cap)}", _bytes(cap)
        if got == most:  # just over the cap: rounded, both would read the same
            got, most = f"{size:,} bytes", f"{cap:,} bytes"
        raise ImageError(f"the file is too large ({got}; at most {most})")
    return data


def decode(data: bytes, max_seconds: float | None = None) -> Image.Image:
    """Decode a photo with the project's limits (see ``preprocess.decode_image``), within
    ``max_seconds`` of CPU if given (``CLASSIFIER_MAX_DECODE_SECONDS`` otherwise)."""
    return decode_image(
        data,
        max_pixels=settings.CLASSIFIER_MAX_IMAGE_PIXELS,
        min_side=MIN_SIDE,
        max_aspect=settings.ADS_MAX_ASPECT_RATIO,
        max_bytes=settings.CLASSIFIER_MAX_DECODE_BYTES,
        max_seconds=max_seconds or settings.CLASSIFIER_MAX_DECODE_SECONDS,
        photo_seconds=settings.CLASSIFIER_MAX_DECODE_SECONDS,
        max_scans=settings.CLASSIFIER_MAX_JPEG_SCANS,
        max_kept_side=settings.ADS_PHOTO_MAX_SIDE,
    )


def safe_name(name: str) -> str:
    """The uploaded file's base name without control or format characters (NUL, escape
    codes, right-to-left overrides), at most 255 characters, its extension kept."""
    base = name.replace("\\", "/").rsplit("/", 1)[-1]
    printable = "".join(ch for ch in base if unicodedata.category(ch)[0] != "C").strip()
    if len(printable) <= 255:
        return printable
    stem, dot, suffix = printable.rpartition(".")
    if not dot or len(suffix) > _MAX_SUFFIX:
        return printable[:255]
    return stem[: 254 - len(suffix)] + "." + suffix


def _file_size(handle: IO[bytes]) -> int | None:
    """The file's size: as Django counted the bytes it received, or to its end (from where
    it stands, put back); None when neither can be known."""
    size = getattr(handle, "size", None)
    if isinstance(size, int):
        return size
    try:
        here = handle.tell()
        end = handle.seek(0, os.SEEK_END)
        handle.seek(here)
    except (AttributeError, OSError):  # not seekable
        return None
    return end


def _bytes(count: int) -> str:
    for unit, size in (("MiB", 1024 * 1024), ("KiB", 1024)):
        if count >= size:
            return f"{count / size:.1f} {unit}"
    return f"{count} bytes"
