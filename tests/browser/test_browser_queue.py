"""The moderators' review queue in a real browser (``tests.support.browser``) on a live server."""

from __future__ import annotations

import re
from io import StringIO

from django.core.management import call_command

from ads.models import Ad, Category
from classifier.models import ModelVersion, Prediction
from tests.support.browser import BROWSER_TESTS
from tests.support.factories import PASSWORD, make_ad

pytestmark = BROWSER_TESTS
LAPTOP_SCREEN = {"width": 1366, "height": 768}
DESKTOP_SCREEN = {"width": 1920, "height": 1080}
# The rows wholly inside the window (the same measure as bench/moderator.py's rows_visible).
ROWS_VISIBLE = """() => [...document.querySelectorAll('#result_list tbody tr')].filter((row) => {
  const box = row.getBoundingClientRect();
  return box.top >= 0 && box.bottom <= window.innerHeight;
}).length"""
# Long ImageNet names, three of them: the caption's second line must wrap under its photo.
LOOKS_LIKE = [["notebook computer", 0.62], ["computer keyboard", 0.21], ["space bar", 0.08]]


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
                image=image,
                model_version=version,
                category="laptop",
                confidence=0.97,
                imagenet_labels=LOOKS_LIKE,
            )
        ad.send_to_review(Ad.ReviewReason.CATEGORY_MISMATCH, laptops)
        ads.append(ad)
    return ads


def moderator_tab(open_page, username: str = "mona", **options):
    call_command("create_account", username, role="moderator", password=PASSWORD, stdout=StringIO())
    page = open_page(**options)
    page.tab.goto("/admin/login/?next=/admin/moderation/reviewitem/")
    page.tab.get_by_label("Username:").fill(username)
    page.tab.get_by_label("Password:").fill(PASSWORD)
    page.tab.get_by_role("button", name="Log in").click()
    page.tab.wait_for_url("**/admin/moderation/reviewitem/")
    return page


def test_the_queue_fits_a_laptop_screen_with_photos_large_enough_to_judge(
    seller, media, shots, open_page
):
    ads = fill_queue(seller, 6)
    page = moderator_tab(open_page, viewport=LAPTOP_SCREEN)
    tab = page.tab
    shots.take(tab, "queue-at-1366")
    # Three whole ads on a laptop's screen (with the model's warning above them here).
    assert tab.evaluate(ROWS_VISIBLE) >= 3

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
    caption = first.locator(".review-photo figcaption").first
    assert caption.inner_text() == (
        "laptop 97%\nLooks like (ImageNet): notebook computer 62% · computer keyboard 21% · "
        "space bar 8%"
    )
    assert caption.bounding_box()["width"] <= photos.first.bounding_box()["width"]
    facts = first.locator(".review-facts").inner_text()
    for shown in ("Phones", "Laptops", Ad.ReviewReason.CATEGORY_MISMATCH.label, "seller"):
        assert shown in facts
    # Every decision control is on screen without scrolling sideways.
    controls = first.locator(".review-decide button:visible, .review-decide select")
    assert controls.count() == 2 + len(Ad.RejectionReason.choices) + 1
    for index in range(controls.count()):
        box = controls.nth(index).bounding_box()
        assert box["x"] >= 0 and box["x"] + box["width"] <= LAPTOP_SCREEN["width"], box
    # The focused row is scrolled into view as the keys move down the queue.
    for _ in range(5):
        tab.keyboard.press("j")
    current = tab.locator("#result_list tr.review-current")
    assert current.evaluate("(row) => row.getBoundingClientRect().bottom") <= 768
    assert current.evaluate("(row) => row.getBoundingClientRect().top") >= 0
    assert page.errors == []


def test_a_desktop_screen_shows_more_ads_than_a_laptop(seller, media, shots, open_page):
    fill_queue(seller, 8)
    page = moderator_tab(open_page, viewport=DESKTOP_SCREEN)
    shots.take(page.tab, "queue-at-1920")
    # Four under the model's warning, which takes a fifth's place on an install with a model.
    assert page.tab.evaluate(ROWS_VISIBLE) >= 4
    photo = page.tab.locator(".review-photo img").first.bounding_box()
    assert photo["width"] >= 160 and photo["height"] >= 160
    assert page.tab.evaluate("document.documentElement.scrollWidth - window.innerWidth") <= 0


