"""The database engine's own consistent dump and restore.

PostgreSQL: ``pg_dump --format=custom`` of a snapshot exported by a repeatable-read
transaction that stays open while the backup reads the row counts and file names, so
those come from exactly the rows dumped, while the site keeps running. Restored by
``pg_restore`` into ``psql`` as one transaction: a restore that fails leaves the database
as it was. SQLite: the online backup API, which copies one consistent state of the file.
"""

from __future__ import annotations

import os
import sqlite3
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import closing, contextmanager
from dataclasses import dataclass
from pathlib import Path

from django.db.backends.base.base import BaseDatabaseWrapper

from . import BackupError

DUMP_NAMES = {"postgresql": "database.pgdump", "sqlite": "database.sqlite3"}
VENDOR_NAMES = {"postgresql": "PostgreSQL", "sqlite": "SQLite"}


@dataclass
class Snapshot:
    dump: Path  # the engine's dump of the snapshot
    cursor: object  # a DB-API cursor that sees exactly the dumped rows
    server_version: str


def vendor_of(connection: BaseDatabaseWrapper) -> str:
    if connection.vendor not in DUMP_NAMES:
        raise BackupError(f"backups support PostgreSQL and SQLite, not {connection.vendor}")
    return connection.vendor


@contextmanager
def snapshot(connection: BaseDatabaseWrapper, directory: Path) -> Iterator[Snapshot]:
    """Dump the database into ``directory``; yields the dump and a cursor on the same state."""
    dump = directory / DUMP_NAMES[vendor_of(connection)]
    if connection.vendor == "postgresql":
        with connection.wrap_database_errors, _postgresql_snapshot(connection, dump) as taken:
            yield taken
        return
    connection.ensure_connection()
    with connection.wrap_database_errors, closing(sqlite3.connect(dump)) as copy:
        connection.connection.backup(copy)
        # One self-contained file in the archive, whatever mode the live database uses.
        copy.execute("PRAGMA journal_mode=DELETE")
        yield Snapshot(dump, copy.cursor(), sqlite3.sqlite_version)


@contextmanager
def _postgresql_snapshot(connection: BaseDatabaseWrapper, dump: Path) -> Iterator[Snapshot]:
    raw = connection.get_new_connection(connection.get_connection_params())
    try:
        raw.autocommit = True  # the transaction below is begun explicitly
        cursor = raw.cursor()
        cursor.execute("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
        cursor.execute("SELECT pg_export_snapshot(), current_setting('server_version')")
        snapshot_id, server_version = cursor.fetchone()
        command = ["pg_dump", "--format=custom", f"--snapshot={snapshot_id}", f"--file={dump}"]
        _run(command, _pg_environment(connection.settings_dict))
        yield Snapshot(dump, cursor, server_version)
    finally:
        raw.close()  # ends the snapshot's transaction


def table_names(connection: BaseDatabaseWrapper, cursor) -> list[str]:
    return connection.introspection.table_names(cursor)


def count_rows(connection: BaseDatabaseWrapper, cursor) -> dict[str, int]:
    """Rows per table, every table in the database (Django's own ones too)."""
    counts = {}
    for table in table_names(connection, cursor):
        cursor.execute(f"SELECT COUNT(*) FROM {connection.ops.quote_name(table)}")
        counts[table] = cursor.fetchone()[0]
    return counts


def applied_migrations(cursor) -> list[str]:
    cursor.execute("SELECT app, name FROM django_migrations ORDER BY id")
    return [f"{app}.{name}" for app, name in cursor.fetchall()]


def load(connection: BaseDatabaseWrapper, dump: Path, replace: list[str]) -> None:
    """Load ``dump`` into the database; the tables in ``replace`` (a forced restore over
    existing data) are dropped first, in the same transaction."""
    connection.close()
    if connection.vendor == "postgresql":
        _postgresql_load(connection, dump, replace)
        with connection.cursor() as cursor:
            cursor.execute("ANALYZE")  # pg_restore leaves the planner without statistics
        return
    # The backup API replaces the whole file, whatever it held.
    with (
        connection.wrap_database_errors,
        closing(sqlite3.connect(dump)) as source,
        closing(sqlite3.connect(connection.settings_dict["NAME"])) as target,
    ):
        source.backup(target)


def _postgresql_load(connection: BaseDatabaseWrapper, dump: Path, replace: list[str]) -> None:
    quote = connection.ops.quote_name
    drop = "".join(f"DROP TABLE IF EXISTS {quote(table)} CASCADE;\n" for table in replace)
    environment = _pg_environment(connection.settings_dict)
    script = ["pg_restore", "--no-owner", "--no-privileges", "--file=-", str(dump)]
    # The database from PGDATABASE; the drop, then the script pg_restore writes, as one
    # transaction.
    psql = ["psql", "--no-psqlrc", "--quiet", "--single-transaction", "--set=ON_ERROR_STOP=1"]
    psql += ["--command", drop] if drop else []
    psql += ["--file=-"]
    with tempfile.TemporaryFile() as script_errors:
        reader = _start(script, environment, stdout=subprocess.PIPE, stderr=script_errors)
        with reader:
            try:
                writer = _start(psql, environment, stdin=reader.stdout, stderr=subprocess.PIPE)
            finally:
                reader.stdout.close()  # psql's now: pg_restore stops if psql does
            with writer:
                _, loading_errors = writer.communicate()
        if writer.returncode:
            raise BackupError(f"psql failed to load the dump: {loading_errors.decode().strip()}")
        if reader.returncode:
            script_errors.seek(0)
            raise BackupError(f"pg_restore failed: {script_errors.read().decode().strip()}")


_MISSING_CLIENT = (
    "{program} is not installed: it comes with PostgreSQL's client programs "
    "(Debian: apt-get install postgresql-client, of the server's major version or newer)"
)


def _start(command: list[str], environment: dict, **streams) -> subprocess.Popen:
    streams.setdefault("stdout", subprocess.DEVNULL)
    try:
        return subprocess.Popen(command, env=environment, **streams)
    except FileNotFoundError:
        raise BackupError(_MISSING_CLIENT.format(program=command[0])) from None


def _run(command: list[str], environment: dict) -> None:
    with _start(command, environment, stderr=subprocess.PIPE) as process:
        _, errors = process.communicate()
    if process.returncode:
        raise BackupError(f"{command[0]} failed: {errors.decode().strip()}")


def _pg_environment(settings_dict: dict) -> dict:
    """libpq's variables for the settings' database: no password on a command line."""
    from django.db.backends.postgresql.client import DatabaseClient

    _, environment = DatabaseClient.settings_to_cmd_args_env(settings_dict, [])
    environment = dict(environment or {})
    for variable, key in (("PGHOST", "HOST"), ("PGPORT", "PORT"), ("PGUSER", "USER")):
        if settings_dict.get(key):
            environment[variable] = str(settings_dict[key])
    environment["PGDATABASE"] = str(settings_dict["NAME"])
    return os.environ | environment
