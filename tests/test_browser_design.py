"""How the pages look and whom they leave out, in headless Chromium at a laptop's 1280 px and a phone's
390 px: no page scrolls sideways, a list row is one line on the laptop and a card on the phone, and axe-core
finds no serious or critical accessibility violation on any page, the 403, 404 and 500 pages included.
Screenshots of the list, a thread page, the overview and the error pages at both widths are written to
test-artifacts/design/ (gitignored) for a person to look at.

To show these are not flaky, run them many times in a row:
    .venv/bin/pytest tests/test_browser_design.py --count 20 -p no:randomly -x
"""

from datetime import timedelta
from pathlib import Path

import pytest
from axe_playwright_python.sync_playwright import Axe
from django.utils import timezone

from tests.browsers import DESKTOP, PHONE, WIDE
from tests.conftest import make_user
from threads_app import audit, tokens, views
from threads_app.models import Credential, Thread

pytestmark = [pytest.mark.browser, pytest.mark.integration, pytest.mark.usefixtures("no_retries")]
VIEWPORT = DESKTOP

SHOTS = Path(__file__).resolve().parent.parent / "test-artifacts" / "design"
WIDTHS = [("1280", DESKTOP), ("390", PHONE)]


@pytest.fixture
def admin(db):
    return make_user("root", "admin", is_staff=True)


@pytest.fixture
def world(simulator, sim_credential, make_thread, admin, bob):
    """One thread of each kind that the simulator serves, with messages, and 60 more of every kind with
    long titles and end users: the rows that would wrap if anything could."""
    state = simulator.state
    now = timezone.now()
    # Names as long as real ones, which the pages must wrap on a phone (the ownership review's tables).
    sim_credential.name = "research-assistant-production-eu-west"
    sim_credential.save()
    long_named = Credential(
        name="customer_support_production_eu_west",
        base_url=sim_credential.base_url,
        project_id="proj_customer_support_production_eu",
    )
    long_named.api_key = "sk-test-long-named-0001"
    long_named.save()
    make_thread(credential=long_named, title="A thread of the long-named credential")
    assistants = state.create_thread(
        "proj_alpha", messages=[("user", "How do I reset my password?"), ("assistant", "Open Settings.")]
    )
    conversation = state.create_conversation("proj_alpha", items=[("user", "a"), ("assistant", "b")])
    chatkit = state.create_chatkit_thread("proj_alpha", user="user-42", items=[("user", "hi")])
    served = {
        "assistants": make_thread(
            remote_id=assistants["id"], credential=sim_credential, title="Password reset", owner=admin
        ),
        "conversation": make_thread(
            remote_id=conversation["id"],
            kind=Thread.Kind.CONVERSATION,
            credential=sim_credential,
            title="Billing question",
        ),
        "chatkit": make_thread(
            remote_id=chatkit["id"], kind=Thread.Kind.CHATKIT, credential=sim_credential, title="Widget chat"
        ),
    }
    kinds = list(Thread.Kind)
    for n in range(60):
        make_thread(
            kind=kinds[n % 3],
            credential=sim_credential,
            title=f"A customer who wrote a very long question about invoices, refunds and taxes, number {n}",
            end_user=f"enterprise-customer-with-a-long-name-{n}",
            owner=bob if n % 2 else None,
            status=list(Thread.Status)[n % 4],
            message_count=n * 7 if n % 5 else None,
            last_activity_at=now - timedelta(days=n, minutes=n),
            remote_created_at=now - timedelta(days=n + 30),
        )
    return served


def sign_in(page, username="root"):
    page.goto("/accounts/login/")
    page.fill("#id_username", username)
    page.fill("#id_password", f"{username}-password")
    page.click("button[type=submit]")
    page.wait_for_selector("h1:has-text('Threads')")


def overflow(page) -> int:
    return page.evaluate("document.documentElement.scrollWidth - document.documentElement.clientWidth")


def shoot(page, name):
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=SHOTS / f"{name}.png", full_page=True)


