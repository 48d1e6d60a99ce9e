"""The learning loop on the real dataset: a model trained on noisy labels, moderators
correcting what it sends them, a retrained model, and the suspected-label-error list.

    python bench/learning_loop.py [--fraction 0.5] [--noise 0.1] [--epochs N]

The backbone's features are computed once for every photo; each model's heads train on
those, so only the int8 calibration and the test decode photos again.

1. A test split is held out by near-duplicate groups (as ``bench/backbone_recipes.py`` does).
2. "The imported dataset": ``--fraction`` of the rest, with ``--noise`` of its labels
   flipped. Model A is trained on it with the default recipe (``--epochs`` per head if
   given), through ``classifier.services.train_and_package`` as the training worker does.
3. "The marketplace": the other photos arrive as one-photo ads; sellers file ``--noise`` of
   them under a wrong category. Model A routes each at its threshold as the policy does
   (published only when it predicts the seller's category confidently); the ads it
   contradicts or doubts go to review, where the moderator gives the photo its true label
   (a misfiled one gets it back). Published ads give no label.
4. Model B is trained on the imported photos plus the moderators' labels. Test accuracy
   of A and B, measured on the served (int8 LiteRT) form on letterboxed test photos.
5. Confident learning on B's training set (``classifier.ml.label_errors``, ``--folds``
   heads of ``--cl-epochs``): precision and recall of the suspects against the flips.
6. Model C, after an admin went through the list (``--fix review``, the default): the
   suspects whose label is really wrong are relabelled, one click each, the false alarms
   left as they are. ``--fix all`` relabels every suspect unseen (the model's word taken
   for truth: the out-of-fold answers the threshold is chosen on then agree with it by
   construction, and the threshold comes out too low); ``--fix none`` skips model C.

Prints the machine, the command and every figure; ends with one JSON line. Needs no
database: Django is set up only for the settings the services read.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
DEFAULT_DATA = ROOT.parent / "shared/datasets/avito-phone-laptop/train"


def setup_django() -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "avito_mod.settings")
    # Scratch data directory: nothing of this run lands in the project's var/.
    os.environ["AVITO_DATA_DIR"] = tempfile.mkdtemp(prefix="avito-loop-")
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import django

    django.setup()


def arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--fraction", type=float, default=0.5, help="share imported at first")
    parser.add_argument("--noise", type=float, default=0.1, help="share of flipped labels")
    parser.add_argument("--epochs", type=int, help="epochs of each head (default: the recipe's)")
    parser.add_argument("--hidden", type=int, help="heads' hidden width, 0 for linear")
    parser.add_argument("--folds", type=int, default=3, help="folds of the label check")
    parser.add_argument("--cl-epochs", type=int, help="epochs of its heads (default: --epochs)")
    parser.add_argument("--test-fraction", type=float, default=0.15)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--size", type=int, help="input size (default: the recipe's)")
    parser.add_argument("--limit", type=int, help="at most this many photos (smoke runs)")
    parser.add_argument("--fix", choices=["review", "all", "none"], default="review")
    return parser.parse_args()


def recipe(args):
    from classifier.services import default_training_config

    config = default_training_config()
    if args.epochs:
        config = replace(config, epochs=args.epochs)
    if args.size:
        config = replace(config, input_size=args.size)
    if args.hidden is not None:
        config = replace(config, head=replace(config.head, hidden=args.hidden))
    return config


def head_log(name: str):
    """One line per head trained (a head on cached features takes seconds, not minutes)."""
    import keras

    class HeadLog(keras.callbacks.Callback):
        heads = 0

        def on_train_begin(self, logs=None):
            self.started = time.monotonic()
            self.heads += 1

        def on_train_end(self, logs=None):
            shown = " ".join(f"{k}={v:.4f}" for k, v in (logs or {}).items() if "rate" not in k)
            took = time.monotonic() - self.started
            print(f"  {name} head {self.heads} {took:.1f}s {shown}", flush=True)

    return HeadLog()


class Photos:
    """Every photo of the run: letterboxed pixels, backbone features (computed once),
    labels, hashes and files."""

    def __init__(self, directory: Path, size: int, limit: int | None):
        from classifier.ml import features
        from classifier.ml.dataset import load_folder

        data = load_folder(directory, size)
        keep = np.arange(len(data.labels))
        if limit and limit < len(keep):
            keep = np.sort(np.random.default_rng(0).choice(len(keep), limit, replace=False))
        self.classes, self.size = data.classes, size
        self.pixels, self.labels = data.pixels[keep], data.labels[keep]
        self.hashes = np.array(data.hashes, dtype=np.uint64)[keep]
        self.paths = [data.paths[i] for i in keep]
        self.features = features.compute(self.pixels)

    def labelled(self, indices: np.ndarray, labels: np.ndarray):
        """The photos at ``indices`` under ``labels``, as the training worker gets them."""
        from classifier.services import LabelledSet

        return LabelledSet(
            self.classes,
            self.features[indices],
            labels,
            self.hash_list(indices),
            read=[self.paths[i].read_bytes for i in indices],
        )

    def hash_list(self, indices: np.ndarray) -> list[int]:
        return list(map(int, self.hashes[indices]))


def train_model(name, photos: Photos, indices, labels, config):
    """Through the services' own training function; returns (package, seconds)."""
    from classifier.services import train_and_package

    started = time.monotonic()
    data = photos.labelled(indices, labels)
    _, packaged = train_and_package(data, config, None, [head_log(name)])
    return packaged, time.monotonic() - started


