"""What a person sees on the browsing pages when things go wrong or change under them (issue 10): forms
that keep their errors in place, panels that follow an action, explanations that fit the thread.

Debian's Chromium (/usr/bin/chromium) through Playwright, as in test_browser.py.
"""

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from tests.test_browser import ARTIFACTS, sign_in
from threads_app.models import Thread

pytestmark = [pytest.mark.browser, pytest.mark.integration, pytest.mark.usefixtures("no_retries")]

VIEWPORT = {"width": 1280, "height": 900}
SHOTS = ARTIFACTS / "pages"


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
    page.click("#thread-facts button:has-text('Add a row')")  # the editor shows one row at first
    keys.nth(1).wait_for()
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


def test_the_automatic_refresh_of_the_details_never_loses_an_edit_click(page, alice, talk, simulator):
    """The thread page asks the API for the thread as it opens and puts the answer in the details panel.
    An Edit clicked meanwhile must win whichever answer comes first (defect 2: when the refresh landed
    between the click and the form, the form went to the panel the refresh had just replaced, and the
    click was lost). The edit form's answer is held until the refresh has ended, the worst order."""
    simulator.config.latency_ms = 700  # the refresh is still on its way when Edit is clicked
    page.add_init_script(
        "document.addEventListener('htmx:afterRequest', e => {"
        " if (e.detail.pathInfo.requestPath.endsWith('/refresh/')) window.refreshEnded = true; });"
    )
    held = []
    page.route(
        f"**/threads/{talk.pk}/edit/",
        lambda route: held.append(route) if route.request.method == "GET" else route.continue_(),
    )
    sign_in(page)
    page.goto(f"/threads/{talk.pk}/")
    page.click("#thread-header a:has-text('Edit')")
    page.wait_for_function("() => window.refreshEnded === true")  # a function: no eval, which the CSP forbids
    assert len(held) == 1
    held[0].continue_()
    page.wait_for_selector("#thread-facts #id_title")
    assert page.url.endswith(f"/threads/{talk.pk}/")
    simulator.config.latency_ms = 0
    page.fill("#id_title", "Renamed talk")
    page.click("#thread-facts button:has-text('Save')")
    page.wait_for_selector("#thread-facts .okbox")
    talk.refresh_from_db()
    assert talk.title == "Renamed talk"


@pytest.fixture
def admin(alice):
    alice.is_staff = True
    alice.save()
    return alice


def test_after_an_import_the_newest_threads_link_lists_them_first(
    page, admin, simulator, sim_credential, make_thread
):
    make_thread(title="Old one", last_activity_at=datetime(2030, 1, 1, tzinfo=UTC))  # the most active
    remote = [simulator.state.create_thread("proj_alpha")["id"] for _ in range(3)]
    sign_in(page)
    page.goto("/threads/import/")
    page.select_option("#id_credential", str(sim_credential.pk))
    page.fill("#id_text", "\n".join(remote))
    page.click("button:has-text('Import')")
    page.click("a:has-text('See the newest threads')")
    page.wait_for_selector("#thread-table tbody tr")
    assert page.locator("#thread-table .errorbox").count() == 0
    shown = page.eval_on_selector_all(  # the whole IDs (the cells shorten them)
        "#thread-table tbody td.col-id a", "links => links.map(a => a.title)"
    )
    assert sorted(shown[:3]) == sorted(remote)


def test_paging_a_history_to_its_start_updates_the_message_count_in_the_details_and_the_list(
    page, alice, simulator, sim_clock, sim_credential, make_thread
):
    base = datetime(2026, 6, 1, 9, tzinfo=UTC)
    remote = simulator.state.create_thread(
        "proj_alpha",
        created_at=base,
        messages=[
            ("user", f"message number {i}", {"created_at": base + timedelta(minutes=i)}) for i in range(49)
        ],
    )
    thread = make_thread(remote_id=remote["id"], credential=sim_credential, title="Long", message_count=4)
    sign_in(page)
    page.goto(f"/threads/{thread.pk}/")
    page.wait_for_selector("text=message number 48")
    page.click("text=Load older messages")
    page.wait_for_selector("text=message number 28")
    page.click("text=Load older messages")
    page.wait_for_selector("text=Start of the thread.")
    assert page.inner_text("#thread-message-count") == "49"
    page.goto("/")
    assert page.locator(f"#thread-row-{thread.pk} td.col-num").inner_text() == "49"


