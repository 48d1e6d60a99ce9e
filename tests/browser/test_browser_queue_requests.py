"""What the review queue's page asks of the server, in a real browser (``tests.browser``):
one request per decision while a moderator works (the claims ride on the decisions), and a
short queue polled without fetching its page again."""

from __future__ import annotations

import re

from ads.models import Ad
from tests.browser.test_browser_queue import LAPTOP_SCREEN, fill_queue, moderator_tab
from tests.support.browser import BROWSER_TESTS

pytestmark = BROWSER_TESTS


def record(tab) -> list[str]:
    """The page's own requests from now on (not its static files or photos)."""
    seen: list[str] = []

    def add(request) -> None:
        if not re.search(r"/static/|/media/|/photos?/", request.url):
            seen.append(f"{request.method} {request.url.split('?')[0]}")

    tab.on("request", add)
    return seen


def test_a_moderator_at_work_sends_one_request_per_decision(seller, media, open_page, settings):
    from playwright.sync_api import expect

    settings.MODERATION_CLAIM_TOP = 2  # a new batch every other decision
    settings.MODERATION_CLAIMS_POLL_SECONDS = 60
    ads = fill_queue(seller, 7)
    page = moderator_tab(open_page, viewport=LAPTOP_SCREEN)
    notice = page.tab.locator("#review-notice")
    sent = record(page.tab)

    for ad in ads:
        page.tab.keyboard.press("a")
        expect(notice).to_contain_text(f"“{ad}” accepted")

    assert len(sent) == len(ads), sent
    assert all(request.startswith("POST ") and "/accept/" in request for request in sent)
    assert Ad.objects.filter(status=Ad.Status.PUBLISHED).count() == len(ads)
    assert all(ad.decisions.get().moderator.username == "mona" for ad in ads)
    assert page.errors == []


def test_a_short_queue_is_polled_without_fetching_its_page(seller, media, open_page, settings):
    settings.MODERATION_CLAIMS_POLL_SECONDS = 1
    fill_queue(seller, 2)
    page = moderator_tab(open_page, viewport=LAPTOP_SCREEN)
    sent = record(page.tab)

    # Two polls a second apart, given up to 10 s: in one CI run, beside the fault bench, no
    # poll came within the 3.5 s this test used to wait.
    for _ in range(100):
        if len(sent) >= 2:
            break
        page.tab.wait_for_timeout(100)

    # Each poll says nothing more waits: the queue's page is not fetched for more.
    assert len(sent) >= 2, sent
    assert all(request.endswith("/admin/moderation/reviewitem/claims/") for request in sent)
    assert all(request.startswith("GET ") for request in sent)
    assert page.errors == []