def pages_of(world) -> dict:
    return {
        "list": "/",
        "list-sorted-by-owner": "/?sort=owner&size=25",
        "thread-assistants": f"/threads/{world['assistants'].pk}/",
        "thread-conversation": f"/threads/{world['conversation'].pk}/",
        "thread-chatkit": f"/threads/{world['chatkit'].pk}/",
        "metadata": f"/threads/{world['assistants'].pk}/metadata/",
        "overview": "/overview/",
        "credentials": "/credentials/",
        "credential-edit": f"/credentials/{world['assistants'].credential_id}/",
        "import": "/threads/import/",
        "add": "/threads/add/",
        "reassign": f"/threads/reassign/?ids={world['assistants'].pk}",
        "ownership": "/ownership/",
        "team": "/team/",
        "audit-log": "/audit/",
        "jobs": "/jobs/",
        "tokens": "/tokens/",
    }


def settle(page, label):
    """Wait for what a page loads after it is shown (a thread's messages)."""
    if label.startswith("thread-"):
        page.wait_for_selector("#messages .message-page, #messages .errorbox")


@pytest.mark.parametrize(("width", "viewport"), WIDTHS)
def test_no_page_scrolls_sideways_and_screenshots_are_written(page, world, width, viewport):
    page.set_viewport_size(viewport)
    sign_in(page)
    for label, url in pages_of(world).items():
        page.goto(url)
        settle(page, label)
        if label in ("list", "thread-assistants", "overview", "credentials", "import"):
            shoot(page, f"{label}-{width}")
        if label == "list":  # and the rows as they fill one screen
            page.evaluate("document.querySelector('#thread-table').scrollIntoView()")
            page.screenshot(path=SHOTS / f"list-rows-{width}.png")
        assert overflow(page) <= 0, f"{label} is {overflow(page)} px wider than a {width} px screen"
    assert (SHOTS / f"list-{width}.png").stat().st_size > 10_000


def test_a_list_row_is_one_line_at_1280_px(page, world):
    sign_in(page)
    for url in ("/", "/?size=100", "/?sort=-messages"):
        page.goto(url)
        heights = page.eval_on_selector_all(
            "#thread-table tbody tr", "rows => rows.map(r => r.getBoundingClientRect().height)"
        )
        line = page.evaluate(
            "parseFloat(getComputedStyle(document.querySelector('#thread-table tbody td')).lineHeight)"
        )
        assert len(heights) >= 25
        # One line of text and the cell's padding; a second line would add another `line`.
        assert max(heights) < 2 * line, f"{url}: a row is {max(heights)} px high, a line {line} px"
        # Each cell holds its content on that one line: nothing wrapped below the first.
        wrapped = page.evaluate(
            "[...document.querySelectorAll('#thread-table tbody td')].filter("
            " td => td.scrollHeight > td.clientHeight + 1).length"
        )
        assert wrapped == 0
        assert overflow(page) <= 0


@pytest.mark.parametrize(("width", "viewport"), [("1280", DESKTOP), ("1440", WIDE)])
def test_the_overview_cards_pair_up_with_no_hole_and_show_names_whole_where_there_is_room(
    page, world, width, viewport
):
    page.set_viewport_size(viewport)
    sign_in(page)
    page.goto("/overview/")
    boxes = page.eval_on_selector_all(
        ".overview-grid > section",
        "cards => cards.map(c => { const r = c.getBoundingClientRect(); return"
        " [c.querySelector('h2').textContent, Math.round(r.left), Math.round(r.right), Math.round(r.top)] })",
    )
    grid = page.eval_on_selector(".overview-grid", "g => g.getBoundingClientRect().right")
    rows = {}
    for title, left, right, top in boxes:
        rows.setdefault(top, []).append((title, left, right))
    # Every row ends at the grid's right edge: a wide card, or two cards side by side (no hole after one).
    for cards in rows.values():
        assert abs(max(right for _, _, right in cards) - grid) <= 1, f"a hole in the row of {cards}"
    layout = [
        [title for title, _, _ in sorted(cards, key=lambda c: c[1])] for _, cards in sorted(rows.items())
    ]
    assert layout[:2] == [["Going soon"], ["By status", "By kind"]]
    # The labels' column fits the longest label (up to a share of the card): these names are not cut.
    cut = page.eval_on_selector_all(
        ".bars .bar-label", "links => links.filter(a => a.scrollWidth > a.clientWidth).map(a => a.title)"
    )
    assert not {"Assistants thread", "unassigned", "bob"} & set(cut), cut


