"""Moderators working the review queue by keyboard, in headless Chromium.

    python bench/moderator.py [--ads 60] [--decisions 50]
    python bench/moderator.py --moderators 4 --ads 200

In a scratch data directory (SQLite; ``DATABASE_URL`` if set, which should then name a
database of its own): ``--ads`` ads of three real photos each (the shared dataset's, drawn
photos without it) are classified by the active model and left in the review queue; the
Procfile's web server (gunicorn) serves the admin. Each moderator signs in with Debian's
Chromium (Playwright) at 1366 x 768, in a browser context of their own, and decides with the
keyboard only (mostly ``a``, every fifth ``c``, every seventh ``1``), each decision timed
from the key press to the next ad being ready: the decided row gone (or marked refused or
held by another), the next one current, its photos loaded. One moderator decides
``--decisions`` ads; several work together until the queue is empty. Requests are counted
from the first key press to the last answer, the photos of the ads appended on the way apart
(they are the ads, not the decisions' cost). Ends with one JSON line: decisions_per_min,
p95_ms, requests_per_decision, photo_requests_per_decision, horizontal_scroll_px,
rows_visible (ads wholly on screen on arriving), moderators, refused (decisions answered
409: already decided, or held by another), decided_twice (ads with more than one decision).
Before it, ``split_ms`` says where the keys' time went: before the decision's POST left
(a claim awaited), the POST itself (request to answer: the server's part), and from the
answer to the next ad ready (the page's script and a frame drawn), at the median and the
95th percentile, and which of the page's other requests overlapped the POSTs.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
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
# The next ad is ready: the decided row has left (or says it was refused, or that another
# moderator holds it), the next one is current with its photos in, or nothing is left.
READY = """(decided) => {
  const row = document.querySelector(`#result_list button[form="${decided}"]`)?.closest('tr');
  if (row && !row.matches('.review-refused, .review-held')) return false;
  const current = document.querySelector('#result_list tr.review-current');
  return current === null ||
    [...current.querySelectorAll('img')].every((img) => img.complete && img.naturalWidth > 0);
}"""
# The current ad's form, or null when every ad on the page is held by others or refused.
CURRENT = """() => {
  const row = document.querySelector(
    '#result_list tr.review-current:not(.review-held):not(.review-refused)');
  return row ? row.querySelector('button[form]').getAttribute('form') : null;
}"""
SUGGESTED = """() => document.querySelector('#result_list tr.review-current select').value !== ''"""
# The rows wholly inside the window (tests/browser/test_browser_queue.py measures the same).
ROWS_VISIBLE = """() => [...document.querySelectorAll('#result_list tbody tr')].filter((row) => {
  const box = row.getBoundingClientRect();
  return box.top >= 0 && box.bottom <= window.innerHeight;
}).length"""
DECISION = re.compile(r"/\d+/(accept|recategorize|reject)/$")
PHOTO = re.compile(r"/media/|/photos?/")


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


def queue_left() -> int:
    from ads.models import Ad

    return Ad.objects.filter(status=Ad.Status.NEEDS_REVIEW).count()


def decided_twice() -> int:
    from django.db.models import Count

    from ads.models import Ad

    return Ad.objects.annotate(n=Count("decisions")).filter(n__gt=1).count()


class Moderator:
    """One moderator's tab, in a browser context of their own, and what it measured."""

    def __init__(self, name: str):
        self.name = name
        self.times: list[float] = []
        self.requests: list[str] = []
        self.photos = 0
        self.decided = 0
        self.refused = 0
        self.counting = False
        # Where each key's time went: (start, end) of every request the browser finished,
        # in the browser's wall-clock milliseconds, and per key (before, post, after, others).
        self.finished: list[tuple[float, float, str]] = []
        self.parts: list[tuple[float, float, float, list[str]]] = []

    async def sign_in(self, browser, url: str) -> None:
        self.context = await browser.new_context(viewport=SCREEN, base_url=url)
        self.tab = tab = await self.context.new_page()
        await tab.goto("/admin/login/?next=/admin/moderation/reviewitem/")
        await tab.get_by_label("Username:").fill(self.name)
        await tab.get_by_label("Password:").fill(PASSWORD)
        await tab.get_by_role("button", name="Log in").click()
        await tab.wait_for_url("**/admin/moderation/reviewitem/")
        await tab.wait_for_function(READY, arg="none", polling="raf")  # the first ad's photos
        self.scroll = await tab.evaluate("document.documentElement.scrollWidth - innerWidth")
        self.rows_visible = await tab.evaluate(ROWS_VISIBLE)
        tab.on("request", self._request)
        tab.on("response", self._response)
        tab.on("requestfinished", self._finished)

    def _request(self, request) -> None:
        if self.counting and PHOTO.search(request.url):
            self.photos += 1
        elif self.counting:
            self.requests.append(request.url)

    def _finished(self, request) -> None:
        if not self.counting or PHOTO.search(request.url):
            return
        timing = request.timing
        start = timing["startTime"]
        self.finished.append((start, start + timing["responseEnd"], kind(request)))

    def _response(self, response) -> None:
        if response.request.method == "POST" and DECISION.search(response.url):
            self.decided += response.status == 200
            self.refused += response.status == 409

    async def decide(self, n: int, decided: str) -> None:
        # As a moderator would: recategorize only where a category is suggested.
        suggested = await self.tab.evaluate(SUGGESTED)
        key = "c" if n % 5 == 4 and suggested else "1" if n % 7 == 6 else "a"
        pressed = time.perf_counter()
        pressed_wall = time.time() * 1000
        await self.tab.keyboard.press(key)
        try:
            await self.tab.wait_for_function(READY, arg=decided, polling="raf", timeout=10_000)
        except Exception as error:
            rows = await self.tab.locator("#result_list tbody tr").count()
            notice = await self.tab.locator("#review-notice").inner_text()
            raise SystemExit(
                f"{self.name}, decision {n + 1} ({key!r} on {decided}): no next ad ready after "
                f"10 s ({rows} rows; notice: {notice!r}): {error}"
            ) from None
        self.times.append((time.perf_counter() - pressed) * 1000)
        await asyncio.sleep(0)  # the decision's requestfinished event, if still on its way
        self._split(pressed_wall, time.time() * 1000)

    def _split(self, pressed: float, ready: float) -> None:
        """This key's time: before its decision's POST left, the POST (request to answer),
        after the answer until the next ad was ready; and how many other requests of the
        page overlapped the POST (a claim, a poll, a top-up)."""
        posts = [(s, e) for s, e, what in self.finished if what == "decision" and s >= pressed - 5]
        if not posts or posts[0][0] > ready:
            return  # no POST: an ad another moderator held, nothing sent
        start, end = posts[0]
        during = [what for s, e, what in self.finished if s < end and e > start]
        others = [what for what in during if what != "decision"]
        self.parts.append((start - pressed, end - start, ready - end, others))

    async def work(self, decisions: int | None) -> None:
        """``decisions`` ads, or (None) until the queue is empty."""
        self.counting = True
        n = 0
        while decisions is None or n < decisions:
            decided = await self.tab.evaluate(CURRENT)
            if decided is not None:
                await self.decide(n, decided)
                n += 1
            elif decisions is not None or await asyncio.to_thread(queue_left):
                await asyncio.sleep(0.25)  # the others' ads: until the page shows more
            else:
                break
        self.counting = False


