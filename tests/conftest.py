from __future__ import annotations

import pytest
from django.core.files.base import ContentFile

from tests.factories import make_user
from tests.images import CLASSES, write_dataset

# Small enough to train in seconds, big enough to learn the drawn classes.
TINY_SIZE = 32
TINY_WIDTHS = "8,16"


def tiny_config(epochs: int = 12):
    from classifier.ml.model import Architecture
    from classifier.ml.train import TrainingConfig

    return TrainingConfig(
        architecture=Architecture(input_size=TINY_SIZE, widths=(8, 16), dropout=0.1),
        epochs=epochs,
        batch_size=16,
        learning_rate=5e-3,
        patience=12,
        validation_fraction=0.25,
        target_risk=0.05,
    )


@pytest.fixture(scope="session")
def dataset_dir(tmp_path_factory):
    return write_dataset(tmp_path_factory.mktemp("dataset"), per_class=48)


@pytest.fixture(scope="session")
def tiny_package(dataset_dir):
    """A real Keras model trained once on generated photos, in its stored forms."""
    from classifier.ml.dataset import load_folder
    from classifier.ml.split import near_duplicate_groups
    from classifier.ml.train import package, train

    data = load_folder(dataset_dir, TINY_SIZE)
    assert data.classes == list(CLASSES)
    result = train(
        data.pixels, data.labels, data.classes, near_duplicate_groups(data.hashes), tiny_config()
    )
    return package(result)


def register_version(package, classes=CLASSES, status: str = "candidate"):
    """A trained package registered as a new version (artifacts in this test's storage).
    ``classes`` reversed gives a version that is always wrong: the same network, its
    outputs named the other way round."""
    from classifier.models import ModelVersion

    version = ModelVersion(
        number=ModelVersion.next_number(),
        status=status,
        classes=list(classes),
        input_size=TINY_SIZE,
        threshold=package.metrics["threshold"],
        metrics=package.metrics,
        trained_on=100,
    )
    version.artifact.save("model.keras", ContentFile(package.keras_bytes), save=False)
    version.serving_artifact.save("model.tflite", ContentFile(package.litert_bytes), save=False)
    version.save()
    return version


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
def child_env(media):
    """Environment for a process a test starts: same settings, test database and storage."""
    import os

    from django.db import connection

    return os.environ | {
        "DJANGO_SETTINGS_MODULE": "avito_mod.test_settings",
        "AVITO_TEST_DATABASE_NAME": connection.settings_dict["NAME"],
        "AVITO_TEST_MEDIA_ROOT": str(media),
        "TF_CPP_MIN_LOG_LEVEL": "2",
    }


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
def media(settings, tmp_path):
    """An empty storage folder of this test's own, so leftovers can be counted."""
    settings.MEDIA_ROOT = tmp_path / "media"
    return settings.MEDIA_ROOT
