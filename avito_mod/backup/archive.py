"""The archive: a plain tar of the database dump, every stored file under ``media/`` and,
last, ``manifest.json``, which records the SHA-256 and size of every other member so that
a restore can check the whole archive before it touches anything. No Django here.

Plain tar, not gzip: photos are JPEG and ``pg_dump --format=custom`` is compressed
already, so compressing again would cost CPU for nothing.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import tarfile
import time
from pathlib import Path
from typing import IO

from . import BackupError

FORMAT = 1
MANIFEST = "manifest.json"
MEDIA = "media/"
_CHUNK = 1024 * 1024
_MANIFEST_KEYS = {"created_at", "app", "database", "migrations", "tables", "files"}


class _Hashing:
    """A file read through: counts and hashes what tarfile copies into the archive."""

    def __init__(self, handle: IO[bytes]):
        self.handle, self.digest, self.size = handle, hashlib.sha256(), 0

    def read(self, size: int = -1) -> bytes:
        data = self.handle.read(size)
        self.digest.update(data)
        self.size += len(data)
        return data


class ArchiveWriter:
    """Writes a partial file beside ``path``, renamed to ``path`` only by ``commit``: a failed
    backup never leaves half an archive under the final name. The file is readable by its
    owner only (it holds password hashes and API tokens)."""

    def __init__(self, path: Path):
        self.path = path
        self._partial = path.with_name(f".{path.name}.partial")
        flags = os.O_WRONLY | os.O_CREAT | os.O_TRUNC
        self._file = os.fdopen(os.open(self._partial, flags, 0o600), "wb")
        # Closed by commit, or by __exit__ on an error.
        self._tar = tarfile.open(fileobj=self._file, mode="w", format=tarfile.PAX_FORMAT)  # noqa: SIM115

    def __enter__(self) -> ArchiveWriter:
        return self

    def __exit__(self, kind, error, traceback) -> None:
        if not self._file.closed:  # not committed: an error on the way
            self._tar.close()
            self._file.close()
            self._partial.unlink(missing_ok=True)

    def add(self, name: str, handle: IO[bytes], size: int) -> dict:
        """Copy ``size`` bytes of ``handle`` in as ``name``; returns its sha256 and size."""
        reader = _Hashing(handle)
        self._tar.addfile(_info(name, size), reader)
        return {"sha256": reader.digest.hexdigest(), "size": reader.size}

    def add_path(self, name: str, path: Path) -> dict:
        with path.open("rb") as handle:
            return self.add(name, handle, path.stat().st_size)

    def commit(self, manifest: dict) -> None:
        data = json.dumps(manifest, indent=1, sort_keys=True).encode()
        self._tar.addfile(_info(MANIFEST, len(data)), io.BytesIO(data))
        self._tar.close()
        self._file.flush()
        os.fsync(self._file.fileno())
        self._file.close()
        os.replace(self._partial, self.path)


def _info(name: str, size: int) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.size, info.mtime, info.mode = size, int(time.time()), 0o600
    return info


def open_archive(path: Path) -> tarfile.TarFile:
    if not path.is_file():
        raise BackupError(f"{path}: no such file")
    try:
        return tarfile.open(path, "r:")  # as written: a compressed copy is decompressed first
    except (tarfile.TarError, OSError) as error:
        raise BackupError(
            f"{path} is not a backup archive (not a readable tar file: {error})"
        ) from error


def read_manifest(tar: tarfile.TarFile) -> dict:
    try:
        manifest = json.load(tar.extractfile(MANIFEST))
    except KeyError:
        raise BackupError(
            f"{tar.name} has no {MANIFEST}: it is truncated (the manifest is written last) "
            "or not an avito-mod backup"
        ) from None
    except (tarfile.TarError, OSError, ValueError) as error:
        raise BackupError(
            f"{tar.name} is truncated or damaged: its {MANIFEST} cannot be read ({error})"
        ) from error
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        found = manifest.get("format") if isinstance(manifest, dict) else None
        raise BackupError(
            f"{tar.name} is a backup in format {found!r}; this release reads format {FORMAT}"
        )
    if missing := _MANIFEST_KEYS - manifest.keys():
        raise BackupError(f"{tar.name}: its {MANIFEST} lacks {', '.join(sorted(missing))}")
    return manifest


def check(tar: tarfile.TarFile, expected: dict[str, dict]) -> list[str]:
    """Read every member and compare it with ``expected`` ({member name: {sha256, size}});
    returns the problems found, none when the archive is intact."""
    problems, seen = [], set()
    try:
        for member in tar:
            if member.name == MANIFEST:
                continue
            entry = expected.get(member.name)
            if entry is None or not member.isfile() or member.name in seen:
                problems.append(f"{member.name}: not in the manifest, or there twice")
                continue
            seen.add(member.name)
            if (member.size, sha256_of(tar.extractfile(member))) != (
                entry["size"],
                entry["sha256"],
            ):
                problems.append(f"{member.name}: damaged (its SHA-256 does not match)")
    except (tarfile.TarError, OSError, EOFError) as error:
        problems.append(f"the archive is truncated or damaged: {error}")
    problems += [f"{name}: missing from the archive" for name in sorted(expected.keys() - seen)]
    return problems


def sha256_of(handle: IO[bytes]) -> str:
    digest = hashlib.sha256()
    while chunk := handle.read(_CHUNK):
        digest.update(chunk)
    return digest.hexdigest()