def test_the_details_keep_the_count_that_the_first_page_of_messages_found(page, alice, talk):
    """The details' refresh and the first page of messages are asked for together as the page opens; the
    refresh, read before the messages counted the thread, must not put "not counted yet" back."""
    page.add_init_script(
        "document.addEventListener('htmx:afterRequest', e => {"
        " if (e.detail.pathInfo.requestPath.endsWith('/refresh/')) window.refreshEnded = true; });"
    )
    sign_in(page)
    page.goto(f"/threads/{talk.pk}/")
    page.wait_for_selector("text=Start of the thread.")
    page.wait_for_function("() => window.refreshEnded === true")  # a function: no eval, which the CSP forbids
    assert page.inner_text("#thread-message-count") == "5"


def test_exporting_a_thread_the_api_no_longer_has_shows_why_instead_of_downloading_a_page(
    page, alice, talk, simulator, make_thread, sim_credential
):
    gone = make_thread(remote_id="thread_goneforgood00000000001", credential=sim_credential, title="Gone")
    downloads = []
    page.on("download", lambda download: downloads.append(download))
    sign_in(page)
    page.goto(f"/threads/{gone.pk}/")
    page.click("#thread-header a:has-text('Export JSON')")
    page.wait_for_selector(".flash .error")
    assert "Export failed. The API no longer finds this thread" in page.inner_text(".flash")
    assert downloads == []

    page.goto(f"/threads/{talk.pk}/")
    with page.expect_download() as download:
        page.click("#thread-header a:has-text('Export Markdown')")
    assert download.value.suggested_filename == f"{talk.remote_id}.md"
    assert "message number 4" in Path(download.value.path()).read_text()


def test_a_refused_page_is_styled_and_says_why_and_a_refused_request_says_it_above_the_page(
    page, bob, demo_debug
):
    sign_in(page, "bob", "bob-password")  # a member
    page.goto("/credentials/")
    assert page.locator("h1").inner_text() == "You can’t do this here"
    assert "Only admins and auditors can see credentials" in page.inner_text("[data-problem]")
    assert page.locator("header.topbar nav").is_visible()
    page.screenshot(path="/tmp/pages-shots/403-1280.png")
    page.goto("/")
    page.evaluate("htmx.ajax('GET', '/credentials/', {target: '#thread-table', swap: 'outerHTML'})")
    page.wait_for_selector("#problem:not([hidden])")
    assert "Only admins and auditors can see credentials" in page.inner_text("#problem")
    assert page.locator("#thread-table").count() == 1 and page.locator("h1").inner_text() == "Threads"


def test_deleting_from_the_thread_page_updates_its_history_and_messages_without_a_reload(
    page, alice, talk, simulator
):
    sign_in(page)
    page.goto(f"/threads/{talk.pk}/")
    page.wait_for_selector("text=message number 4")
    page.wait_for_selector("#thread-history :text('No changes since it was added.')")  # it loaded itself
    page.evaluate("window.notReloaded = true")
    page.click("#thread-header a:has-text('Delete')")
    page.locator("dialog[open] button.danger").click()
    page.wait_for_selector("dialog[open] .okbox")
    page.locator("dialog[open] button:has-text('Close')").click()
    page.wait_for_selector("#thread-history li:has-text('Deleted')")
    assert "No changes since it was added." not in page.inner_text("#thread-history")
    page.wait_for_selector("#messages article.entry", state="detached")
    assert "deleted, so the API is not asked for its messages" in page.inner_text("#messages")
    page.wait_for_selector("#thread-status:has-text('Deleted')")  # the header asked for itself again
    assert page.evaluate("window.notReloaded") is True


