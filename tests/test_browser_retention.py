"""Retention in headless Chromium: an admin switches a credential's policy to delete, the sweep's first
preview waits on the credential's page, the admin confirms it on the job's page and exactly the threads
past the window go; a pin on the thread page keeps one. The list says of each row when it goes.

Screenshots at 1280 and 390 px land in /tmp/shots/retention-*.png for a person to look at: the credential
page, the thread's facts, the list, the overview's "Going soon" card and a large import's progress.
"""

import re
from datetime import timedelta

import pytest
from django.core.cache import cache
from django.utils import timezone

from tests.browsers import DESKTOP, PHONE
from tests.conftest import make_user
from tests.test_browser_jobs import fits, shoot, sign_in_as_admin
from threads_app import importing, sweeps
from threads_app.models import DeletionJob, ImportRun, Thread

pytestmark = [pytest.mark.browser, pytest.mark.integration, pytest.mark.usefixtures("no_retries")]
VIEWPORT = DESKTOP

VIEWPORTS = [("wide", DESKTOP), ("phone", PHONE)]


@pytest.fixture
def admin(db):
    return make_user("root", "admin")


@pytest.fixture(autouse=True)
def fresh_overview():
    # The overview keeps its figures for a minute in the process's cache, which outlives each test's rows.
    cache.clear()
    yield
    cache.clear()


@pytest.fixture
def retained(simulator, sim_credential):
    """Threads the simulator serves, created and last active `days` ago: four conversations past a 60-day
    window, one to be pinned, one on legal hold, two recent, one close to the window and an Assistants
    thread (which a compatible server expires after 60 days)."""

    def make(days, title, kind=Thread.Kind.CONVERSATION, metadata=None):
        created = timezone.now() - timedelta(days=days, hours=1)
        state = simulator.state
        if kind == Thread.Kind.CONVERSATION:
            remote = state.create_conversation(
                "proj_alpha", created_at=created, metadata=metadata, items=[("user", "hi")]
            )
        else:
            remote = state.create_thread("proj_alpha", created_at=created, metadata=metadata)
        return Thread.objects.create(
            remote_id=remote["id"],
            kind=kind,
            credential=sim_credential,
            title=title,
            remote_created_at=created,
            last_activity_at=created,
            metadata=metadata or {},
        )

    return {
        "old": [make(90, f"Old conversation {n}") for n in range(4)],
        "pinned": make(90, "Old, but pinned"),
        "held": make(90, "Old, on legal hold", metadata={"legal_hold": "true"}),
        "recent": [make(10, f"Recent conversation {n}") for n in range(2)],
        "close": make(55, "Close to the window"),
        "assistants": make(40, "An Assistants thread", kind=Thread.Kind.ASSISTANTS),
    }


def open_thread(page, thread):
    """The thread's page, once it has refreshed its facts from the API (a POST on load that swaps them)."""
    page.goto(f"/threads/{thread.pk}/")
    page.wait_for_load_state("networkidle")


def row_line(page, thread) -> str:
    """What the list's row of `thread` says of when it goes ("" if nothing)."""
    line = page.locator(f"#thread-row-{thread.pk} .removal")
    return line.inner_text().replace("\xa0", " ").strip() if line.count() else ""


