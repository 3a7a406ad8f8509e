"""Bulk deletion in headless Chromium: ticking rows, the selection cleared by a filter change, the preview
and its typed count, and the job's page following the job to its end; screenshots at phone and desktop
widths land in /tmp/shots/ for a person to look at."""

import re
from pathlib import Path

import pytest
from django.utils import timezone
from playwright.sync_api import expect

from tests.browsers import DESKTOP, PHONE
from tests.conftest import make_user
from threads_app import deletion
from threads_app.models import DeletionJob, Thread

pytestmark = [pytest.mark.browser, pytest.mark.integration, pytest.mark.usefixtures("no_retries")]
VIEWPORT = DESKTOP

SHOTS = Path("/tmp/shots")


@pytest.fixture
def admin(db):
    return make_user("root", "admin")


@pytest.fixture
def served(simulator, sim_credential):
    """Eight threads the simulator serves: six Assistants threads, then two conversations."""
    state = simulator.state
    threads = []
    for n in range(6):
        remote = state.create_thread("proj_alpha", messages=[("user", f"hello {n}")])
        threads.append(
            Thread.objects.create(
                remote_id=remote["id"],
                kind=Thread.Kind.ASSISTANTS,
                credential=sim_credential,
                title=f"Support question {n}",
            )
        )
    for n in range(2):
        remote = state.create_conversation("proj_alpha", items=[("user", "a"), ("assistant", "b")])
        threads.append(
            Thread.objects.create(
                remote_id=remote["id"],
                kind=Thread.Kind.CONVERSATION,
                credential=sim_credential,
                title=f"Conversation {n}",
            )
        )
    return threads


def sign_in_as_admin(page):
    page.goto("/accounts/login/")
    page.fill("#id_username", "root")
    page.fill("#id_password", "root-password")
    page.click("button[type=submit]")
    page.wait_for_selector("h1:has-text('Threads')")


def shoot(page, name, *, full_page=True):
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=SHOTS / f"{name}.png", full_page=full_page)


def ticked(page) -> int:
    return page.evaluate("document.querySelectorAll('input[name=ids]:checked').length")


def fits(page) -> int:
    return page.evaluate("document.documentElement.scrollWidth - document.documentElement.clientWidth")


def tick(page, thread):
    page.check(f"#thread-row-{thread.pk} input[name=ids]")


def test_a_filter_change_clears_the_selection(page, admin, served):
    sign_in_as_admin(page)
    bar = page.locator("[data-selection-bar]")
    assert bar.is_hidden()
    tick(page, served[0])
    tick(page, served[6])
    bar.wait_for(state="visible")
    assert "2 selected" in bar.inner_text()
    assert "Select all 8 threads" in bar.inner_text()

    page.select_option("#id_kind", "conversation")
    page.wait_for_url(re.compile(r"\?kind=conversation$"))
    expect(page.locator("#thread-table tbody tr")).to_have_count(2)
    assert ticked(page) == 0 and bar.is_hidden()
    # The conversation ticked before is shown again, unticked: the filter took the tick away.
    assert not page.is_checked(f"#thread-row-{served[6].pk} input[name=ids]")

    # "Select every thread on this page", then a search: cleared again.
    page.check("[data-select-page]")
    assert ticked(page) == 2 and "Select all 2 matching this filter" in bar.inner_text()
    page.fill("#id_q", "Conversation 1")
    expect(page.locator("#thread-table tbody tr")).to_have_count(1)
    assert ticked(page) == 0 and bar.is_hidden() and not page.is_checked("[data-select-page]")

    # Sorting by a column swaps the table too.
    page.fill("#id_q", "")
    expect(page.locator("#thread-table tbody tr")).to_have_count(2)
    tick(page, served[7])
    page.click("th a:has-text('Title')")
    page.wait_for_url(re.compile(r"sort=title"))
    expect(page.locator("#thread-table")).not_to_have_class(re.compile(r"\bhtmx-request\b"))
    assert ticked(page) == 0 and bar.is_hidden()


