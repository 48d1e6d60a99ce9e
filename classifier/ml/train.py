"""Training: fit heads on backbone features by folds of near-copy groups, pick the
threshold on their out-of-fold answers, and package the served model: the averaged heads
after the shared int8 backbone, or backbone and heads as one int8 LiteRT model."""

from __future__ import annotations

import platform
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from . import evaluation
from .backbone import DEFAULT_INPUT_SIZE
from .features import backbone_id
from .model import HeadConfig, build_head
from .split import group_folds


@dataclass(frozen=True)
class TrainingConfig:
    # The default recipe (see classifier/default_model/README.md for how it was chosen).
    input_size: int = DEFAULT_INPUT_SIZE
    head: HeadConfig = field(default_factory=lambda: HeadConfig(hidden=128, dropout=0.4))
    # One head per fold, each trained on the other folds (by near-copy groups); the model
    # averages them, and every photo is judged out of fold by the head that did not see it.
    folds: int = 5
    epochs: int = 20
    batch_size: int = 256
    learning_rate: float = 2e-3
    label_smoothing: float = 0.0
    seed: int = 1234
    # Automatic decisions must be wrong at most this often on the out-of-fold answers
    # (single heads on 80 % of the data: the served average errs less on new photos).
    target_risk: float = 0.02
    # Training photos that calibrate the int8 quantisation of the served model (0.13 s each
    # in the export; 100 served as well as 200 or 400, see the model card), and that check
    # the served model against the Keras one.
    calibration_photos: int = 100
    check_photos: int = 400
    # The share of real product photos the none-of-these detector may flag (and send to a
    # moderator) to catch photos of other things (``none_of_these``; the model card).
    none_of_these_rate: float = 0.01


@dataclass
class TrainingResult:
    model: object  # the averaged heads, a keras.Model; typed loosely (imports without Keras)
    classes: list[str]
    history: dict[str, list[float]]
    metrics: dict
    labels: np.ndarray
    # Each photo's probabilities from the head that did not train on it.
    out_of_fold: np.ndarray
    # The averaged heads' probabilities on the same features.
    probabilities: np.ndarray
    none_of_these: object = None  # none_of_these.NoneOfThese


@dataclass
class Package:
    """A trained model in its stored forms, with figures measured on the served form."""

    keras_bytes: bytes
    # The whole model in int8 LiteRT, or the heads for a shared backbone (``package``).
    serving_bytes: bytes
    metrics: dict


def train(
    features: np.ndarray,
    labels: np.ndarray,
    classes: list[str],
    groups: np.ndarray,
    config: TrainingConfig = TrainingConfig(),
    log_dir: Path | None = None,
    callbacks: list | None = None,
    others: np.ndarray | None = None,
) -> TrainingResult:
    """Fit ``config.folds`` heads on ``features`` ``(n, 2, F)`` (each photo and its mirror
    image), each leaving out one fold of near-copy groups, and average them; and the
    none-of-these detector, from the same folds and the rejected photos' features
    ``others`` ``(m, 2, F)``."""
    import keras

    from . import none_of_these

    _check_data(features, labels, classes, config.folds)
    keras.utils.set_random_seed(config.seed)
    fold_of = group_folds(groups, config.folds, config.seed)
    started = time.monotonic()
    heads, history = _fit_heads(features, labels, len(classes), fold_of, config, log_dir, callbacks)
    seconds = time.monotonic() - started
    out_of_fold = np.zeros((len(labels), len(classes)), dtype=np.float32)
    for fold, head in enumerate(heads):
        out_of_fold[fold_of == fold] = head_probabilities(head, features[fold_of == fold])
    model = average_heads(heads)
    detector, detector_report = none_of_these.fit(
        features[:, 0].astype(np.float32),
        labels,
        len(classes),
        fold_of,
        others[:, 0] if others is not None and len(others) else np.zeros((0, features.shape[2])),
        config.none_of_these_rate,
        seed=config.seed,
    )
    report = {
        "target_risk": config.target_risk,
        "training_seconds": round(seconds, 1),
        "epochs_run": config.epochs,
        "folds": config.folds,
        "train_size": int(len(labels)),
        "class_counts": {c: int(np.sum(labels == i)) for i, c in enumerate(classes)},
        "input_size": config.input_size,
        "backbone": backbone_id(config.input_size),
        "parameters": int(model.count_params()),
        "config": asdict(config),
        "versions": _framework_versions(),
        "none_of_these": detector_report,
    }
    return TrainingResult(
        model=model,
        classes=list(classes),
        history=history,
        metrics=report,
        labels=labels,
        out_of_fold=out_of_fold,
        probabilities=head_probabilities(model, features),
        none_of_these=detector,
    )