def test_on_a_phone_each_thread_is_a_card_with_id_title_status_and_age(page, world):
    page.set_viewport_size(PHONE)
    sign_in(page)
    row = page.locator("#thread-table tbody tr").first
    for cell in ("td.col-id", "td.col-title", "td.col-status", "td.col-active"):
        assert row.locator(cell).is_visible(), cell
    for cell in ("td.col-credential", "td.col-created", "td.col-actions"):
        assert row.locator(cell).is_hidden(), cell
    box = row.bounding_box()
    assert box["width"] <= PHONE["width"] and box["height"] < 120
    # No ID is cut short by the words beside it on when the thread goes ("Expires in ~59 d").
    assert page.locator("#thread-table td.col-status .removal-compact").count() > 0
    clipped = page.evaluate(
        """[...document.querySelectorAll('#thread-table tbody td.col-id')].filter(cell => {
            const copy = cell.querySelector('button.copy');
            return cell.scrollWidth > cell.clientWidth
                || copy.getBoundingClientRect().right > cell.getBoundingClientRect().right;
        }).map(cell => cell.querySelector('code').textContent)"""
    )
    assert clipped == []
    # Sorting stays at hand: the column headers become a row of sort links.
    page.click("#thread-table thead a:has-text('Msgs')")
    page.wait_for_url("**/?sort=-messages")
    assert overflow(page) <= 0


def test_on_a_phone_each_audit_event_is_a_card_with_its_details_on_the_screen(page, world):
    for owner in ("alice", "bob", "carol"):
        audit.record(
            audit.Action.THREADS_IMPORTED,
            actor=None,
            credential="research-assistant-simulated",
            owner=owner,
            added=25,
            already_tracked=0,
            tracked_elsewhere=0,
            duplicates=0,
            refused=0,
        )
    # A conversation's ID has no break in it: as an event's object it wraps on a phone.
    audit.record(
        audit.Action.MESSAGES_VIEWED, actor=None, obj=world["conversation"], page="newest", messages=2
    )
    page.set_viewport_size(PHONE)
    sign_in(page)
    page.goto("/audit/")
    events = page.locator("#audit-events tbody tr")
    assert events.count() >= 5
    # The box of events never scrolls sideways: the details are on the screen, not past its edge.
    box = page.evaluate(
        "(() => { const b = document.querySelector('#audit-events .table-scroll');"
        " return b.scrollWidth - b.clientWidth; })()"
    )
    assert box <= 0, f"the audit log's events are {box} px wider than their box"
    card = events.filter(has_text="carol")
    shown = card.locator("td.audit-details").bounding_box()
    assert shown["x"] >= 0 and shown["x"] + shown["width"] <= PHONE["width"]
    # A card a few lines tall, not a narrow column many lines tall.
    assert card.bounding_box()["height"] < 160
    shoot(page, "audit-log-390")


def test_on_a_phone_each_person_and_token_is_a_card_with_its_actions_on_the_screen(page, world, bob, admin):
    tokens.create("capture-bot-production-eu-west", scopes=["register"], created_by=admin)
    page.set_viewport_size(PHONE)
    sign_in(page)
    for url, table in (("/team/", "table.team"), ("/tokens/", "table.tokens")):
        page.goto(url)
        # As a table, the last sign-in and the actions (a token's use and state) were past the screen's edge.
        wider = page.evaluate(
            f"(() => {{ const t = document.querySelector('{table}');"
            " return t.scrollWidth - t.parentElement.clientWidth; })()"
        )
        assert wider <= 0, f"{url}: the table is {wider} px wider than its box"
        assert overflow(page) <= 0
    page.goto("/team/")
    card = page.locator("table.team tbody tr", has_text="bob")
    for link in ("Role", "Deactivate…", "Set-password link"):
        shown = card.get_by_text(link, exact=True).bounding_box()
        assert shown["x"] >= 0 and shown["x"] + shown["width"] <= PHONE["width"], link
    label = card.locator("td[data-label='Last sign-in']").evaluate(
        "td => getComputedStyle(td, '::before').content"
    )
    assert "Last sign-in" in label
    shoot(page, "team-390")


