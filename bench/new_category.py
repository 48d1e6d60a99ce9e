"""The newcomer's path: a new category taught from a folder of photos on a fresh install.

    python bench/new_category.py [--photos DIR] [--others DIR] [--category SLUG] [--keep]

What a new admin does on an install made with the README's two commands, nothing imported
(the shipped model active, its shipped features beside it):

1. a fresh database (SQLite in a scratch data directory; with ``DATABASE_URL``, a new
   PostgreSQL database on that server, dropped afterwards), migrated: the shipped model is
   active. It is measured on the evaluation set (on a fresh install: the shipped
   evaluation photos' features) — the *before* figures;
2. a category from a folder of photos (``--photos DIR``: its photos, at the top level or
   below; ``--drawn`` drawn photos of a camera when none is given), added as
   ``import_images --create-categories`` adds it;
3. a training as ``manage.py train`` runs it (``retraining.train_in_process``, the
   default recipe): the shipped features plus the database's photos; timed (``train_s``);
4. the comparison with the active version (``classifier.services.comparing``: verdicts in words)
   and a promotion as the guard allows (``classifier.services.promotion``, never overridden);
5. the ``--others`` photos (things that are not of the new category: every photo in DIR;
   drawn phones, laptops and watches when none is given) posted as one-photo ads under
   the new category through the pipeline: ``ads.services.create_ad`` (what the API's
   POST runs), then ``moderation.pipeline.classify_ad`` (what the inference worker runs),
   routed by the moderation policy.

Ends with one JSON line: ``train_s``; the shipped categories' accuracy and error among the
photos decided alone (at the version's threshold) on the shipped evaluation photos, before
(the shipped model) and after (the promoted version, or the candidate when the guard
refused it: ``promoted``, ``refused``); the new category's state (``review-only`` or
``publishing``, ``classifier.services.evidence``) under that version; how many of the
others were posted and how many published alone. Figures are null when a version cannot be
measured on the shipped features (another backbone or input size).

``--size`` and ``--epochs`` (not listed) train a smaller recipe: the tests run the bench at
their tiny input size on shipped features of their own.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections import Counter
from contextlib import contextmanager
from dataclasses import replace
from decimal import Decimal
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from avito_mod.broker import embedded_server  # noqa: E402
from tests.support.images import drawn_photo, encode  # noqa: E402

DRAWN_KINDS = ("camera", "watch", "phone", "laptop")
OTHERS_PER_KIND = 10
# Seeds of their own: no drawn "other" is a copy of a drawn example photo.
OTHERS_SEED = 5000


def arguments(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--photos", type=Path, help="photos of the new category")
    parser.add_argument("--others", type=Path, help="photos of other things, posted under it")
    parser.add_argument(
        "--category", help="its slug (default: the --photos folder's name, else camera)"
    )
    parser.add_argument("--drawn", type=int, default=60, help="photos drawn without --photos")
    parser.add_argument("--keep", action="store_true", help="keep the scratch data and database")
    parser.add_argument("--size", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--epochs", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.category is None:
        args.category = args.photos.resolve().name if args.photos else "camera"
    return args


# --- The machine, the scratch data directory and the database -------------------------


def machine() -> dict:
    cpuinfo = Path("/proc/cpuinfo").read_text() if Path("/proc/cpuinfo").exists() else ""
    names = [line.split(":", 1)[1].strip() for line in cpuinfo.splitlines() if "model name" in line]
    return {
        "cpu": names[0] if names else "unknown CPU",
        "cores": os.cpu_count(),
        "avx512_vnni": "avx512_vnni" in cpuinfo,
        "load_1min": round(os.getloadavg()[0], 2),
    }


@contextmanager
def fresh_database(keep: bool):
    """``DATABASE_URL`` naming a new PostgreSQL database on the same server (created through
    its ``postgres`` database: the named one need not exist), dropped afterwards unless
    ``keep``; nothing to do for SQLite (a file in the scratch directory)."""
    url = os.environ.get("DATABASE_URL", "")
    if not url:
        yield "sqlite"
        return
    import psycopg

    server, _, named = url.rpartition("/")
    name, _, options = named.partition("?")
    created = f"{name or 'avito_mod'}_newcat_{os.getpid()}"
    maintenance = f"{server}/postgres" + (f"?{options}" if options else "")
    with psycopg.connect(maintenance, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{created}"')
    os.environ["DATABASE_URL"] = f"{server}/{created}" + (f"?{options}" if options else "")
    try:
        yield f"postgresql ({created})"
    finally:
        os.environ["DATABASE_URL"] = url
        if keep:
            print(f"database kept: {created}", file=sys.stderr)
        else:
            from django.db import connections

            connections.close_all()
            with psycopg.connect(maintenance, autocommit=True) as admin:
                admin.execute(f'DROP DATABASE IF EXISTS "{created}" WITH (FORCE)')


def setup_django(scratch: Path) -> None:
    """Production settings on the scratch data directory (media, broker, TensorBoard),
    migrated: the shipped models installed, the newest active."""
    os.environ["DJANGO_SETTINGS_MODULE"] = "avito_mod.settings"
    os.environ["AVITO_DATA_DIR"] = str(scratch)
    # Everything in the scratch directory: ads posted here are classified in this process,
    # and the tasks their commit sends go to the scratch directory's embedded broker, which
    # no worker reads (``main``).
    for variable in ("REDIS_URL", "AVITO_MEDIA_ROOT", "AVITO_STORAGE_URL"):
        os.environ.pop(variable, None)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    subprocess.run([sys.executable, "manage.py", "migrate", "-v0"], cwd=ROOT, check=True)
    import django

    django.setup()


# --- The photos --------------------------------------------------------------------


def drawn_kind(slug: str) -> str:
    return slug if slug in DRAWN_KINDS else "camera"


def write_drawn(folder: Path, kind: str, count: int, start: int = 0) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    for seed in range(start, start + count):
        path = folder / f"{kind}-{seed:04d}.jpg"
        path.write_bytes(encode(drawn_photo(kind, seed), "JPEG", quality=90))
        written.append(path)
    return written


def files_in(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*") if p.is_file() and not p.name.startswith("."))


def category_folder(args: argparse.Namespace, scratch: Path) -> Path:
    """``scratch/new/<slug>/``: the example photos, as ``import_images`` reads them."""
    root = scratch / "new"
    target = root / args.category
    if args.photos is None:
        write_drawn(target, drawn_kind(args.category), args.drawn)
        return root
    target.mkdir(parents=True)
    for i, path in enumerate(files_in(args.photos)):
        (target / f"{i:04d}-{path.name}").symlink_to(path.resolve())
    return root


def other_photos(args: argparse.Namespace, scratch: Path) -> list[Path]:
    if args.others is not None:
        return files_in(args.others)
    kinds = [k for k in DRAWN_KINDS if k != drawn_kind(args.category)]
    return [
        path
        for kind in kinds
        for path in write_drawn(scratch / "others", kind, OTHERS_PER_KIND, OTHERS_SEED)
    ]


# --- Figures ----------------------------------------------------------------------


def shipped_figures(version) -> dict | None:
    """The version's answers on the shipped evaluation photos of the shipped categories
    (kept by its last measurement), at its threshold: accuracy, share decided alone and
    errors among those, with 95 % intervals; None when it has none (another backbone)."""
    from classifier.ml.stats import counts, wilson
    from classifier.models import photo_keys
    from classifier.services import shipped

    photos = shipped.shipped_photos()
    if photos is None:
        return None
    usable = shipped.usable(version.input_size, set(photos.classes), "evaluation")
    answers = (version.evaluation or {}).get("answers") or {}
    keys = photo_keys(usable.sha256) if usable is not None else []
    chosen = {key: answers[key] for key in keys if key in answers}
    if not chosen:
        return None
    c = counts(chosen, version.evaluation.get("threshold"), photos.classes)["all"]
    return {
        "n": c.n,
        "accuracy": round(c.accuracy, 4),
        "accuracy_95": [round(x, 4) for x in wilson(c.correct, c.n)],
        "decided_alone": round(c.coverage, 4),
        "error": round(c.error, 4),
        "error_95": [round(x, 4) for x in wilson(c.wrong, c.decided)],
        "threshold": version.evaluation.get("threshold"),
    }


def comparison_said(active, candidate) -> dict:
    """The registry's verdict, in words: overall, per category, and what it leaves out."""
    from classifier.services.comparing import compare

    comparison = compare(active, candidate)
    a, b = f"v{active.number}", f"v{candidate.number}"
    return {
        "headline": comparison.headline,
        "verdicts": {row.slug: row.said(a, b) for row in comparison.rows},
        "reasons": comparison.reasons,
    }


