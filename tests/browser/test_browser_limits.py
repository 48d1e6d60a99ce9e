"""The ad form in a real browser (``tests.support.browser``) tells a seller the upload limits in the
server's words: the wait of a rate limit as a person says it, and photos too large together
before anything is sent."""

from __future__ import annotations

from django.core.cache import cache

from ads.models import Ad
from tests.support.browser import BROWSER_TESTS
from tests.support.images import jpeg_bytes

pytestmark = BROWSER_TESTS


def fill_in(page, photos) -> None:
    from playwright.sync_api import expect

    page.sign_in()
    page.new_ad_with(photos)
    for item in page.tab.locator("#photo-list .photo").all():
        expect(item).not_to_have_attribute("data-state", "checking")
    page.tab.get_by_label("Title").fill("iPhone 12")
    page.tab.get_by_label("Price").fill("250")


def test_a_rate_limited_post_says_how_long_to_wait_in_words(
    tmp_path, tiny_version, seller, shots, open_page, settings
):
    from playwright.sync_api import expect

    cache.clear()  # the counters live in the cache, which outlives a test
    settings.ADS_UPLOAD_USER_RATE = "0/hour"  # the next post in an hour
    photo = tmp_path / "phone.jpg"
    photo.write_bytes(jpeg_bytes("phone", 1))
    page = open_page()
    fill_in(page, photo)

    page.tab.get_by_role("button", name="Post the ad").click()

    problem = page.tab.locator("#form-problem")
    expect(problem).to_have_text(
        "Too many ads posted or photos changed from this account or address. Try again in 1 hour."
    )
    shots.take(page.tab, "rate-limited")
    assert not Ad.objects.exists()
    assert [error for error in page.errors if "429" not in error] == []
    cache.clear()


def test_photos_too_large_together_are_told_before_sending(
    tmp_path, tiny_version, seller, shots, open_page, settings
):
    from playwright.sync_api import expect

    photos = []
    for seed in (1, 2):
        photos.append(tmp_path / f"phone{seed}.jpg")
        photos[-1].write_bytes(jpeg_bytes("phone", seed))
    settings.ADS_MAX_AD_PHOTO_BYTES = photos[0].stat().st_size + 1
    page = open_page()
    posts = []
    page.tab.on(
        "request", lambda r: posts.append(r) if r.method == "POST" and "/ads/" in r.url else None
    )
    fill_in(page, photos)

    page.tab.get_by_role("button", name="Post the ad").click()

    expect(page.tab.locator("#id_photos_error")).to_contain_text(
        "The photos are too large together"
    )
    shots.take(page.tab, "too-large-together")
    assert posts == [] and not Ad.objects.exists()
