"""A real head on the pretrained backbone, trained on drawn photos: learning, the served
int8 form, round trips, features kept per backbone."""

import numpy as np
import pytest
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage

from classifier.ml import features
from classifier.ml.backbone import FEATURES
from classifier.ml.dataset import load_folder
from classifier.ml.export import load_keras
from classifier.ml.heads import Heads, heads_bytes
from classifier.ml.predict import Predictor
from classifier.ml.train import head_probabilities
from tests.support.images import CLASSES, write_dataset
from tests.support.tiny import TINY_SIZE


@pytest.fixture(scope="module")
def unseen(tmp_path_factory):
    """Drawn photos with seeds the training set never had."""
    return load_folder(write_dataset(tmp_path_factory.mktemp("unseen"), 30, start=1000), TINY_SIZE)


@pytest.fixture(scope="module")
def unseen_features(unseen):
    return features.compute(unseen.pixels)


def test_tiny_model_learns_to_separate_the_drawn_classes(tiny_package, unseen, unseen_features):
    head = load_keras(tiny_package.keras_bytes)
    predicted = head_probabilities(head, unseen_features).argmax(axis=1)
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
        "backbone",
        "training_seconds",
        "versions",
        "serving_agreement",
    ):
        assert key in m, key
    assert set(m["per_class"]) == set(CLASSES)
    assert m["class_counts"] == {"laptop": 48, "phone": 48}
    assert m["versions"]["keras"].startswith("3.")
    assert m["backbone"] == features.backbone_id(TINY_SIZE)
    assert m["error_at_threshold"] <= m["target_risk"]


def test_features_hold_the_photo_and_its_mirror_image(unseen):
    photos = unseen.pixels[:4]
    computed = features.compute(photos)
    assert computed.shape == (4, 2, FEATURES) and computed.dtype == np.float16
    mirrored = features.compute(photos[:, :, ::-1])
    np.testing.assert_allclose(mirrored[:, 0], computed[:, 1], atol=1e-2)
    assert not np.allclose(computed[:, 0], computed[:, 1], atol=1e-2)
    stored = features.from_bytes(features.to_bytes(computed[0]))
    np.testing.assert_array_equal(stored, computed[0])


def test_the_backbone_id_names_its_input_size():
    assert features.backbone_id(224) != features.backbone_id(160)


def test_served_int8_model_gives_the_keras_models_answers(tiny_package, unseen, unseen_features):
    """Full-integer LiteRT (backbone and head) against the float Keras head on the
    backbone's features: the same class for at least 99 % of the photos."""
    reference = head_probabilities(load_keras(tiny_package.keras_bytes), unseen_features)
    served = Predictor(tiny_package.serving_bytes, list(CLASSES), TINY_SIZE).probabilities(
        unseen.pixels
    )
    assert served.shape == reference.shape
    assert np.mean(served.argmax(1) == reference.argmax(1)) >= 0.99
    assert np.abs(served - reference).max() < 0.15
    assert tiny_package.metrics["serving_agreement"] >= 0.99


def test_served_model_is_full_integer(tiny_package):
    assert_full_integer(tiny_package.serving_bytes)


def assert_full_integer(model_content: bytes) -> None:
    from ai_edge_litert.interpreter import Interpreter

    interpreter = Interpreter(model_content=model_content)
    kinds = {detail["dtype"].__name__ for detail in interpreter.get_tensor_details()}
    assert "int8" in kinds
    convolutions = [
        detail
        for detail in interpreter._get_ops_details()  # noqa: SLF001
        if detail["op_name"] in ("CONV_2D", "DEPTHWISE_CONV_2D")
    ]
    assert convolutions
    for op in convolutions:
        weights = interpreter.get_tensor_details()[op["inputs"][1]]
        assert weights["dtype"].__name__ == "int8", op


