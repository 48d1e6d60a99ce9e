"""Model files and their checksums: what the registry recorded is what gets served.

Each artifact is stored together with its SHA-256 in the row (``<field>_sha256``), and
every load compares the bytes it read with it: a file replaced or corrupted in storage is
refused with a message naming the version, never served.
"""

from __future__ import annotations

import hashlib

from django.core.files.base import ContentFile

from .errors import ClassifierError


class ArtifactMismatch(ClassifierError):
    """A model file is not the one the registry recorded."""


def sha256_of(content: bytes) -> str:
    return hashlib.sha256(content).hexdigest()


def store(instance, field: str, filename: str, content: bytes) -> None:
    """Save ``content`` as ``instance``'s file ``field`` and record its SHA-256 (the row
    itself is saved by the caller)."""
    getattr(instance, field).save(filename, ContentFile(content), save=False)
    setattr(instance, f"{field}_sha256", sha256_of(content))


def read_verified(instance, field: str, owner: str) -> bytes:
    """The bytes of ``instance``'s file ``field``, checked against the recorded SHA-256;
    ``owner`` names the instance in the error (e.g. "model v3")."""
    file = getattr(instance, field)
    with file.open("rb") as handle:
        content = handle.read()
    recorded = getattr(instance, f"{field}_sha256")
    if not recorded:
        raise ArtifactMismatch(
            f"{owner}: {file.name} has no recorded SHA-256, so it cannot be verified"
        )
    found = sha256_of(content)
    if found != recorded:
        raise ArtifactMismatch(
            f"{owner}: {file.name} is not the file the registry recorded "
            f"(SHA-256 {found[:12]}…, recorded {recorded[:12]}…): it was replaced or corrupted"
        )
    return content


def stamp(instance, field: str) -> tuple:
    """The file's size and modification time, and, where the storage knows it, its change
    time (which no copy can preserve, unlike the modification time: ``cp -p``, ``rsync -t``):
    cheap to read, and changed by a replacement, so that a process notices it without
    hashing the file on every use. A bucket gives its own (size, modified, ETag)."""
    file = getattr(instance, field)
    storage = file.storage
    if hasattr(storage, "stamp"):  # avito_mod.s3: one request; no change time there
        return storage.stamp(file.name)
    try:
        changed = storage.get_created_time(file.name).timestamp()  # ctime on a local disk
    except NotImplementedError:
        changed = None
    return storage.size(file.name), storage.get_modified_time(file.name).timestamp(), changed
