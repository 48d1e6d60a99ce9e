"""How well the shipped model tells photos of none of its categories, and which rule to use.

    python bench/none_of_these.py [--data DIR] [--model classifier/default_model/v5]
                                  [--cache /tmp/nonethese-cache-bench] [--write-lookalikes]

Runs the shipped model's served form (the int8 backbone in LiteRT, its heads in NumPy) over
the shared dataset's photos. The photos an import holds out for evaluation (the default
model never trained on them) give the share of real product photos flagged; the others fit
the detectors, as training does (out-of-fold distances, 1 % of product photos flagged).

Photos of other things, which this machine has no real collection of:
- *the category the model does not know*: a detector fitted on one category's photos only
  (phones), shown the other's held-out photos (laptops), and the other way round: real
  marketplace photos of a product the model was not taught;
- *drawn things*: documents (lines of text on paper), plain rooms (a floor and a wall),
  noise, gradients, and the drawn shapes of the tests (watches, cameras), 224 px;
- *near categories*: the desktop's device icons (``/usr/share/icons/Adwaita``, when
  installed: a desktop computer, a monitor, a keyboard, a mouse, an e-reader, a book, a
  gamepad...), each 18 times on white, grey or wooden backgrounds, turned and scaled.

Product photos from outside the marketplace (shop shots on white, stock photos), which
this machine has none of either: the held-out photos made studio-like (``bench/studio.py``:
cut out onto white or grey, centred on white, small on a large white canvas, turned,
cropped to the object, enlarged and sharpened).

The table compares the detector by distance alone (as served before) with the ImageNet
corrections (``classifier.ml.none_of_these``), without and with each category's look-alikes
(``classifier.ml.lookalikes``), on the served int8 features. ``--write-lookalikes`` first
fits the look-alike limits on the training photos (never the held-out ones, nor the stand-ins
the table reports on) and writes them into the shipped ``classifier/ml/lookalikes.json``. The served
features take minutes to compute: they are kept in ``--cache`` and reused.

Rules compared, each set to flag 1 % of the training photos out of fold:
- ``cosine``: cosine distance to the nearest category mean (the shipped rule);
- ``centered``: the same after subtracting the training photos' mean feature;
- ``softmax``: the heads' confidence below a limit (the rule the threshold already applies:
  it sends photos to review but never says "none of these").
"""

from __future__ import annotations

import argparse
import io
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

from bench.studio import MAKERS  # noqa: E402
from classifier.ml import imagenet, lookalikes, none_of_these  # noqa: E402
from classifier.ml.dataset import scan_class_folders  # noqa: E402
from classifier.ml.heads import Heads  # noqa: E402
from classifier.ml.predict import Predictor  # noqa: E402
from classifier.ml.preprocess import letterbox, preprocess_batch  # noqa: E402
from classifier.ml.split import group_folds, near_duplicate_groups  # noqa: E402
from classifier.services.importing import ImportReport, assign_subsets, read_folder  # noqa: E402
from tests.support.images import drawn_photo  # noqa: E402

DATA = ROOT.parent / "shared/datasets/avito-phone-laptop/train"
MODEL = ROOT / "classifier/default_model/v5"
RATE = 0.01
CACHE = Path("/tmp/nonethese-cache-bench")
ICONS = Path("/usr/share/icons/Adwaita/512x512")
NEAR_THINGS = (
    "devices/computer",
    "devices/video-display",
    "devices/input-keyboard",
    "devices/input-mouse",
    "devices/input-tablet",
    "devices/ebook-reader",
    "mimetypes/x-office-address-book",
    "devices/printer",
    "devices/audio-headphones",
    "devices/camera-web",
    "devices/input-gaming",
)


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


