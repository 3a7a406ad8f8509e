"""The browsing pages in headless Chromium: sign in, filter and page the list, open a thread, load older
messages, edit, delete with confirmation, the back button, and the layout at phone and desktop widths.

Debian's Chromium (/usr/bin/chromium) is driven through Playwright; no browser is ever downloaded.
Screenshots land in test-artifacts/ for a person to look at.
"""

import re
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from django.utils import timezone
from playwright.sync_api import expect

from tests.browsers import PHONE, TIMEOUT_MS, WIDE
from threads_app.models import Thread

pytestmark = [pytest.mark.browser, pytest.mark.integration, pytest.mark.usefixtures("no_retries")]

ARTIFACTS = Path(__file__).resolve().parent.parent / "test-artifacts"


def sign_in(page, username="alice", password="alice-password"):
    page.goto("/accounts/login/")
    page.fill("#id_username", username)
    page.fill("#id_password", password)
    page.click("button[type=submit]")
    page.wait_for_selector("h1:has-text('Threads')")


def screenshot(page, name):
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=ARTIFACTS / f"{name}.png")


def row_ids(page) -> list[str]:
    return page.eval_on_selector_all("#thread-table tbody td.col-id a", "links => links.map(a => a.title)")


@pytest.fixture
def listed(make_thread, alice, bob):
    """120 threads: every third a conversation; bob owns the even ones."""
    now = timezone.now()
    return [
        make_thread(
            remote_id=f"{'conv' if n % 3 == 0 else 'thread'}_browse{n:04d}",
            kind=Thread.Kind.CONVERSATION if n % 3 == 0 else Thread.Kind.ASSISTANTS,
            owner=bob if n % 2 == 0 else None,
            title=f"Question {n}",
            last_activity_at=now - timedelta(minutes=n),
        )
        for n in range(120)
    ]


@pytest.fixture
def long_thread(simulator, sim_clock, sim_credential, make_thread):
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
            for i in range(45)
        ],
    )
    return make_thread(remote_id=remote["id"], credential=sim_credential, title="A long talk")


def test_signing_in_leads_to_the_page_asked_for(page, alice, listed):
    page.goto("/?kind=conversation")
    assert "/accounts/login/" in page.url
    page.fill("#id_username", "alice")
    page.fill("#id_password", "wrong")
    page.click("button[type=submit]")
    assert page.locator(".errorbox").is_visible()
    page.fill("#id_password", "alice-password")
    page.click("button[type=submit]")
    page.wait_for_selector("h1:has-text('Threads')")
    assert page.url.endswith("/?kind=conversation")
    assert all(remote_id.startswith("conv_") for remote_id in row_ids(page))


def test_filtering_and_paging_swap_the_table_push_the_url_and_the_back_button_keeps_the_filters(
    page, alice, listed
):
    sign_in(page)
    page.evaluate("window.notReloaded = true")
    page.select_option("#id_kind", "assistants_thread")
    page.wait_for_url(re.compile(r"\?kind=assistants_thread$"))
    expect(page.locator("#thread-table tbody tr")).to_have_count(50)
    assert all(remote_id.startswith("thread_") for remote_id in row_ids(page))
    page.select_option("#id_owner", "none")
    page.wait_for_url(re.compile(r"\?owner=none&kind=assistants_thread$"))
    expect(page.locator("#thread-table tbody tr")).to_have_count(40)
    page.select_option("#id_owner", "")
    page.wait_for_url(re.compile(r"\?kind=assistants_thread$"))
    expect(page.locator("#thread-table tbody tr")).to_have_count(50)

    page.click("a[rel=next]")
    page.wait_for_url(re.compile(r"kind=assistants_thread&after="))
    expect(page.locator("#thread-table tbody tr")).to_have_count(30)
    # 80 Assistants threads, newest first: the second page starts with the 51st.
    assert row_ids(page)[0] == "thread_browse0076"
    assert page.evaluate("window.notReloaded") is True  # only the table was swapped

    page.go_back()
    page.wait_for_url(re.compile(r"\?kind=assistants_thread$"))
    expect(page.locator("#thread-table tbody tr")).to_have_count(50)
    assert row_ids(page)[0] == "thread_browse0001"
    assert page.input_value("#id_kind") == "assistants_thread"
    page.go_back()
    page.wait_for_url(re.compile(r"\?owner=none&kind=assistants_thread$"))
    expect(page.locator("#thread-table tbody tr")).to_have_count(40)
    assert page.input_value("#id_owner") == "none"
    page.go_forward()
    page.wait_for_url(re.compile(r"\?kind=assistants_thread$"))
    expect(page.locator("#thread-table tbody tr")).to_have_count(50)
    page.go_forward()
    page.wait_for_url(re.compile(r"after="))
    page.wait_for_selector("#thread-table a[title=thread_browse0076]")
    assert page.input_value("#id_kind") == "assistants_thread"


