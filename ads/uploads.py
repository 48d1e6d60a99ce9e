"""Validation of uploaded ad photos by content, and their re-encoding for storage.

A photo is read up to the byte cap, decoded fully (``classifier.services.decode``: JPEG,
PNG, WebP, GIF first frame, EXIF orientation applied, pixel cap) and re-encoded as JPEG.
Re-encoding without passing EXIF on drops all metadata, GPS position included, and means
only pixels we decoded ourselves are ever stored or served.
"""

from __future__ import annotations

import hashlib
import io
import unicodedata
from dataclasses import dataclass
from typing import IO

from django.conf import settings
from django.core.exceptions import ValidationError

from classifier.ml.dataset import perceptual_hash
from classifier.ml.preprocess import ImageError
from classifier.services import decode

JPEG_QUALITY = 90


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
    cleaned, errors = [], []
    for number, upload in enumerate(uploads, start=1):
        try:
            cleaned.append(clean_photo(upload, number))
        except ValidationError as error:
            errors.extend(error.messages)
    if errors:
        raise ValidationError({"photos": errors})
    return cleaned


def clean_photo(upload: IO[bytes], number: int = 1) -> CleanPhoto:
    """Validate and re-encode photo ``number`` (1-based, for messages) of an upload."""
    name = safe_name(getattr(upload, "name", "") or "")
    image = read_photo(upload, number)
    buffer = io.BytesIO()
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


def read_photo(upload: IO[bytes], number: int = 1):
    """The upload decoded by content (a PIL image), or a ``ValidationError`` naming it."""
    name = safe_name(getattr(upload, "name", "") or "")
    cap = settings.ADS_MAX_PHOTO_BYTES
    if hasattr(upload, "seek"):
        upload.seek(0)
    # Read one byte past the cap rather than trust a declared size.
    data = upload.read(cap + 1)
    try:
        if len(data) > cap:
            size = getattr(upload, "size", None) or len(data)
            raise ImageError(f"the file is too large ({_bytes(size)}; at most {_bytes(cap)})")
        return decode(data)
    except ImageError as error:
        raise ValidationError(f"photo {number} ({name!r}): {error}") from None


def safe_name(name: str) -> str:
    """The uploaded file's base name without control characters, at most 255 characters."""
    base = name.replace("\\", "/").rsplit("/", 1)[-1]
    printable = "".join(ch for ch in base if unicodedata.category(ch)[0] != "C")
    return printable.strip()[:255]


def _bytes(count: int) -> str:
    for unit, size in (("MiB", 1024 * 1024), ("KiB", 1024)):
        if count >= size:
            return f"{count / size:.1f} {unit}"
    return f"{count} bytes"
