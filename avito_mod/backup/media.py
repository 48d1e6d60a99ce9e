"""The stored files (photos, training images, model artifacts, backbones), read and written
through Django's storage API rather than the file system, as the rest of the project does
(tested on the local folder and on an S3 bucket: tests/avito_mod/test_object_storage.py)."""

from __future__ import annotations

import hashlib
import posixpath
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

from django.apps import apps
from django.core.files import File
from django.core.files.storage import FileSystemStorage, Storage, default_storage
from django.db import models

from ..storage import describe
from . import BackupError


def walk(store: Storage, folder: str = "") -> Iterator[str]:
    """Every file's name in ``store``, sorted; nothing when its root does not exist yet."""
    try:
        folders, files = store.listdir(folder)
    except FileNotFoundError:
        if folder:
            raise
        return
    for name in sorted(files):
        yield posixpath.join(folder, name)
    for sub in sorted(folders):
        yield from walk(store, posixpath.join(folder, sub))


def written_before(store: Storage, moment: datetime) -> Iterator[str]:
    """The files of ``store`` last modified before ``moment``."""
    for name in walk(store):
        try:
            if store.get_modified_time(name) < moment:
                yield name
        except FileNotFoundError:
            continue  # deleted since it was listed


def file_columns() -> list[tuple[str, str]]:
    """(table, column) of every FileField of every installed model."""
    columns = []
    for model in apps.get_models():
        if model._meta.proxy or not model._meta.managed:
            continue
        for field in model._meta.local_concrete_fields:
            if not isinstance(field, models.FileField):
                continue
            if field.storage is not default_storage:
                raise BackupError(f"{field} uses a storage of its own, which backups do not read")
            columns.append((model._meta.db_table, field.column))
    return columns


def referenced_files(cursor, quote) -> dict[str, str]:
    """{file name: "table.column" that names it} for every file the database refers to."""
    found: dict[str, str] = {}
    for table, column in file_columns():
        cursor.execute(f"SELECT {quote(column)} FROM {quote(table)} WHERE {quote(column)} <> ''")
        for (name,) in cursor.fetchall():
            found.setdefault(name, f"{table}.{column}")
    return found


def write(store: Storage, name: str, handle, size: int, *, replace: bool) -> None:
    if replace and store.exists(name):
        store.delete(name)
    content = File(handle, name=posixpath.basename(name))
    content.size = size
    saved = store.save(name, content)
    if saved != name:
        raise BackupError(f"{name} was stored as {saved}: the storage is not empty")


def copy_folder(folder: Path, store: Storage) -> tuple[int, int, int]:
    """Every file of the local media ``folder`` into ``store`` under the same name (moving an
    installation's files to a bucket: the database's names stay right). A file already there
    with the same bytes is skipped; one with other bytes stops the copy, naming it, as
    nothing is ever overwritten. Returns (copied, bytes copied, already there)."""
    source = FileSystemStorage(location=folder)
    copied = size = present = 0
    for name in walk(source):
        if store.exists(name):
            if _sha256(store, name) != _sha256(source, name):
                raise BackupError(
                    f"{name} is in {describe(store)} already, with other content: nothing "
                    f"was overwritten (copied before it: {copied} files)"
                )
            present += 1
            continue
        with source.open(name, "rb") as handle:
            if store.save(name, handle) != name:
                raise BackupError(f"{name} was stored under another name: nothing overwritten")
        copied, size = copied + 1, size + source.size(name)
    return copied, size, present


def _sha256(store: Storage, name: str) -> str:
    with store.open(name, "rb") as handle:
        return hashlib.file_digest(handle, "sha256").hexdigest()