async def work_together(url: str, moderators: int, decisions: int | None) -> dict:
    from playwright.async_api import async_playwright

    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path=CHROMIUM)
        team = [Moderator(name) for name in moderator_names(moderators)]
        for moderator in team:  # one after another, as a team arriving
            await moderator.sign_in(browser, url)
        started = time.perf_counter()
        await asyncio.gather(*(moderator.work(decisions) for moderator in team))
        seconds = time.perf_counter() - started
        notices = [await m.tab.locator("#review-notice").inner_text() for m in team]
        await browser.close()
    times = sorted(t for moderator in team for t in moderator.times)
    requests = sum(len(moderator.requests) for moderator in team)
    decided = sum(moderator.decided for moderator in team)
    return {
        "moderators": moderators,
        "keys": len(times),
        # A key on an ad the server then said another moderator holds decides nothing.
        "decisions": decided,
        "decisions_per_min": round(decided / seconds * 60, 1),
        "p50_ms": round(statistics.median(times), 1),
        "p95_ms": round(times[int(0.95 * (len(times) - 1))], 1),
        "requests_per_decision": round(requests / decided, 2),
        "photo_requests_per_decision": round(sum(m.photos for m in team) / decided, 2),
        "horizontal_scroll_px": max(0, *(moderator.scroll for moderator in team)),
        "rows_visible": min(moderator.rows_visible for moderator in team),
        "refused": sum(moderator.refused for moderator in team),
        "decided_twice": await asyncio.to_thread(decided_twice),
        "decided_by": {m.name: m.decided for m in team},
        "split_ms": split([part for moderator in team for part in moderator.parts]),
        "left_in_queue": await asyncio.to_thread(queue_left),
        "last_notices": notices,
    }