def near_things(count: int = 18, seed: int = 3) -> dict[str, list[Image.Image]]:
    """The device icons as photos of near categories (none when the icons are missing)."""
    rng = random.Random(seed)
    things = {}
    for name in NEAR_THINGS:
        path = ICONS / f"{name}.png"
        if not path.exists():
            continue
        icon = Image.open(path).convert("RGBA")
        images = []
        for _ in range(count):
            ground = rng.choice([(255, 255, 255), (200, 200, 200), (150, 120, 90)])
            side = rng.randint(90, 240)
            turned = icon.rotate(rng.uniform(-20, 20), expand=True).resize((side, side))
            canvas = Image.new("RGB", (rng.randint(side, 2 * side), side * 5 // 4), ground)
            canvas.paste(turned, ((canvas.width - side) // 2, side // 8), turned)
            images.append(canvas)
        things[f"icon: {path.stem}"] = images
    return things


def served_features(predictor: Predictor, images: list, size: int) -> np.ndarray:
    """The served backbone's features of PIL images or encoded photos, 32 at a time."""
    out = []
    for start in range(0, len(images), 32):
        batch = images[start : start + 32]
        if isinstance(batch[0], bytes):
            pixels = preprocess_batch(batch, size)
        else:
            pixels = np.stack([letterbox(image, size) for image in batch])
        out.append(predictor.answers(pixels).features)
    return np.concatenate(out)


def gather(args, predictor: Predictor, classes: list[str], size: int) -> dict:
    """Every photo's served features, by set; each set kept in the cache once computed."""
    folder = args.cache / args.model.name
    folder.mkdir(parents=True, exist_ok=True)

    def cached(name: str, images) -> np.ndarray:
        path = folder / f"{name.replace(':', '').replace(' ', '-')}-{args.drawn}.npy"
        if not path.exists():
            np.save(path, served_features(predictor, images(), size).astype(np.float32))
        return np.load(path)

    candidates = read_folder(scan_class_folders(args.data), set(), ImportReport())
    subsets = assign_subsets([(c.photo.sha256, c.photo.phash) for c in candidates], known=[])
    sets = {
        "held": np.array([s == "evaluation" for s in subsets]),
        "labels": np.array([classes.index(c.category) for c in candidates]),
        "groups": near_duplicate_groups([int(c.photo.phash, 16) for c in candidates]),
        "market": cached("market", lambda: [c.photo.data for c in candidates]),
    }
    held = [candidates[i].photo.data for i in np.flatnonzero(sets["held"])]
    angles = [random.Random(11 + n).uniform(-30, 30) for n in range(len(held))]
    for kind, make in MAKERS.items():

        def images(make=make):
            photos = (Image.open(io.BytesIO(data)).convert("RGB") for data in held)
            return [make(photo, angle) for photo, angle in zip(photos, angles, strict=True)]

        sets[f"studio: {kind}"] = cached(f"studio: {kind}", images)
    things = drawn_things(args.drawn) | near_things()
    for kind, images in things.items():
        sets[f"thing: {kind}"] = cached(f"thing: {kind}", lambda images=images: images)
    return sets


# The detectors compared in the first table: as served before the ImageNet corrections, with
# them but without the look-alikes, and as served now.
DETECTORS = ("by_distance", "without_lookalikes", "corrected")


def summary(shipped: dict, classes: list[str]) -> dict:
    """The issue's figures, per detector: held-out photos flagged and published alone,
    studio stand-ins flagged (all, and the worst kind), and other things published alone
    under each category."""
    held = shipped["held-out product photos"]
    studio = {k: v for k, v in shipped.items() if k.startswith("studio: ")}
    things = {k: v for k, v in shipped.items() if k.startswith("thing: ")}
    return {
        rule: {
            "held_flagged": held["flagged"][rule],
            "held_alone": sum(held["alone"][rule].values()),
            "studio_flagged": float(np.mean([v["flagged"][rule] for v in studio.values()])),
            "studio_worst_flagged": max(v["flagged"][rule] for v in studio.values()),
            "things": sum(v["n"] for v in things.values()),
            "things_alone": {
                c: round(sum(v["alone"][rule][c] * v["n"] for v in things.values()))
                for c in classes
            },
        }
        for rule in DETECTORS
    }


def shipped_table(detectors: dict, rows: dict, classes: list[str], threshold: float) -> dict:
    """Per set of photos, the share each detector flags and the share the whole policy
    publishes alone as each category (that category, confident, not flagged)."""
    print(f"\nflagged, and published alone as each category (confidence >= {threshold:.3f})")
    print(
        f"{'':40}{'by distance':>12}{'no look-al.':>12}{'corrected':>10}"
        + "".join(f"{'alone ' + c:>14}{'(before)':>9}" for c in classes)
    )
    out = {}
    for name, (feats, probs) in rows.items():
        confident, predicted = probs.max(1) >= threshold, probs.argmax(1)
        flagged = {rule: d.none_of_these_flags(feats, probs) for rule, d in detectors.items()}
        out[name] = {
            "n": len(feats),
            "flagged": {rule: float(f.mean()) for rule, f in flagged.items()},
            "alone": {
                rule: {
                    c: float(np.mean((predicted == i) & confident & ~f))
                    for i, c in enumerate(classes)
                }
                for rule, f in flagged.items()
            },
        }
        shares, alone = out[name]["flagged"], out[name]["alone"]
        print(
            f"{name[:40]:40}{shares['by_distance']:>12.1%}"
            f"{shares['without_lookalikes']:>12.1%}{shares['corrected']:>10.1%}"
            + "".join(
                f"{alone['corrected'][c]:>14.1%}{alone['without_lookalikes'][c]:>9.1%}"
                for c in classes
            )
        )
    return out


def write_lookalikes(path: Path, backbone: str, seen: np.ndarray, labels, classes) -> None:
    """The look-alike limits fitted on these training photos' ImageNet answers, written for
    ``backbone`` into the shipped file (other backbones' entries kept)."""
    table = json.loads(path.read_text()) if path.exists() else {}
    table[backbone] = lookalikes.fit(seen, labels, classes)
    path.write_text(json.dumps(table, indent=1, sort_keys=True) + "\n")
    print(f"look-alike limits for {backbone} written to {path}: {table[backbone]}")


def lookalike_draws(detectors: dict, market, train, labels, rows, classes, draws=5) -> list:
    """The look-alike limits fitted on half the training photos, drawn at random, and what
    they cost and catch elsewhere: on the other half, the held-out photos and the stand-ins
    (do limits set on the highest of a few hundred photos hold on photos not seen?)."""
    before = detectors["without_lookalikes"]
    backbone, threshold = before.backbone, before.threshold
    answers = {}
    for name, (feats, probs) in rows.items():
        confident, predicted = probs.max(1) >= threshold, probs.argmax(1)
        seen = imagenet.probabilities(feats, backbone)
        answers[name] = (before.none_of_these_flags(feats, probs), seen, predicted, confident)
    market_seen = imagenet.probabilities(market[0], backbone)
    market_before = before.none_of_these_flags(*market)
    market_answers = (market_seen, market[1].argmax(1), market[1].max(1) >= threshold)
    print("\nLook-alike limits fitted on half the training photos (random draws)")
    out = []
    for draw in range(draws):
        half = np.random.default_rng(draw).random(len(labels)) < 0.5
        table = {backbone: lookalikes.fit(market_seen[train & half], labels[train & half], classes)}
        limits = lookalikes.limits_for(backbone, classes, table)
        other = train & ~half
        new = lookalikes.flags(*market_answers, limits) & ~market_before
        figures = {"other training half newly flagged": float(new[other].mean())}
        alone, studio = {c: 0 for c in classes}, []
        for name, (flagged, seen, predicted, confident) in answers.items():
            flagged = flagged | lookalikes.flags(seen, predicted, confident, limits)
            if name.startswith("thing: "):
                for i, c in enumerate(classes):
                    alone[c] += int(np.sum((predicted == i) & confident & ~flagged))
            elif name.startswith("studio: "):
                studio.append(flagged.mean())
            else:
                figures["held-out flagged"] = float(flagged.mean())
        figures |= {"studio flagged": float(np.mean(studio)), "things alone": alone}
        figures["limits"] = table[backbone]
        out.append(figures)
        print(json.dumps(figures))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DATA)
    parser.add_argument("--model", type=Path, default=MODEL)
    parser.add_argument("--drawn", type=int, default=40, help="Drawn photos of each kind.")
    parser.add_argument("--cache", type=Path, default=CACHE, help="Where features are kept.")
    parser.add_argument(
        "--write-lookalikes",
        action="store_true",
        help="Fit the look-alike limits on the training photos (never the held-out ones) "
        f"and write them into {lookalikes.LIMITS_FILE.relative_to(ROOT)} first.",
    )
    args = parser.parse_args()
    manifest = json.loads((args.model / "manifest.json").read_text())
    classes, size, threshold = manifest["classes"], manifest["input_size"], manifest["threshold"]
    backbone = manifest["backbone"]
    data = (args.model / "heads.npz").read_bytes()
    backbone_file = (args.model / "backbone.tflite").read_bytes()
    predictor = Predictor(backbone_file, classes, size, heads=Heads(data))  # for the features

    started = time.monotonic()
    sets = gather(args, predictor, classes, size)
    seconds = time.monotonic() - started
    held, labels, groups = sets["held"], sets["labels"], sets["groups"]
    features = sets["market"].astype(np.float32)
    if args.write_lookalikes:
        seen = imagenet.probabilities(features[~held], backbone)
        write_lookalikes(lookalikes.LIMITS_FILE, backbone, seen, labels[~held], classes)
        lookalikes.stored_limits.cache_clear()
    detectors = {
        "by_distance": Heads(data),
        "without_lookalikes": Heads(data, threshold=threshold, backbone=backbone),
        "corrected": Heads(data, threshold=threshold, backbone=backbone, classes=classes),
    }
    heads = detectors["corrected"]
    probabilities = heads.probabilities(features)
    rows = {"held-out product photos": features[held]}
    rows |= {name: sets[name] for name in sets if name.startswith(("studio: ", "thing: "))}
    rows = {name: (f.astype(np.float32), heads.probabilities(f)) for name, f in rows.items()}

    print(f"machine: {platform.machine()}, {os.cpu_count()} cores; model: {args.model.name}")
    print(f"{len(labels)} photos ({int(held.sum())} held out); features in {seconds:.0f} s")
    report = {"shipped": shipped_table(detectors, rows, classes, threshold)}
    report |= {"rules": {}, "unknown_category": {}}
    market = rows["held-out product photos"][1]
    print(f"(held-out accuracy of the heads: {np.mean(market.argmax(1) == labels[held]):.1%})")
    report["summary"] = summary(report["shipped"], classes)
    print(json.dumps(report["summary"]))
    market = (features, probabilities)
    report["lookalike_draws"] = lookalike_draws(detectors, market, ~held, labels, rows, classes)

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
