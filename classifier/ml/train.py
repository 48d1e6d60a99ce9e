"""Training: split, fit with early stopping, measure on the validation split."""

from __future__ import annotations

import platform
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from . import metrics
from .model import Architecture, augmentation, build_model
from .split import group_split


@dataclass(frozen=True)
class TrainingConfig:
    architecture: Architecture = field(default_factory=Architecture)
    epochs: int = 32
    batch_size: int = 32
    learning_rate: float = 2e-3
    patience: int = 12
    validation_fraction: float = 0.15
    seed: int = 1234
    # Automatic decisions must be wrong at most this often on the validation split.
    target_risk: float = 0.01
    # Mixup strength (Beta(a, a)); 0 turns it off. Mixing photos softens noisy labels.
    mixup: float = 0.2
    # XLA-compiled training steps: ~1.6x the photos per second on a 2-core CPU, for a
    # one-off compilation of a few seconds.
    jit_compile: bool = True


@dataclass
class TrainingResult:
    model: object  # keras.Model; typed loosely so this module imports without TensorFlow
    classes: list[str]
    history: dict[str, list[float]]
    metrics: dict
    validation_pixels: np.ndarray
    validation_labels: np.ndarray


@dataclass
class Package:
    """A trained model in its stored forms, with figures measured on the served form."""

    keras_bytes: bytes
    litert_bytes: bytes
    metrics: dict


def train(
    pixels: np.ndarray,
    labels: np.ndarray,
    classes: list[str],
    groups: np.ndarray,
    config: TrainingConfig = TrainingConfig(),
    log_dir: Path | None = None,
    callbacks: list | None = None,
) -> TrainingResult:
    """Train a fresh CNN on ``pixels`` (uint8, preprocessed) labelled by class index."""
    import keras

    _check_data(pixels, labels, classes, config)
    keras.utils.set_random_seed(config.seed)
    train_idx, val_idx = group_split(labels, groups, config.validation_fraction, config.seed)
    model = build_model(len(classes), config.architecture, seed=config.seed)
    steps = int(np.ceil(len(train_idx) / config.batch_size)) * config.epochs
    schedule = keras.optimizers.schedules.CosineDecay(config.learning_rate, steps, alpha=0.05)
    model.compile(
        optimizer=keras.optimizers.AdamW(schedule, weight_decay=1e-4),
        loss="categorical_crossentropy",
        metrics=["accuracy"],
        jit_compile=config.jit_compile,
    )
    onehot = keras.utils.to_categorical(labels, len(classes))
    all_callbacks = [
        # Judged only over the second half: mid-schedule weights (high learning rate) score
        # a lucky validation loss now and then on a few hundred photos, yet are less sure.
        keras.callbacks.EarlyStopping(
            monitor="val_loss",
            patience=config.patience,
            restore_best_weights=True,
            start_from_epoch=config.epochs // 2,
        ),
        *(callbacks or []),
    ]
    if log_dir is not None:
        all_callbacks.append(keras.callbacks.TensorBoard(log_dir=str(log_dir)))
    started = time.monotonic()
    fitted = model.fit(
        _augmented_batches(pixels[train_idx], onehot[train_idx], config),
        validation_data=(pixels[val_idx], onehot[val_idx]),
        epochs=config.epochs,
        class_weight=_balanced_weights(labels[train_idx], len(classes)),
        shuffle=False,  # the dataset shuffles itself
        callbacks=all_callbacks,
        verbose=0,
    )
    seconds = time.monotonic() - started
    history = {key: [float(v) for v in values] for key, values in fitted.history.items()}
    report = {
        "target_risk": config.target_risk,
        "training_seconds": round(seconds, 1),
        "epochs_run": len(history.get("loss", [])),
        "train_size": int(len(train_idx)),
        "validation_size": int(len(val_idx)),
        "class_counts": {c: int(np.sum(labels == i)) for i, c in enumerate(classes)},
        "input_size": config.architecture.input_size,
        "parameters": int(model.count_params()),
        "config": asdict(config),
        "versions": _framework_versions(),
    }
    return TrainingResult(
        model=model,
        classes=list(classes),
        history=history,
        metrics=report,
        validation_pixels=pixels[val_idx],
        validation_labels=labels[val_idx],
    )


