"""A moderator working the review queue by keyboard, in headless Chromium.

    python bench/moderator.py [--ads 60] [--decisions 50]

In a scratch data directory (SQLite; ``DATABASE_URL`` if set, which should then name a
database of its own): ``--ads`` ads of three real photos each (the shared dataset's, drawn
photos without it) are classified by the active model and left in the review queue; the
Procfile's web server (gunicorn) serves the admin. A moderator signs in with Debian's
Chromium (Playwright) at 1366 x 768 and decides ``--decisions`` ads with the keyboard only
(mostly ``a``, every fifth ``c``, every seventh ``1``), each timed from the key press to the
next ad being ready: the decided row gone, the next one current, its photos loaded.
Requests are counted from the first key press to the last answer. Ends with one JSON line:
decisions_per_min, p95_ms, requests_per_decision, horizontal_scroll_px.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.pipeline import bench_env  # noqa: E402

PASSWORD = "keyboard-only-review-7391"
SCREEN = {"width": 1366, "height": 768}
CHROMIUM = os.environ.get("AVITO_CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"
# The next ad is ready: the decided row has left, the next is current, its photos are in.
READY = """(decided) => {
  const current = document.querySelector('#result_list tr.review-current');
  return document.querySelector(`#result_list button[form="${decided}"]`) === null &&
    current !== null &&
    [...current.querySelectorAll('img')].every((img) => img.complete && img.naturalWidth > 0);
}"""
CURRENT = """() => document.querySelector('#result_list tr.review-current button[form]')
  .getAttribute('form')"""


SUGGESTED = """() => document.querySelector('#result_list tr.review-current select').value !== ''"""


def fill_queue(n_ads: int) -> None:
    """``n_ads`` ads in review, classified by the active model as the pipeline does."""
    from django.contrib.auth import get_user_model
    from django.core.files.uploadedfile import SimpleUploadedFile

    from ads import services
    from ads.models import Ad, Category
    from bench.pipeline import photos_for
    from moderation import pipeline

    seller = get_user_model().objects.create_user("bench-seller")
    for n, (category, photos) in enumerate(photos_for(n_ads)):
        ad = services.create_ad(
            seller,
            title=f"Ad {n}: {category}",
            price="100",
            category=Category.objects.get(slug=category),
            photos=[SimpleUploadedFile(name, data, "image/jpeg") for name, data in photos],
        )
        pipeline.classify_ad(ad.pk)
        ad.refresh_from_db()
        if ad.status != Ad.Status.NEEDS_REVIEW:  # published alone: the queue needs it
            other = Category.objects.exclude(slug=category).first()
            ad.send_to_review(Ad.ReviewReason.CATEGORY_MISMATCH, other if n % 2 else None)


def decide_by_keyboard(url: str, decisions: int) -> dict:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM)
        tab = browser.new_page(viewport=SCREEN, base_url=url)
        tab.goto("/admin/login/?next=/admin/moderation/reviewitem/")
        tab.get_by_label("Username:").fill("bench-moderator")
        tab.get_by_label("Password:").fill(PASSWORD)
        tab.get_by_role("button", name="Log in").click()
        tab.wait_for_url("**/admin/moderation/reviewitem/")
        tab.wait_for_function(READY, arg="none", polling="raf")  # the first ad's photos in
        scroll = tab.evaluate("document.documentElement.scrollWidth - window.innerWidth")
        requests = []
        tab.on("request", lambda request: requests.append(request.url))
        times = []
        started = time.perf_counter()
        for n in range(decisions):
            # As a moderator would: recategorize only where a category is suggested.
            suggested, decided = tab.evaluate(SUGGESTED), tab.evaluate(CURRENT)
            key = "c" if n % 5 == 4 and suggested else "1" if n % 7 == 6 else "a"
            pressed = time.perf_counter()
            tab.keyboard.press(key)
            try:
                tab.wait_for_function(READY, arg=decided, polling="raf", timeout=10_000)
            except Exception as error:
                rows = tab.locator("#result_list tbody tr").count()
                notice = tab.locator("#review-notice").inner_text()
                raise SystemExit(
                    f"decision {n + 1} ({key!r} on {decided}): no next ad ready after 10 s "
                    f"({rows} rows; notice: {notice!r}): {error}"
                ) from None
            times.append((time.perf_counter() - pressed) * 1000)
        seconds = time.perf_counter() - started
        errors = tab.locator("#review-notice").inner_text()
        browser.close()
    times.sort()
    return {
        "decisions": len(times),
        "decisions_per_min": round(len(times) / seconds * 60, 1),
        "p50_ms": round(statistics.median(times), 1),
        "p95_ms": round(times[int(0.95 * (len(times) - 1))], 1),
        "requests_per_decision": round(len(requests) / len(times), 2),
        "horizontal_scroll_px": max(0, scroll),
        "last_notice": errors,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--ads", type=int, default=60)
    parser.add_argument("--decisions", type=int, default=50)
    args = parser.parse_args()
    scratch = Path(tempfile.mkdtemp(prefix="avito-moderator-"))
    env = bench_env(DJANGO_HTTPS="false", AVITO_DATA_DIR=str(scratch))
    python = sys.executable
    for command in (["migrate", "-v0"], ["collectstatic", "--no-input", "-v0"]):
        subprocess.run([python, "manage.py", *command], cwd=ROOT, env=env, check=True)
    subprocess.run(
        [python, "manage.py", "create_account", "bench-moderator", "--role", "moderator",
         "--password", PASSWORD],
        cwd=ROOT, env=env, check=True, stdout=subprocess.DEVNULL,
    )  # fmt: skip
    import django

    django.setup()
    from bench.pipeline import free_port, wait_http, web_server_command
    from bench.serving import machine

    started = time.perf_counter()
    fill_queue(args.ads)
    filled = time.perf_counter() - started
    port = free_port()
    server, server_env = web_server_command(port)
    logs = open(scratch / "server.log", "w")  # noqa: SIM115
    process = subprocess.Popen(server, cwd=ROOT, env=env | server_env, stdout=logs, stderr=logs)
    try:
        url = f"http://127.0.0.1:{port}"
        wait_http(f"{url}/api/v1/categories/")
        figures = decide_by_keyboard(url, args.decisions)
    finally:
        process.terminate()
        process.wait(30)
        shutil.rmtree(scratch, ignore_errors=True)
    print(f"machine: {machine()}")
    print(f"command: python {' '.join(sys.argv)}; {args.ads} ads filled in {filled:.0f} s")
    for key, value in figures.items():
        print(f"{key}: {value}")
    keys = ("decisions_per_min", "p95_ms", "requests_per_decision", "horizontal_scroll_px")
    print(json.dumps({key: figures[key] for key in keys}))


if __name__ == "__main__":
    main()