def served(packaged, photos: Photos):
    """The served form: the int8 model, on letterboxed uint8 pixels."""
    from classifier.ml.predict import Predictor

    return Predictor(packaged.serving_bytes, photos.classes, photos.size)


def test_figures(predictor, pixels, labels, threshold) -> dict:
    from classifier.ml.evaluation import evaluate_probabilities

    probabilities = batched(predictor, pixels)
    report = evaluate_probabilities(probabilities, labels, predictor.classes, threshold)
    return {
        "accuracy": round(report["accuracy"], 4),
        "coverage_at_threshold": round(report["coverage_at_threshold"], 4),
        "error_at_threshold": round(report["error_at_threshold"], 4),
    }


def batched(predictor, pixels):
    return np.concatenate(
        [predictor.probabilities(pixels[i : i + 256]) for i in range(0, len(pixels), 256)]
    )


def flip(labels: np.ndarray, share: float, n_classes: int, rng) -> tuple[np.ndarray, np.ndarray]:
    """``labels`` with ``share`` of them moved to another class; and which ones."""
    chosen = rng.choice(len(labels), size=round(share * len(labels)), replace=False)
    noisy = labels.copy()
    noisy[chosen] = (labels[chosen] + rng.integers(1, n_classes, size=len(chosen))) % n_classes
    return noisy, np.sort(chosen)


def route(probabilities, filed_as, threshold) -> np.ndarray:
    """True where the ad goes to review: the policy publishes a one-photo ad only when the
    photo is predicted as the seller's category with confidence at or above threshold."""
    predicted, confidence = probabilities.argmax(1), probabilities.max(1)
    return ~((predicted == filed_as) & (confidence >= threshold))


