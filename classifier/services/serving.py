"""Serving: each process's loaded model, classifying photos, measuring a version."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from django.conf import settings
from django.utils import timezone

from ads.uploads import decode

from ..ml.dataset import DatasetError, load_folder, scan_class_folders
from ..ml.heads import Heads
from ..ml.imagenet import top_labels
from ..ml.predict import Answers, Predictor
from ..ml.preprocess import letterbox
from ..models import ModelVersion, TrainingImage, photo_keys
from . import serving_forms, shipped
from .artifacts import read_verified, stamp
from .datasets import (
    evaluation_set,
    fingerprint,
)
from .errors import ClassifierError
from .evidence import evidence_of


@dataclass
class _Loaded:
    key: tuple  # the version and its serving file, and what was loaded from it
    model: Predictor | Heads
    stamps: tuple  # the files' (mtime, size) when loaded
    checked_at: float  # time.monotonic() of the last look at the files


# Per slot: the model this process serves ("serving"), and the version in shadow's
# ("shadow": its heads alone when it shares the served backbone, else its whole predictor).
_loaded: dict[str, _Loaded] = {}
_loaded_lock = threading.Lock()


def predictor_for(version: ModelVersion, slot: str = "serving") -> Predictor:
    """The version's LiteRT predictor, loaded from storage once per process.

    Keyed by the version: a task that finds another version active loads that one, so
    workers follow promotions and rollbacks without a restart. At most every
    CLASSIFIER_ARTIFACT_CHECK_SECONDS it looks at the files again: a file replaced since
    is loaded and verified afresh, and refused if it is not the one the registry recorded.
    """
    return _cached(slot, version, "predictor", load_predictor)


def heads_for(version: ModelVersion) -> Heads:
    """The heads of a version served after the shared backbone, for the shadow slot: what
    scoring the backbone features another version's predictor computed needs."""
    return _cached("shadow", version, "heads", load_heads)


def _cached(slot: str, version: ModelVersion, kind: str, load):
    key = (version.pk, version.serving_artifact.name, kind)
    with _loaded_lock:
        loaded = _loaded.get(slot)
        now = time.monotonic()
        if loaded and loaded.key != key:
            loaded = None
        if loaded and now - loaded.checked_at < settings.CLASSIFIER_ARTIFACT_CHECK_SECONDS:
            return loaded.model
        stamps = _stamps(version)
        if loaded and loaded.stamps == stamps:
            loaded.checked_at = now
            return loaded.model
        # One model per slot (the active version changes rarely), and never the copy of
        # a file that has changed: it is what the registry recorded, but no other
        # process could load it any more.
        _loaded.pop(slot, None)
        _loaded[slot] = _Loaded(key, load(version), stamps, now)
        return _loaded[slot].model


def _stamps(version: ModelVersion) -> tuple:
    try:
        own = stamp(version, "serving_artifact")
        if version.served_backbone_id is None:
            return own
        backbone = version.served_backbone
        own += stamp(backbone, "artifact")
        # A float32 form built since the load: load again, and choose again.
        return own + (stamp(backbone, "float32_artifact") if backbone.float32_artifact else ())
    except (OSError, ValueError) as error:
        raise ClassifierError(f"model v{version.number} could not be loaded: {error}") from error


def load_predictor(version: ModelVersion) -> Predictor:
    """The version's LiteRT predictor, freshly loaded (not cached) from files whose
    SHA-256 matches the registry's (``ArtifactMismatch`` otherwise)."""
    if not version.is_usable or not version.serving_artifact:
        raise ClassifierError(f"model v{version.number} has no usable serving artifact")
    try:
        content = read_verified(version, "serving_artifact", f"model v{version.number}")
        threads = settings.CLASSIFIER_INFERENCE_THREADS
        if version.served_backbone_id is None:  # the whole model in one file
            return Predictor(content, version.classes, version.input_size, num_threads=threads)
        heads = _heads(version, content)
        if heads.n_classes != len(version.classes):
            raise ValueError(
                f"its heads answer {heads.n_classes} classes, not {len(version.classes)}"
            )
        return serving_forms.backbone_predictor(version, heads, threads)
    except (OSError, ValueError, RuntimeError) as error:
        raise ClassifierError(f"model v{version.number} could not be loaded: {error}") from error