def kind(request) -> str:
    """What a request of the queue's page is, for the split of a key's time."""
    if DECISION.search(request.url):
        return "decision"
    path = request.url.split("?")[0]
    return f"{request.method} {path.rsplit('/admin/moderation/reviewitem/', 1)[-1] or 'page'}"


def split(parts: list[tuple[float, float, float, list[str]]]) -> dict:
    """Median and 95th percentile of each part of a key's time, and how often another
    request of the page overlapped the decision's POST."""
    if not parts:
        return {}

    def figures(values: list[float]) -> list[float]:
        values = sorted(values)
        return [
            round(statistics.median(values), 1),
            round(values[int(0.95 * (len(values) - 1))], 1),
        ]

    before, post, after, others = zip(*parts, strict=True)
    overlapping = [what for each in others for what in each]
    return {
        "keys": len(parts),
        "before_post_p50_p95": figures(before),
        "post_p50_p95": figures(post),
        "after_answer_p50_p95": figures(after),
        "posts_overlapped": sum(1 for each in others if each),
        "overlapped_by": {what: overlapping.count(what) for what in sorted(set(overlapping))},
    }


def moderator_names(count: int) -> list[str]:
    return [f"bench-moderator-{n + 1}" for n in range(count)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--ads", type=int, default=60)
    parser.add_argument("--port", type=int, help="the web server's (default: a free one)")
    parser.add_argument("--decisions", type=int, default=50, help="one moderator's")
    parser.add_argument(
        "--moderators", type=int, default=1, help="more than one: all work until the queue is empty"
    )
    args = parser.parse_args()
    if args.moderators < 1 or args.ads < 1:
        parser.error("--moderators and --ads must be at least 1")
    scratch = Path(tempfile.mkdtemp(prefix="avito-moderator-"))
    # No live audit: an ad the model published and drew for it, then sent to review here,
    # would come back to the queue as an audit once accepted (a second, legitimate decision).
    env = bench_env(DJANGO_HTTPS="false", AVITO_DATA_DIR=str(scratch), MODERATION_AUDIT_RATE="0")
    python = sys.executable
    for command in (["migrate", "-v0"], ["collectstatic", "--no-input", "-v0"]):
        subprocess.run([python, "manage.py", *command], cwd=ROOT, env=env, check=True)
    for name in moderator_names(args.moderators):
        subprocess.run(
            [python, "manage.py", "create_account", name, "--role", "moderator",
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
    port = args.port or free_port()
    server, server_env = web_server_command(port)
    logs = open(scratch / "server.log", "w")  # noqa: SIM115
    process = subprocess.Popen(server, cwd=ROOT, env=env | server_env, stdout=logs, stderr=logs)
    try:
        url = f"http://127.0.0.1:{port}"
        wait_http(f"{url}/api/v1/categories/")
        decisions = args.decisions if args.moderators == 1 else None
        figures = asyncio.run(work_together(url, args.moderators, decisions))
    except SystemExit:
        # A stalled key: often a photo the server failed to send (the next ad never ready).
        logs.flush()
        lines = (scratch / "server.log").read_text().splitlines()[-400:]
        print("\n".join(line for line in lines if '" 5' in line or "Error" in line)[-6000:])
        raise
    finally:
        process.terminate()
        process.wait(30)
        shutil.rmtree(scratch, ignore_errors=True)
    print(f"machine: {machine()}")
    print(f"command: python {' '.join(sys.argv)}; {args.ads} ads filled in {filled:.0f} s")
    for key, value in figures.items():
        print(f"{key}: {value}")
    keys = (
        "decisions_per_min",
        "p95_ms",
        "requests_per_decision",
        "photo_requests_per_decision",
        "horizontal_scroll_px",
        "rows_visible",
        "moderators",
        "refused",
        "decided_twice",
    )
    print(json.dumps({key: figures[key] for key in keys}))


if __name__ == "__main__":
    main()