def _fit_heads(features, labels, n_classes, fold_of, config, log_dir, callbacks):
    """Train every fold's head in one pass over the data: one model with a head per fold,
    each head's loss weighted to zero on its own fold. A fifth of the steps of training
    them one after the other, for the same result."""
    import keras

    names = [f"head{fold + 1}" for fold in range(config.folds)]
    inputs = keras.Input(shape=(features.shape[2],), name="features")
    heads = [build_head(features.shape[2], n_classes, config.head, name=name) for name in names]
    joint = keras.Model(inputs, {head.name: head(inputs) for head in heads})
    # Both views of every photo: mirroring is the augmentation cached features allow.
    x = np.concatenate([features[:, 0], features[:, 1]]).astype(np.float32)
    y = keras.utils.to_categorical(np.concatenate([labels] * 2), n_classes)
    folds = np.concatenate([fold_of] * 2)
    balance = _balanced_weights(labels, n_classes)[np.concatenate([labels] * 2)]
    steps = int(np.ceil(len(x) / config.batch_size)) * config.epochs
    joint.compile(
        optimizer=keras.optimizers.Adam(
            keras.optimizers.schedules.CosineDecay(config.learning_rate, steps, alpha=0.05)
        ),
        loss={
            name: keras.losses.CategoricalCrossentropy(label_smoothing=config.label_smoothing)
            for name in names
        },
        weighted_metrics={name: ["accuracy"] for name in names},
    )
    # Each head is validated on the fold it does not train on (the photos as they are).
    validation = (
        x[: len(labels)],
        {name: y[: len(labels)] for name in names},
        {name: (fold_of == fold).astype(np.float32) for fold, name in enumerate(names)},
    )
    all_callbacks = list(callbacks or [])
    if log_dir is not None:
        all_callbacks.append(keras.callbacks.TensorBoard(log_dir=str(log_dir)))
    fitted = joint.fit(
        x,
        {name: y for name in names},
        sample_weight={name: (folds != fold) * balance for fold, name in enumerate(names)},
        batch_size=config.batch_size,
        epochs=config.epochs,
        validation_data=validation,
        shuffle=True,
        callbacks=all_callbacks,
        verbose=0,
    )
    return heads, _mean_history(fitted.history, names)


def _mean_history(history: dict, names: list[str]) -> dict[str, list[float]]:
    """Per epoch, the heads' mean loss and accuracy, on training and on their held-out fold."""
    mean = {}
    for key in ("loss", "accuracy"):
        for prefix in ("", "val_"):
            series = [history.get(f"{prefix}{name}_{key}") for name in names]
            if all(series):
                mean[f"{prefix}{key}"] = [float(v) for v in np.mean(series, axis=0)]
    return mean


def average_heads(heads: list):
    """One Keras model answering the average of ``heads``' probabilities."""
    import keras
    from keras import layers

    inputs = keras.Input(shape=heads[0].input_shape[1:], name="features")
    # Fresh copies with the weights and without the optimizers' state (a third of the file).
    clones = [keras.Model.from_config(head.get_config()) for head in heads]
    for clone, head in zip(clones, heads, strict=True):
        clone.set_weights(head.get_weights())
    outputs = layers.Average(name="probabilities")([clone(inputs) for clone in clones])
    return keras.Model(inputs, outputs, name="heads")


def head_probabilities(head, features: np.ndarray, batch_size: int = 1024) -> np.ndarray:
    """The head's answer for ``(n, 2, F)`` features, as the served model gives it: for the
    photo as it is (the mirror image's features only augment training; averaging over both
    at serving time doubled the cost for no clear gain, see the model card)."""
    chunks = [
        np.asarray(head(features[start : start + batch_size, 0].astype(np.float32)))
        for start in range(0, len(features), batch_size)
    ]
    return np.concatenate(chunks) if chunks else np.zeros((0, head.output_shape[-1]))


def sample_index(n: int, count: int, seed: int) -> np.ndarray:
    """Up to ``count`` of ``n`` photos, drawn at random (fixed seed)."""
    return np.sort(np.random.default_rng(seed).permutation(n)[:count])