def test_a_moderator_decides_and_undoes_by_keyboard_in_place(seller, media, shots, open_page):
    from playwright.sync_api import expect

    ads = fill_queue(seller, 3)
    page = moderator_tab(open_page, viewport=LAPTOP_SCREEN)
    tab = page.tab
    rows = tab.locator("#result_list tbody tr")
    expect(rows.first).to_have_class(re.compile("review-current"))
    posts = []
    tab.on(
        "request", lambda request: posts.append(request.url) if request.method == "POST" else None
    )
    requests = []  # the page's own: not its icons, nor the poll of who holds what
    tab.on(
        "request",
        lambda request: (
            None
            if "/static/" in request.url or "/claims/" in request.url
            else requests.append(request.url)
        ),
    )

    tab.keyboard.press("a")  # accept the first ad, in place

    notice = tab.locator("#review-notice")
    expect(notice).to_contain_text(f"“{ads[0]}” accepted: published in Phones.")
    expect(rows).to_have_count(2)
    # One POST; its answer says no more ads wait, so the queue is not fetched for more.
    assert posts == [requests[0]] and requests[0].endswith(f"/{ads[0].pk}/accept/")
    expect(tab.locator("#result_list")).to_be_visible()
    tab.wait_for_timeout(200)  # a top-up would have been asked for by now
    assert len(requests) == 1
    assert Ad.objects.get(pk=ads[0].pk).status == Ad.Status.PUBLISHED
    # The notice counts down the server's 60 s; the selection counter follows the rows.
    expect(notice.get_by_role("button")).to_have_text(re.compile(r"Undo \(z\) · 5\d s left"))
    expect(tab.locator(".action-counter")).to_have_text("0 of 2 selected")
    shots.take(tab, "accepted")

    tab.keyboard.press("z")
    expect(notice).to_contain_text("is back in the queue")
    expect(rows).to_have_count(3)
    expect(tab.locator(".action-counter")).to_have_text("0 of 3 selected")
    assert Ad.objects.get(pk=ads[0].pk).status == Ad.Status.NEEDS_REVIEW

    tab.keyboard.press("j")  # the second ad
    expect(rows.nth(1)).to_have_class(re.compile("review-current"))
    tab.keyboard.press("1")  # reject: not the product
    expect(notice).to_contain_text(f"“{ads[1]}” rejected: Not the product.")
    assert Ad.objects.get(pk=ads[1].pk).rejection_reason == Ad.RejectionReason.NOT_PRODUCT
    expect(rows).to_have_count(2)
    expect(rows.nth(1)).to_have_class(re.compile("review-current"))  # the next one, now second

    tab.keyboard.press("c")  # recategorize the third ad in its suggestion
    expect(notice).to_contain_text(f"“{ads[2]}” recategorized: published in Laptops")
    assert Ad.objects.get(pk=ads[2].pk).category.slug == "laptop"
    undo = notice.get_by_role("button")
    expect(undo).to_have_text(re.compile(r"^Undo \(z\)"))

    tab.keyboard.press("4")  # Other with no note: a hint; the Undo names the ad it reopens
    expect(notice).to_contain_text("Say in the note why the ad is rejected")
    named = f"{ads[2].title[:39]}…"  # a long title, shortened on the button
    expect(undo).to_have_text(re.compile(f"^Undo “{re.escape(named)}” \\(z\\) · 5\\d s left"))
    assert Ad.objects.get(pk=ads[0].pk).status == Ad.Status.NEEDS_REVIEW

    # Nothing fires while typing: an "a" in the note is a letter, not a decision.
    note = rows.first.locator("input[name=note]")
    note.type("a note")
    expect(note).to_have_value("a note")
    assert Ad.objects.get(pk=ads[0].pk).status == Ad.Status.NEEDS_REVIEW

    tab.locator("body").click(position={"x": 5, "y": 5})  # out of the field
    viewer = tab.locator("#review-viewer")
    tab.keyboard.press("v")  # the current ad's photos at full size
    expect(viewer).to_be_visible()
    expect(viewer.locator("img")).to_have_count(3)
    full = viewer.locator("img").first.bounding_box()
    assert full["width"] >= 480 and full["height"] >= 360, full  # a 4:3 thumbnail, scaled up
    shots.take(tab, "photos-full-size")
    tab.keyboard.press("Escape")
    expect(viewer).to_be_hidden()
    rows.first.locator(".review-photo a").first.click()  # a click on a photo, too
    expect(viewer).to_be_visible()
    viewer.click()
    expect(viewer).to_be_hidden()

    help_panel = tab.locator("#review-keys")
    expect(help_panel).to_be_hidden()
    tab.locator("body").click(position={"x": 5, "y": 5})  # out of the field
    tab.keyboard.press("?")
    expect(help_panel).to_be_visible()
    expect(help_panel).to_contain_text("undo the last decision")
    shots.take(tab, "keys")
    assert page.errors == []


