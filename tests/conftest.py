from __future__ import annotations

import sys

import pytest

from tests.support.factories import make_moderator, make_user
from tests.support.images import CLASSES, FOUR_CLASSES, write_dataset
from tests.support.live import deployment_env
from tests.support.tiny import TINY_SIZE, register_version, train_tiny

# The browser tests' fixtures: headless Chromium, its tabs and their screenshots.
pytest_plugins = ["tests.support.browser", "tests.support.s3"]

_embedded_broker = None


def pytest_sessionstart(session):
    """With no REDIS_URL, this run's own embedded broker (avito_mod.broker) in its scratch
    folder, for the workers and servers the tests start (CI sets REDIS_URL: a real Redis)."""
    global _embedded_broker
    from django.conf import settings

    if settings.BROKER_EMBEDDED:
        from avito_mod.broker import embedded_server

        _embedded_broker = embedded_server(settings.BROKER_FOLDER)
        _embedded_broker.__enter__()


def pytest_sessionfinish(session, exitstatus):
    if _embedded_broker is not None:
        _embedded_broker.__exit__(None, None, None)


@pytest.fixture(autouse=True)
def cache_of_its_own():
    """Each test starts with an empty cache. User names and 127.0.0.1 repeat between tests,
    and the accounts, their known places and the database roll back while the cache (the
    test settings' per-process one) would not: the 11th browser test signing "mona" in within
    15 minutes found her guess budget spent (accounts/guesses.py) and her queue never loaded."""
    from django.core.cache import cache

    cache.clear()


@pytest.fixture(autouse=True)
def backbone_passes_kept_for_the_session():
    """Each test's database starts without the backbone's work of earlier tests: the shared
    int8 backbone (some 30 s of TensorFlow to convert) and the features kept per photo. Both
    are pure functions of their input (the input size and the calibration photos; a photo's
    pixels and the backbone), so their answers are kept for the session by that input. The
    services still ask for them, store and serve them as before, and tests that count what
    the services ask for count the same. Installed once the modules are imported (they
    bring TensorFlow, which many runs skip)."""
    from tests.support import tiny

    export = sys.modules.get("classifier.ml.export")
    if export is not None and not hasattr(export.backbone_litert_bytes, "kept"):
        export.backbone_litert_bytes = tiny.converted_once(export.backbone_litert_bytes)
    features = sys.modules.get("classifier.ml.features")
    if features is not None and not hasattr(features.compute, "kept"):
        features.compute = tiny.computed_once(features.compute)


@pytest.fixture(scope="session")
def dataset_dir(tmp_path_factory):
    return write_dataset(tmp_path_factory.mktemp("dataset"), per_class=48)


@pytest.fixture(scope="session")
def tiny_package(dataset_dir):
    """A real model trained once on generated photos, in its stored forms."""
    from classifier.ml.dataset import load_folder

    data = load_folder(dataset_dir, TINY_SIZE)
    assert data.classes == list(CLASSES)
    return train_tiny(data.pixels, data.labels, data.hashes)


@pytest.fixture(scope="session")
def four_class_package(tmp_path_factory):
    """A real model of four categories (``FOUR_CLASSES``), trained once on generated photos:
    for what must work with any number of categories."""
    from classifier.ml.dataset import load_folder

    folder = write_dataset(tmp_path_factory.mktemp("four"), per_class=40, classes=FOUR_CLASSES)
    data = load_folder(folder, TINY_SIZE)
    assert data.classes == list(FOUR_CLASSES)
    return train_tiny(data.pixels, data.labels, data.hashes, classes=FOUR_CLASSES)


@pytest.fixture
def four_categories(db):
    """The shipped Laptops and Phones with Cameras and Watches added, by slug."""
    from ads.models import Category

    for slug, name in (("camera", "Cameras"), ("watch", "Watches")):
        Category.objects.get_or_create(slug=slug, defaults={"name": name})
    return {c.slug: c for c in Category.objects.filter(slug__in=FOUR_CLASSES)}


@pytest.fixture
def four_class_version(four_categories, media, four_class_package):
    """The four-category model registered and active, the default retired."""
    from classifier.services import forget_loaded_models

    forget_loaded_models()
    version = register_version(four_class_package, classes=FOUR_CLASSES)
    version.activate()
    return version


@pytest.fixture(scope="session")
def tiny_training_photos(dataset_dir):
    """What ``training_photos`` says for the tiny model: the photos of ``dataset_dir``."""
    from classifier.services.fairness import folder_photo_keys

    return folder_photo_keys(dataset_dir)


@pytest.fixture
def tiny_version(db, media, tiny_package):
    """The tiny model registered and active (in this test's storage), the default retired."""
    from classifier.services import forget_loaded_models

    # Primary keys can repeat between tests (rolled back): start like a fresh process.
    forget_loaded_models()
    version = register_version(tiny_package)
    version.activate()
    return version


@pytest.fixture
def child_env(request, media):
    """Environment for a process a test starts: same settings, test database and storage."""
    import os

    from django.db import connection

    from tests.support.s3 import storage_wanted

    env = os.environ | {
        "DJANGO_SETTINGS_MODULE": "avito_mod.test_settings",
        "AVITO_TEST_DATABASE_NAME": connection.settings_dict["NAME"],
        "AVITO_TEST_MEDIA_ROOT": str(media),
        "TF_CPP_MIN_LOG_LEVEL": "2",
    }
    if storage_wanted() == "s3":
        env |= request.getfixturevalue("s3_place").env()
    return env


@pytest.fixture
def seller(db):
    return make_user("seller")


@pytest.fixture
def other_seller(db):
    return make_user("other_seller")


@pytest.fixture
def staff(db):
    return make_user("staff", staff=True)


@pytest.fixture
def moderator(db):
    return make_moderator()


@pytest.fixture
def moderator_client(client, moderator):
    client.force_login(moderator)
    return client


@pytest.fixture
def media(request, settings, tmp_path):
    """An empty storage of this test's own, so leftovers can be counted (``stored_files``):
    a folder, or with ``AVITO_TEST_STORAGE=s3`` a prefix in the S3 server's bucket."""
    from tests.support.s3 import storage_wanted

    settings.MEDIA_ROOT = tmp_path / "media"
    if storage_wanted() == "s3":
        request.getfixturevalue("s3_storage")
    return settings.MEDIA_ROOT


@pytest.fixture
def environment(tmp_path):
    """Makes a deployment's environment for a fresh process (``deployment_env``)."""
    return lambda **variables: deployment_env(tmp_path / "data", **variables)