def main() -> None:
    args = arguments()
    setup_django()
    from classifier.ml.label_errors import (
        confident_learning,
        out_of_fold_probabilities,
        precision_recall,
    )
    from classifier.ml.split import group_split, near_duplicate_groups

    started = time.monotonic()
    config = recipe(args)
    size = config.input_size
    machine = f"{platform.platform()}, {os.cpu_count()} cores"
    print(f"machine: {machine}, python {platform.python_version()}")
    print(f"command: python {' '.join(sys.argv)}", flush=True)
    photos = Photos(args.data, size, args.limit)
    labels, n_classes = photos.labels, len(photos.classes)
    groups = near_duplicate_groups(photos.hash_list(np.arange(len(labels))))
    rest, test = group_split(labels, groups, args.test_fraction, seed=99)
    queue_rel, initial_rel = group_split(labels[rest], groups[rest], args.fraction, args.seed)
    initial, queue = rest[initial_rel], rest[queue_rel]
    rng = np.random.default_rng(args.seed)
    noisy, flipped = flip(labels[initial], args.noise, n_classes, rng)
    print(
        f"loaded {len(labels)} photos ({size} px) and their features in "
        f"{time.monotonic() - started:.0f}s: "
        f"test {len(test)}, imported {len(initial)} ({len(flipped)} labels flipped), "
        f"arriving as ads {len(queue)}",
        flush=True,
    )

    # --- Model A on the noisy import
    package_a, seconds_a = train_model("A", photos, initial, noisy, config)
    threshold_a = package_a.metrics["threshold"]
    predictor_a = served(package_a, photos)
    figures_a = test_figures(predictor_a, photos.pixels[test], labels[test], threshold_a)
    print(f"model A (noisy import): test {figures_a}, trained in {seconds_a:.0f}s", flush=True)

    # --- The marketplace: ads filed by sellers (some misfiled), routed by A
    filed_as, misfiled = flip(labels[queue], args.noise, n_classes, rng)
    to_review = route(batched(predictor_a, photos.pixels[queue]), filed_as, threshold_a)
    reviewed = queue[to_review]
    misfiled_published = int(np.sum(~to_review[misfiled])) if len(misfiled) else 0
    print(
        f"queue: {len(queue)} ads, {int(to_review.sum())} sent to review "
        f"({to_review.mean():.1%}); {len(misfiled)} misfiled by sellers, of which "
        f"{len(misfiled) - misfiled_published} caught; {int((~to_review).sum())} published "
        "(no label)",
        flush=True,
    )

    # --- Model B: the import plus the moderators' labels (true ones)
    train_b = np.concatenate([initial, reviewed])
    labels_b = np.concatenate([noisy, labels[reviewed]])
    package_b, seconds_b = train_model("B", photos, train_b, labels_b, config)
    figures_b = test_figures(
        served(package_b, photos),
        photos.pixels[test],
        labels[test],
        package_b.metrics["threshold"],
    )
    print(
        f"model B (+{len(reviewed)} moderator labels): test {figures_b}, "
        f"trained in {seconds_b:.0f}s",
        flush=True,
    )

    # --- Suspected label errors in B's training set
    cl_started = time.monotonic()
    cl_config = replace(config, epochs=args.cl_epochs or config.epochs)
    probabilities = out_of_fold_probabilities(
        photos.features[train_b],
        labels_b,
        photos.classes,
        near_duplicate_groups(photos.hash_list(train_b)),
        cl_config,
        folds=args.folds,
        callbacks=[head_log("check")],
    )
    suspects = confident_learning(probabilities, labels_b)
    truly_wrong = flipped  # indices into train_b: the import comes first
    precision, recall = precision_recall(suspects.indices, truly_wrong)
    cl_seconds = time.monotonic() - cl_started
    print(
        f"label check: {len(suspects.indices)} suspects among {len(labels_b)}; against the "
        f"{len(flipped)} flips: precision {precision:.1%}, recall {recall:.1%} "
        f"({cl_seconds:.0f}s)",
        flush=True,
    )
    summary = {
        "args": vars(args) | {"data": str(args.data)},
        "machine": {"platform": platform.platform(), "cores": os.cpu_count()},
        "photos": {
            "test": len(test),
            "imported": len(initial),
            "flipped": len(flipped),
            "ads": len(queue),
            "reviewed": len(reviewed),
            "misfiled": len(misfiled),
        },
        "model_a": figures_a,
        "model_b": figures_b,
        "label_check": {
            "suspects": len(suspects.indices),
            "precision": round(precision, 4),
            "recall": round(recall, 4),
            "thresholds": [round(float(t), 4) for t in suspects.thresholds],
        },
        "seconds": {"a": round(seconds_a), "b": round(seconds_b), "label_check": round(cl_seconds)},
    }

    # --- Model C: the suspects relabelled, one click each
    true_b = np.concatenate([labels[initial], labels[reviewed]])
    if args.fix != "none":
        chosen = suspects.indices
        if args.fix == "review":  # the admin sees the photo: only real errors are fixed
            chosen = chosen[true_b[chosen] != labels_b[chosen]]
        labels_c = labels_b.copy()
        labels_c[chosen] = suspects.suspected[np.isin(suspects.indices, chosen)]
        package_c, seconds_c = train_model("C", photos, train_b, labels_c, config)
        figures_c = test_figures(
            served(package_c, photos),
            photos.pixels[test],
            labels[test],
            package_c.metrics["threshold"],
        )
        remaining = int(np.sum(labels_c != true_b))
        print(
            f"model C ({args.fix}: {len(chosen)} relabelled, {remaining} wrong labels left): "
            f"test {figures_c}, "
            f"trained in {seconds_c:.0f}s",
            flush=True,
        )
        summary["model_c"] = figures_c | {
            "fix": args.fix,
            "relabelled": len(chosen),
            "wrong_labels_left": remaining,
        }
        summary["seconds"]["c"] = round(seconds_c)
    summary["seconds"]["total"] = round(time.monotonic() - started)
    print(json.dumps(summary), flush=True)


if __name__ == "__main__":
    main()
