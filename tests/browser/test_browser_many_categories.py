"""The New ad page with four categories, in a real browser (``tests.support.browser``): each photo
offers the category it shows among the four, and photos that disagree choose nothing."""

from __future__ import annotations

from tests.classifier.test_many_categories import confident_seed
from tests.support.browser import BROWSER_TESTS
from tests.support.images import jpeg_bytes

pytestmark = BROWSER_TESTS


def test_each_photo_offers_its_own_category_among_four(
    tmp_path, four_class_version, seller, shots, open_page
):
    from playwright.sync_api import expect

    photos = {}
    for kind in ("watch", "camera"):
        photos[kind] = tmp_path / f"{kind}.jpg"
        photos[kind].write_bytes(jpeg_bytes(kind, confident_seed(kind, four_class_version)))
    page = open_page()
    tab = page.tab
    page.sign_in()
    tab.goto("/ads/new/")
    category = tab.get_by_label("Category")
    options = category.locator("option").all_text_contents()
    assert options == ["Choose a category", "Cameras", "Laptops", "Phones", "Watches"]

    category.select_option(label="Phones")
    tab.get_by_label("Choose photos").set_input_files(photos["watch"])
    watch = tab.locator("#photo-list .photo").nth(0)
    expect(watch).to_contain_text("Looks like Watches, not Phones.")
    tab.get_by_role("button", name="Switch category to Watches").click()
    expect(category).to_have_value("watch")
    expect(watch).to_have_attribute("data-state", "match")
    shots.take(tab, "switched-to-watches")

    # A second photo of another of the four: its own switch; the two disagree, so the
    # category stays the seller's choice.
    tab.get_by_label("Choose photos").set_input_files(photos["camera"])
    camera = tab.locator("#photo-list .photo").nth(1)
    expect(camera).to_contain_text("Looks like Cameras, not Watches.")
    expect(tab.get_by_role("button", name="Switch category to Cameras")).to_be_visible()
    expect(category).to_have_value("watch")
    expect(watch).to_have_attribute("data-state", "match")
    shots.take(tab, "two-categories")
    assert page.errors == []
