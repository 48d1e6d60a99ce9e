"""The review queue with a realistic backlog: N ads in review, one moderator.

    python bench/review_queue.py [--ads 500] [--loads 15]

Migrates a throwaway SQLite database under a scratch folder (or uses the database
``DATABASE_URL`` names, which should be a scratch one: the bench deletes what it made), fills
the queue with ads of three real photos each and one prediction per photo, signs a
moderator in with Django's test client (the whole stack but the network: middleware,
sessions, admin, templates), and measures the queue page: queries per page and render
time (median of several loads), then one decision (one POST and the redirect back to the
queue). Ends with one JSON line.
"""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import os
import platform
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import timedelta
from io import StringIO
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
DATA = ROOT.parent / "shared/datasets/avito-phone-laptop/train"
PASSWORD = "bench-only-password-1234"


def photo_bytes(n_photos: int) -> list[tuple[str, bytes]]:
    """(true category, JPEG bytes): real thumbnails when the shared dataset is here."""
    photos = []
    for i in range(n_photos):
        category = "phone" if i % 2 else "laptop"
        if DATA.is_dir():
            files = sorted((DATA / category).glob("*.jpg"))
            photos.append((category, files[i % len(files)].read_bytes()))
        else:
            from tests.support.images import jpeg_bytes

            photos.append((category, jpeg_bytes(category, i)))
    return photos


def fill_queue(n_ads: int, prefix: str) -> list:
    """N ads in review from 50 sellers, 3 photos and 3 predictions each, oldest first."""
    from django.contrib.auth import get_user_model
    from django.core.files.base import ContentFile
    from django.utils import timezone
    from PIL import Image

    from ads.models import Ad, AdImage, Category, ad_photo_path
    from classifier.models import ModelVersion, Prediction

    storage = AdImage._meta.get_field("file").storage
    stored = []
    for category, data in photo_bytes(30):
        with Image.open(io.BytesIO(data)) as image:
            size = image.size
        name = storage.save(ad_photo_path(None, "x.jpg"), ContentFile(data))
        stored.append((category, name, hashlib.sha256(data).hexdigest(), size))
    users = get_user_model().objects
    sellers = [users.create_user(f"{prefix}-seller-{n}") for n in range(50)]
    categories = {c.slug: c for c in Category.objects.filter(slug__in=["laptop", "phone"])}
    version = ModelVersion.objects.active() or ModelVersion.objects.create(
        number=ModelVersion.next_number(), status=ModelVersion.Status.CANDIDATE
    )
    now = timezone.now()
    reasons = [Ad.ReviewReason.CATEGORY_MISMATCH, Ad.ReviewReason.LOW_CONFIDENCE]
    ads = Ad.objects.bulk_create(
        Ad(
            seller=sellers[i % len(sellers)],
            title=f"{prefix} ad {i}",
            price=100 + i,
            category=categories["phone" if i % 2 else "laptop"],
            status=Ad.Status.NEEDS_REVIEW,
            review_reason=reasons[i % 2],
            suggested_category=categories["laptop" if i % 2 else "phone"] if i % 4 < 2 else None,
            decided_at=now - timedelta(minutes=n_ads - i),
        )
        for i in range(n_ads)
    )
    images = AdImage.objects.bulk_create(
        AdImage(
            ad=ad,
            file=stored[(3 * i + k) % len(stored)][1],
            position=k,
            sha256=stored[(3 * i + k) % len(stored)][2],
            phash=f"{3 * i + k:016x}",
            width=stored[(3 * i + k) % len(stored)][3][0],
            height=stored[(3 * i + k) % len(stored)][3][1],
        )
        for i, ad in enumerate(ads)
        for k in range(3)
    )
    by_name = {name: category for category, name, _, _ in stored}
    Prediction.objects.bulk_create(
        Prediction(image=image, model_version=version, category=by_name[image.file], confidence=0.8)
        for image in images
    )
    return [name for _, name, _, _ in stored]


def moderator_client(prefix: str):
    from django.contrib.auth import get_user_model
    from django.core.management import call_command
    from django.test import Client

    username = f"{prefix}-moderator"
    call_command("create_account", username, role="moderator", password=PASSWORD, stdout=StringIO())
    client = Client()
    # Signed in without a password check: the test client's login() passes no request,
    # which django-axes refuses (it counts sign-ins per client address).
    client.force_login(get_user_model().objects.get(username=username))
    return client


def measure_page(client, url: str, loads: int) -> dict:
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    client.get(url)  # warm-up: templates compiled, caches filled
    times, queries = [], set()
    for _ in range(loads):
        with CaptureQueriesContext(connection) as captured:
            started = time.perf_counter()
            response = client.get(url)
            times.append((time.perf_counter() - started) * 1000)
        if response.status_code != 200:
            raise SystemExit(f"{url} answered {response.status_code}")
        queries.add(len(captured))
    # Outside a test run the client keeps no template context: count the rows in the HTML.
    rows = response.text.count('class="action-select"')
    return {"p50_ms": statistics.median(times), "queries": sorted(queries), "rows": rows}


