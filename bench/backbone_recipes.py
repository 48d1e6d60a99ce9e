"""Recipe search for the pretrained backbone: features once, then many heads on them.

    python bench/backbone_recipes.py features --size 240 [--backbone NAME] [--resize letterbox]
    python bench/backbone_recipes.py heads [--features efficientnet-lite1-letterbox240 ...]
    python bench/backbone_recipes.py finetune --size 240

``features`` runs a frozen ImageNet EfficientNet-Lite (Lite1 unless ``--backbone`` says)
over the shared dataset (each photo
and its mirror image) and keeps the pooled features in ``var/bench-features/``. ``heads``
holds out a test split by near-copy groups (15 %), trains each recipe on the rest with the
project's own ``classifier.ml.train.train`` (heads by folds, threshold from their
out-of-fold answers) and reports the test figures, on three splits and their mean. The
test split decides nothing inside a run. ``finetune`` asks whether training the backbone's
last blocks beats the frozen backbone: on the same splits, one head on the frozen features,
then that head and blocks 13-15 and the head convolution trained together (BatchNorm
statistics kept, small learning rate), from activations of block 12 computed once.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import replace
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import numpy as np  # noqa: E402
from PIL import Image  # noqa: E402

from ads.photos import perceptual_hash  # noqa: E402
from classifier.ml.backbone import BACKBONES, DEFAULT_BACKBONE, LITE0  # noqa: E402
from classifier.ml.dataset import scan_class_folders  # noqa: E402
from classifier.ml.label_errors import confident_learning  # noqa: E402
from classifier.ml.model import HeadConfig, build_head  # noqa: E402
from classifier.ml.preprocess import decode_image, letterbox  # noqa: E402
from classifier.ml.split import (  # noqa: E402
    NEAR_DUPLICATE_DISTANCE,
    group_split,
    hamming_distances,
    near_duplicate_groups,
)
from classifier.ml.train import (  # noqa: E402
    TrainingConfig,
    head_probabilities,
    train,
    validation_report,
)

DEFAULT_DATA = Path(__file__).resolve().parents[2] / "shared/datasets/avito-phone-laptop/train"
CACHE = Path(__file__).resolve().parent.parent / "var/bench-features"


def stretch(image: Image.Image, size: int) -> np.ndarray:
    return np.asarray(image.resize((size, size), Image.Resampling.BILINEAR), dtype=np.uint8)


def read_dataset(data: Path, size: int, resize=letterbox) -> dict:
    """The shared dataset's photos resized, with labels, perceptual hashes, log aspect
    ratios and names (``class/file``)."""
    folders = scan_class_folders(data)
    read = {"classes": sorted(folders), "pixels": [], "labels": [], "hashes": [], "aspects": []}
    read["names"] = []
    for label, name in enumerate(read["classes"]):
        for path in folders[name]:
            image = decode_image(path.read_bytes())
            read["pixels"].append(resize(image, size))
            read["labels"].append(label)
            read["hashes"].append(perceptual_hash(image))
            read["aspects"].append(np.log(image.size[0] / image.size[1]))
            read["names"].append(f"{name}/{path.name}")
    read["pixels"], read["labels"] = np.stack(read["pixels"]), np.array(read["labels"])
    return read


def compute_features(args) -> None:
    from classifier.ml.backbone import pretrained_feature_extractor

    dataset = read_dataset(
        args.data, args.size, {"letterbox": letterbox, "stretch": stretch}[args.resize]
    )
    pixels, labels, hashes = dataset["pixels"], dataset["labels"], dataset["hashes"]
    aspects, names, classes = dataset["aspects"], dataset["names"], dataset["classes"]
    model = pretrained_feature_extractor(args.size, args.backbone)
    started = time.monotonic()
    plain = _run(model, pixels)
    mirrored = _run(model, pixels[:, :, ::-1])
    seconds = time.monotonic() - started
    CACHE.mkdir(parents=True, exist_ok=True)
    out = CACHE / f"{feature_file(args.backbone, args.resize, args.size)}.npz"
    np.savez(
        out,
        plain=plain.astype(np.float16),
        mirrored=mirrored.astype(np.float16),
        labels=np.array(labels),
        hashes=np.array(hashes, dtype=np.uint64),
        aspects=np.array(aspects, dtype=np.float32),
        names=np.array(names),
        classes=np.array(classes),
    )
    print(f"{out}: {len(pixels)} photos x 2 in {seconds:.0f} s ({2 * len(pixels) / seconds:.1f}/s)")


def feature_file(backbone: str, resize: str, size: int) -> str:
    """The cache's name for a backbone's features (Lite0's keep their earlier names)."""
    prefix = "" if backbone == LITE0.name else f"{backbone.split('-imagenet')[0]}-"
    return f"{prefix}{resize}{size}"


def _run(model, pixels: np.ndarray, batch: int = 64) -> np.ndarray:
    return np.concatenate(
        [
            np.asarray(model(pixels[i : i + batch].astype(np.float32), training=False))
            for i in range(0, len(pixels), batch)
        ]
    )


def figures(probabilities, labels, threshold) -> dict:
    confidence, correct = probabilities.max(1), probabilities.argmax(1) == labels
    decided = confidence >= threshold
    return {
        "accuracy": round(float(correct.mean()), 4),
        "coverage": round(float(decided.mean()), 4),
        "risk": round(float((~correct[decided]).mean()) if decided.any() else 0.0, 4),
    }


RECIPES = {
    "default": TrainingConfig(),
    "linear head": replace(TrainingConfig(), head=HeadConfig(hidden=0, dropout=0.2)),
    "256-wide head, 40 epochs": replace(
        TrainingConfig(), head=HeadConfig(hidden=256, dropout=0.4), epochs=40
    ),
    "label smoothing 0.1": replace(TrainingConfig(), label_smoothing=0.1),
    # The default, trained again without the photos its out-of-fold answers suspect of a
    # wrong label (confident learning, as the label check does).
    "suspects dropped": TrainingConfig(),
}


def random_split(n: int, fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Indices (rest, held_out): photos held out at random, copies or not, as the dataset's
    publishers held out their 20 % validation split (the photos the bars are checked on)."""
    order = np.random.default_rng(seed).permutation(n)
    cut = round(fraction * n)
    return np.sort(order[cut:]), np.sort(order[:cut])


def no_copy_in(hashes: np.ndarray, others: np.ndarray) -> np.ndarray:
    """Which of ``hashes`` have no near-copy among ``others``."""
    return np.array(
        [hamming_distances(others, int(h)).min() > NEAR_DUPLICATE_DISTANCE for h in hashes]
    )


def heads(args) -> None:
    """Each recipe through the project's own ``train`` on three test splits (15 %, by
    near-copy groups): the threshold from the out-of-fold answers, as shipped; the test
    figures for the served answer and for the average over photo and mirror image."""
    rows = []
    for name in args.features:
        data = np.load(CACHE / f"{name}.npz")
        features = np.stack([data["plain"], data["mirrored"]], axis=1)
        labels, classes = data["labels"], [str(c) for c in data["classes"]]
        hashes = data["hashes"].astype(np.uint64)
        groups = near_duplicate_groups([int(h) for h in hashes])
        recipes = args.recipes if name == args.features[0] else ["default"]
        for recipe in recipes:
            for test_seed in args.splits:
                if args.split == "groups":
                    rest, test = group_split(labels, groups, 0.15, test_seed)
                else:
                    rest, test = random_split(len(labels), args.random_fraction, test_seed)
                started = time.monotonic()
                result = train(features[rest], labels[rest], classes, groups[rest], RECIPES[recipe])
                if recipe == "suspects dropped":
                    suspects = confident_learning(result.out_of_fold, labels[rest])
                    rest = np.delete(rest, suspects.indices)
                    result = train(features[rest], labels[rest], classes, groups[rest])
                seconds = time.monotonic() - started
                chosen = validation_report(
                    result.out_of_fold, labels[rest], classes, args.target_risk
                )
                plain = head_probabilities(result.model, features[test])
                mirrored = head_probabilities(result.model, features[test][:, ::-1])
                row = {
                    "features": name,
                    "recipe": recipe,
                    "split": test_seed,
                    "fit_s": round(seconds, 1),
                    "out_of_fold_accuracy": round(chosen["accuracy"], 4),
                    "threshold": round(chosen["threshold"], 4),
                    "test": figures(plain, labels[test], chosen["threshold"]),
                    "test_mirror_averaged": figures(
                        (plain + mirrored) / 2, labels[test], chosen["threshold"]
                    ),
                }
                if args.split == "random":
                    fresh = no_copy_in(hashes[test], hashes[rest])
                    row["test_photos"] = int(len(test))
                    row["test_without_near_copy"] = int(fresh.sum())
                    row["test_no_copy"] = figures(
                        plain[fresh], labels[test][fresh], chosen["threshold"]
                    )
                rows.append(row)
                print(json.dumps(row), flush=True)
    print("\nfeatures, recipe: means over the splits (test accuracy, decided alone, errors)")
    for key in dict.fromkeys((r["features"], r["recipe"]) for r in rows):
        mine = [r for r in rows if (r["features"], r["recipe"]) == key]
        mean = {
            k: np.mean([r[part][k] for r in mine])
            for part in ("test",)
            for k in ("accuracy", "coverage", "risk")
        }
        averaged = np.mean([r["test_mirror_averaged"]["accuracy"] for r in mine])
        print(
            f"{key[0]:13s} {key[1]:20s} accuracy {mean['accuracy']:.2%} "
            f"(mirror-averaged {averaged:.2%}), decided alone {mean['coverage']:.1%} "
            f"with {mean['risk']:.2%} errors, {np.mean([r['fit_s'] for r in mine]):.0f} s"
        )
        if args.split == "random":
            fresh = np.mean([r["test_no_copy"]["accuracy"] for r in mine])
            share = np.mean([r["test_without_near_copy"] / r["test_photos"] for r in mine])
            print(f"  on the {share:.0%} of test photos with no near-copy left in: {fresh:.2%}")


def finetune(args) -> None:
    """Frozen head vs. fine-tuned last blocks, per split, one model each (no folds)."""
    import keras
    from keras import layers

    from classifier.ml.backbone import FEATURES, pretrained_feature_extractor, pretrained_top

    dataset = read_dataset(args.data, args.size)
    pixels, labels, classes = dataset["pixels"], dataset["labels"], dataset["classes"]
    groups = near_duplicate_groups(dataset["hashes"])
    backbone = pretrained_feature_extractor(args.size)
    last_frozen = f"block{args.first_trained - 1}"
    names = [layer.name for layer in backbone.layers if layer.name.startswith(last_frozen + "_")]
    bottom = keras.Model(backbone.input, backbone.get_layer(names[-1]).output)
    started = time.monotonic()
    views = np.stack(
        [
            bottom.predict(p.astype(np.float32), batch_size=32, verbose=0)
            for p in (pixels, pixels[:, :, ::-1])
        ],
        axis=1,
    )
    print(
        f"block {args.first_trained} inputs {views.shape[2:]} in {time.monotonic() - started:.0f} s"
    )

    def fit(model, x, y, learning_rate, epochs, batch) -> None:
        steps = epochs * int(np.ceil(len(x) / batch))
        schedule = keras.optimizers.schedules.CosineDecay(learning_rate, steps)
        model.compile(keras.optimizers.Adam(schedule), "sparse_categorical_crossentropy")
        model.fit(x, y, batch_size=batch, epochs=epochs, verbose=0, shuffle=True)

    rows = []
    for seed in args.splits:
        rest, test = group_split(labels, groups, 0.15, seed)
        x = np.concatenate([views[rest, 0], views[rest, 1]])
        y = np.concatenate([labels[rest], labels[rest]])
        keras.utils.set_random_seed(seed)
        blocks = pretrained_top(views.shape[2:], args.first_trained)
        head = build_head(FEATURES, len(classes), TrainingConfig().head)
        fit(head, blocks.predict(x, batch_size=256, verbose=0), y, 2e-3, 20, 256)
        frozen = head.predict(blocks.predict(views[test, 0], batch_size=256, verbose=0), verbose=0)
        started = time.monotonic()
        blocks.trainable = True
        for layer in blocks.layers:
            # BatchNorm keeps ImageNet's statistics: 3,000 photos cannot re-estimate them.
            if isinstance(layer, layers.BatchNormalization):
                layer.trainable = False
        inputs = keras.Input(shape=views.shape[2:])
        model = keras.Model(inputs, head(blocks(inputs)))
        fit(model, x, y, args.learning_rate, args.epochs, 64)
        tuned = model.predict(views[test, 0], batch_size=256, verbose=0)
        row = {"split": seed, "fine_tune_s": round(time.monotonic() - started)}
        for name, probabilities in (("frozen", frozen), ("fine_tuned", tuned)):
            correct = probabilities[np.arange(len(test)), labels[test]]
            row[name] = {
                "accuracy": round(float((probabilities.argmax(1) == labels[test]).mean()), 4),
                "log_loss": round(float(-np.log(np.maximum(correct, 1e-7)).mean()), 4),
            }
        rows.append(row)
        print(json.dumps(row), flush=True)
    for name in ("frozen", "fine_tuned"):
        accuracy = np.mean([r[name]["accuracy"] for r in rows])
        loss = np.mean([r[name]["log_loss"] for r in rows])
        print(
            f"{name:10s} test accuracy {accuracy:.2%}, log loss {loss:.3f} "
            f"(mean of {len(rows)} splits)"
        )


def main() -> None:
    parser = argparse.ArgumentParser()
    sub = parser.add_subparsers(dest="command", required=True)
    one = sub.add_parser("features")
    one.add_argument("--data", type=Path, default=DEFAULT_DATA)
    one.add_argument("--size", type=int, default=240)
    one.add_argument("--resize", choices=["letterbox", "stretch"], default="letterbox")
    one.add_argument("--backbone", choices=list(BACKBONES), default=DEFAULT_BACKBONE)
    two = sub.add_parser("heads")
    two.add_argument(
        "--features", nargs="+", default=["efficientnet-lite1-letterbox240", "letterbox224"]
    )
    two.add_argument("--recipes", nargs="+", default=list(RECIPES), choices=list(RECIPES))
    two.add_argument("--splits", nargs="+", type=int, default=[1234, 77, 2024])
    two.add_argument(
        "--split",
        choices=["groups", "random"],
        default="groups",
        help="hold out 15 %% by near-copy groups, or --random-fraction at random",
    )
    two.add_argument("--random-fraction", type=float, default=0.2)
    two.add_argument(
        "--target-risk",
        type=float,
        default=TrainingConfig().target_risk,
        help="the error target the threshold is chosen for (as CLASSIFIER_TARGET_RISK)",
    )
    three = sub.add_parser("finetune")
    three.add_argument("--data", type=Path, default=DEFAULT_DATA)
    three.add_argument("--size", type=int, default=240)
    three.add_argument("--first-trained", type=int, default=13, help="first block trained")
    three.add_argument("--epochs", type=int, default=4)
    three.add_argument("--learning-rate", type=float, default=1e-4)
    three.add_argument("--splits", nargs="+", type=int, default=[1234, 77, 2024])
    args = parser.parse_args()
    {"features": compute_features, "heads": heads, "finetune": finetune}[args.command](args)


if __name__ == "__main__":
    main()