def test_on_a_desktop_an_audit_event_quoting_a_long_id_wraps_rather_than_widen_the_log(page, world):
    conversation = world["conversation"]  # a conversation's ID: 53 characters, no break in them
    audit.record(audit.Action.MESSAGES_VIEWED, actor=None, obj=conversation, page="newest", messages=20)
    audit.record(
        audit.Action.JOB_CREATED,
        actor=None,
        threads=1,
        source="thread",
        selection=f"{conversation.remote_id}: more items than could be deleted while its page waited",
    )
    page.set_viewport_size(DESKTOP)
    sign_in(page)
    page.goto("/audit/")
    box = page.evaluate(
        "(() => { const b = document.querySelector('#audit-events .table-scroll');"
        " return b.scrollWidth - b.clientWidth; })()"
    )
    assert box <= 0, f"the audit log's events are {box} px wider than their box"
    created = page.locator("#audit-events tbody tr", has_text="Deletion job created")
    assert conversation.remote_id in created.locator("td.audit-details").inner_text().replace("\n", "")


def assert_accessible(page, label):
    results = Axe().run(page)
    assert results.response["passes"], f"axe-core checked nothing on {label}"
    bad = [
        f"{violation['id']} ({violation['impact']}): {violation['help']} — "
        + "; ".join(node["target"][0] for node in violation["nodes"][:3])
        for violation in results.response["violations"]
        if violation["impact"] in ("serious", "critical")
    ]
    assert bad == [], f"axe-core on {label}: " + " | ".join(bad)


# On a phone, the pages whose layout changes most (the list's cards, a thread page, the credentials' cards).
PHONE_AXE = ("list", "thread-assistants", "credentials", "import", "overview")


@pytest.mark.parametrize(("width", "viewport"), WIDTHS)
def test_axe_core_finds_no_serious_or_critical_violations(page, world, width, viewport):
    page.set_viewport_size(viewport)
    page.goto("/accounts/login/")
    assert_accessible(page, "the sign-in page")
    sign_in(page)
    for label, url in pages_of(world).items():
        if width == "390" and label not in PHONE_AXE:
            continue
        page.goto(url)
        settle(page, label)
        assert_accessible(page, f"{label} at {width} px")
    # With rows ticked, the selection bar is part of the page too.
    page.goto("/")
    page.locator("#thread-table tbody input[name=ids]").first.check()
    page.locator("[data-selection-bar]").wait_for(state="visible")
    assert_accessible(page, f"the list with a selection at {width} px")


@pytest.mark.parametrize(("width", "viewport"), WIDTHS)
def test_the_error_pages_pass_axe_core_too(page, world, width, viewport, monkeypatch):
    page.set_viewport_size(viewport)
    sign_in(page, "bob")  # a member: the team's page is refused to him

    def crash(*args, **kwargs):
        raise RuntimeError("a crash, on purpose")

    monkeypatch.setattr(views.overview, "summary", crash)  # the live server runs in this process
    for status, url in ((403, "/team/"), (404, "/threads/999999/"), (500, "/overview/")):
        response = page.goto(url)
        assert response.status == status, f"{url} answered {response.status}"
        assert page.locator("[data-problem]").is_visible()
        shoot(page, f"error-{status}-{width}")
        assert overflow(page) <= 0, f"the {status} page is wider than a {width} px screen"
        assert_accessible(page, f"the {status} page at {width} px")