def test_a_decision_refused_as_already_decided_says_so_in_the_row_and_moves_on(
    seller, media, shots, open_page
):
    from playwright.sync_api import expect

    from moderation import services

    ads = fill_queue(seller, 2)
    page = moderator_tab(open_page, viewport=LAPTOP_SCREEN)
    call_command("create_account", "otto", role="moderator", password=PASSWORD, stdout=StringIO())
    from django.contrib.auth import get_user_model

    # mona's queue holds the ad for her: otto decides it only by taking it over.
    otto = get_user_model().objects.get(username="otto")
    services.decide(ads[0].pk, otto, "accept", takeover=True)

    page.tab.keyboard.press("a")

    rows = page.tab.locator("#result_list tbody tr")
    expect(page.tab.locator("#review-notice")).to_contain_text("was already decided by otto")
    # The row stays, greyed, saying why; the moderator's place moves to the next ad.
    expect(rows.first.locator(".review-row-note")).to_contain_text("already decided by otto")
    expect(rows.first).to_have_class(re.compile("review-refused"))
    expect(rows.nth(1)).to_have_class(re.compile("review-current"))
    shots.take(page.tab, "refused-in-its-row")
    page.tab.keyboard.press("k")  # the keys pass over it
    expect(rows.nth(1)).to_have_class(re.compile("review-current"))
    page.tab.keyboard.press("a")
    expect(page.tab.locator("#review-notice")).to_contain_text(f"“{ads[1]}” accepted")
    assert Ad.objects.get(pk=ads[0].pk).decisions.count() == 1
    # The browser logs the 409 itself; nothing else went wrong.
    assert [e for e in page.errors if "409" not in e] == []


def test_two_moderators_see_each_others_ads_greyed_and_never_decide_them(
    seller, media, shots, open_page, settings
):
    from playwright.sync_api import expect

    settings.MODERATION_CLAIM_TOP = 2
    settings.MODERATION_CLAIMS_POLL_SECONDS = 1
    ads = fill_queue(seller, 6)
    mona = moderator_tab(open_page, "mona", viewport=LAPTOP_SCREEN)  # holds ads 0 and 1
    otto = moderator_tab(open_page, "otto", viewport=LAPTOP_SCREEN)  # 2 and 3: 0, 1 skipped
    mona_rows, otto_rows = (p.tab.locator("#result_list tbody tr") for p in (mona, otto))
    expect(otto_rows).to_have_count(4)

    # Mona's page, loaded before Otto took his, greys them within a poll, naming him.
    for n in (2, 3):
        expect(mona_rows.nth(n)).to_have_class(re.compile("review-held"))
        expect(mona_rows.nth(n)).to_contain_text("Held by otto")
    shots.take(mona.tab, "otto-holds-two")
    mona.tab.keyboard.press("a")  # ad 0; her next batch is claimed: ads 4 and 5
    expect(mona_rows).to_have_count(5)
    mona.tab.keyboard.press("a")  # ad 1; j passes over Otto's two
    expect(mona_rows.first).to_have_class(re.compile("review-held"))
    current = mona.tab.locator("#result_list tr.review-current")
    expect(current.locator(f'button[form="decide-{ads[4].pk}"]').first).to_be_attached()
    mona.tab.keyboard.press("k")  # nothing open above: she stays on ad 4
    expect(current.locator(f'button[form="decide-{ads[4].pk}"]').first).to_be_attached()
    # Otto's page now greys hers.
    expect(otto_rows.nth(2)).to_have_class(re.compile("review-held"))
    expect(otto_rows.nth(2)).to_contain_text("Held by mona")

    for page, theirs in ((mona, ads[4:]), (otto, ads[2:4])):
        for ad in theirs:
            page.tab.keyboard.press("a")
            expect(page.tab.locator("#review-notice")).to_contain_text(f"“{ad}” accepted")
    for ad in ads:
        ad.refresh_from_db()
        assert ad.status == Ad.Status.PUBLISHED, ad
        assert ad.decisions.count() == 1, ad
    deciders = {ad.decisions.get().moderator.username for ad in ads}
    assert deciders == {"mona", "otto"}
    assert mona.errors == [] and otto.errors == []