def test_searching_and_sorting_keep_each_other(page, alice, listed):
    sign_in(page)
    page.fill("#id_q", "question 11")
    page.wait_for_url(re.compile(r"\?q=question\+11$"))
    expect(page.locator("#thread-table tbody tr")).to_have_count(11)  # 11, 110 … 119
    page.click("th a:has-text('Title')")
    page.wait_for_url(re.compile(r"q=question\+11&sort=title"))
    expect(page.locator("#thread-table tbody td.col-id a").first).to_have_attribute(
        "title", "thread_browse0011"
    )
    page.select_option("#id_status", "active")
    page.wait_for_url(re.compile(r"q=question\+11&status=active&sort=title"))


def test_bad_filters_are_pointed_out_and_never_break_the_page(page, alice, listed):
    sign_in(page)
    page.fill("#id_inactive_days", "-3")
    page.press("#id_inactive_days", "Enter")
    assert page.evaluate("document.querySelector('#id_inactive_days').matches(':invalid')")
    assert page.url.endswith("/")  # the browser caught it; nothing was sent
    # A broken link: the server's 400 explains it in place of the table, with or without htmx.
    page.evaluate("htmx.ajax('GET', '/?after=broken', {target: '#thread-table', swap: 'outerHTML'})")
    page.wait_for_selector("#thread-table .errorbox")
    assert "This page link is broken" in page.inner_text("#thread-table")
    page.goto("/?after=broken")
    assert "This page link is broken" in page.inner_text("#thread-table .errorbox")


def test_a_thread_opens_with_its_messages_and_loads_older_ones_below(page, alice, long_thread, simulator):
    sign_in(page)
    page.click(f"text={long_thread.title}")
    page.wait_for_selector("text=message number 44")
    assert page.locator("article.entry").count() == 20
    page.click("text=Load older messages")
    page.wait_for_selector("text=message number 24")
    assert page.locator("article.entry").count() == 40
    assert page.locator("text=message number 44").count() == 1
    page.click("text=Load older messages")
    page.wait_for_selector("text=Start of the thread.")
    assert page.locator("article.entry").count() == 45
    screenshot(page, "thread-detail-wide")


def test_the_copy_button_copies_the_id(page, alice, listed):
    page.context.grant_permissions(["clipboard-read", "clipboard-write"])
    sign_in(page)
    page.click("#thread-table tbody tr:first-child button.copy")
    page.wait_for_selector("#thread-table tbody tr:first-child button.copy:has-text('Copied')")
    assert page.evaluate("navigator.clipboard.readText()") == row_ids(page)[0]


def test_editing_in_place(page, alice, bob, long_thread):
    sign_in(page)
    page.goto(f"/threads/{long_thread.pk}/")
    page.click("#thread-header a:has-text('Edit')")
    page.wait_for_selector("#thread-facts form")
    page.fill("#id_title", "Renamed talk")
    page.select_option("#id_owner", str(bob.pk))
    page.fill("#id_end_user", "acme-corp")
    page.click("#thread-facts button:has-text('Save')")
    page.wait_for_selector("#thread-facts .okbox")
    assert "acme-corp" in page.inner_text("#thread-facts") and "bob" in page.inner_text("#thread-facts")
    long_thread.refresh_from_db()
    assert (long_thread.title, long_thread.owner, long_thread.end_user) == ("Renamed talk", bob, "acme-corp")


