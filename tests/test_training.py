"""A real (tiny) Keras CNN trained on drawn photos: learning, serving form, round trips."""

import numpy as np
import pytest
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage

from classifier.ml.dataset import load_folder
from classifier.ml.export import load_keras
from classifier.ml.predict import Predictor, keras_probabilities
from tests.conftest import TINY_SIZE
from tests.images import CLASSES, write_dataset


@pytest.fixture(scope="module")
def unseen(tmp_path_factory):
    """Drawn photos with seeds the training set never had."""
    return load_folder(write_dataset(tmp_path_factory.mktemp("unseen"), 30, start=1000), TINY_SIZE)


def test_tiny_model_learns_to_separate_the_drawn_classes(tiny_package, unseen):
    model = load_keras(tiny_package.keras_bytes)
    predicted = keras_probabilities(model, unseen.pixels).argmax(axis=1)
    assert np.mean(predicted == unseen.labels) >= 0.9


def test_training_records_the_figures_a_version_stores(tiny_package):
    m = tiny_package.metrics
    for key in (
        "accuracy",
        "per_class",
        "confusion_matrix",
        "coverage_risk_curve",
        "threshold",
        "coverage_at_threshold",
        "error_at_threshold",
        "class_counts",
        "train_size",
        "input_size",
        "training_seconds",
        "versions",
        "serving_agreement",
    ):
        assert key in m, key
    assert set(m["per_class"]) == set(CLASSES)
    assert m["class_counts"] == {"laptop": 48, "phone": 48}
    assert m["versions"]["keras"].startswith("3.")
    assert m["error_at_threshold"] <= m["target_risk"]


def test_scaling_lives_inside_the_model(tiny_package):
    model = load_keras(tiny_package.keras_bytes)
    rescale = model.get_layer("ad_image_cnn").get_layer("rescale")
    assert rescale.scale == pytest.approx(1 / 255)


def test_the_served_model_averages_a_photo_and_its_mirror_image(tiny_package, unseen):
    served = load_keras(tiny_package.keras_bytes)
    base = served.get_layer("ad_image_cnn")
    photos = unseen.pixels[:6].astype("float32")
    expected = (np.asarray(base(photos)) + np.asarray(base(photos[:, :, ::-1]))) / 2
    np.testing.assert_allclose(np.asarray(served(photos)), expected, atol=1e-5)
    mirrored = np.asarray(served(photos[:, :, ::-1]))
    np.testing.assert_allclose(mirrored, expected, atol=1e-5)  # mirror-invariant by design


def test_served_litert_model_gives_the_keras_models_answers(tiny_package, unseen):
    model = load_keras(tiny_package.keras_bytes)
    reference = keras_probabilities(model, unseen.pixels)
    served = Predictor(tiny_package.litert_bytes, list(CLASSES), TINY_SIZE).probabilities(
        unseen.pixels
    )
    assert served.shape == reference.shape
    assert np.mean(served.argmax(1) == reference.argmax(1)) >= 0.98
    assert np.abs(served - reference).max() < 0.1


def test_predictor_handles_changing_batch_sizes(tiny_package, unseen):
    predictor = Predictor(tiny_package.litert_bytes, list(CLASSES), TINY_SIZE)
    whole = predictor.probabilities(unseen.pixels[:8])
    one_by_one = np.concatenate(
        [predictor.probabilities(unseen.pixels[i : i + 1]) for i in range(8)]
    )
    np.testing.assert_allclose(whole, one_by_one, atol=1e-5)
    assert predictor.probabilities(unseen.pixels[:0]).shape == (0, 2)


def test_artifacts_round_trip_through_the_storage_api(tiny_package, unseen, settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path
    name = default_storage.save("models/test/model.keras", ContentFile(tiny_package.keras_bytes))
    with default_storage.open(name, "rb") as handle:
        restored = load_keras(handle.read())
    original = load_keras(tiny_package.keras_bytes)
    np.testing.assert_allclose(
        keras_probabilities(restored, unseen.pixels),
        keras_probabilities(original, unseen.pixels),
        atol=1e-6,
    )


def test_the_classes_come_from_the_data_not_a_fixed_pair(tmp_path):
    from classifier.ml.model import Architecture, build_model

    model = build_model(5, Architecture(input_size=TINY_SIZE, widths=(4,)))
    assert model.output_shape == (None, 5)
    with pytest.raises(ValueError, match="at least two"):
        build_model(1, Architecture(input_size=TINY_SIZE, widths=(4,)))
