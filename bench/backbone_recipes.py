"""Recipe search for the pretrained backbone: features once, then many heads on them.

    python bench/backbone_recipes.py features --size 224 --resize letterbox
    python bench/backbone_recipes.py heads

``features`` runs the frozen ImageNet EfficientNet-Lite0 over the shared dataset (each photo
and its mirror image) and keeps the pooled features in ``var/bench-features/``. ``heads``
holds out a test split by near-copy groups (15 %, as ``bench/experiment.py``), fits heads on
the rest (a validation split carved from it, by groups, for the choices) and reports each
recipe's validation and test figures. The test split decides nothing.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import numpy as np  # noqa: E402
from PIL import Image  # noqa: E402

from classifier.ml import metrics  # noqa: E402
from classifier.ml.dataset import perceptual_hash, scan_class_folders  # noqa: E402
from classifier.ml.preprocess import decode_image, letterbox  # noqa: E402
from classifier.ml.split import group_split, near_duplicate_groups  # noqa: E402

DEFAULT_DATA = Path(__file__).resolve().parents[2] / "shared/datasets/avito-phone-laptop/train"
CACHE = Path(__file__).resolve().parent.parent / "var/bench-features"


def stretch(image: Image.Image, size: int) -> np.ndarray:
    return np.asarray(image.resize((size, size), Image.Resampling.BILINEAR), dtype=np.uint8)


def compute_features(args) -> None:
    from classifier.ml.backbone import pretrained_feature_extractor

    resize = {"letterbox": letterbox, "stretch": stretch}[args.resize]
    folders = scan_class_folders(args.data)
    classes = sorted(folders)
    pixels, labels, hashes, aspects, names = [], [], [], [], []
    for label, name in enumerate(classes):
        for path in folders[name]:
            image = decode_image(path.read_bytes())
            pixels.append(resize(image, args.size))
            labels.append(label)
            hashes.append(perceptual_hash(image))
            aspects.append(np.log(image.size[0] / image.size[1]))
            names.append(f"{name}/{path.name}")
    pixels = np.stack(pixels)
    model = pretrained_feature_extractor(args.size)
    started = time.monotonic()
    plain = _run(model, pixels)
    mirrored = _run(model, pixels[:, :, ::-1])
    seconds = time.monotonic() - started
    CACHE.mkdir(parents=True, exist_ok=True)
    out = CACHE / f"{args.resize}{args.size}.npz"
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


def _run(model, pixels: np.ndarray, batch: int = 64) -> np.ndarray:
    return np.concatenate(
        [
            np.asarray(model(pixels[i : i + batch].astype(np.float32), training=False))
            for i in range(0, len(pixels), batch)
        ]
    )


def fit_head(x, y, n_classes, hidden=0, dropout=0.2, epochs=60, l2=1e-4, smoothing=0.0, seed=1):
    import keras
    from keras import layers

    keras.utils.set_random_seed(seed)
    inputs = keras.Input(shape=(x.shape[1],))
    h = layers.Dropout(dropout)(inputs)
    if hidden:
        h = layers.Dense(hidden, activation="relu", kernel_regularizer=keras.regularizers.L2(l2))(h)
        h = layers.Dropout(dropout)(h)
    outputs = layers.Dense(
        n_classes, activation="softmax", kernel_regularizer=keras.regularizers.L2(l2)
    )(h)
    model = keras.Model(inputs, outputs)
    model.compile(
        keras.optimizers.Adam(1e-3),
        keras.losses.CategoricalCrossentropy(label_smoothing=smoothing),
    )
    model.fit(x, keras.utils.to_categorical(y, n_classes), epochs=epochs, batch_size=64, verbose=0)
    return model


def figures(probabilities, labels, classes, threshold=None, target_risk=0.01):
    confidence, correct = probabilities.max(1), probabilities.argmax(1) == labels
    if threshold is None:
        curve = metrics.coverage_risk_curve(confidence, correct)
        threshold = metrics.threshold_for_risk(curve, target_risk)["threshold"]
    decided = confidence >= threshold
    return {
        "accuracy": round(float(correct.mean()), 4),
        "threshold": round(float(threshold), 4),
        "coverage": round(float(decided.mean()), 4),
        "risk": round(float((~correct[decided]).mean()) if decided.any() else 0.0, 4),
    }


def heads(args) -> None:
    import keras

    rows = []
    for file in sorted(CACHE.glob("*.npz")):
        data = np.load(file)
        labels, classes = data["labels"], list(data["classes"])
        groups = near_duplicate_groups([int(h) for h in data["hashes"]])
        rest, test = group_split(labels, groups, 0.15, 1234)
        fit, val = group_split(labels[rest], groups[rest], 0.15, 4321)
        fit, val = rest[fit], rest[val]
        for recipe in _recipes(args):
            x = {
                "plain": data["plain"].astype(np.float32),
                "mirrored": data["mirrored"].astype(np.float32),
            }
            if recipe["aspect"]:
                for key in x:
                    x[key] = np.concatenate([x[key], data["aspects"][:, None] * 3], axis=1)
            train_x, train_y = x["plain"][fit], labels[fit]
            if recipe["mirror_train"]:
                train_x = np.concatenate([train_x, x["mirrored"][fit]])
                train_y = np.concatenate([train_y, labels[fit]])
            started = time.monotonic()
            model = fit_head(
                train_x,
                train_y,
                len(classes),
                recipe["hidden"],
                recipe["dropout"],
                recipe["epochs"],
                smoothing=recipe["smoothing"],
            )
            seconds = time.monotonic() - started

            def predict(index, model=model, x=x, mirror=recipe["mirror_average"]):
                p = np.asarray(model(x["plain"][index], training=False))
                if mirror:
                    p = (p + np.asarray(model(x["mirrored"][index], training=False))) / 2
                return p

            val_figures = figures(predict(val), labels[val], classes)
            test_figures = figures(predict(test), labels[test], classes, val_figures["threshold"])
            row = {
                "features": file.stem,
                **recipe,
                "fit_s": round(seconds, 1),
                "val": val_figures,
                "test": test_figures,
            }
            rows.append(row)
            print(json.dumps(row), flush=True)
            keras.backend.clear_session()


def _recipes(args):
    base = {
        "hidden": 0,
        "dropout": 0.2,
        "epochs": 60,
        "smoothing": 0.0,
        "aspect": False,
        "mirror_train": True,
        "mirror_average": True,
    }
    yield base
    if args.quick:
        return
    yield base | {"mirror_average": False, "mirror_train": False}
    yield base | {"hidden": 256, "dropout": 0.4}
    yield base | {"aspect": True}
    yield base | {"hidden": 256, "dropout": 0.4, "aspect": True}
    yield base | {"smoothing": 0.1}


def main() -> None:
    parser = argparse.ArgumentParser()
    sub = parser.add_subparsers(dest="command", required=True)
    one = sub.add_parser("features")
    one.add_argument("--data", type=Path, default=DEFAULT_DATA)
    one.add_argument("--size", type=int, default=224)
    one.add_argument("--resize", choices=["letterbox", "stretch"], default="letterbox")
    two = sub.add_parser("heads")
    two.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    {"features": compute_features, "heads": heads}[args.command](args)


if __name__ == "__main__":
    main()