# --- The path -----------------------------------------------------------------------


def recipe(args: argparse.Namespace):
    from classifier.services import default_training_config

    config = default_training_config()
    if args.size:
        config = replace(config, input_size=args.size, calibration_photos=16, check_photos=48)
    if args.epochs:
        config = replace(config, epochs=args.epochs)
    return config


def add_category(args: argparse.Namespace, scratch: Path) -> dict:
    from classifier.models import TrainingImage
    from classifier.services import import_images

    report = import_images(category_folder(args, scratch), create_categories=True)
    mine = TrainingImage.objects.filter(category__slug=args.category)
    return {
        "photos": mine.count(),
        "training": mine.filter(subset=TrainingImage.Subset.TRAIN).count(),
        "evaluation": mine.filter(subset=TrainingImage.Subset.EVALUATION).count(),
        "refused": len(report.unreadable),
    }


def train_compare_promote(config, active) -> tuple[object, dict]:
    """Train as ``manage.py train`` does, compare, and promote unless the guard refuses."""
    from classifier.services import retraining
    from classifier.services.promotion import promotion_guard

    started = time.perf_counter()
    version = retraining.train_in_process(config=config)
    figures = {"train_s": round(time.perf_counter() - started, 1)}
    active.refresh_from_db()
    figures["comparison"] = comparison_said(active, version)
    refused = promotion_guard(version, active)
    if not refused:
        retraining.promote(version, None, note="bench/new_category.py")
        version.refresh_from_db()
    figures |= {"promoted": not refused, "refused": refused}
    return version, figures


