"""How well the shipped model tells photos of none of its categories, and which rule to use.

    python bench/none_of_these.py [--data DIR] [--model classifier/default_model/v5]

Runs the shipped model's served form (the int8 backbone in LiteRT, its heads in NumPy) over
the shared dataset's photos. The photos an import holds out for evaluation (the default
model never trained on them) give the share of real product photos flagged; the others fit
the detectors, as training does (out-of-fold distances, 1 % of product photos flagged).

Photos of other things, which this machine has no real collection of:
- *the category the model does not know*: a detector fitted on one category's photos only
  (phones), shown the other's held-out photos (laptops), and the other way round: real
  marketplace photos of a product the model was not taught;
- *drawn things*: documents (lines of text on paper), plain rooms (a floor and a wall),
  noise, gradients, and the drawn shapes of the tests (watches, cameras), 224 px.

Rules compared, each set to flag 1 % of the training photos out of fold:
- ``cosine``: cosine distance to the nearest category mean (the shipped rule);
- ``centered``: the same after subtracting the training photos' mean feature;
- ``softmax``: the heads' confidence below a limit (the rule the threshold already applies:
  it sends photos to review but never says "none of these").
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "avito_mod.settings")

import django  # noqa: E402

django.setup()

import numpy as np  # noqa: E402
from PIL import Image, ImageDraw  # noqa: E402

from classifier.ml import none_of_these  # noqa: E402
from classifier.ml.dataset import scan_class_folders  # noqa: E402
from classifier.ml.heads import Heads  # noqa: E402
from classifier.ml.label_errors import group_folds  # noqa: E402
from classifier.ml.predict import Predictor  # noqa: E402
from classifier.ml.preprocess import letterbox, preprocess_batch  # noqa: E402
from classifier.ml.split import near_duplicate_groups  # noqa: E402
from classifier.services.importing import ImportReport, assign_subsets, read_folder  # noqa: E402
from tests.images import drawn_photo  # noqa: E402

DATA = ROOT.parent / "shared/datasets/avito-phone-laptop/train"
MODEL = ROOT / "classifier/default_model/v5"
RATE = 0.01


def drawn_things(count: int, seed: int = 7) -> dict[str, list[Image.Image]]:
    rng = random.Random(seed)
    things: dict[str, list[Image.Image]] = {
        k: [] for k in ("document", "room", "noise", "gradient")
    }
    for n in range(count):
        page = Image.new("RGB", (180, 240), tuple(rng.randint(225, 255) for _ in range(3)))
        draw = ImageDraw.Draw(page)
        for line in range(rng.randint(8, 18)):
            words = " ".join(
                "".join(rng.choice("abcdefghijklmnop") for _ in range(rng.randint(2, 8)))
                for _ in range(rng.randint(3, 6))
            )
            draw.text((12, 12 + line * 12), words, fill=(rng.randint(0, 60),) * 3)
        things["document"].append(page.rotate(rng.uniform(-8, 8), fillcolor=(90, 80, 70)))
        room = Image.new("RGB", (200, 150), tuple(rng.randint(120, 240) for _ in range(3)))
        horizon = rng.randint(80, 120)
        floor = tuple(rng.randint(60, 160) for _ in range(3))
        ImageDraw.Draw(room).rectangle((0, horizon, 200, 150), fill=floor)
        things["room"].append(room)
        noise = np.random.default_rng(seed + n).integers(0, 256, (120, 160, 3), dtype=np.uint8)
        things["noise"].append(Image.fromarray(noise))
        ramp = np.linspace(0, 255, 160, dtype=np.float32)[None, :, None]
        colour = np.array([rng.random() for _ in range(3)], dtype=np.float32)
        things["gradient"].append(
            Image.fromarray(np.broadcast_to(ramp * colour, (120, 160, 3)).astype(np.uint8))
        )
    for kind in ("watch", "camera"):
        things[f"drawn {kind}"] = [drawn_photo(kind, n, size=(224, 187)) for n in range(count)]
    return things


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DATA)
    parser.add_argument("--model", type=Path, default=MODEL)
    parser.add_argument("--drawn", type=int, default=40, help="Drawn photos of each kind.")
    args = parser.parse_args()
    manifest = json.loads((args.model / "manifest.json").read_text())
    classes, size, threshold = manifest["classes"], manifest["input_size"], manifest["threshold"]
    heads = Heads((args.model / "heads.npz").read_bytes())
    predictor = Predictor((args.model / "backbone.tflite").read_bytes(), classes, size, heads=heads)

    started = time.monotonic()
    candidates = read_folder(scan_class_folders(args.data), set(), ImportReport())
    subsets = assign_subsets([(c.photo.sha256, c.photo.phash) for c in candidates], known=[])
    held = np.array([s == "evaluation" for s in subsets])
    labels = np.array([classes.index(c.category) for c in candidates])
    pixels = preprocess_batch([c.photo.data for c in candidates], size)
    answers = [predictor.answers(pixels[i : i + 64]) for i in range(0, len(pixels), 64)]
    features = np.concatenate([a.features for a in answers])
    probabilities = np.concatenate([a.probabilities for a in answers])
    shipped_flags = np.concatenate([a.none_of_these for a in answers])
    groups = near_duplicate_groups([int(c.photo.phash, 16) for c in candidates])
    seconds = time.monotonic() - started
    rows = {"held-out product photos (flagged: the cost)": (features[held], probabilities[held])}
    for kind, images in drawn_things(args.drawn).items():
        thing = predictor.answers(np.stack([letterbox(image, size) for image in images]))
        rows[f"{kind} (caught)"] = (thing.features, thing.probabilities)

    print(f"machine: {platform.machine()}, {os.cpu_count()} cores; model: {args.model.name}")
    print(
        f"{len(candidates)} photos ({int(held.sum())} held out) through the served model "
        f"in {seconds:.0f} s"
    )
    report = {"shipped": {}, "rules": {}, "unknown_category": {}}

    # 1. The shipped detector, and what the whole policy publishes alone.
    print(
        f"\nThe shipped detector ({heads.none_of_these.dims} features, threshold "
        f"{heads.none_of_these.threshold:.3f}); published alone = that category, confidence "
        f">= {threshold:.3f}, not flagged"
    )
    print(f"{'':44}{'flagged':>9}" + "".join(f"{'alone as ' + c:>18}" for c in classes))
    for name, (feats, probs) in rows.items():
        flagged = heads.none_of_these.flags(feats)
        alone = {
            c: float(np.mean((probs.argmax(1) == i) & (probs.max(1) >= threshold) & ~flagged))
            for i, c in enumerate(classes)
        }
        report["shipped"][name] = {"flagged": float(flagged.mean()), "alone": alone}
        print(f"{name:44}{flagged.mean():>9.1%}" + "".join(f"{alone[c]:>18.1%}" for c in classes))
    print(f"(held-out flags as served, in the same run: {shipped_flags[held].mean():.1%})")

    # 2. Rules compared at several costs, fitted here on the training photos.
    train = ~held
    fold_of = group_folds(groups[train], 5, 1234)
    for rate in (0.01, 0.02, 0.05):
        fitted = {
            "head features": none_of_these.fit(
                features[train], labels[train], len(classes), fold_of, np.zeros((0, 1)), rate
            )[0],
            "all features": none_of_these.fit(
                features[train],
                labels[train],
                len(classes),
                fold_of,
                np.zeros((0, 1)),
                rate,
                dims=features.shape[1],
            )[0],
        }
        limit = float(np.quantile(probabilities[train].max(axis=1), rate))
        print(f"\nRules set to flag {rate:.0%} of the training photos out of fold")
        print(f"{'':44}" + "".join(f"{rule:>15}" for rule in (*fitted, "softmax")))
        for name, (feats, probs) in rows.items():
            shares = {rule: float(d.flags(feats).mean()) for rule, d in fitted.items()}
            shares["softmax"] = float(np.mean(probs.max(axis=1) < limit))
            report["rules"][f"{rate} {name}"] = shares
            print(f"{name:44}" + "".join(f"{v:>15.1%}" for v in shares.values()))

        # 3. A category the model does not know: fitted on one category, shown the other.
        for known in range(len(classes)):
            inside = train & (labels == known)
            detector = none_of_these.fit(
                features[inside],
                np.zeros(int(inside.sum()), int),
                1,
                group_folds(groups[inside], 5, 1234),
                np.zeros((0, 1)),
                rate,
            )[0]
            for other in range(len(classes)):
                shown = held & (labels == other)
                tag = "flagged" if other == known else "caught"
                name = f"{classes[other]}s, knowing {classes[known]}s only ({tag})"
                share = float(detector.flags(features[shown]).mean())
                report["unknown_category"][f"{rate} {name}"] = share
                print(f"{name:44}{share:>15.1%}  n={int(shown.sum())}")
    print(json.dumps(report))


if __name__ == "__main__":
    main()
