"""The seller pages in a real browser (``tests.support.browser``), against a live server and, for
posting, a real Celery worker with the tiny model."""

from __future__ import annotations

import base64
import re

import pytest
from django.db import OperationalError

import ads.api.views
from ads.models import Ad, Category
from classifier.models import ModelVersion
from classifier.services import classify_images
from tests.support.browser import BROWSER_TESTS
from tests.support.factories import make_ad
from tests.support.images import jpeg_bytes
from tests.support.live import celery_worker

pytestmark = BROWSER_TESTS
PHONE_SCREEN = {"width": 375, "height": 740}
REFUSED = "Failed to load resource: the server responded with a status of 400 (Bad Request)"


def confident_photo(kind: str, version) -> bytes:
    """A drawn ``kind`` photo the model puts in ``kind`` at or above its threshold, so that
    the ad is published rather than sent to review for low confidence."""
    return confident_photos(kind, version, 1)[0]


def confident_photos(kind: str, version, count: int) -> list[bytes]:
    found = []
    for seed in range(5000, 5200):
        data = jpeg_bytes(kind, seed)
        result = classify_images([data], version)[0]
        if result.category == kind and result.confidence >= version.threshold:
            found.append(data)
            if len(found) == count:
                return found
    raise AssertionError(f"the tiny model is confident about no {count} drawn {kind} photos")


def test_a_seller_fixes_the_category_and_watches_the_ad_get_published(
    tmp_path, tiny_version, seller, child_env, shots, open_page
):
    from playwright.sync_api import expect

    photo = tmp_path / "laptop.jpg"
    photo.write_bytes(confident_photo("laptop", tiny_version))
    with celery_worker(tmp_path / "worker.log", child_env):
        page = open_page()
        tab = page.tab

        tab.goto("/")
        expect(tab).to_have_url(re.compile(r"/accounts/login/"))
        shots.take(tab, "sign-in")
        page.sign_in()
        expect(tab.get_by_role("heading", name="My ads")).to_be_visible()
        shots.take(tab, "my-ads")

        tab.get_by_role("navigation").get_by_role("link", name="New ad").click()
        tab.get_by_label("Category").select_option(label="Phones")
        tab.get_by_label("Choose photos").set_input_files(photo)
        chosen = tab.locator("#photo-list .photo")
        expect(chosen).to_contain_text("Looks like Laptops, not Phones")
        expect(tab.locator("#photo-announcer")).to_contain_text("Looks like Laptops")
        shots.take(tab, "warning")

        tab.get_by_role("button", name="Switch category to Laptops").click()
        expect(tab.get_by_label("Category")).to_have_value("laptop")
        expect(tab.get_by_label("Category")).to_be_focused()
        expect(chosen).to_have_attribute("data-state", "match")
        expect(chosen).to_contain_text("Matches Laptops.")
        expect(tab.locator("#photo-announcer")).to_contain_text("Matches Laptops")
        shots.take(tab, "switched")

        tab.get_by_label("Title").fill("ThinkPad X1, 2022")
        tab.get_by_label("Price").fill("420")
        tab.get_by_label("Description").fill("16 GB, barely used")
        tab.get_by_role("button", name="Post the ad").click()
        expect(tab).to_have_url(re.compile(r"/ads/\d+/$"))
        shots.take(tab, "posted")

        badge = tab.locator("#ad-status [data-role=badge]")
        expect(badge).to_have_text("Published", timeout=60_000)
        expect(tab.locator("[data-role=prediction]")).to_contain_text("Looks like Laptops (")
        shots.take(tab, "published")

        ad = Ad.objects.get(seller=seller)
        assert (ad.title, ad.category.slug, ad.status) == (
            "ThinkPad X1, 2022",
            "laptop",
            Ad.Status.PUBLISHED,
        )
        assert page.errors == []