def test_deleting_from_the_list_asks_first_then_updates_the_row(page, alice, long_thread, simulator):
    sign_in(page)
    row = page.locator(f"#thread-row-{long_thread.pk}")
    row.locator("a:has-text('Delete')").click()
    dialog = page.locator("dialog[open]")
    dialog.wait_for()
    assert long_thread.remote_id in dialog.inner_text()
    dialog.locator("a:has-text('Cancel')").click()
    page.wait_for_selector("dialog", state="detached")
    assert Thread.objects.get(pk=long_thread.pk).status == Thread.Status.ACTIVE

    row.locator("a:has-text('Delete')").click()
    page.locator("dialog[open] button.danger").click()
    page.wait_for_selector("dialog[open] .okbox")
    assert f"Deleted {long_thread.remote_id}." in page.inner_text("dialog[open]")
    page.locator("dialog[open] button:has-text('Close')").click()
    assert row.locator(".col-status .badge").inner_text() == "Deleted"
    assert row.locator("a:has-text('Delete')").count() == 0
    assert Thread.objects.get(pk=long_thread.pk).status == Thread.Status.DELETED
    assert long_thread.remote_id not in simulator.state.threads


def test_deleting_a_conversation_from_its_page_deletes_its_items_too(
    page, alice, simulator, sim_credential, make_thread
):
    remote = simulator.state.create_conversation("proj_alpha", items=[("user", "a"), ("assistant", "b")])
    thread = make_thread(remote_id=remote["id"], kind=Thread.Kind.CONVERSATION, credential=sim_credential)
    sign_in(page)
    page.goto(f"/threads/{thread.pk}/")
    page.click("#thread-header a:has-text('Delete')")
    checkbox = page.locator("dialog[open] input[name=delete_items]")
    assert checkbox.is_checked()
    screenshot(page, "delete-dialog-wide")
    page.locator("dialog[open] button.danger").click()
    page.wait_for_selector("dialog[open] .okbox")
    page.locator("dialog[open] button:has-text('Close')").click()
    # The header asks for itself again (threadChanged): it says so once that answer is in.
    expect(page.locator("#thread-status")).to_have_text("Deleted")
    assert simulator.state.stored_items(thread.remote_id) == []


def test_without_javascript_every_page_still_works(chromium, live_server, alice, long_thread, listed):
    context = chromium.new_context(java_script_enabled=False, base_url=live_server.url)
    context.set_default_timeout(TIMEOUT_MS)
    page = context.new_page()
    sign_in(page)
    page.select_option("#id_kind", "assistants_thread")
    page.click("button:has-text('Apply')")
    assert "kind=assistants_thread" in page.url
    page.click("a[rel=next]")
    assert "after=" in page.url
    page.goto(f"/threads/{long_thread.pk}/")
    page.click("text=Show messages")
    assert page.locator("article.entry").count() == 20
    page.click("text=Load older messages")
    assert page.locator("text=message number 24").count() == 1
    page.click("#thread-header a:has-text('Delete')")
    page.click("button.danger")
    assert "Deleted" in page.inner_text(".flash")
    context.close()


@pytest.mark.parametrize(("name", "viewport"), [("phone", PHONE), ("wide", WIDE)])
def test_pages_fit_the_screen_and_so_does_the_table(page, alice, listed, long_thread, name, viewport):
    page.set_viewport_size(viewport)
    page.goto("/accounts/login/")
    screenshot(page, f"login-{name}")
    sign_in(page)
    pages = {
        "list": "/",
        "detail": f"/threads/{long_thread.pk}/",
        "overview": "/overview/",
        "edit": f"/threads/{long_thread.pk}/edit/",
        "metadata": f"/threads/{long_thread.pk}/metadata/",
        "delete": f"/threads/{long_thread.pk}/delete/",
    }
    for label, url in pages.items():
        page.goto(url)
        if label == "detail":
            page.wait_for_selector("text=message number 44")
        overflow = page.evaluate(
            "document.documentElement.scrollWidth - document.documentElement.clientWidth"
        )
        screenshot(page, f"{label}-{name}")
        assert overflow <= 0, f"{label} is {overflow}px wider than a {viewport['width']}px screen"
    page.goto("/")
    scroll = page.evaluate(
        "(() => { const box = document.querySelector('.table-box');"
        " return {scroll: box.scrollWidth, client: box.clientWidth}; })()"
    )
    # A row is one line on a wide screen and a card on a phone: neither needs to scroll sideways.
    assert scroll["scroll"] <= scroll["client"] + 1, "the whole table is shown"
