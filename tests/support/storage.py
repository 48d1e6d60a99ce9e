"""What a test's storage holds."""

from __future__ import annotations


def stored_files() -> list[str]:
    """The names of every file in the default storage, whichever it is."""
    from django.core.files.storage import default_storage

    from avito_mod.backup.media import walk

    return list(walk(default_storage))