def test_undo_says_it_is_too_late_once_the_servers_window_has_passed(
    seller, media, open_page, settings
):
    from playwright.sync_api import expect

    settings.MODERATION_UNDO_SECONDS = 3  # the page offers 2 s of it: an answer's way back
    ads = fill_queue(seller, 2)
    page = moderator_tab(open_page, viewport=LAPTOP_SCREEN)
    notice = page.tab.locator("#review-notice")
    expect(page.tab.locator("#review-keys")).to_contain_text("undo the last decision (for 3 s)")

    counter = page.tab.locator(".action-counter")
    page.tab.locator("#result_list tbody tr input.action-select").first.check()
    expect(counter).to_have_text("1 of 2 selected")
    page.tab.locator("body").click(position={"x": 5, "y": 5})  # out of the checkbox

    page.tab.keyboard.press("a")  # the ticked ad: it leaves the selection with its row
    expect(counter).to_have_text("0 of 1 selected")
    expect(notice.get_by_role("button")).to_have_text("Undo (z) · 2 s left")
    expect(notice.get_by_role("button")).to_have_count(0, timeout=4000)

    page.tab.keyboard.press("z")
    expect(notice).to_contain_text(
        f"Too late to undo “{ads[0]}”: a decision can be undone for 3 s."
    )
    assert Ad.objects.get(pk=ads[0].pk).status == Ad.Status.PUBLISHED
    assert page.errors == []


def test_without_javascript_a_decision_posts_and_comes_back_to_the_queue(seller, media, open_page):
    ads = fill_queue(seller, 2)
    page = moderator_tab(open_page, viewport=LAPTOP_SCREEN, java_script_enabled=False)
    tab = page.tab

    tab.locator("#result_list tbody tr").first.get_by_role("button", name="Accept").click()

    tab.wait_for_url("**/admin/moderation/reviewitem/")
    assert tab.get_by_text(f"“{ads[0]}” accepted: published in Phones.").count() == 1
    assert tab.locator("#result_list tbody tr").count() == 1
    assert Ad.objects.get(pk=ads[0].pk).status == Ad.Status.PUBLISHED


def test_the_next_ads_of_the_queue_are_appended_before_the_page_runs_out(
    seller, media, open_page, settings
):
    from playwright.sync_api import expect

    settings.MODERATION_CLAIM_TOP = 2
    ads = fill_queue(seller, 5)
    page = moderator_tab(open_page, viewport=LAPTOP_SCREEN)
    tab = page.tab
    rows = tab.locator("#result_list tbody tr")
    # Two more ads arrive after the page was loaded.
    Ad.objects.filter(pk__in=[ads[3].pk, ads[4].pk]).update(status=Ad.Status.PENDING)
    tab.reload()
    expect(rows).to_have_count(3)
    Ad.objects.filter(pk__in=[ads[3].pk, ads[4].pk]).update(status=Ad.Status.NEEDS_REVIEW)

    tab.keyboard.press("a")  # two rows left: the queue's next ads are fetched

    expect(rows).to_have_count(4)
    assert tab.locator(f'#result_list button[form="decide-{ads[4].pk}"]').count() > 0
    for n in range(4):  # the appended rows decide like the others
        tab.keyboard.press("a")
        expect(rows).to_have_count(3 - n)
    assert Ad.objects.filter(status=Ad.Status.PUBLISHED).count() == 5
    assert page.errors == []


def test_the_pulse_page_draws_its_charts_for_an_admin(seller, media, shots, open_page):
    from playwright.sync_api import expect

    from moderation import services

    call_command("create_account", "ada", role="admin", password=PASSWORD, stdout=StringIO())
    call_command("create_account", "mona", role="moderator", password=PASSWORD, stdout=StringIO())
    from django.contrib.auth import get_user_model

    mona = get_user_model().objects.get(username="mona")
    for ad in fill_queue(seller, 4)[:3]:
        services.decide(ad.pk, mona, "recategorize")
    page = open_page(viewport=LAPTOP_SCREEN)
    tab = page.tab
    tab.goto("/admin/login/?next=/admin/moderation/reviewitem/pulse/")
    tab.get_by_label("Username:").fill("ada")
    tab.get_by_label("Password:").fill(PASSWORD)
    tab.get_by_role("button", name="Log in").click()

    expect(tab.get_by_role("img", name="Decisions per day")).to_be_visible()
    expect(tab.get_by_role("img", name="Model's suggestion followed")).to_be_visible()
    expect(tab.locator(".queue-pulse")).to_contain_text("100 %")
    expect(tab.get_by_role("cell", name="mona", exact=True)).to_be_visible()
    assert tab.evaluate("document.documentElement.scrollWidth - window.innerWidth") <= 0
    shots.take(tab, "pulse")
    assert page.errors == []