def measure_decision(client) -> dict:
    from django.db import connection
    from django.test.utils import CaptureQueriesContext
    from django.urls import reverse

    from ads.models import Ad

    oldest = Ad.objects.in_review().first()
    url = reverse("admin:moderation_reviewitem_accept", args=[oldest.pk])
    with CaptureQueriesContext(connection) as captured:
        started = time.perf_counter()
        response = client.post(url, follow=True)
        elapsed = (time.perf_counter() - started) * 1000
    oldest.refresh_from_db()
    if oldest.status != Ad.Status.PUBLISHED or response.status_code != 200:
        raise SystemExit(f"the decision failed: {response.status_code}, ad {oldest.status}")
    return {
        "requests": 1 + len(response.redirect_chain),
        "ms": elapsed,
        "queries": len(captured),
        "message": " | ".join(re.findall(r'<li class="success">(.*?)</li>', response.text)),
    }


def clean_up(prefix: str, files: list[str]) -> None:
    from django.contrib.auth import get_user_model

    from ads.models import Ad, AdImage
    from classifier.models import TrainingImage
    from moderation.models import ModerationDecision

    for image in TrainingImage.objects.filter(decision__moderator__username__startswith=prefix):
        image.file.delete(save=False)
        image.delete()
    ModerationDecision.objects.filter(moderator__username__startswith=prefix).delete()
    Ad.objects.filter(title__startswith=prefix).delete()
    get_user_model().objects.filter(username__startswith=prefix).delete()
    storage = AdImage._meta.get_field("file").storage
    for name in files:
        storage.delete(name)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--ads", type=int, default=500)
    parser.add_argument("--loads", type=int, default=15, help="page loads to take the median of")
    args = parser.parse_args()

    scratch = Path(tempfile.mkdtemp(prefix="avito-bench-queue-"))
    env = os.environ | {
        "DJANGO_SETTINGS_MODULE": "avito_mod.settings",
        # Media (and SQLite when DATABASE_URL is not set) in the scratch folder.
        "AVITO_DATA_DIR": str(scratch),
        "DJANGO_DEBUG": "false",
        # Django's test client speaks plain HTTP: no HTTPS redirect, no secure-only cookies.
        "DJANGO_HTTPS": "false",
        "DJANGO_SECRET_KEY": "bench-only-secret-key-" + "x" * 40,
        "DJANGO_ALLOWED_HOSTS": "testserver",
        "TF_CPP_MIN_LOG_LEVEL": "2",
        "LOG_LEVEL": "WARNING",
    }
    os.environ.update(env)
    subprocess.run([sys.executable, "manage.py", "migrate", "-v0"], cwd=ROOT, env=env, check=True)

    import django

    django.setup()
    from django.urls import reverse

    prefix = f"bench-queue-{os.getpid()}"
    try:
        started = time.perf_counter()
        files = fill_queue(args.ads, prefix)
        filled_s = time.perf_counter() - started
        client = moderator_client(prefix)
        queue = reverse("admin:moderation_reviewitem_changelist")
        pages = {
            "first page": queue,
            "last page": f"{queue}?p={(args.ads - 1) // 50 + 1}",
            "filtered": f"{queue}?predicted=laptop&review_reason__exact=category_mismatch",
            "search": f"{queue}?q={prefix}-seller-7",
        }
        results = {name: measure_page(client, url, args.loads) for name, url in pages.items()}
        decision = measure_decision(client)
    finally:
        clean_up(prefix, files if "files" in locals() else [])
        shutil.rmtree(scratch, ignore_errors=True)

    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores")
    vendor = django.db.connection.vendor
    print(f"database: {vendor}; {args.ads} ads in review (made in {filled_s:.1f}s)")
    for name, result in results.items():
        print(
            f"queue {name}: {result['rows']} rows, {result['queries']} queries, "
            f"median {result['p50_ms']:.1f} ms over {args.loads} loads"
        )
    print(
        f"one decision: {decision['requests']} requests (POST + redirect to the queue), "
        f"{decision['ms']:.1f} ms, {decision['queries']} queries; said: {decision['message']}"
    )
    first = results["first page"]
    summary = {
        "ads_in_review": args.ads,
        "rows_per_page": first["rows"],
        "queries_per_page": max(max(r["queries"]) for r in results.values()),
        "page_p50_ms": round(first["p50_ms"], 1),
        "filtered_page_p50_ms": round(results["filtered"]["p50_ms"], 1),
        "decision_requests": decision["requests"],
        "decision_ms": round(decision["ms"], 1),
        "decision_queries": decision["queries"],
    }
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
