"""The classifier's models, one module per concern: labelled photos and their features
(``training_images``), model versions and the shared backbone (``versions``), label checks
(``label_checks``), the predictions on ads' photos (``predictions``) and those of the
version in shadow (``shadow``)."""

from .label_checks import LabelCheck
from .predictions import Prediction, top_categories, top_categories_text
from .shadow import ShadowPrediction, ShadowRouting
from .training_images import (
    PHOTO_KEY_DIGITS,
    SUSPICION_FIELDS,
    ImageFeatures,
    TrainingImage,
    photo_keys,
    training_image_path,
)
from .versions import (
    SERVING_FIELDS,
    ModelVersion,
    ModelVersionEvent,
    ModelVersionQuerySet,
    ServedBackbone,
    artifact_path,
)

__all__ = [
    "PHOTO_KEY_DIGITS",
    "SERVING_FIELDS",
    "SUSPICION_FIELDS",
    "ImageFeatures",
    "LabelCheck",
    "ModelVersion",
    "ModelVersionEvent",
    "ModelVersionQuerySet",
    "Prediction",
    "ServedBackbone",
    "ShadowPrediction",
    "ShadowRouting",
    "TrainingImage",
    "artifact_path",
    "photo_keys",
    "top_categories",
    "top_categories_text",
    "training_image_path",
]