def test_the_404_explanation_says_what_applies_to_the_kind_and_the_history(
    page, alice, sim_credential, make_thread
):
    conversation = make_thread(
        remote_id="conv_gone000000000000001", kind="conversation", credential=sim_credential
    )
    deleted = make_thread(remote_id="thread_gone000000000000001", credential=sim_credential)
    deleted.set_status("deleted", by=alice, reason="Deleted through the API")
    sign_in(page)
    page.goto(f"/threads/{conversation.pk}/")
    page.wait_for_selector("#messages .errorbox")
    said = page.inner_text("#messages .errorbox")
    assert "deleted outside Threadsite or created under another project than proj_alpha" in said
    assert "60 days" not in said and "sunset" not in said
    page.goto(f"/threads/{deleted.pk}/")
    page.click("text=Ask anyway")
    page.wait_for_selector("#messages .errorbox")
    said = page.inner_text("#messages .errorbox")
    assert "Threadsite deleted it on" in said and "by alice" in said
    assert "60 days" not in said and "another project" not in said
    assert page.locator("#messages button:has-text('Look under the other credentials')").count() == 0
    page.screenshot(path="/tmp/pages-shots/404-explained-1280.png")


def test_a_broken_load_older_link_offers_the_newest_messages_not_a_retry_that_cannot_work(page, alice, talk):
    sign_in(page)
    page.goto(f"/threads/{talk.pk}/?show=messages&after=msg_doesnotexist123#messages")
    box = page.locator("#messages .errorbox")
    assert "The messages could not be loaded." in box.inner_text()
    assert box.locator("text=Retry").count() == 0
    box.locator("a:has-text('Show the newest messages')").click()
    page.wait_for_selector("text=message number 4")


def test_saving_on_the_standalone_edit_page_leads_back_to_the_thread(page, alice, talk):
    sign_in(page)
    page.goto(f"/threads/{talk.pk}/edit/")
    page.fill("#id_title", "Renamed on its own page")
    page.click("#thread-facts button:has-text('Save')")
    page.wait_for_url(f"**/threads/{talk.pk}/")
    assert page.locator("#thread-header h1").inner_text() == "Renamed on its own page"
    assert "Saved." in page.inner_text(".flash")
    page.goto(f"/threads/{talk.pk}/metadata/")
    page.click("#thread-facts a:has-text('Cancel')")
    page.wait_for_url(f"**/threads/{talk.pk}/")
    assert page.locator("#thread-header").is_visible()


AMBER = "rgb(255, 250, 235)"  # --warn-bg


def test_checks_that_found_nothing_are_reported_in_amber(page, admin, simulator, sim_credential):
    sign_in(page)
    page.goto("/threads/add/")
    page.fill("#id_remote_id", "thread_unknown00000000000001")
    page.select_option("#id_credential", str(sim_credential.pk))
    page.click("main button[type=submit]")
    notice = page.locator(".flash li").first
    assert "does not find it" in notice.inner_text()
    assert notice.evaluate("e => getComputedStyle(e).backgroundColor") == AMBER

    page.goto("/threads/import/")
    page.select_option("#id_credential", str(sim_credential.pk))
    page.fill(
        "#id_text", "thread_unknown00000000000002\nthread_unknown00000000000003\nthread_unknown00000000000004"
    )
    page.click("button:has-text('Import')")
    page.wait_for_selector("#import-result .warnbox")
    assert "the API found none of them" in page.inner_text("#import-result")
    screenshot_both(page, "import-none-found")

    page.goto("/credentials/add/")
    page.fill("#id_name", "unreachable")
    page.fill("#id_base_url", "http://127.0.0.1:9/v1")
    page.fill("#id_api_key", "sk-test-unreachable-0000")
    page.click("main button[type=submit]")
    notice = page.locator(".flash li").first
    assert "Could not verify the key" in notice.inner_text()
    assert notice.evaluate("e => getComputedStyle(e).backgroundColor") == AMBER