def load_heads(version: ModelVersion) -> Heads:
    """The version's heads, freshly loaded from its verified serving artifact."""
    if version.served_backbone_id is None or not version.serving_artifact:
        raise ClassifierError(f"model v{version.number} is not served as backbone then heads")
    try:
        heads = _heads(
            version, read_verified(version, "serving_artifact", f"model v{version.number}")
        )
        if heads.n_classes != len(version.classes):
            raise ValueError(
                f"its heads answer {heads.n_classes} classes, not {len(version.classes)}"
            )
    except (OSError, ValueError) as error:
        raise ClassifierError(f"model v{version.number} could not be loaded: {error}") from error
    return heads


def _heads(version: ModelVersion, content: bytes) -> Heads:
    # The threshold, backbone and categories let the none-of-these detector consult the
    # ImageNet head and look for each category's look-alikes.
    return Heads(
        content, threshold=version.threshold, backbone=version.backbone, classes=version.classes
    )


def forget_loaded_models() -> None:
    """Drop this process's cached models (tests: a fresh worker process)."""
    with _loaded_lock:
        _loaded.clear()
    serving_forms.forget_asked()


def resolve_version(number: int | None = None) -> ModelVersion:
    """Version ``number``, or the active one; a clear error when there is none."""
    if number is None:
        version = ModelVersion.objects.active()
        if version is None:
            raise ClassifierError("there is no active model version; train one with --activate")
        return version
    try:
        return ModelVersion.objects.get(number=number)
    except ModelVersion.DoesNotExist:
        numbers = ", ".join(str(n) for n in ModelVersion.objects.values_list("number", flat=True))
        raise ClassifierError(
            f"there is no model version {number} (versions: {numbers or 'none'})"
        ) from None


@dataclass
class Classification:
    category: str
    confidence: float
    probabilities: dict[str, float]
    # The photo shows none of the version's categories; None when the version cannot tell.
    none_of_these: bool | None = None
    # What it looks like to ImageNet, [[name, probability], ...] the likeliest first
    # (``ml.imagenet.top_labels``); empty when the version gives no backbone features.
    looks_like: list = field(default_factory=list)
    # The backbone's features of the photo (versions served as backbone then heads): a
    # version in shadow on the same backbone answers from them (``classify_features``).
    features: np.ndarray | None = None


def classify_images(
    images: list[bytes], version: ModelVersion, slot: str = "serving"
) -> list[Classification]:
    """Classify several photos in one batch; raises ``ImageError`` for an unreadable one.
    ``slot``: "shadow" for the version in shadow (``predictor_for``)."""
    predictor = predictor_for(version, slot)
    pixels = np.stack([letterbox(decode(data), version.input_size) for data in images])
    answers = predictor.answers(pixels)
    features = answers.features
    looks_like = (
        [[] for _ in images] if features is None else top_labels(features, version.backbone)
    )
    return _classifications(version, answers, looks_like)


def classify_features(features: np.ndarray, version: ModelVersion) -> list[Classification]:
    """Classify photos from the served backbone's features ``(n, F)``, by ``version``'s
    heads alone (the shadow slot): no second run of the backbone."""
    heads = heads_for(version)
    probabilities = heads.probabilities(features)
    answers = Answers(
        probabilities,
        features=features,
        none_of_these=heads.none_of_these_flags(features, probabilities),
    )
    return _classifications(version, answers, [[] for _ in features])


def _classifications(version: ModelVersion, answers: Answers, looks_like: list) -> list:
    flags, features = answers.none_of_these, answers.features
    results = []
    for index, row in enumerate(answers.probabilities):
        best = int(row.argmax())
        results.append(
            Classification(
                category=version.classes[best],
                confidence=float(row[best]),
                probabilities={c: float(p) for c, p in zip(version.classes, row, strict=True)},
                none_of_these=None if flags is None else bool(flags[index]),
                looks_like=looks_like[index],
                features=None if features is None else features[index],
            )
        )
    return results


