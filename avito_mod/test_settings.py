"""Settings for the test suite: the real ones, with scratch storage and fast hashing.

The database is the one ``DATABASE_URL`` names (PostgreSQL in CI), SQLite otherwise.
Processes that tests start (a ``manage.py`` subprocess, a worker) inherit the scratch
folder and the test database through the environment.
"""

import os
import tempfile
from pathlib import Path

from .settings import *  # noqa: F403
from .settings import DATABASES

_SCRATCH = Path(
    os.environ.setdefault("AVITO_TEST_SCRATCH", tempfile.mkdtemp(prefix="avito-mod-tests-"))
)
MEDIA_ROOT = _SCRATCH / "media"
CLASSIFIER_TENSORBOARD_DIR = _SCRATCH / "tensorboard"
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]

if DATABASES["default"]["ENGINE"].endswith("sqlite3"):
    # A file, not memory, so that other processes can open the test database.
    DATABASES["default"]["TEST"] = {"NAME": str(_SCRATCH / "test.sqlite3")}
if os.environ.get("AVITO_TEST_DATABASE_NAME"):
    # Set by a test for the processes it starts: use the test database directly.
    DATABASES["default"]["NAME"] = os.environ["AVITO_TEST_DATABASE_NAME"]