def test_the_list_can_be_used_with_the_keyboard_alone_and_focus_is_visible(page, world):
    sign_in(page)
    page.keyboard.press("Tab")  # the first stop skips the navigation
    assert page.evaluate("document.activeElement.textContent") == "Skip to the content"
    assert page.is_visible(".skip-link")
    page.focus("#id_q")
    page.keyboard.type("number 7")
    page.wait_for_url("**/?q=number+7")
    # Tab from the search box to the first row's link, and open it with Enter.
    for _ in range(60):
        page.keyboard.press("Tab")
        focused = page.evaluate(
            "(() => { const el = document.activeElement; return {"
            " inRow: Boolean(el.closest('#thread-table tbody td.col-id')), tag: el.tagName,"
            " outline: getComputedStyle(el).outlineStyle + ' ' + getComputedStyle(el).outlineWidth}; })()"
        )
        if focused["inRow"] and focused["tag"] == "A":
            break
    else:
        pytest.fail("Tab never reached a row's link")
    assert focused["outline"].startswith("solid") and not focused["outline"].endswith(" 0px")
    page.keyboard.press("Enter")
    page.wait_for_url("**/threads/*/")


@pytest.fixture
def talk(simulator, sim_credential, make_thread):
    remote = simulator.state.create_thread(
        "proj_alpha", messages=[("user", f"message number {i}") for i in range(30)]
    )
    return make_thread(remote_id=remote["id"], credential=sim_credential, title="A long talk")


def test_the_thread_page_keeps_its_reading_order_and_refreshes_its_panels_in_place(page, admin, talk):
    sign_in(page)
    page.goto(f"/threads/{talk.pk}/")
    page.wait_for_selector("text=message number 29")
    page.click(".order-toggle a:has-text('Oldest first')")
    page.wait_for_selector(".order-toggle a[aria-current='true']:has-text('Oldest first')")
    assert page.inner_text("article.entry >> nth=0").endswith("message number 0")
    page.click("text=Load newer messages")
    page.wait_for_selector("text=message number 29")
    page.reload()  # remembered
    page.wait_for_selector("article.entry")
    assert page.inner_text("article.entry >> nth=0").endswith("message number 0")

    # An edit saved in place: the header (another panel) fetches itself again, the page does not reload.
    page.evaluate("window.notReloaded = true")
    page.click("#thread-header a:has-text('Edit')")
    page.wait_for_selector("#thread-facts form")
    page.fill("#id_title", "Renamed talk")
    page.click("#thread-facts button:has-text('Save')")
    page.wait_for_selector("#thread-header h1:has-text('Renamed talk')")
    assert page.evaluate("window.notReloaded") is True

    # The metadata editor: a row at a time, with the count.
    page.click("#thread-header a:has-text('Edit metadata')")
    page.wait_for_selector("#thread-facts form")
    page.fill("#id_key_0", "ticket")
    page.fill("#id_value_0", "ZD-7")
    page.click("button:has-text('Add a row')")
    page.wait_for_selector("#id_key_1")
    assert "1 of 16 pairs filled" in page.inner_text(".metadata-count")
    assert page.input_value("#id_key_0") == "ticket"
    page.fill("#id_key_1", "team")
    page.fill("#id_value_1", "support")
    page.click("button:has-text('Save metadata')")
    page.wait_for_selector("#thread-facts .okbox")
    talk.refresh_from_db()
    assert talk.metadata == {"ticket": "ZD-7", "team": "support"}
    assert_accessible(page, "the thread page after editing")


def test_every_thread_matching_a_filter_is_reassigned_from_the_selection_bar(page, world, bob):
    sign_in(page)
    page.goto(f"/?owner={bob.pk}&size=25")
    page.locator("#thread-table tbody input[name=ids]").first.check()
    bar = page.locator("[data-selection-bar]")
    bar.wait_for(state="visible")
    page.click("[data-select-all]")
    assert "All 30 matching this filter selected" in bar.inner_text()
    page.click("[data-selection-bar] button:has-text('Reassign owner')")
    page.wait_for_selector("h1:has-text('Reassign owner')")
    assert "30 threads" in page.inner_text("main")
    page.select_option("#id_owner", "")
    page.click("button:has-text('Reassign 30 threads')")
    page.wait_for_selector(".flash:has-text('30 threads now owned by nobody')")
    assert not Thread.objects.filter(owner=bob).exists()