def test_the_served_model_is_the_backbone_and_the_heads(tiny_package, unseen, unseen_features):
    """The .keras artifact (the heads) on the backbone's features and the served model on
    the pixels answer alike: the served model is nothing more than the two joined."""
    from classifier.ml.model import serving_model

    heads = load_keras(tiny_package.keras_bytes)
    joined = serving_model(heads, TINY_SIZE)
    np.testing.assert_allclose(
        np.asarray(joined(unseen.pixels[:8].astype("float32"))),
        head_probabilities(heads, unseen_features[:8]),
        atol=2e-3,  # the features are kept as float16
    )


@pytest.fixture(scope="module")
def int8_backbone(dataset_dir):
    """The shared backbone as retrains serve it: int8, calibrated on training photos."""
    from classifier.ml.export import backbone_litert_bytes

    return backbone_litert_bytes(TINY_SIZE, load_folder(dataset_dir, TINY_SIZE).pixels[::6])


def test_the_heads_in_numpy_answer_as_the_keras_heads(tiny_package, unseen_features):
    heads = load_keras(tiny_package.keras_bytes)
    numpy_heads = Heads(heads_bytes(heads))
    assert numpy_heads.count == 3 and numpy_heads.n_classes == len(CLASSES)
    np.testing.assert_allclose(
        numpy_heads.probabilities(unseen_features[:, 0]),
        head_probabilities(heads, unseen_features),
        atol=1e-5,
    )


def test_heads_refuse_a_file_that_is_not_theirs():
    for data in (b"not a zip", b""):
        with pytest.raises(ValueError, match="not a heads file"):
            Heads(data)


def test_the_int8_backbone_and_numpy_heads_give_the_keras_models_answers(
    tiny_package, int8_backbone, unseen, unseen_features
):
    """The form of a version retrained here: the shared full-integer backbone, then the
    heads in NumPy; against the float Keras heads on float features, the same class for at
    least 99 % of the photos."""
    heads = load_keras(tiny_package.keras_bytes)
    reference = head_probabilities(heads, unseen_features)
    predictor = Predictor(int8_backbone, list(CLASSES), TINY_SIZE, heads=Heads(heads_bytes(heads)))
    served = predictor.probabilities(unseen.pixels)
    assert served.shape == reference.shape
    assert np.mean(served.argmax(1) == reference.argmax(1)) >= 0.99
    # int8 features at 32 px move a probability near 0.5 by up to ~0.2; most barely move.
    assert np.abs(served - reference).mean() < 0.02
    assert np.abs(served - reference).max() < 0.3
    assert_full_integer(int8_backbone)


def test_predictor_handles_changing_batch_sizes(tiny_package, unseen):
    predictor = Predictor(tiny_package.serving_bytes, list(CLASSES), TINY_SIZE)
    whole = predictor.probabilities(unseen.pixels[:8])
    one_by_one = np.concatenate(
        [predictor.probabilities(unseen.pixels[i : i + 1]) for i in range(8)]
    )
    np.testing.assert_allclose(whole, one_by_one, atol=1e-5)
    assert predictor.probabilities(unseen.pixels[:0]).shape == (0, 2)


def test_artifacts_round_trip_through_the_storage_api(
    tiny_package, unseen_features, settings, tmp_path
):
    settings.MEDIA_ROOT = tmp_path
    name = default_storage.save("models/test/model.keras", ContentFile(tiny_package.keras_bytes))
    with default_storage.open(name, "rb") as handle:
        restored = load_keras(handle.read())
    original = load_keras(tiny_package.keras_bytes)
    np.testing.assert_allclose(
        head_probabilities(restored, unseen_features),
        head_probabilities(original, unseen_features),
        atol=1e-6,
    )


def test_the_classes_come_from_the_data_not_a_fixed_pair():
    from classifier.ml.model import HeadConfig, build_head

    head = build_head(1280, 5, HeadConfig(hidden=16))
    assert head.output_shape == (None, 5)
    with pytest.raises(ValueError, match="at least two"):
        build_head(1280, 1, HeadConfig())
