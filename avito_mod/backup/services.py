"""Backing up a whole installation (the database and every stored file) into one archive,
and restoring it into an empty database and storage, checked before and after.

Consistency while the site runs, resting on two facts of this project's storage: a file
is complete before the row that names it is committed, and a stored name is never
reused. Every file written more than ``SETTLED`` ago (so not one still being written) is
copied first; then the database is dumped from one snapshot, and the names of the files
it refers to are read from that same snapshot; then the named files not copied yet (the
recent ones) are copied. A file deleted while the backup runs is then still in the
archive (an unreferenced extra when its row went before the snapshot). Only a file both
uploaded and deleted in those moments can be missing: that fails the backup, naming it.
(Dumping first and copying after lost every file deleted during the copy: 48 in 6 s while
one seller deleted ads.)
"""

from __future__ import annotations

import shutil
import tempfile
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

import django
from django.core.exceptions import SuspiciousFileOperation
from django.core.files.storage import default_storage
from django.core.files.utils import validate_file_name
from django.db import connection
from django.db.migrations.loader import MigrationLoader
from django.utils import timezone

from ..storage import describe
from . import BackupError, archive, databases, media
from .archive import MEDIA, ArchiveWriter

# Files modified more recently may still be being written: they are copied only when the
# snapshot names them (then they are complete).
SETTLED = timedelta(seconds=60)


@dataclass
class Summary:
    archive: Path
    manifest: dict
    seconds: float
    notes: list[str] = field(default_factory=list)

    def describe(self) -> str:
        manifest = self.manifest
        files = manifest["files"].values()
        size = sum(entry["size"] for entry in files) + manifest["database"]["size"]
        return (
            f"{databases.VENDOR_NAMES[manifest['database']['vendor']]} database of "
            f"{manifest['created_at']}: {sum(manifest['tables'].values()):,} rows in "
            f"{len(manifest['tables'])} tables, {len(files):,} files, {size / 1e6:.1f} MB"
        )


def backup(path: Path, *, force: bool = False) -> Summary:
    started = time.monotonic()
    vendor = databases.vendor_of(connection)
    if path.exists() and not force:
        raise BackupError(f"{path} exists; choose another name, or --force to replace it")
    if not path.parent.is_dir():
        raise BackupError(f"{path.parent}: no such folder")
    with (
        tempfile.TemporaryDirectory(dir=path.parent, prefix=".backup-") as scratch,
        ArchiveWriter(path) as writer,
    ):
        settled = media.written_before(default_storage, timezone.now() - SETTLED)
        files = _add_files(writer, settled)
        taken_at = timezone.now()
        with databases.snapshot(connection, Path(scratch)) as taken:
            state = _state(taken.cursor)
        files |= _add_files(writer, sorted(state.referenced.keys() - files.keys()))
        _check_complete(files, state.referenced)
        database = {"vendor": vendor, "server_version": taken.server_version}
        database |= writer.add_path(databases.DUMP_NAMES[vendor], taken.dump)
        manifest = _manifest(taken_at, database, state, files)
        writer.commit(manifest)
    return Summary(path, manifest, time.monotonic() - started)


@dataclass
class _State:
    """What the snapshot holds: rows per table, applied migrations, and the files it names
    ({name: "table.column" naming it})."""

    tables: dict[str, int]
    migrations: list[str]
    referenced: dict[str, str]


def _state(cursor) -> _State:
    tables = databases.count_rows(connection, cursor)
    if "django_migrations" not in tables:
        raise BackupError("the database was never migrated: there is nothing to back up")
    referenced = media.referenced_files(cursor, connection.ops.quote_name)
    return _State(tables, databases.applied_migrations(cursor), referenced)


def _manifest(taken_at: datetime, database: dict, state: _State, files: dict) -> dict:
    return {
        "format": archive.FORMAT,
        "created_at": taken_at.isoformat(timespec="seconds"),  # the snapshot's time
        "app": {"name": "avito-mod", "version": _app_version()},
        "django": django.get_version(),
        "database": database,
        "migrations": state.migrations,
        "tables": state.tables,
        "files": {
            name: entry | {"referenced": name in state.referenced}
            for name, entry in sorted(files.items())
        },
    }


def _add_files(writer: ArchiveWriter, names: Iterable[str]) -> dict[str, dict]:
    """Copy the files ``names`` into the archive; returns {name: its sha256 and size}."""
    files = {}
    for name in names:
        try:
            handle = default_storage.open(name, "rb")
        except FileNotFoundError:
            continue  # deleted since: an error later if the dump names it
        with handle:
            files[name] = writer.add(MEDIA + name, handle, handle.size)
    return files


def _check_complete(files: dict[str, dict], referenced: dict[str, str]) -> None:
    missing = sorted(referenced.keys() - files.keys())
    if missing:
        listed = "\n  ".join(f"{name} (named in {referenced[name]})" for name in missing)
        raise BackupError(
            f"the database refers to {len(missing)} file{'s' * (len(missing) != 1)} missing "
            f"from storage; no backup was written:\n  {listed}"
        )


def _app_version() -> str:
    try:
        return version("avito-mod")
    except PackageNotFoundError:
        return "unknown"


def verify(path: Path) -> Summary:
    """Check an archive (every member's SHA-256) without touching the database or storage."""
    started = time.monotonic()
    with archive.open_archive(path) as tar:
        manifest = archive.read_manifest(tar)
        _check_intact(tar, manifest)
    return Summary(path, manifest, time.monotonic() - started)


