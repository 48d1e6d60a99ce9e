"""The model registry's list in a real browser (``tests.support.browser``): it fits a laptop."""

from __future__ import annotations

from io import StringIO

from django.core.management import call_command

from classifier.models import ModelVersion
from tests.support.browser import BROWSER_TESTS
from tests.support.factories import PASSWORD

pytestmark = BROWSER_TESTS
LAPTOP_SCREEN = {"width": 1366, "height": 768}
# How far the page, or the list's own box, scrolls sideways.
SIDEWAYS = """() => Math.max(
  document.documentElement.scrollWidth - window.innerWidth,
  ...[...document.querySelectorAll('#changelist .results')]
    .map((box) => box.scrollWidth - box.clientWidth),
)"""


def test_the_registry_list_fits_a_laptop_screen_without_scrolling_sideways(shots, open_page):
    # The shipped version (installed by migrate) and a longer history beside it.
    metrics = ModelVersion.objects.get().metrics
    for _ in range(3):
        ModelVersion.objects.create(
            number=ModelVersion.next_number(),
            status="retired",
            classes=["laptop", "phone"],
            metrics=metrics,
        )
    call_command("create_account", "ada", role="admin", password=PASSWORD, stdout=StringIO())
    page = open_page(viewport=LAPTOP_SCREEN)
    tab = page.tab
    tab.goto("/admin/login/?next=/admin/classifier/modelversion/")
    tab.get_by_label("Username:").fill("ada")
    tab.get_by_label("Password:").fill(PASSWORD)
    tab.get_by_role("button", name="Log in").click()
    tab.wait_for_url("**/admin/classifier/modelversion/")
    shots.take(tab, "registry-at-1366")

    assert tab.evaluate(SIDEWAYS) <= 0
    headers = tab.locator("#result_list thead th").all_inner_texts()
    assert "TRAINED ON" in [header.strip().upper() for header in headers]
    assert page.errors == []