def test_posting_again_after_a_lost_answer_lands_on_the_one_ad(
    tmp_path, tiny_version, seller, shots, open_page, monkeypatch
):
    from playwright.sync_api import expect

    photo = tmp_path / "phone.jpg"
    photo.write_bytes(jpeg_bytes("phone", 1))
    page = open_page()
    tab = page.tab
    page.sign_in()
    page.new_ad_with(photo)
    expect(tab.locator("#photo-list .photo")).not_to_have_attribute("data-state", "checking")
    tab.get_by_label("Title").fill("iPhone 12")
    tab.get_by_label("Price").fill("250")
    # The database gone once the first post committed: its answer is a 503.
    answers = []

    def database_gone_after_the_commit(kept, replayed):
        answers.append(replayed)
        if len(answers) == 1:
            raise OperationalError("server closed the connection unexpectedly")
        return respond(kept, replayed)

    respond = ads.api.views._respond
    monkeypatch.setattr(ads.api.views, "_respond", database_gone_after_the_commit)
    keys = []

    def note_the_key(route) -> None:
        keys.append(route.request.header_value("Idempotency-Key"))
        route.continue_()

    tab.route("**/api/v1/ads/", note_the_key)
    tab.get_by_role("button", name="Post the ad").click()
    problem = tab.locator("#form-problem")
    expect(problem).to_contain_text("The database is unavailable for a moment")
    expect(problem).to_contain_text("Trying again never posts the ad twice.")
    shots.take(tab, "answer-lost")
    ad = Ad.objects.get(seller=seller)  # posted all the same

    tab.get_by_role("button", name="Post the ad").click()

    expect(tab).to_have_url(re.compile(rf"/ads/{ad.pk}/$"))
    assert Ad.objects.filter(seller=seller).count() == 1
    assert answers == [False, True] and len(keys) == 2 and keys[0] == keys[1] and keys[0]
    assert [error for error in page.errors if "503" not in error] == []


def test_the_pages_fit_a_phone_screen_and_work_by_keyboard(tiny_version, seller, shots, open_page):
    from playwright.sync_api import expect

    laptops = Category.objects.get(slug="laptop")
    make_ad(seller, title="Pending phone with a rather long title that has to wrap", seed=1)
    make_ad(seller, title="Laptop under phones", kind="laptop", seed=2).send_to_review(
        Ad.ReviewReason.CATEGORY_MISMATCH, laptops
    )
    make_ad(seller, title="Rejected", seed=3).reject(Ad.RejectionReason.PROHIBITED)
    make_ad(seller, title="Published", seed=4).publish()
    page = open_page(viewport=PHONE_SCREEN, is_mobile=True, has_touch=True)
    tab = page.tab

    def fits(step: str) -> None:
        shots.take(tab, step)
        widths = tab.evaluate(
            "[document.documentElement.scrollWidth, document.documentElement.clientWidth]"
        )
        assert widths[0] <= widths[1], f"{step}: the page scrolls sideways ({widths})"

    tab.goto("/accounts/signup/")
    fits("sign-up")
    page.sign_in()
    fits("my-ads")
    expect(tab.get_by_text("they look like Laptops")).to_be_visible()

    tab.goto("/ads/new/")
    # Everything is reached with the Tab key, in order.
    tab.get_by_label("Category").focus()
    reached = [_focused(tab)]
    for _ in range(8):
        tab.keyboard.press("Tab")
        reached.append(_focused(tab))
    assert reached[:6] == [
        "id_category", "id_title", "id_price", "id_description", "id_photos", "submit-button",
    ]  # fmt: skip

    tab.get_by_role("button", name="Post the ad").click()  # nothing filled in
    expect(tab.locator("#form-problem")).to_contain_text("Please correct the fields")
    expect(tab.locator("#id_title_error")).to_have_text("Enter a title.")
    expect(tab.locator("#id_photos_error")).to_have_text("Add at least one photo.")
    expect(tab.get_by_label("Category")).to_be_focused()
    fits("new-ad-errors")

    tab.get_by_label("Title").fill("iPhone 12")
    expect(tab.locator("#id_title_error")).to_be_hidden()  # gone once the field is changed
    _drop_photo(tab, confident_photo("phone", tiny_version), "dropped phone.jpg")
    # No category chosen yet: the photo chooses it, then gets its tick.
    expect(tab.get_by_label("Category")).to_have_value("phone")
    expect(tab.locator("#photo-list .photo")).to_have_attribute("data-state", "match")
    expect(tab.get_by_label("Title")).to_have_value("iPhone 12")
    remove = tab.get_by_role("button", name="Remove Photo 1 (dropped phone.jpg)")
    remove.focus()
    fits("new-ad-photo")
    tab.keyboard.press("Enter")
    expect(tab.locator("#photo-list .photo")).to_have_count(0)
    expect(tab.get_by_label("Choose photos")).to_be_focused()

    ad = Ad.objects.get(title__startswith="Pending phone")
    tab.goto(f"/ads/{ad.pk}/")
    expect(tab.locator("#ad-status")).to_contain_text("Pending")
    fits("ad-pending")
    tab.goto(f"/ads/{ad.pk}/edit/")
    expect(tab.get_by_label("Title")).to_have_value(ad.title)
    tab.get_by_label("Title").fill("iPhone 12, 128 GB")
    tab.get_by_label("Price").fill("cheap")
    tab.get_by_role("button", name="Save the changes").click()
    # The API's 400 goes next to its field, and nothing typed is lost.
    expect(tab.locator("#id_price_error")).to_have_text("A valid number is required.")
    expect(tab.get_by_label("Price")).to_be_focused()
    expect(tab.get_by_label("Title")).to_have_value("iPhone 12, 128 GB")
    fits("edit-ad-refused")
    assert page.errors == [REFUSED]  # the browser logs the refused request itself
    page.errors.clear()

    tab.get_by_label("Price").fill("240")
    tab.get_by_role("button", name="Save the changes").click()
    expect(tab.get_by_role("heading", name="iPhone 12, 128 GB")).to_be_visible()
    fits("edit-ad-saved")
    ad.refresh_from_db()
    assert (ad.title, str(ad.price)) == ("iPhone 12, 128 GB", "240.00")
    assert page.errors == []