@pytest.mark.parametrize(("name", "viewport"), [("wide", DESKTOP), ("phone", PHONE)])
def test_ticked_rows_are_previewed_confirmed_and_deleted(page, admin, served, simulator, name, viewport):
    page.set_viewport_size(viewport)
    sign_in_as_admin(page)
    chosen = [served[1], served[6]]
    for thread in chosen:
        tick(page, thread)
    page.locator("[data-selection-bar]").wait_for(state="visible")
    # The bar sticks to the bottom of the screen while the table scrolls past; at the end it rests below.
    shoot(page, f"list-selection-{name}", full_page=False)
    page.evaluate("window.scrollTo(0, document.body.scrollHeight)")
    shoot(page, f"list-selection-end-{name}", full_page=False)
    assert fits(page) <= 0

    page.click("[data-selection-bar] button:has-text('Delete selected')")
    page.wait_for_selector("h2:has-text('2 threads would be deleted')")
    assert "2 threads picked in the list" in page.inner_text("main")
    assert page.is_checked("input[name=delete_items]")
    shoot(page, f"preview-{name}")
    assert fits(page) <= 0

    page.fill("input[name=confirm_count]", "3")
    page.click("button:has-text('Start deleting')")
    page.wait_for_selector("#id_confirm_count + .field-error, .field-error")
    assert "You typed 3, but the selection holds 2 threads." in page.inner_text("main")
    assert not DeletionJob.objects.exists()

    page.fill("input[name=confirm_count]", "2")
    page.click("button:has-text('Start deleting')")
    page.wait_for_url(re.compile(r"/jobs/\d+/$"))
    page.wait_for_selector("#job-state:has-text('Finished')")
    assert "2 of 2 done (100%)" in page.inner_text("#job-progress")
    shoot(page, f"job-finished-{name}")
    assert fits(page) <= 0

    job = DeletionJob.objects.get()
    assert job.deleted == 2
    assert set(Thread.objects.filter(status=Thread.Status.DELETED)) == set(chosen)
    assert served[1].remote_id not in simulator.state.threads
    assert served[0].remote_id in simulator.state.threads


def test_the_job_page_follows_the_job_until_it_ends(page, admin, served):
    job = deletion.create_job(Thread.objects.all(), requested_by=admin, summary="Every thread", start=False)
    sign_in_as_admin(page)
    page.goto(f"/jobs/{job.pk}/")
    assert page.inner_text("#job-state") == "Queued"
    assert "Started\nnot yet" in page.inner_text("#job-progress")
    with page.expect_request(lambda request: request.url.endswith(f"/jobs/{job.pk}/")):
        pass  # the progress polls itself while the job is unfinished

    deletion.run_job(job.pk)  # a worker, elsewhere

    page.wait_for_selector("#job-state:has-text('Finished')", timeout=5000)
    progress = page.inner_text("#job-progress")
    assert "8 of 8 done (100%)" in progress
    # What changed while the page polled is all in the polled part: no "not yet" beside "Finished".
    assert "not yet" not in page.inner_text("main")
    job.refresh_from_db()
    assert f"Started\n{timezone.localtime(job.started_at):%Y-%m-%d %H:%M:%S}" in progress
    assert page.locator("#job-progress form button:has-text('Cancel')").count() == 0
    # The last answer carries no trigger: htmx polls no more.
    assert page.get_attribute("#job-progress", "hx-trigger") is None


@pytest.mark.parametrize(("name", "viewport"), [("wide", DESKTOP), ("phone", PHONE)])
def test_failed_items_are_listed_and_retried_in_place(page, admin, served, sim_credential, name, viewport):
    sim_credential.api_key = "sk-revoked-0000-0000"
    sim_credential.concurrency = 1
    sim_credential.save()
    job = deletion.create_job(
        Thread.objects.all(), requested_by=admin, summary="Kind: Conversation", start=False, archive=True
    )
    deletion.run_job(job.pk)
    page.set_viewport_size(viewport)
    sign_in_as_admin(page)
    page.goto("/jobs/")
    shoot(page, f"job-list-{name}")
    assert fits(page) <= 0
    box = page.evaluate(
        "(() => { const b = document.querySelector('#job-table .table-scroll');"
        " return b.scrollWidth - b.clientWidth; })()"
    )
    assert box <= 0, f"the jobs are {box} px wider than their box: columns past the edge"
    if name == "phone":  # a card with no column headers: each figure says what it counts
        failed = page.locator(f"#job-row-{job.pk} td[data-label=failed]")
        assert failed.inner_text() == "8"
        assert failed.evaluate("td => getComputedStyle(td, '::after').content") == '" failed"'
    page.click(f"#job-row-{job.pk} a:has-text('Job {job.pk}')")
    page.wait_for_selector("#job-state:has-text('Failed')")
    assert page.locator(".failed-items tbody tr").count() == 8
    shoot(page, f"job-failed-{name}")
    assert fits(page) <= 0

    sim_credential.api_key = "sk-test-alpha-key-1234"
    sim_credential.save()
    page.evaluate("window.notReloaded = true")
    page.click("button:has-text('Retry failed items')")
    page.wait_for_selector("#job-state:has-text('Finished')")
    assert "Trying 8 threads again." in page.inner_text("#job-progress")
    assert page.evaluate("window.notReloaded") is True  # only the progress was swapped
    assert page.locator(".failed-items").count() == 0