def package(
    result: TrainingResult, pixels_of, backbone: bytes | None = None, readable=None
) -> Package:
    """The served model, measured.

    ``backbone``, the shared int8 backbone (``export.backbone_litert_bytes``): the served
    model is that backbone, then the averaged heads and the none-of-these detector in NumPy
    (``heads``): a retrain stores only those. Without it, backbone and heads are exported as
    one int8 LiteRT model, calibrated on a sample of the training photos (the form of the
    versions shipped before v4; it gives no features, so no none-of-these).

    ``pixels_of(indices)`` gives training photos' pixels: a sample calibrates the int8
    quantisation, another checks the served model against the Keras one; both are drawn
    from ``readable`` (default: all), the photos that have pixels (shipped ones have only
    their features). The threshold is
    chosen on the out-of-fold answers (every training photo, each judged by a head that did
    not see it): a far larger sample than a validation split, so a steadier threshold. The
    served model averages all heads, which is surer than one head where they agree and less
    sure where they do not: the threshold errs on the side of the moderators.
    """
    from .export import keras_bytes, litert_bytes
    from .heads import Heads, heads_bytes
    from .model import serving_model
    from .predict import Predictor

    config = result.metrics["config"]
    size = result.metrics["input_size"]
    readable = np.arange(len(result.labels)) if readable is None else np.asarray(readable)

    def sample(count: int, seed: int) -> np.ndarray:
        return readable[sample_index(len(readable), count, seed)]

    if backbone is None:
        calibration = pixels_of(sample(config["calibration_photos"], config["seed"]))
        served_bytes = litert_bytes(serving_model(result.model, size), calibration)
        predictor = Predictor(served_bytes, result.classes, size)
    else:
        served_bytes = heads_bytes(result.model, result.none_of_these)
        predictor = Predictor(backbone, result.classes, size, heads=Heads(served_bytes))
    checked = sample(config["check_photos"], config["seed"] + 1)
    report = validation_report(
        result.out_of_fold, result.labels, result.classes, result.metrics["target_risk"]
    )
    report["serving_checked"] = int(len(checked))
    if not len(checked):  # only shipped photos: nothing to run the served form on
        return Package(keras_bytes(result.model), served_bytes, {**result.metrics, **report})
    answers = predictor.answers(pixels_of(checked))
    served = answers.probabilities
    reference = result.probabilities[checked]
    report["serving_agreement"] = float(np.mean(served.argmax(1) == reference.argmax(1)))
    report["serving_max_difference"] = float(np.abs(served - reference).max())
    if answers.none_of_these is not None:
        # On training photos (in sample): the int8 features against the float ones.
        report["serving_none_of_these_rate"] = float(np.mean(answers.none_of_these))
    return Package(
        keras_bytes=keras_bytes(result.model),
        serving_bytes=served_bytes,
        metrics={**result.metrics, **report},
    )


def _check_data(features, labels, classes, folds: int) -> None:
    if features.ndim != 3 or features.shape[1] != 2:
        raise ValueError(f"expected features of shape (n, 2, F), got {features.shape}")
    if folds < 2:
        raise ValueError("training needs at least two folds")
    counts = np.bincount(labels, minlength=len(classes))
    empty = [classes[i] for i, count in enumerate(counts) if count < 2]
    if len(classes) < 2:
        raise ValueError("training needs at least two categories")
    if empty:
        raise ValueError(f"each category needs at least two images; too few in: {', '.join(empty)}")


def _balanced_weights(labels: np.ndarray, n_classes: int) -> np.ndarray:
    """Per class, the weight that gives every class the same total weight."""
    counts = np.bincount(labels, minlength=n_classes).astype(float)
    return np.divide(len(labels), n_classes * counts, out=np.zeros(n_classes), where=counts > 0)


def validation_report(
    probabilities: np.ndarray, labels: np.ndarray, classes: list[str], target_risk: float
) -> dict:
    """Figures on the validation split, with the threshold that meets ``target_risk``."""
    confidence = probabilities.max(axis=1)
    correct = probabilities.argmax(axis=1) == labels
    chosen = evaluation.threshold_for_risk(
        evaluation.coverage_risk_curve(confidence, correct), target_risk
    )
    report = evaluation.evaluate_probabilities(probabilities, labels, classes, chosen["threshold"])
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
