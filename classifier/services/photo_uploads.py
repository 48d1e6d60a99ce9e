"""Example photos an admin sends from the admin: several photo files and zips of photos in
one form, read within limits and imported as ``import_images`` imports a folder.

Limits, per submission: ``CLASSIFIER_PHOTO_UPLOAD_MAX_BYTES`` for the files sent (checked
before anything is read) and again for the photos read from them (a zip unpacked counts
what it unpacks to); ``CLASSIFIER_PHOTO_UPLOAD_MAX_FILES`` photos (a zip's entries count
one each). Each photo is held to the rules of an ad's photo (``ads.uploads``: at most
``ADS_MAX_PHOTO_BYTES``, decoded by content, re-encoded). A zip is read from its central
directory, never written to disk: a zip over the limits (too many entries, or unpacking to
too much: a zip bomb) is refused whole before any entry is read; an entry in a folder
within a folder, with an absolute or ``..`` path, or encrypted, is refused by name; an
entry is never inflated past the per-photo cap, whatever its header claims.
"""

from __future__ import annotations

import zipfile
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from typing import IO

from django.conf import settings

from ads.models import Category
from ads.uploads import read_capped, safe_name

from ..ml.preprocess import ImageError
from .errors import ClassifierError
from .importing import ImportReport, import_photos

# macOS's zip writer adds resource forks under this folder: not photos, and not the admin's.
_MAC_METADATA = "__MACOSX/"


@dataclass
class _Budget:
    """What is left of a submission's limits as its photos are read."""

    files: int
    bytes: int

    def take(self, size: int) -> None:
        self.files -= 1
        self.bytes -= size


def import_uploads(category: Category, uploads: list[IO[bytes]]) -> ImportReport:
    """Import the photos of ``uploads`` (photo files, and zips by their ``.zip`` name) as
    training images of ``category``. ``ClassifierError`` when the files sent are over the
    byte limit (nothing read); otherwise every refused file or entry is in the report's
    ``unreadable``, by name, and the others are kept."""
    sent = sum(_size(upload) for upload in uploads)
    most = settings.CLASSIFIER_PHOTO_UPLOAD_MAX_BYTES
    if sent > most:
        raise ClassifierError(
            f"{_mib(sent)} sent at once; at most {_mib(most)}: send the photos in parts"
        )
    report = ImportReport()
    budget = _Budget(settings.CLASSIFIER_PHOTO_UPLOAD_MAX_FILES, most)
    return import_photos(category, _photos(uploads, budget, report), report)


def _photos(uploads, budget: _Budget, report: ImportReport) -> Iterator[tuple[str, bytes]]:
    for upload in uploads:
        name = safe_name(getattr(upload, "name", "") or "") or "(no name)"
        if name.lower().endswith(".zip"):
            yield from _zip_entries(upload, name, budget, report)
            continue
        if budget.files < 1:
            report.unreadable.append((name, _too_many()))
            continue
        data = _read(upload, name, report)
        if data is not None:
            budget.take(len(data))
            yield name, data


def _zip_entries(upload, name: str, budget: _Budget, report) -> Iterator[tuple[str, bytes]]:
    try:
        archive = zipfile.ZipFile(upload)
    except (zipfile.BadZipFile, OSError, EOFError) as error:
        report.unreadable.append((name, f"not a zip file, or a damaged one ({error})"))
        return
    with archive:
        entries = _entries(archive, name, report)
        refusal = _over_budget(entries, budget)
        if refusal:
            report.unreadable.append((name, refusal))
            return
        for entry in entries:
            shown = f"{name}/{_shown_path(entry.filename)}"
            data = _read_entry(archive, entry, shown, report)
            if data is not None:
                budget.take(len(data))
                yield shown, data


def _entries(archive: zipfile.ZipFile, name: str, report) -> list[zipfile.ZipInfo]:
    """The zip's entries that may be photos; the others are reported (folders and macOS
    metadata are skipped without a word)."""
    kept = []
    for entry in archive.infolist():
        if entry.is_dir() or entry.filename.startswith(_MAC_METADATA):
            continue
        shown = f"{name}/{_shown_path(entry.filename)}"
        problem = _path_problem(entry.filename)
        if problem is None and entry.flag_bits & 0x1:
            problem = "encrypted: send it without a password"
        if problem is not None:
            report.unreadable.append((shown, problem))
            continue
        kept.append(entry)
    return kept


def _path_problem(path: str) -> str | None:
    parts = path.replace("\\", "/").split("/")
    if path.startswith(("/", "\\")) or ":" in parts[0] or ".." in parts:
        return "an unsafe path in the zip (absolute, or with '..')"
    if len(parts) > 2:
        return "in a folder within a folder: put photos at the zip's top level or in one folder"
    return None


def _over_budget(entries: list[zipfile.ZipInfo], budget: _Budget) -> str | None:
    if len(entries) > budget.files:
        return f"{len(entries)} files in the zip; {_too_many()}"
    unpacked = sum(entry.file_size for entry in entries)
    if unpacked > budget.bytes:
        most = settings.CLASSIFIER_PHOTO_UPLOAD_MAX_BYTES
        return f"unpacks to {_mib(unpacked)}; at most {_mib(most)} a submission: send it in parts"
    return None


def _read_entry(archive, entry: zipfile.ZipInfo, shown: str, report) -> bytes | None:
    try:
        with archive.open(entry) as handle:
            # The size the header claims, for the message; the read is capped whatever it says.
            handle.size = entry.file_size
            return _read(handle, shown, report)
    except (zipfile.BadZipFile, zlib.error, NotImplementedError, EOFError, RuntimeError) as error:
        report.unreadable.append((shown, f"damaged in the zip ({error})"))
        return None


def _read(handle: IO[bytes], shown: str, report) -> bytes | None:
    try:
        return read_capped(handle)
    except ImageError as error:
        report.unreadable.append((shown, str(error)))
        return None


def _shown_path(path: str) -> str:
    return "/".join(safe_name(part) for part in path.replace("\\", "/").split("/"))


def _too_many() -> str:
    return f"at most {settings.CLASSIFIER_PHOTO_UPLOAD_MAX_FILES} photos a submission"


def _size(upload) -> int:
    size = getattr(upload, "size", None)
    if size is None:
        upload.seek(0, 2)
        size = upload.tell()
        upload.seek(0)
    return size


def _mib(count: int) -> str:
    return f"{count / (1024 * 1024):.1f} MiB"
