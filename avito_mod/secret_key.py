"""The secret key: from the environment, or made once per data folder when one machine runs
everything (bin/run), so that no installation signs its sessions with a key anyone knows."""

from __future__ import annotations

import os
import secrets
from pathlib import Path

from django.core.exceptions import ImproperlyConfigured

# The key this project once used by default: known to everyone who read its code.
DEVELOPMENT_KEY = "insecure-local-development-key-do-not-use-in-production"
FILE_NAME = "secret_key"


def secret_key(given: str, data_dir: Path, *, debug: bool) -> str:
    if given == DEVELOPMENT_KEY and not debug:
        raise ImproperlyConfigured(
            "DJANGO_SECRET_KEY must be set to a long random value, not the development key, "
            "when DJANGO_DEBUG is off"
        )
    if given:
        return given
    return _kept_key(data_dir / FILE_NAME)


def _kept_key(path: Path) -> str:
    """The key in ``path``, made there first if absent: written whole to a file of its own
    (readable by its owner only) and linked into place, so that processes starting at
    once all end up with the first one made."""
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        draft = path.with_name(f".{FILE_NAME}.{os.getpid()}.{secrets.token_hex(4)}")
        descriptor = os.open(draft, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(descriptor, "w") as file:
            file.write(secrets.token_urlsafe(50))
        try:
            os.link(draft, path)
        except FileExistsError:
            pass  # another process made it first: theirs it is
        finally:
            draft.unlink()
    key = path.read_text().strip()
    if len(key) < 50:
        raise ImproperlyConfigured(f"{path} does not hold a secret key: delete it to make one")
    return key