def _focused(tab) -> str:
    return tab.evaluate("document.activeElement.id || document.activeElement.textContent.trim()")


def _drop_photo(tab, data: bytes, name: str) -> None:
    """Drop a file on the drop zone, as dragging it from the desktop does."""
    transfer = tab.evaluate_handle(
        """([data, name]) => {
            const bytes = Uint8Array.from(atob(data), (c) => c.charCodeAt(0));
            const transfer = new DataTransfer();
            transfer.items.add(new File([bytes], name, { type: "image/jpeg" }));
            return transfer;
        }""",
        [base64.b64encode(data).decode(), name],
    )
    tab.dispatch_event("#dropzone", "drop", {"dataTransfer": transfer})


def test_photos_chosen_before_the_page_script_runs_are_checked_once_it_does(
    tmp_path, tiny_version, seller, open_page
):
    """A slow connection: the seller picks photos while the script is still on its way."""
    from playwright.sync_api import expect

    photo = tmp_path / "laptop.jpg"
    photo.write_bytes(confident_photo("laptop", tiny_version))
    page = open_page()
    tab = page.tab
    page.sign_in()
    held = []
    tab.route("**/static/ads/ad_form.js", lambda route: held.append(route))
    tab.goto("/ads/new/", wait_until="commit")
    tab.get_by_label("Category").select_option(label="Phones")
    tab.get_by_label("Choose photos").set_input_files(photo)
    expect(tab.locator("#photo-list .photo")).to_have_count(0)  # nothing runs the check yet
    assert len(held) == 1
    held[0].continue_()

    expect(tab.locator("#photo-list .photo")).to_contain_text("Looks like Laptops, not Phones")
    assert page.errors == []


def test_several_photos_that_agree_switch_the_category_once(
    tmp_path, tiny_version, seller, shots, open_page
):
    from playwright.sync_api import expect

    files = []
    # Confident ones: an unsure answer never switches the category (the page says so).
    for n, data in enumerate(confident_photos("laptop", tiny_version, 2)):
        path = tmp_path / f"laptop-{n}.jpg"
        path.write_bytes(data)
        files.append(path)
    page = open_page()
    tab = page.tab
    page.sign_in()
    tab.goto("/ads/new/")
    category = tab.get_by_label("Category")
    category.select_option(label="Phones")
    tab.get_by_label("Choose photos").set_input_files(files)
    predicted = [classify_images([p.read_bytes()], tiny_version)[0].category for p in files]
    if predicted != ["laptop", "laptop"]:
        pytest.fail(f"the tiny model should see two laptops here, not {predicted}")
    expect(category).to_have_value("laptop")
    expect(tab.locator("#photo-announcer")).to_contain_text("Laptops")
    expect(tab.locator("#photo-list .photo[data-state=match]")).to_have_count(2)
    shots.take(tab, "switched-by-photos")
    # The seller may switch back: the photos do not overrule them a second time.
    category.select_option(label="Phones")
    expect(tab.locator("#photo-list .photo[data-state=mismatch]")).to_have_count(2)
    expect(category).to_have_value("phone")
    assert page.errors == []


def test_an_unsure_mismatch_says_so_and_offers_no_switch(tmp_path, tiny_version, seller, open_page):
    """As a real iPhone at 66 % laptop under a threshold of 94 %: a version whose threshold
    the photo does not reach."""
    from playwright.sync_api import expect

    data = confident_photo("laptop", tiny_version)
    confidence = classify_images([data], tiny_version)[0].confidence
    ModelVersion.objects.filter(pk=tiny_version.pk).update(threshold=confidence + 0.001)
    photo = tmp_path / "laptop.jpg"
    photo.write_bytes(data)
    page = open_page()
    page.sign_in()
    page.new_ad_with(photo)

    chosen = page.tab.locator("#photo-list .photo")
    expect(chosen).to_contain_text("We are not sure this photo shows Phones")
    expect(chosen).to_have_attribute("data-state", "unsure")
    expect(page.tab.get_by_role("button", name="Switch category to Laptops")).to_have_count(0)
    expect(page.tab.get_by_label("Category")).to_have_value("phone")
    assert page.errors == []
