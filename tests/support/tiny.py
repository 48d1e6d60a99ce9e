"""The tiny real models the tests train on generated photos, and their registration."""

from __future__ import annotations

from tests.support.images import CLASSES

# The backbone's smallest useful input: features in a blink, and the drawn classes stay apart.
TINY_SIZE = 32


def tiny_config(epochs: int = 12):
    from classifier.ml.model import HeadConfig
    from classifier.ml.train import TrainingConfig

    return TrainingConfig(
        input_size=TINY_SIZE,
        head=HeadConfig(hidden=0, dropout=0.1),
        epochs=epochs,
        batch_size=16,
        learning_rate=5e-3,
        folds=3,
        target_risk=0.05,
        calibration_photos=16,
        check_photos=48,
    )


def train_tiny(pixels, labels, hashes, config=None, classes=CLASSES):
    """A real head on the pretrained backbone, trained on generated photos and packaged."""
    from classifier.ml.features import compute
    from classifier.ml.split import near_duplicate_groups
    from classifier.ml.train import package, train

    config = config or tiny_config()
    groups = near_duplicate_groups(hashes)
    result = train(compute(pixels), labels, list(classes), groups, config)
    return package(result, lambda indices: pixels[indices])


def register_version(package, classes=CLASSES, status: str = "candidate", training_photos=()):
    """A trained package registered as a new version (artifacts in this test's storage).
    ``classes`` reversed gives a version that is always wrong: the same network, its
    outputs named the other way round. ``training_photos``: empty, it is unknown which
    photos it trained on."""
    from classifier.models import ModelVersion
    from classifier.services.artifacts import store

    version = ModelVersion(
        number=ModelVersion.next_number(),
        status=status,
        classes=list(classes),
        input_size=TINY_SIZE,
        threshold=package.metrics["threshold"],
        metrics=package.metrics,
        trained_on=100,
        training_photos=list(training_photos),
    )
    store(version, "artifact", "model.keras", package.keras_bytes)
    store(version, "serving_artifact", "model.tflite", package.serving_bytes)
    version.save()
    return version
