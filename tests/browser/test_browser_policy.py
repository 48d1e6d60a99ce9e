"""Chromium under the Content-Security-Policy: the pages whose inline blocks carry the
nonce, and the API docs, run and draw with no violation in the console (Chromium logs each
refused script or style there as an error)."""

from __future__ import annotations

from ads.models import Ad
from moderation import services
from tests.browser.test_browser_queue import moderator_tab
from tests.support.browser import BROWSER_TESTS
from tests.support.factories import make_ad

pytestmark = BROWSER_TESTS


def test_the_api_docs_draw_under_the_policy(open_page, db):
    page = open_page()
    page.tab.goto("/api/docs/")
    page.tab.get_by_text("avito-mod API").first.wait_for()
    assert page.errors == []


def test_a_held_ads_page_offers_the_takeover_and_its_shortcuts_run(seller, media, open_page):
    from django.contrib.auth import get_user_model

    ad = make_ad(seller)
    ad.send_to_review(Ad.ReviewReason.LOW_CONFIDENCE)
    otto = get_user_model().objects.create_user("otto", is_staff=True)
    assert services.claim(otto, [ad.pk]) == {ad.pk}  # otto holds it: mona's queue skips it
    page = moderator_tab(open_page)
    page.tab.goto(f"/admin/moderation/reviewitem/{ad.pk}/change/")
    page.tab.get_by_label("Take over from otto, who holds this ad").check()
    page.tab.get_by_role("heading", name="Decide").click()  # out of the checkbox: keys act
    page.tab.keyboard.press("a")  # the page's inline script: A accepts
    page.tab.wait_for_url("**/admin/moderation/reviewitem/")
    assert Ad.objects.get(pk=ad.pk).status == Ad.Status.PUBLISHED
    assert page.errors == []
