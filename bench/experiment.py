"""Recipe search on the real dataset: hold out a group split as a test set, train, report.

    python bench/experiment.py                       # the shipped recipe
    python bench/experiment.py --size 64 --head gap  # a variation

Prints validation and held-out test figures and the wall time. Used to pick the default
recipe; the test split is never used for early stopping or threshold choice.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import numpy as np  # noqa: E402

from classifier.ml import metrics  # noqa: E402
from classifier.ml.dataset import load_folder  # noqa: E402
from classifier.ml.model import Architecture  # noqa: E402
from classifier.ml.predict import Predictor, keras_probabilities  # noqa: E402
from classifier.ml.split import group_split, near_duplicate_groups  # noqa: E402
from classifier.ml.train import TrainingConfig, package, train  # noqa: E402

DEFAULT_DATA = Path(__file__).resolve().parents[2] / "shared/datasets/avito-phone-laptop/train"


def EpochLog():
    import keras

    class _EpochLog(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            self.started = time.monotonic()

        def on_epoch_end(self, epoch, logs=None):
            shown = " ".join(f"{k}={v:.4f}" for k, v in logs.items() if "learning" not in k)
            print(f"epoch {epoch + 1} {time.monotonic() - self.started:.1f}s {shown}", flush=True)

    return _EpochLog()


def mirrored_accuracy(model, pixels: np.ndarray, labels: np.ndarray) -> float:
    """Accuracy of the plain Keras model averaged with its mirror image (as served)."""
    probabilities = keras_probabilities(model, pixels) + keras_probabilities(
        model, pixels[:, :, ::-1]
    )
    return float(np.mean(probabilities.argmax(1) == labels))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    recipe, arch = TrainingConfig(), Architecture()  # defaults: the shipped recipe
    parser.add_argument("--size", type=int, default=arch.input_size)
    parser.add_argument("--widths", default=",".join(map(str, arch.widths)))
    parser.add_argument("--epochs", type=int, default=recipe.epochs)
    parser.add_argument("--batch", type=int, default=recipe.batch_size)
    parser.add_argument("--lr", type=float, default=recipe.learning_rate)
    parser.add_argument("--dropout", type=float, default=arch.dropout)
    parser.add_argument("--patience", type=int, default=recipe.patience)
    parser.add_argument("--test-fraction", type=float, default=0.15)
    parser.add_argument("--stem-stride", type=int, default=arch.stem_stride)
    parser.add_argument("--head", default=arch.head)
    parser.add_argument("--mixup", type=float, default=recipe.mixup)
    parser.add_argument(
        "--split",
        choices=["group", "random"],
        default="group",
        help="how the test set is held out: by near-duplicate groups, or at random as the "
        "original prototype's split was (re-posted photos then fall on both sides)",
    )
    parser.add_argument("--no-jit", action="store_true", help="train without XLA")
    parser.add_argument("--threads", type=int, default=0, help="TensorFlow threads (0: all)")
    args = parser.parse_args()

    if args.threads:
        import tensorflow as tf

        tf.config.threading.set_intra_op_parallelism_threads(args.threads)
        tf.config.threading.set_inter_op_parallelism_threads(args.threads)
    started = time.monotonic()
    data = load_folder(args.data, args.size)
    groups = near_duplicate_groups(data.hashes)
    if args.split == "group":
        rest, test = group_split(data.labels, groups, args.test_fraction, seed=99)
    else:
        # Each photo its own group: the split ignores near-copies.
        singles = np.arange(len(data.labels))
        rest, test = group_split(data.labels, singles, args.test_fraction, seed=99)
    print(
        f"loaded {len(data.labels)} in {time.monotonic() - started:.1f}s; "
        f"{len(np.unique(groups))} groups; train+val {len(rest)}, test {len(test)}",
        flush=True,
    )
    config = TrainingConfig(
        architecture=Architecture(
            input_size=args.size,
            widths=tuple(int(w) for w in args.widths.split(",")),
            dropout=args.dropout,
            stem_stride=args.stem_stride,
            head=args.head,
        ),
        epochs=args.epochs,
        batch_size=args.batch,
        learning_rate=args.lr,
        patience=args.patience,
        mixup=args.mixup,
        jit_compile=not args.no_jit,
    )
    result = train(
        data.pixels[rest],
        data.labels[rest],
        data.classes,
        groups[rest],
        config,
        callbacks=[EpochLog()],
    )
    packaged = package(result)
    m = packaged.metrics
    # Measured on the served LiteRT form, as production would decide.
    predictor = Predictor(packaged.litert_bytes, data.classes, args.size)
    probabilities = predictor.probabilities(data.pixels[test])
    keras_test = keras_probabilities(result.model, data.pixels[test])
    tta = mirrored_accuracy(result.model, data.pixels[test], data.labels[test])
    report = metrics.evaluate_probabilities(
        probabilities, data.labels[test], data.classes, m["threshold"]
    )
    confidence = probabilities.max(axis=1)
    correct = probabilities.argmax(axis=1) == data.labels[test]
    curve = metrics.coverage_risk_curve(confidence, correct)
    best_at_1 = metrics.threshold_for_risk(curve, 0.01)
    best_at_2 = metrics.threshold_for_risk(curve, 0.02)
    summary = {
        "args": vars(args) | {"data": str(args.data)},
        "params": m["parameters"],
        "epochs_run": m["epochs_run"],
        "train_seconds": m["training_seconds"],
        "val_accuracy": round(m["accuracy"], 4),
        "val_threshold": round(m["threshold"], 4),
        "val_coverage": round(m["coverage_at_threshold"], 4),
        "test_accuracy": round(report["accuracy"], 4),
        "test_accuracy_tta": round(tta, 4),
        "test_accuracy_keras": round(float(np.mean(keras_test.argmax(1) == data.labels[test])), 4),
        "test_coverage_at_val_threshold": round(report["coverage_at_threshold"], 4),
        "test_error_at_val_threshold": round(report["error_at_threshold"], 4),
        "test_oracle_coverage_at_1pct": round(best_at_1["coverage"], 4),
        "test_oracle_coverage_at_2pct": round(best_at_2["coverage"], 4),
    }
    print(json.dumps(summary), flush=True)


if __name__ == "__main__":
    main()