def restore(path: Path, *, force: bool = False) -> Summary:
    """Restore ``path`` into this installation's database and storage, which must be empty
    unless ``force``; the archive is checked whole before anything is written, and the
    result is checked against the manifest after."""
    started = time.monotonic()
    with archive.open_archive(path) as tar:
        manifest = archive.read_manifest(tar)
        pending = _check_compatible(manifest)
        existing_tables = _check_target_empty(force)
        _check_intact(tar, manifest)
        _load_database(tar, manifest, existing_tables)
        _load_files(tar, replace=force)
    _verify_restored(manifest, checks_references=not pending)
    notes = [f"{len(pending)} migrations are newer than the backup: run manage.py migrate"]
    return Summary(path, manifest, time.monotonic() - started, notes if pending else [])


def _check_compatible(manifest: dict) -> list[str]:
    """Refuses another database engine, or a backup by a newer release; returns this
    release's migrations the backup has not applied."""
    ours, theirs = databases.vendor_of(connection), manifest["database"]["vendor"]
    if theirs != ours:
        raise BackupError(
            f"the archive holds a {databases.VENDOR_NAMES.get(theirs, theirs)} database and "
            f"this installation uses {databases.VENDOR_NAMES[ours]} (see DATABASE_URL): restore "
            "it into the same kind of database"
        )
    loader = MigrationLoader(None, ignore_no_migrations=True)
    known = {f"{app}.{name}" for app, name in loader.disk_migrations}
    unknown = [name for name in manifest["migrations"] if name not in known]
    if unknown:
        raise BackupError(
            f"the backup was made by a newer release (avito-mod {manifest['app']['version']}):"
            f" migrations {', '.join(unknown[:5])} are unknown here; restore it with that release"
        )
    return sorted(known - set(manifest["migrations"]))


def _check_target_empty(force: bool) -> list[str]:
    """The tables there are now, which only ``force`` allows replacing."""
    tables = connection.introspection.table_names()
    stored = next(media.walk(default_storage), None)
    if force or not (tables or stored):
        return tables
    found = []
    if tables:
        found.append(f"the database {connection.settings_dict['NAME']} has {len(tables)} tables")
    if stored:
        found.append(f"the storage {describe(default_storage)} holds files ({stored}, …)")
    raise BackupError(
        f"refusing to restore over existing data: {' and '.join(found)}. Restore into an empty "
        "database (createdb, not migrated) and an empty storage (folder or bucket prefix), or "
        "pass --force to replace them."
    )


def _check_intact(tar, manifest: dict) -> None:
    expected = {databases.DUMP_NAMES[manifest["database"]["vendor"]]: manifest["database"]}
    for name, entry in manifest["files"].items():
        try:
            validate_file_name(name, allow_relative_path=True)
        except SuspiciousFileOperation as error:
            raise BackupError(f"{tar.name}: unsafe file name in the manifest: {error}") from None
        expected[MEDIA + name] = entry
    problems = archive.check(tar, expected)
    if problems:
        raise BackupError(
            f"{tar.name} is damaged; nothing was restored:\n  " + "\n  ".join(problems)
        )


def _load_database(tar, manifest: dict, existing_tables: list[str]) -> None:
    member = databases.DUMP_NAMES[manifest["database"]["vendor"]]
    with tempfile.TemporaryDirectory(prefix="avito-restore-") as scratch:
        dump = Path(scratch) / member
        with tar.extractfile(member) as source, dump.open("wb") as target:
            shutil.copyfileobj(source, target)
        databases.load(connection, dump, existing_tables)


def _load_files(tar, *, replace: bool) -> None:
    """Every file of the archive into storage; with ``replace``, over a file of the same
    name. Files the archive does not hold are left alone."""
    for member in tar.getmembers():
        if member.name.startswith(MEDIA):
            name = member.name.removeprefix(MEDIA)
            handle = tar.extractfile(member)
            media.write(default_storage, name, handle, member.size, replace=replace)


def _verify_restored(manifest: dict, *, checks_references: bool) -> None:
    """Row counts as in the manifest; every file there with its SHA-256; and (when the
    schema is the backup's) the restored rows refer to exactly the files that were."""
    with connection.cursor() as cursor:
        counts = databases.count_rows(connection, cursor)
        if checks_references:
            referenced = media.referenced_files(cursor, connection.ops.quote_name)
    problems = [
        f"table {table}: {counts.get(table, 'no')} rows restored, {rows} backed up"
        for table, rows in manifest["tables"].items()
        if counts.get(table) != rows
    ]
    wanted = {name for name, entry in manifest["files"].items() if entry["referenced"]}
    if checks_references and referenced.keys() != wanted:
        problems.append(f"the restored rows refer to other files: {referenced.keys() ^ wanted}")
    for name, entry in manifest["files"].items():
        if _stored_sha256(name) != entry["sha256"]:
            problems.append(f"{name}: missing or different in storage after the restore")
    if problems:
        raise BackupError(
            "the restore finished but does not match the backup:\n  " + "\n  ".join(problems)
        )


def _stored_sha256(name: str) -> str | None:
    try:
        with default_storage.open(name, "rb") as handle:
            return archive.sha256_of(handle)
    except FileNotFoundError:
        return None