def package(result: TrainingResult) -> Package:
    """Export the model and measure the served (LiteRT) form on the validation split.

    The threshold is chosen from the served model's own confidences: that is the model
    that will decide in production.
    """
    from .export import keras_bytes, litert_bytes
    from .model import with_mirror_averaging
    from .predict import Predictor, keras_probabilities

    size = result.metrics["input_size"]
    served_model = with_mirror_averaging(result.model)
    served_bytes = litert_bytes(served_model)
    served = Predictor(served_bytes, result.classes, size).probabilities(result.validation_pixels)
    reference = keras_probabilities(served_model, result.validation_pixels)
    report = validation_report(
        served, result.validation_labels, result.classes, result.metrics["target_risk"]
    )
    report["serving_agreement"] = float(np.mean(served.argmax(1) == reference.argmax(1)))
    report["keras_accuracy"] = float(np.mean(reference.argmax(1) == result.validation_labels))
    return Package(
        keras_bytes=keras_bytes(served_model),
        litert_bytes=served_bytes,
        metrics={**result.metrics, **report},
    )


def _augmented_batches(pixels: np.ndarray, labels: np.ndarray, config: TrainingConfig):
    """Shuffled, augmented batches, prepared in parallel with the training steps."""
    import tensorflow as tf

    augment = augmentation(config.seed)
    images, targets = tf.constant(pixels), tf.constant(labels)

    def load(indices):
        photos = tf.cast(tf.gather(images, indices), tf.float32)
        return augment(photos, training=True), tf.gather(targets, indices)

    # Shuffle indices, not photos: a shuffle buffer of whole photos is refilled every
    # epoch and cost ~8 s an epoch here.
    batches = (
        tf.data.Dataset.range(len(pixels))
        .shuffle(len(pixels), seed=config.seed, reshuffle_each_iteration=True)
        .batch(config.batch_size)
        .map(load, num_parallel_calls=tf.data.AUTOTUNE)
    )
    if config.mixup > 0:
        batches = batches.map(_mixup(config.mixup), num_parallel_calls=tf.data.AUTOTUNE)
    return batches.prefetch(tf.data.AUTOTUNE)


def _mixup(alpha: float):
    """Blend each photo (and its one-hot label) with another of the batch."""
    import tensorflow as tf

    def mix(x, y):
        a = tf.random.gamma([], alpha)
        weight = a / (a + tf.random.gamma([], alpha))
        order = tf.random.shuffle(tf.range(tf.shape(x)[0]))
        y = tf.cast(y, tf.float32)
        return (
            weight * x + (1 - weight) * tf.gather(x, order),
            weight * y + (1 - weight) * tf.gather(y, order),
        )

    return mix


def _check_data(pixels, labels, classes, config) -> None:
    size = config.architecture.input_size
    if pixels.ndim != 4 or pixels.shape[1:] != (size, size, 3):
        raise ValueError(f"expected images of shape (n, {size}, {size}, 3), got {pixels.shape}")
    counts = np.bincount(labels, minlength=len(classes))
    empty = [classes[i] for i, count in enumerate(counts) if count < 2]
    if len(classes) < 2:
        raise ValueError("training needs at least two categories")
    if empty:
        raise ValueError(f"each category needs at least two images; too few in: {', '.join(empty)}")


def _balanced_weights(labels: np.ndarray, n_classes: int) -> dict[int, float]:
    counts = np.bincount(labels, minlength=n_classes).astype(float)
    return {i: float(len(labels) / (n_classes * c)) if c else 0.0 for i, c in enumerate(counts)}


def validation_report(
    probabilities: np.ndarray, labels: np.ndarray, classes: list[str], target_risk: float
) -> dict:
    """Figures on the validation split, with the threshold that meets ``target_risk``."""
    confidence = probabilities.max(axis=1)
    correct = probabilities.argmax(axis=1) == labels
    chosen = metrics.threshold_for_risk(
        metrics.coverage_risk_curve(confidence, correct), target_risk
    )
    report = metrics.evaluate_probabilities(probabilities, labels, classes, chosen["threshold"])
    report["threshold"] = chosen["threshold"]
    return report


def _framework_versions() -> dict[str, str]:
    import keras
    import PIL
    import tensorflow as tf

    return {
        "python": platform.python_version(),
        "tensorflow": tf.__version__,
        "keras": keras.__version__,
        "numpy": np.__version__,
        "pillow": PIL.__version__,
    }