def test_an_admin_forgets_a_thread_that_is_not_active_after_confirming(
    page, admin, sim_credential, make_thread
):
    missing = make_thread(
        remote_id="thread_forgetme0000000000001", credential=sim_credential, status="missing"
    )
    active = make_thread(remote_id="thread_keepme00000000000001", credential=sim_credential)
    sign_in(page)
    page.goto(f"/threads/{active.pk}/")
    assert page.locator("#thread-header a:has-text('Forget')").count() == 0
    page.goto(f"/threads/{missing.pk}/")
    page.click("#thread-header a:has-text('Forget')")
    dialog = page.locator("dialog[open]")
    dialog.wait_for()
    assert missing.remote_id in dialog.inner_text() and "The API is not asked" in dialog.inner_text()
    screenshot_both(page, "forget-dialog")
    dialog.locator("a:has-text('Cancel')").click()
    page.wait_for_selector("dialog", state="detached")
    assert Thread.objects.filter(pk=missing.pk).exists()
    page.click("#thread-header a:has-text('Forget')")
    page.locator("dialog[open] button.danger").click()
    page.wait_for_url("**/")
    assert f"Forgot {missing.remote_id}" in page.inner_text(".flash")
    assert not Thread.objects.filter(pk=missing.pk).exists()


def screenshot_both(page, name):
    """The page as it is, at 1280 px and at 390 px, for a person to look at."""
    SHOTS.mkdir(parents=True, exist_ok=True)
    size = page.viewport_size
    for width in (1280, 390):
        page.set_viewport_size({"width": width, "height": 900})
        page.screenshot(path=SHOTS / f"{name}-{width}.png", full_page=True)
    page.set_viewport_size(size)


def test_citation_markers_become_footnotes_naming_the_file(
    page, alice, simulator, sim_clock, sim_credential, make_thread
):
    marker, hostile = "【7:1†policies.md】", "【4:0†<img src=x onerror=alert(1)>.pdf】"
    text = f"Refunds take 14 days{marker}. Returns need a receipt{hostile}{marker}."
    content = [
        {
            "type": "text",
            "text": {
                "value": text,
                "annotations": [
                    {
                        "type": "file_citation",
                        "text": marker,
                        "start_index": text.index(marker),
                        "end_index": text.index(marker) + len(marker),
                        "file_citation": {"file_id": "file-policies123"},
                    }
                ],
            },
        }
    ]
    remote = simulator.state.create_thread("proj_alpha", messages=[("assistant", "", {"content": content})])
    thread = make_thread(remote_id=remote["id"], credential=sim_credential)
    sign_in(page)
    page.goto(f"/threads/{thread.pk}/")
    page.wait_for_selector("article.entry")
    shown = page.inner_text("article.entry .part.text")
    assert "【" not in shown and "†" not in shown
    assert page.locator("article.entry .part.text sup").all_inner_texts() == ["[1]", "[2]", "[1]"]
    notes = page.locator("article.entry ol.footnotes li").all_inner_texts()
    assert notes[0].startswith("policies.md") and "file-policies123" in notes[0]
    assert notes[1] == "<img src=x onerror=alert(1)>.pdf"
    assert page.locator("article.entry img").count() == 0
    screenshot_both(page, "citations")


def test_pages_ask_for_no_missing_favicon(page, alice, talk, caplog):
    missing = []
    page.on("response", lambda response: response.status == 404 and missing.append(response.url))
    sign_in(page)
    page.goto(f"/threads/{talk.pk}/")
    page.wait_for_selector("text=message number 4")
    icon = page.evaluate(
        "document.querySelector('link[rel=icon]') && document.querySelector('link[rel=icon]').href"
    )
    assert icon and page.request.get(icon).status == 200
    assert page.request.get("/favicon.ico").status == 200
    assert missing == []
    assert "favicon" not in caplog.text
