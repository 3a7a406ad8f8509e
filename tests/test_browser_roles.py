"""The three roles' main paths in headless Chromium, under the Content Security Policy: a member works on
their own thread, an auditor answers "who owns it" and "what is left of a departed user" in a few clicks,
an admin adds a person and deactivates another, handing their threads over."""

from pathlib import Path

import pytest
from playwright.sync_api import expect

from tests.browsers import DESKTOP, PHONE
from tests.conftest import make_user
from threads_app import team
from threads_app.models import Thread

pytestmark = [pytest.mark.browser, pytest.mark.integration, pytest.mark.usefixtures("no_retries")]

VIEWPORT = DESKTOP
SHOTS = Path("/tmp/roles-shots")


@pytest.fixture
def world(simulator, sim_credential, personas):
    state = simulator.state
    threads = {}
    for name, owner in (("olgas", personas["owner"]), ("sams", personas["stranger"])):
        remote = state.create_thread(
            "proj_alpha", messages=[("user", f"hello from {name}"), ("assistant", "hi")]
        )
        threads[name] = Thread.objects.create(
            remote_id=remote["id"],
            kind=Thread.Kind.ASSISTANTS,
            credential=sim_credential,
            owner=owner,
            title=f"{name} thread",
        )
    leaver = make_user("leo", "member")
    for n in range(3):
        remote = state.create_thread("proj_alpha", messages=[("user", "bye")])
        threads[f"leo{n}"] = Thread.objects.create(
            remote_id=remote["id"],
            kind=Thread.Kind.ASSISTANTS,
            credential=sim_credential,
            owner=leaver,
            title=f"leo's {n}",
        )
    team.deactivate(leaver)
    return threads


@pytest.fixture
def csp_violations(page):
    """Console errors that name the Content Security Policy: none may happen."""
    violations = []
    page.on(
        "console",
        lambda message: (
            violations.append(message.text)
            if message.type == "error" and "Content Security Policy" in message.text
            else None
        ),
    )
    yield violations
    assert violations == []


def sign_in(page, username):
    page.goto("/accounts/login/")
    page.fill("#id_username", username)
    page.fill("#id_password", f"{username}-password")
    page.click("button[type=submit]")
    page.wait_for_selector("h1:has-text('Threads')")


def look(page, name):
    """Screenshots at 1280 and 390 px, and no page wider than the screen."""
    SHOTS.mkdir(exist_ok=True)
    for label, viewport in (("1280", DESKTOP), ("390", PHONE)):
        page.set_viewport_size(viewport)
        page.screenshot(path=SHOTS / f"{name}-{label}.png", full_page=True)
        overflow = page.evaluate(
            "document.documentElement.scrollWidth - document.documentElement.clientWidth"
        )
        assert overflow <= 0, f"{name} is {overflow}px wider than {label}px"
    page.set_viewport_size(DESKTOP)


def test_a_member_works_on_their_own_threads_only(page, csp_violations, world):
    sign_in(page, "olga")
    rows = page.locator("#thread-table tbody tr")
    assert rows.count() == 1 and "olgas thread" in rows.first.inner_text()
    nav = page.inner_text("nav")
    assert "Ownership" not in nav and "Team" not in nav and "Credentials" not in nav
    page.click("text=olgas thread")
    page.wait_for_selector("text=hello from olgas")
    look(page, "member-thread")
    assert page.locator("text=Pin (keep)").count() == 0
    page.click("a:has-text('Edit')")
    page.fill("#id_title", "Olga's refund")
    assert page.locator("#id_owner").count() == 0
    page.click("button:has-text('Save')")
    page.wait_for_selector("#thread-facts .okbox")
    assert Thread.objects.get(pk=world["olgas"].pk).title == "Olga's refund"
    # Another member's thread does not exist, as far as she can tell.
    response = page.goto(f"/threads/{world['sams'].pk}/")
    assert response.status == 404


def test_an_auditor_answers_who_owns_what_without_reading_it(page, csp_violations, world):
    sign_in(page, "audrey")
    # Who owns thread X: search its ID (one step), the owner is in the row; open it for the facts.
    page.fill("#id_q", world["sams"].remote_id)
    expect(page.locator("#thread-table tbody tr")).to_have_count(1)
    assert "sam" in page.inner_text("#thread-table tbody tr")
    page.click(f"#thread-table td.col-id a[title={world['sams'].remote_id}]")
    page.wait_for_selector("#no-content")
    assert page.locator("a:has-text('Delete')").count() == 0 and page.locator("text=Export JSON").count() == 0
    assert "hello from sams" not in page.content()
    look(page, "auditor-thread")
    # Which threads of a departed user still exist: Ownership (1), the count of leo's (2).
    page.click("nav >> text=Ownership")
    departed = page.locator("#departed")
    assert "leo" in departed.inner_text()
    look(page, "auditor-ownership")
    assert page.locator("#reassign").count() == 0
    page.click("nav >> text=Credentials")
    assert (
        page.locator("text=Add credential").count() == 0
        and page.locator("button:has-text('Verify')").count() == 0
    )
    look(page, "auditor-credentials")
    page.click("nav >> text=Ownership")
    assert page.locator("#reassign").count() == 0
    departed.locator("a", has_text="3").first.click()
    page.wait_for_selector("#thread-table")
    assert page.locator("#thread-table tbody tr").count() == 3


def test_an_auditor_with_the_content_permission_reads_messages(page, csp_violations, world):
    sign_in(page, "reed")
    page.goto(f"/threads/{world['sams'].pk}/")
    page.wait_for_selector("text=hello from sams")
    assert page.locator("a:has-text('Edit')").count() == 0


def test_an_admin_adds_a_person_and_deactivates_another_handing_threads_over(page, csp_violations, world):
    sign_in(page, "ada")
    page.click("nav >> text=Team")
    look(page, "admin-team")
    page.click("text=Add a person")
    page.fill("#id_username", "newbie")
    page.check("input[name=role][value=auditor]")
    look(page, "admin-team-add")
    page.click("button:has-text('Add')")
    link = page.input_value("#set-password-link")
    assert "/accounts/reset/" in link
    look(page, "admin-team-link")
    page.goto("/team/")
    page.click("#user-" + str(world["sams"].owner_id) + " >> text=Deactivate…")
    page.select_option("#id_reassign_to", label="olga")
    look(page, "admin-deactivate")
    page.click("button:has-text('Deactivate sam')")
    page.wait_for_selector(".flash")
    assert "1 threads now belong to olga" in page.inner_text(".flash")
    assert Thread.objects.get(pk=world["sams"].pk).owner.username == "olga"
    page.click("nav >> text=Ownership")
    look(page, "admin-ownership")
    page.goto(f"/credentials/{world['olgas'].credential_id}/")
    # The members it may be limited to: olga, the only active member left.
    assert page.locator("#id_read_key").count() == 1 and page.locator("input[name=limited_to]").count() == 1
    look(page, "admin-credential")
    page.click("nav >> text=Ownership")
    page.select_option("#id_from_owner", label="leo (deactivated) · 3")
    page.select_option("#id_to_owner", label="olga")
    page.click("#reassign button:has-text('Reassign')")
    page.wait_for_selector(".flash")
    assert Thread.objects.filter(owner__username="olga").count() == 5
