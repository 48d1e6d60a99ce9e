"""Headless Chromium (Debian's ``chromium``) driven by Playwright, for the browser tests:
the browser, tabs that record the page's errors, and numbered screenshots. Each step's
screenshot goes to ``$AVITO_ARTIFACTS_DIR`` (CI keeps that folder) or a temporary folder,
and its path is printed.

Without Chromium (or the ``playwright`` package) the browser tests are skipped, except in CI
(``CI=true``), where that is a failure: the bar is that they run there."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest
from django.db import connections

from tests.support.factories import PASSWORD

CHROMIUM = os.environ.get("AVITO_CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"
IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")


def _missing() -> str | None:
    try:
        import playwright  # noqa: F401
    except ImportError:
        return "the playwright package is not installed (bin/setup installs the dev extras)"
    if not os.access(CHROMIUM, os.X_OK):
        return f"Chromium is not installed at {CHROMIUM} (apt-get install chromium)"
    return None


MISSING = _missing()

# Every browser test module: pytestmark = BROWSER_TESTS
BROWSER_TESTS = [
    pytest.mark.browser,
    pytest.mark.django_db(transaction=True, serialized_rollback=True),
    pytest.mark.skipif(MISSING is not None and not IN_CI, reason=f"{MISSING}; CI runs these"),
]


class Screenshots:
    """Numbered full-page screenshots of one test, each path printed as it is saved."""

    def __init__(self, folder: Path, capsys):
        self.folder = folder
        self.capsys = capsys
        self.count = 0
        shutil.rmtree(folder, ignore_errors=True)  # an earlier run's steps would confuse
        folder.mkdir(parents=True)

    def take(self, page, step: str) -> Path:
        self.count += 1
        path = self.folder / f"{self.count:02d}-{step}.png"
        page.screenshot(path=path, full_page=True)
        with self.capsys.disabled():  # into the log even when pytest captures output
            print(f"\nscreenshot: {path}", flush=True)
        return path


@pytest.fixture
def shots(request, capsys, tmp_path_factory):
    root = os.environ.get("AVITO_ARTIFACTS_DIR")
    base = Path(root) if root else tmp_path_factory.mktemp("screenshots")
    return Screenshots(base / "browser" / request.node.name, capsys)


@pytest.fixture
def browser(monkeypatch):
    """Headless Chromium for one test (through ``open_page``, after the database fixtures)."""
    if MISSING:
        pytest.fail(f"{MISSING}: the browser tests must run in CI")
    from playwright.sync_api import sync_playwright

    # Playwright's synchronous API keeps an asyncio loop running in this thread, and
    # Django then refuses ORM calls from it; the test's own code is synchronous all the
    # same. Undone (and the loop gone) before the database is flushed.
    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
    with sync_playwright() as playwright:
        # Debian's Chromium, never a browser downloaded by Playwright.
        browser = playwright.chromium.launch(executable_path=CHROMIUM)
        try:
            yield browser
        finally:
            browser.close()
            # The test ran in Playwright's context, where Django keeps database connections
            # of its own (they are context-local): closed here, or the test database cannot
            # be dropped at the end of the run.
            connections.close_all()


class Page:
    """A browser tab that records the page's errors (console errors and uncaught ones)."""

    def __init__(self, browser, base_url: str, **options):
        self.context = browser.new_context(base_url=base_url, **options)
        self.context.set_default_timeout(15_000)
        self.tab = self.context.new_page()
        self.errors: list[str] = []
        self.tab.on("console", lambda m: self.errors.append(m.text) if m.type == "error" else None)
        self.tab.on("pageerror", lambda error: self.errors.append(str(error)))

    def sign_in(self, username: str = "seller") -> None:
        self.tab.goto("/accounts/login/")
        self.tab.get_by_label("Username").fill(username)
        self.tab.get_by_label("Password").fill(PASSWORD)
        self.tab.get_by_role("button", name="Sign in").click()
        self.tab.wait_for_url("**/ads/")

    def new_ad_with(self, photo, category: str = "Phones") -> None:
        """Signed in, open the New ad page, choose ``category`` and add ``photo`` (a path)."""
        self.tab.goto("/ads/new/")
        self.tab.get_by_label("Category").select_option(label=category)
        self.tab.get_by_label("Choose photos").set_input_files(photo)


@pytest.fixture
def open_page(request, live_server, shots, browser):
    """Opens tabs on the live server; a failed test leaves a picture of where it stopped."""
    pages: list[Page] = []

    def open_(**options) -> Page:
        pages.append(Page(browser, live_server.url, **options))
        return pages[-1]

    failed_before = request.session.testsfailed
    yield open_
    if request.session.testsfailed > failed_before:  # the test's own report is in by now
        for page in pages:
            shots.take(page.tab, "failed")