def post_others(paths: list[Path], slug: str) -> dict:
    """Each photo as a one-photo ad under ``slug``, routed as the inference worker does."""
    from django.contrib.auth import get_user_model
    from django.core.exceptions import ValidationError
    from django.core.files.uploadedfile import SimpleUploadedFile

    from ads import services as ads_services
    from ads.models import Ad, Category
    from moderation import pipeline

    seller, _ = get_user_model().objects.get_or_create(username="newcomer-bench-seller")
    category = Category.objects.get(slug=slug)
    routed: Counter = Counter()
    for i, path in enumerate(paths):
        photo = SimpleUploadedFile(path.name, path.read_bytes(), content_type="image/jpeg")
        try:
            ad = ads_services.create_ad(
                seller,
                title=f"Not a {slug} #{i}",
                price=Decimal(10),
                category=category,
                photos=[photo],
            )
        except ValidationError:  # not a photo the marketplace accepts
            routed["refused upload"] += 1
            continue
        pipeline.classify_ad(ad.pk)
        ad.refresh_from_db()
        routed[f"{ad.status} {ad.review_reason}".strip()] += 1
    published = routed[Ad.Status.PUBLISHED.value]
    return {
        "others_posted": sum(n for k, n in routed.items() if k != "refused upload"),
        "others_published": published,
        "others_routed": dict(routed),
    }


def run(args: argparse.Namespace, scratch: Path, config=None) -> dict:
    """The path, in a migrated database with nothing imported (Django set up); its figures.
    ``config``: the training recipe (default: the production one, or ``--size``'s)."""
    from classifier.models import ModelVersion
    from classifier.services import forget_loaded_models, measure_on_evaluation_set
    from classifier.services.evidence import category_states

    started = time.perf_counter()
    forget_loaded_models()
    config = config or recipe(args)
    active = ModelVersion.objects.active()
    measure_on_evaluation_set(active)  # nothing imported: the shipped evaluation photos
    before = shipped_figures(active)
    states_before = {slug: str(s) for slug, s in category_states(active).items()}
    added = add_category(args, scratch)
    version, trained = train_compare_promote(config, active)
    after = shipped_figures(version)
    states = category_states(version)
    state = states[args.category]
    others = post_others(other_photos(args, scratch), args.category)
    return {
        "train_s": trained["train_s"],
        "shipped_accuracy_before": before and before["accuracy"],
        "shipped_accuracy_after": after and after["accuracy"],
        "shipped_error_before": before and before["error"],
        "shipped_error_after": after and after["error"],
        "new_category_state": state.state,
        "others_posted": others["others_posted"],
        "others_published": others["others_published"],
        "category": args.category,
        "new_category_photos": added,
        "new_category_needs": state.needs,
        # Every category's state under that version: do the shipped ones still publish?
        "states": {slug: str(s) for slug, s in states.items()},
        "states_before": states_before,
        "version_before": f"v{active.number}",
        "version_after": f"v{version.number}",
        "promoted": trained["promoted"],
        "refused": trained["refused"],
        "shipped_before": before,
        "shipped_after": after,
        "trained_on_sources": version.metrics.get("trained_on_sources"),
        "comparison": trained["comparison"],
        "others_routed": others["others_routed"],
        "input_size": config.input_size,
        "total_s": round(time.perf_counter() - started, 1),
    }


def main(argv: list[str] | None = None) -> dict:
    args = arguments(argv)
    scratch = Path(tempfile.mkdtemp(prefix="avito-newcat-"))
    started_on = machine()
    print(f"machine: {started_on}", file=sys.stderr)
    print(f"command: python {' '.join(sys.argv)}", file=sys.stderr, flush=True)
    try:
        with fresh_database(args.keep) as database, embedded_server(scratch / "broker"):
            setup_django(scratch)
            result = run(args, scratch)
    finally:
        if args.keep:
            print(f"scratch data directory kept: {scratch}", file=sys.stderr)
        else:
            shutil.rmtree(scratch)
    # The load at the start and at the end: the cores are often shared.
    result |= {
        "database": database,
        "machine": started_on | {"load_1min_end": machine()["load_1min"]},
    }
    print(json.dumps(result), flush=True)
    return result


if __name__ == "__main__":
    main()
