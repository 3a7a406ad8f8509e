"""Headless Chromium for the browser tests: Debian's /usr/bin/chromium driven through Playwright, never a
downloaded browser. conftest.py makes the `chromium` fixture available to every test module, so that the
browser modules share one Playwright (a second one in the same thread would refuse to start)."""

import os
from pathlib import Path

import pytest

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
PHONE = {"width": 390, "height": 844}
WIDE = {"width": 1440, "height": 900}
DESKTOP = {"width": 1280, "height": 900}
TIMEOUT_MS = 10_000


@pytest.fixture(scope="session")
def chromium():
    if not Path(CHROMIUM).exists():
        pytest.fail(
            f"Browser tests need Debian's Chromium at {CHROMIUM}: apt-get install chromium", pytrace=False
        )
    from playwright.sync_api import sync_playwright

    # Playwright's sync API runs an event loop in this thread; the ORM calls of the tests are still sync.
    os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@pytest.fixture
def page(chromium, live_server, request):
    """A page of the live server, at the test module's VIEWPORT (WIDE unless it says); the test fails if
    the page raised a JavaScript error."""
    from django.db import connection

    if connection.vendor == "sqlite":
        # The live server's threads share SQLite's in-memory test database, which then refuses some of
        # their queries now and then ("database table is locked"): a failure that says nothing.
        pytest.fail(
            "Browser tests run on PostgreSQL: set DATABASE_URL (see README, or run ./scripts/test)",
            pytrace=False,
        )
    context = chromium.new_context(
        viewport=getattr(request.module, "VIEWPORT", WIDE), base_url=live_server.url
    )
    context.set_default_timeout(TIMEOUT_MS)
    page = context.new_page()
    errors = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    yield page
    context.close()
    assert errors == [], f"JavaScript errors: {errors}"
