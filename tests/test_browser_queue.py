"""The moderators' review queue in a real browser (``tests.browser``) on a live server."""

from __future__ import annotations

from io import StringIO

from django.core.management import call_command

from ads.models import Ad, Category
from classifier.models import ModelVersion, Prediction
from tests.browser import BROWSER_TESTS
from tests.factories import PASSWORD, make_ad

pytestmark = BROWSER_TESTS
LAPTOP_SCREEN = {"width": 1366, "height": 768}


def fill_queue(seller, count: int = 4) -> list[Ad]:
    """Ads in review as the pipeline leaves them: three photos, each with the model's answer."""
    version = ModelVersion.objects.create(
        number=ModelVersion.next_number(), status="candidate", classes=["laptop", "phone"]
    )
    laptops = Category.objects.get(slug="laptop")
    ads = []
    for n in range(count):
        ad = make_ad(
            seller,
            photos=3,
            kind="laptop",
            seed=100 * n,
            # A long title and a long price must wrap, not widen the page.
            title=f"MacBook Pro 16 pouces M1 Max 64 Go 2 To comme neuf, facture et boîte {n}",
            price="123456789.00",
        )
        for image in ad.images.all():
            Prediction.objects.create(
                image=image, model_version=version, category="laptop", confidence=0.97
            )
        ad.send_to_review(Ad.ReviewReason.CATEGORY_MISMATCH, laptops)
        ads.append(ad)
    return ads


def moderator_tab(open_page, **options):
    call_command("create_account", "mona", role="moderator", password=PASSWORD, stdout=StringIO())
    page = open_page(**options)
    page.tab.goto("/admin/login/?next=/admin/moderation/reviewitem/")
    page.tab.get_by_label("Username:").fill("mona")
    page.tab.get_by_label("Password:").fill(PASSWORD)
    page.tab.get_by_role("button", name="Log in").click()
    page.tab.wait_for_url("**/admin/moderation/reviewitem/")
    return page


def test_the_queue_fits_a_laptop_screen_with_photos_large_enough_to_judge(
    seller, media, shots, open_page
):
    ads = fill_queue(seller)
    page = moderator_tab(open_page, viewport=LAPTOP_SCREEN)
    tab = page.tab
    shots.take(tab, "queue-at-1366")

    overflow = tab.evaluate("document.documentElement.scrollWidth - window.innerWidth")
    assert overflow <= 0, f"the queue scrolls sideways by {overflow} px at 1366 x 768"
    rows = tab.locator("#result_list tbody tr")
    assert rows.count() == len(ads)
    first = rows.first
    photos = first.locator(".review-photo img")
    assert photos.count() == 3
    for index in range(3):
        box = photos.nth(index).bounding_box()
        assert box["width"] >= 160 and box["height"] >= 160, box
    assert first.locator(".review-photo figcaption").first.inner_text() == "laptop 97%"
    facts = first.locator(".review-facts").inner_text()
    for shown in ("Phones", "Laptops", Ad.ReviewReason.CATEGORY_MISMATCH.label, "seller"):
        assert shown in facts
    # Every decision control is on screen without scrolling sideways.
    controls = first.locator(".review-decide button:visible, .review-decide select")
    assert controls.count() == 2 + len(Ad.RejectionReason.choices) + 1
    for index in range(controls.count()):
        box = controls.nth(index).bounding_box()
        assert box["x"] >= 0 and box["x"] + box["width"] <= LAPTOP_SCREEN["width"], box
    assert page.errors == []
