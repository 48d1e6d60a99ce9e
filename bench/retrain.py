"""A head-only retrain as the admin's Train button runs it, over N labelled photos.

    python bench/retrain.py [--photos 5000] [--keep]

In a scratch data directory (SQLite; ``DATABASE_URL`` if set, which should then name a
database of its own): the shared dataset is imported with ``import_images``, then variants
of the stored photos (near-copies: re-encoded, so distinct files, each taking its original's
subset) through the same import until ``--photos`` labelled photos are stored. Timed separately:

1. the backbone features of the training subset (``training_features``, the default input
   size): the cost of new photos, paid once per photo;
2. one retrain as the training worker runs it (``retraining.run_training`` right after
   ``start_version``, what ``request_training`` commits and queues): read the training set
   with its kept features, fit the heads, convert the backbone to int8 (the first retrain
   on a backbone only: it is stored and shared), store and check the heads, measure the
   version and the active one on the evaluation set;
3. a second retrain right after: kept features and the int8 backbone are reused: the cost
   of every later retrain.

Prints the machine, the command, every figure and the peak resident memory; ends with one
JSON line.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from PIL import Image

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
DATA = ROOT.parent / "shared/datasets/avito-phone-laptop/train"


def setup_django(scratch: Path) -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "avito_mod.settings")
    os.environ["AVITO_DATA_DIR"] = str(scratch)  # media and TensorBoard logs land here
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    subprocess.run([sys.executable, "manage.py", "migrate", "-v0"], cwd=ROOT, check=True)
    import django

    django.setup()


def cpu_model() -> str:
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return "unknown CPU"


def write_variants(folder: Path, count: int) -> None:
    """``count`` near-copies of the stored photos under ``folder/<category>/``, named after
    their original: re-encoded at JPEG quality 75 (70 on a second pass...), so distinct
    files with the same pHash. (Even a 2-pixel crop moves a third of these 120-pixel
    thumbnails' pHashes past the near-copy distance.)"""
    from classifier.services import usable_images

    stored = list(usable_images().select_related("category").order_by("id"))
    for i in range(count):
        image, k = stored[i % len(stored)], i // len(stored)
        target = folder / image.category.slug / f"variant-{image.pk}-{k}.jpg"
        target.parent.mkdir(parents=True, exist_ok=True)
        with Image.open(image.file.path) as photo:
            photo.convert("RGB").save(target, quality=75 - 5 * k)


def straddling(usable) -> int:
    """Variants stored in the other subset than their original's."""
    subsets = dict(usable.values_list("pk", "subset"))
    variants = usable.filter(original_name__startswith="variant-")
    return sum(
        subsets[int(name.split("-")[1])] != subset
        for name, subset in variants.values_list("original_name", "subset")
    )


def peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def timing(parts: dict, module, name: str) -> None:
    """From now on, each call of ``module.name`` adds its duration to ``parts[name]``: the
    parts of a training, timed without touching the project's code."""
    original = getattr(module, name)

    def timed(*args, **kwargs):
        started = time.perf_counter()
        try:
            return original(*args, **kwargs)
        finally:
            parts[name] = parts.get(name, 0.0) + time.perf_counter() - started

    setattr(module, name, timed)


def retrain(parts: dict) -> dict:
    """One training as the training worker runs it; its figures in seconds."""
    from classifier import services
    from classifier.services import retraining

    parts.clear()
    version = services.start_version(requested_by=None)  # what request_training commits
    started = time.perf_counter()
    outcome = retraining.run_training(version.pk)  # the task's body
    total = time.perf_counter() - started
    version.refresh_from_db()
    if version.status != version.Status.CANDIDATE:
        raise SystemExit(f"the training did not give a candidate: {outcome}")
    fit = version.metrics["training_seconds"]

    def took(name: str) -> float:
        return parts.get(name, 0.0)

    return {
        "version": version.number,
        "total": total,
        "read": took("training_data"),
        "fit": fit,
        "heads": took("train") - fit,  # out-of-fold answers, averaged heads
        # The shared backbone built, converted and calibrated: the first retrain only.
        "int8": took("backbone_litert_bytes"),
        "check": took("package"),  # the heads stored and checked, the Keras file
        "save": took("train_version")
        - took("train")
        - took("package")
        - took("backbone_litert_bytes"),
        "measure": took("after_training"),  # the candidate and the active version
        "other": total - took("training_data") - took("train_version") - took("after_training"),
        "accuracy": version.evaluation.get("accuracy", float("nan")),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--photos", type=int, default=5000, help="labelled photos in all")
    parser.add_argument("--keep", action="store_true", help="keep the scratch data directory")
    args = parser.parse_args()
    scratch = Path(tempfile.mkdtemp(prefix="avito-retrain-"))
    try:
        run(args, scratch)
    finally:
        if args.keep:
            print(f"scratch data directory kept: {scratch}")
        else:
            shutil.rmtree(scratch)


def run(args: argparse.Namespace, scratch: Path) -> None:
    print(f"machine: {cpu_model()}, {os.cpu_count()} cores, load {os.getloadavg()[0]:.1f}")
    print(f"command: python {' '.join(sys.argv)}", flush=True)
    setup_django(scratch)
    from django.db import connection

    from classifier import services
    from classifier.ml import export as ml_export
    from classifier.ml import train as ml_train
    from classifier.models import TrainingImage
    from classifier.services import retraining

    started = time.perf_counter()
    services.import_images(DATA)
    variants = max(0, args.photos - services.usable_images().count())
    write_variants(scratch / "variants", variants)
    if variants:
        services.import_images(scratch / "variants")
    imported = time.perf_counter() - started
    usable = services.usable_images()
    train = list(usable.filter(subset=TrainingImage.Subset.TRAIN).order_by("id"))
    held_out = usable.filter(subset=TrainingImage.Subset.EVALUATION).count()
    print(
        f"database: {connection.vendor}; {usable.count()} labelled photos, imported in "
        f"{imported:.0f} s: {len(train)} training, {held_out} evaluation; {variants} of them are "
        f"variants (near-copies of imported photos, {straddling(usable)} stored in the other "
        f"subset than their original's)",
        flush=True,
    )

    size = services.default_training_config().input_size
    started = time.perf_counter()
    services.training_features(train, size)
    features = time.perf_counter() - started
    print(
        f"features of the {len(train)} training photos ({size} px): {features:.1f} s "
        f"(peak resident {peak_mb():.0f} MB)",
        flush=True,
    )

    parts: dict = {}
    for name in ("training_data", "train_version", "after_training"):
        timing(parts, retraining, name)
    timing(parts, ml_train, "train")
    timing(parts, ml_train, "package")
    timing(parts, ml_export, "backbone_litert_bytes")
    runs = []
    for label in ("retrain", "retrain again"):
        runs.append(figures := retrain(parts))
        shown = " + ".join(
            f"{part} {figures[part]:.1f}"
            for part in ("read", "fit", "heads", "int8", "check", "save", "measure", "other")
        )
        print(
            f"{label} (v{figures['version']}): {figures['total']:.1f} s = {shown}; "
            f"evaluation accuracy {figures['accuracy']:.2%}",
            flush=True,
        )
    first = runs[0]
    print(
        json.dumps(
            {
                "photos": usable.count(),
                "variants": variants,
                "train_photos": len(train),
                "evaluation_photos": held_out,
                "features_s": round(features, 1),
                "retrain_s": round(first["total"], 1),
                "retrain_again_s": round(runs[1]["total"], 1),
                "read_s": round(first["read"], 1),
                "fit_s": first["fit"],
                "export_and_measure_s": round(first["total"] - first["read"] - first["fit"], 1),
                "int8_export_s": round(first["int8"], 1),
                "measure_s": round(first["measure"], 1),
                "peak_rss_mb": round(peak_mb()),
            }
        )
    )


if __name__ == "__main__":
    main()