def evaluate_version(version: ModelVersion, directory: Path) -> dict:
    """Accuracy, per-class figures, confusion matrix and coverage at the stored threshold."""
    from ..ml.evaluation import evaluate_probabilities

    predictor = predictor_for(version)
    folders = scan_class_folders(directory)
    unknown = sorted(set(folders) - set(version.classes))
    if unknown:
        raise DatasetError(
            f"folder(s) {', '.join(unknown)} are not classes of model v{version.number} "
            f"({', '.join(version.classes)})"
        )
    loaded = load_folder(directory, version.input_size, classes=version.classes)
    probabilities = _probabilities(predictor, loaded.pixels)
    # A version without a threshold decides nothing alone: coverage 0.
    threshold = version.threshold if version.threshold is not None else float("inf")
    report = evaluate_probabilities(probabilities, loaded.labels, version.classes, threshold)
    report["version"] = version.number
    report["unreadable"] = [[str(path), reason] for path, reason in loaded.unreadable]
    return report


def _probabilities(predictor: Predictor, pixels: np.ndarray) -> np.ndarray:
    return np.concatenate(
        [
            predictor.probabilities(pixels[start : start + 256])
            for start in range(0, len(pixels), 256)
        ]
    )


def measure_on_evaluation_set(version: ModelVersion) -> dict:
    """The version's figures on today's evaluation set (photos of its classes), at its own
    threshold; stored on the version. Two versions' figures compare when their
    ``fingerprint`` (the photos measured on) is the same."""
    from ..ml.evaluation import evaluate_probabilities

    pixels, labels, ids, unreadable = evaluation_set(version.input_size, version.classes)
    predictor = load_predictor(version)
    probabilities = _probabilities(predictor, pixels) if len(labels) else None
    keys = _keys_of(ids)
    extra = _shipped_evaluation(version, predictor)
    if extra is not None:  # the shipped photos: the version's heads on their features
        labels = np.concatenate([labels, extra[1]]).astype(int)
        shipped_probabilities = extra[2]
        probabilities = (
            shipped_probabilities
            if probabilities is None
            else np.concatenate([probabilities, shipped_probabilities])
        )
        keys += extra[0]
    report = {
        "n": int(len(labels)),
        "fingerprint": fingerprint(keys, [version.classes[label] for label in labels]),
        "classes": version.classes,
        "threshold": version.threshold,
        "unreadable": len(unreadable),
        "evaluated_at": timezone.now().isoformat(),
        "sources": {"shipped": len(extra[0]) if extra else 0, "database": len(ids)},
    }
    if len(labels):
        # A version without a threshold decides nothing alone: coverage 0.
        threshold = version.threshold if version.threshold is not None else float("inf")
        report |= evaluate_probabilities(probabilities, labels, version.classes, threshold)
        report["answers"] = _answers(keys, labels, probabilities, version.classes)
    version.evaluation = report
    version.evidence = evidence_of(version)
    ModelVersion.objects.filter(pk=version.pk).update(evaluation=report, evidence=version.evidence)
    return report


def _keys_of(ids: list[int]) -> list[str]:
    """The photo keys (``photo_keys``) of the training images ``ids``, in that order."""
    sha256 = dict(TrainingImage.objects.filter(pk__in=ids).values_list("pk", "sha256"))
    return [photo_keys([sha256[pk]])[0] for pk in ids]


def _shipped_evaluation(version: ModelVersion, predictor: Predictor):
    """(keys, labels, probabilities) of the shipped evaluation photos of the version's
    classes, answered by its heads on their shipped features; None when there are none for
    it (another backbone or input size, a whole-model version, no shipped features).

    The features are the float ones the heads were trained on; served, the int8 backbone
    gives the same class for 99.75 % of photos (the model card)."""
    if predictor.heads is None:
        return None
    photos = shipped.usable(version.input_size, set(version.classes), "evaluation")
    if photos is None:
        return None
    labels = np.array([version.classes.index(slug) for slug in photos.slugs], dtype=int)
    probabilities = predictor.heads.probabilities(photos.features[:, 0])
    return [photo_keys([sha])[0] for sha in photos.sha256], labels, probabilities


def _answers(keys: list[str], labels, probabilities: np.ndarray, classes: list[str]) -> dict:
    """Each photo's answer, by photo key: [true class, predicted class, confidence]. Two
    versions are compared photo by photo on these (``ml.stats.pair``)."""
    predicted = probabilities.argmax(axis=1)
    return {
        key: [classes[label], classes[guess], round(float(row[guess]), 6)]
        for key, label, guess, row in zip(keys, labels, predicted, probabilities, strict=True)
    }