@pytest.mark.parametrize(("name", "viewport"), VIEWPORTS)
def test_an_admin_sets_a_policy_confirms_its_first_preview_and_exactly_the_old_threads_go(
    page, admin, retained, simulator, sim_credential, name, viewport
):
    page.set_viewport_size(viewport)
    sign_in_as_admin(page)

    # Pinning on the thread page: the button flips, and the facts say the thread is kept.
    pinned = retained["pinned"]
    open_thread(page, pinned)
    assert "Kept until deleted: no expiry, no retention policy" in page.inner_text("#thread-facts")
    page.click("#thread-facts button:has-text('Pin (keep)')")
    page.wait_for_selector("#thread-facts button:has-text('Unpin')")
    assert "Pinned: no retention policy removes it" in page.inner_text("#thread-facts")
    page.wait_for_load_state("networkidle")
    page.locator("#thread-facts").screenshot(path=f"/tmp/shots/retention-thread-pinned-{name}.png")
    assert Thread.objects.get(pk=pinned.pk).pinned

    # The credential's page: delete after 60 days, legal holds kept.
    page.goto(f"/credentials/{sim_credential.pk}/")
    page.check("input[name=mode][value=delete]")
    page.fill("input[name=window_days]", "60")
    page.fill("textarea[name=exempt_metadata]", "legal_hold=true")
    page.click("button:has-text('Save the policy')")
    page.wait_for_selector(".flash li:has-text('Retention policy of alpha')")
    state = page.inner_text(".policy-state")
    assert "Delete after 60 days · 4 threads past the window, 1 more within 7 days, 2 exempt." in state
    assert "The next sweep only previews what it would delete" in state
    shoot(page, f"retention-credential-{name}")
    assert fits(page) <= 0

    # The sweep, as beat would run it: its first job only previews.
    [job] = sweeps.run("retention").jobs
    assert (job.state, job.total) == (DeletionJob.State.AWAITING, 4)
    assert not any(method == "DELETE" for method, _, _ in simulator.state.request_log)

    page.reload()
    link = page.locator("a:has-text('Review the first preview (4 threads) and confirm it')")
    link.wait_for()
    shoot(page, f"retention-credential-awaiting-{name}")
    link.click()
    page.wait_for_url(re.compile(rf"/jobs/{job.pk}/$"))
    assert page.inner_text("#job-state") == "Awaiting confirmation"
    page.click("#job-progress button:has-text('Confirm and delete 4 threads')")
    page.wait_for_selector("#job-state:has-text('Finished')")
    assert "4 of 4 done (100%)" in page.inner_text("#job-progress")
    assert page.inner_text("#job-progress .count-deleted strong") == "4"
    shoot(page, f"retention-job-finished-{name}")
    assert fits(page) <= 0

    gone = {thread.pk for thread in retained["old"]}
    assert set(Thread.objects.filter(status=Thread.Status.DELETED).values_list("pk", flat=True)) == gone
    assert Thread.objects.filter(status=Thread.Status.ACTIVE).count() == 6
    kept = [retained["pinned"], retained["held"], *retained["recent"], retained["close"]]
    served = {remote_id for remote_id, record in simulator.state.conversations.items() if not record.deleted}
    assert {thread.remote_id for thread in kept} <= served
    assert not {thread.remote_id for thread in retained["old"]} & served

    # The list: each row says when it goes, or why it is kept, in a few words.
    page.goto("/")
    page.wait_for_selector(f"#thread-row-{retained['held'].pk}")
    assert row_line(page, retained["held"]) == "Kept: metadata legal_hold=true"
    assert row_line(page, retained["pinned"]) == "Kept: pinned"
    assert row_line(page, retained["recent"][0]) == "Deleted in ~49 d"
    assert row_line(page, retained["close"]) == "Deleted in ~4 d"
    assert row_line(page, retained["assistants"]) == "Expires in ~19 d"
    assert row_line(page, retained["old"][0]) == ""
    line = page.locator(f"#thread-row-{retained['close'].pk} .removal")
    assert line.get_attribute("title") == "Deleted by the retention policy in about 4 days without activity"
    # On a phone the table scrolls sideways inside its box: this is the view of someone who scrolled.
    line.scroll_into_view_if_needed()
    shoot(page, f"retention-list-{name}", full_page=False)
    assert fits(page) <= 0

    # A recent thread's facts, and the pinned one unpinned: the next sweep takes it.
    open_thread(page, retained["recent"][0])
    facts = page.inner_text("#thread-facts")
    assert "Deleted by the retention policy in about 49 days without activity" in facts
    page.locator("#thread-facts").screenshot(path=f"/tmp/shots/retention-thread-{name}.png")
    open_thread(page, pinned)
    page.click("#thread-facts button:has-text('Unpin')")
    page.wait_for_selector("#thread-facts button:has-text('Pin (keep)')")
    assert "Past the 60-day retention window: the next sweep deletes it" in page.inner_text("#thread-facts")
    shoot(page, f"retention-thread-unpinned-{name}")
    assert fits(page) <= 0

    # The overview's "Going soon" card counts what the rows say.
    page.goto("/overview/")
    card = page.locator("section.expiry")
    text = card.inner_text()
    assert re.search(r"1\s+within 7 days", text) and re.search(r"2\s+within 30 days", text)
    assert re.search(r"1\s+past their window", text)  # the unpinned one
    card.screenshot(path=f"/tmp/shots/retention-overview-card-{name}.png")
    shoot(page, f"retention-overview-{name}", full_page=False)
    assert fits(page) <= 0


@pytest.mark.parametrize(("name", "viewport"), VIEWPORTS)
def test_a_large_imports_progress_and_report(page, admin, sim_credential, settings, name, viewport):
    settings.IMPORT_INLINE_BYTES = 200
    page.set_viewport_size(viewport)
    sign_in_as_admin(page)

    # A run a worker is still importing: its progress, as the page polls it.
    running = ImportRun.objects.create(
        credential=sim_credential, added_by=admin, text="x" * 300_000, size=300_000, state="running"
    )
    cache.set(importing.progress_key(running.pk), (1_200, 3_000), timeout=600)
    page.goto(f"/threads/import/{running.pk}/")
    page.wait_for_selector("#import-run:has-text('1,200 of 3,000 IDs registered')")
    shoot(page, f"retention-import-running-{name}")
    assert fits(page) <= 0
    ImportRun.objects.filter(pk=running.pk).update(state="failed", errors=["Stopped by the test."])

    # A real one, through the form: kept, imported in the background, and its report.
    text = "\n".join(f"conv_{n:048x}" for n in range(40)) + "\nrun_abcdef123\nconv_" + "0" * 48 + "\n"
    page.goto("/threads/import/")
    shoot(page, f"retention-import-form-{name}")
    page.select_option("select[name=credential]", str(sim_credential.pk))
    page.fill("textarea[name=text]", text)
    page.click("#import-panel button:has-text('Import')")
    page.wait_for_url(re.compile(r"/threads/import/\d+/$"))
    page.wait_for_selector("#import-run h2:has-text('Imported 40 threads')")
    report = page.inner_text("#import-run")
    assert "1 duplicate in the input" in report and "run_abcdef123 is a run" in report
    shoot(page, f"retention-import-finished-{name}")
    assert fits(page) <= 0
