"""Settings for the test suite: the real ones, with scratch storage and fast hashing.

The database is the one ``DATABASE_URL`` names (PostgreSQL in CI), SQLite otherwise.
Processes that tests start (a ``manage.py`` subprocess, a worker) inherit the scratch
folder and the test database through the environment.
"""

import os
import tempfile
import uuid
from pathlib import Path

# The test clients speak plain HTTP to 127.0.0.1 unless a test asks for production's HTTPS
# (tests/live/test_health.py); production's settings are checked in
# tests/avito_mod/test_security_settings.py.
os.environ.setdefault("DJANGO_HTTPS", "false")

from .broker import celery_url, redis_url  # noqa: E402
from .settings import *  # noqa: E402, F403
from .settings import DATABASES, REDIS_URL, STORAGES, task_routes  # noqa: E402

_SCRATCH = Path(
    os.environ.setdefault("AVITO_TEST_SCRATCH", tempfile.mkdtemp(prefix="avito-mod-tests-"))
)
# A test's own storage folder, handed to the worker it starts.
MEDIA_ROOT = Path(os.environ.get("AVITO_TEST_MEDIA_ROOT", _SCRATCH / "media"))
CLASSIFIER_TENSORBOARD_DIR = _SCRATCH / "tensorboard"
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]

if DATABASES["default"]["ENGINE"].endswith("sqlite3"):
    # A file, not memory, so that other processes can open the test database.
    DATABASES["default"]["TEST"] = {"NAME": str(_SCRATCH / "test.sqlite3")}
if os.environ.get("AVITO_TEST_DATABASE_NAME"):
    # Set by a test for the processes it starts: use the test database directly.
    DATABASES["default"]["NAME"] = os.environ["AVITO_TEST_DATABASE_NAME"]

# A queue of this test run's own, so that a developer's running worker never takes its
# tasks; the worker that integration tests start listens on it.
CLASSIFIER_INFERENCE_QUEUE = os.environ.setdefault(
    "AVITO_TEST_QUEUE", f"test-inference-{uuid.uuid4().hex[:8]}"
)
CLASSIFIER_TRAINING_QUEUE = os.environ.setdefault(
    "AVITO_TEST_TRAINING_QUEUE", f"test-training-{uuid.uuid4().hex[:8]}"
)
CELERY_TASK_ROUTES = task_routes(CLASSIFIER_INFERENCE_QUEUE, CLASSIFIER_TRAINING_QUEUE)
if not REDIS_URL:
    # The embedded broker of this run (tests/conftest.py starts it), in its scratch folder:
    # the workers tests start find it there too.
    BROKER_FOLDER = _SCRATCH / "broker"
    CELERY_BROKER_URL = celery_url(BROKER_FOLDER)
    BROKER_REDIS_URL = redis_url(CELERY_BROKER_URL)

# Rate-limit counters per test process, never shared with another run through Redis.
CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}
# Every test client is 127.0.0.1 and user ids repeat between tests (rolled back), so the
# counters outlive a test: uploads and sign-ups are limited only where a test sets a rate
# (tests/ads/test_rate_limits.py, with the production defaults checked there).
ADS_UPLOAD_USER_RATE = ADS_UPLOAD_ADDRESS_RATE = "1000000/min"
SELLERS_SIGNUP_ADDRESS_RATE = "1000000/min"
# Tests do not run collectstatic; the live server serves the apps' files as they are.
# An empty folder of their own, so that WhiteNoise finds the directory it expects.
STATIC_ROOT = _SCRATCH / "static"
STATIC_ROOT.mkdir(exist_ok=True)
STORAGES = STORAGES | {
    "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"}
}
# Tests train on a few drawn photos per class, and many run the training queue with no
# photos at all: the floor on training photos per category is off (0) except where a test
# sets it (tests/classifier/test_categories.py, where the production default is checked too).
CLASSIFIER_MIN_PHOTOS_PER_CATEGORY = 0
# Tests register tiny models that answer a few dozen drawn photos: the rule that a category
# publishes alone only on enough evaluation photos is off (0) except where a test sets it
# (tests/classifier/test_evidence.py, where the production default is checked too).
CLASSIFIER_MIN_EVALUATION_PHOTOS = 0
# The shipped features (10 MB, of the shipped photos at 240 px) are left out: tests that
# need shipped features write their own (tests/classifier/test_shipped_features.py).
CLASSIFIER_SHIPPED_FEATURES = "off"
# Tests serve the shipped int8 backbone, with no self-benchmark and no float32 form asked of
# the training queue (17 s of TensorFlow), except where a test sets it
# (tests/classifier/test_serving_forms.py, where the production default is checked too).
CLASSIFIER_SERVING_FORM = "int8"
# The live audit draws ads by their ids, which differ between runs: a published ad showing
# up in the review queue now and then would make other tests' counts wobble. Off (0) except
# where a test sets it (tests/moderation/test_audit*.py).
MODERATION_AUDIT_RATE = 0.0
