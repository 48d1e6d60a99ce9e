"""Settings for the test suite: the real ones, with scratch storage and fast hashing.

The database is the one ``DATABASE_URL`` names (PostgreSQL in CI), SQLite otherwise.
"""

import tempfile
from pathlib import Path

from .settings import *  # noqa: F403

_SCRATCH = Path(tempfile.mkdtemp(prefix="avito-mod-tests-"))
MEDIA_ROOT = _SCRATCH / "media"
CLASSIFIER_TENSORBOARD_DIR = _SCRATCH / "tensorboard"
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
