"""The review queue's count and its emptied page, in a real browser (``tests.support.browser``):
the trial of a new user saw "2 review queue" above a page whose two ads were decided."""

from __future__ import annotations

from ads.models import Ad
from tests.browser.test_browser_queue import fill_queue, moderator_tab
from tests.support.browser import BROWSER_TESTS

pytestmark = BROWSER_TESTS


def test_the_count_follows_the_decisions_and_an_emptied_page_says_so(
    seller, media, shots, open_page
):
    from playwright.sync_api import expect

    ads = fill_queue(seller, 2)
    tab = moderator_tab(open_page).tab
    count = tab.locator("p.paginator")
    empty = tab.locator(".review-empty")
    expect(count).to_contain_text("2 ads in review")
    expect(empty).to_be_hidden()

    tab.keyboard.press("a")
    expect(count).to_contain_text("1 ad in review")
    tab.keyboard.press("a")
    expect(count).to_contain_text("0 ads in review")
    expect(empty).to_be_visible()
    expect(empty).to_have_text("No ad waits for you now: new ones appear here as they arrive.")
    shots.take(tab, "queue-emptied")
    assert not Ad.objects.filter(pk__in=[ad.pk for ad in ads], status="needs_review").exists()

    tab.keyboard.press("z")  # the last decision undone: its ad is back, and counted
    expect(tab.locator("#review-notice")).to_contain_text("is back in the queue")
    expect(count).to_contain_text("1 ad in review")
    expect(empty).to_be_hidden()


def test_a_queue_opened_empty_says_so_and_shows_the_first_ad_that_arrives(
    seller, media, shots, open_page, settings
):
    from playwright.sync_api import expect

    settings.MODERATION_CLAIMS_POLL_SECONDS = 1
    tab = moderator_tab(open_page).tab
    expect(tab.locator("#review-empty-page")).to_have_text(
        "No ad waits for you now: new ones appear here as they arrive."
    )
    expect(tab.locator("p.paginator")).to_contain_text("0 ads in review")
    shots.take(tab, "queue-opened-empty")

    (ad,) = fill_queue(seller, 1)  # an ad arrives while the page is open

    expect(tab.locator("#result_list tbody tr")).to_have_count(1, timeout=10_000)
    expect(tab.locator("p.paginator")).to_contain_text("1 ad in review")
    expect(tab.locator("#review-empty-page")).to_be_hidden()
    tab.keyboard.press("a")  # the keys work on the page it became
    expect(tab.locator("#review-notice")).to_contain_text("accepted")
    ad.refresh_from_db()
    assert ad.status == Ad.Status.PUBLISHED


def test_a_filtered_queue_with_nothing_in_it_says_the_filters_leave_nothing(
    seller, media, open_page
):
    from playwright.sync_api import expect

    fill_queue(seller, 1)  # laptops
    tab = moderator_tab(open_page).tab
    tab.goto("/admin/moderation/reviewitem/?q=no-such-title")
    expect(tab.locator("#review-empty-page")).to_have_text("No ad in review matches these filters.")
    expect(tab.locator("p.paginator")).to_contain_text("0 ads in review")
