"""What a person sees on the browsing pages when things go wrong or change under them (issue 10): forms
that keep their errors in place, panels that follow an action, explanations that fit the thread.

Debian's Chromium (/usr/bin/chromium) through Playwright, as in test_browser.py.
"""

from datetime import UTC, datetime, timedelta

import pytest

from tests.test_browser import sign_in
from threads_app.models import Thread

pytestmark = [pytest.mark.browser, pytest.mark.integration, pytest.mark.usefixtures("no_retries")]

VIEWPORT = {"width": 1280, "height": 900}


@pytest.fixture
def talk(simulator, sim_clock, sim_credential, make_thread):
    base = datetime(2026, 6, 1, 9, tzinfo=UTC)
    remote = simulator.state.create_thread(
        "proj_alpha",
        created_at=base,
        messages=[
            (
                "user" if i % 2 == 0 else "assistant",
                f"message number {i}",
                {"created_at": base + timedelta(minutes=i)},
            )
            for i in range(5)
        ],
    )
    return make_thread(remote_id=remote["id"], credential=sim_credential, title="A short talk")


@pytest.fixture
def demo_debug(settings):
    """As README's demo runs: DEBUG on, so django-htmx adds its handler that shows error pages."""
    settings.DEBUG = True


def test_a_rejected_metadata_form_shows_its_errors_in_place(page, demo_debug, alice, talk):
    sign_in(page)
    page.goto(f"/threads/{talk.pk}/")
    page.wait_for_selector("text=message number 4")
    page.click("#thread-header a:has-text('Edit metadata')")
    page.wait_for_selector("#thread-facts form")
    keys = page.locator("#thread-facts input[name^='key_']")
    values = page.locator("#thread-facts input[name^='value_']")
    keys.nth(0).fill("topic")
    values.nth(0).fill("a")
    keys.nth(1).fill("topic")
    values.nth(1).fill("b")
    page.click("#thread-facts button:has-text('Save metadata')")
    page.wait_for_selector("#thread-facts .errorbox, #thread-facts .field-error")
    assert page.locator("header.topbar nav").is_visible()
    assert page.locator("#thread-header h1").inner_text() == "A short talk"
    assert page.locator("text=message number 4").is_visible()


def test_a_too_long_title_on_the_edit_page_is_pointed_out_in_place(page, demo_debug, alice, talk):
    sign_in(page)
    page.goto(f"/threads/{talk.pk}/edit/")
    page.evaluate("document.querySelector('#id_title').removeAttribute('maxlength')")
    page.fill("#id_title", "x" * 600)
    page.click("#thread-facts button:has-text('Save')")
    page.wait_for_selector("#thread-facts .field-error")
    assert page.locator("header.topbar nav").is_visible()
    assert page.locator(".crumbs").is_visible()
