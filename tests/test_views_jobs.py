"""The pages of bulk deletion: ticking rows in the list, the preview and its typed count, the job's page
with its polled progress, cancel and retry, receipts and archive, and the list of jobs (fast layer: the
simulator stands in for the API, and a job runs inline when its transaction commits)."""

import csv
import io
import json
import re
from datetime import timedelta

import pytest
from django.urls import reverse
from django.utils import timezone

from tests.conftest import make_user
from threads_app import deletion, forms, job_views
from threads_app.models import DeletionItem, DeletionJob, DeletionRun, Thread

pytestmark = pytest.mark.usefixtures("no_retries")

HTMX = {"HX-Request": "true"}
NEW = reverse("job_new")


@pytest.fixture(autouse=True)
def quick_retries(monkeypatch):
    monkeypatch.setattr(deletion, "backoff", lambda attempt: 0.0)


@pytest.fixture
def admin(db):
    return make_user("root", "admin")


@pytest.fixture
def admin_client(client, admin):
    client.force_login(admin)
    return client


@pytest.fixture
def world(simulator, sim_credential, alice):
    """Tracked and served by the simulator: three Assistants threads, then two conversations (with two
    items each) that alice owns."""
    state = simulator.state
    threads = []
    for n in range(3):
        remote = state.create_thread("proj_alpha", messages=[("user", f"hello {n}")])
        threads.append(
            Thread.objects.create(
                remote_id=remote["id"], kind=Thread.Kind.ASSISTANTS, credential=sim_credential, title=f"T{n}"
            )
        )
    for _ in range(2):
        remote = state.create_conversation("proj_alpha", items=[("user", "a"), ("assistant", "b")])
        threads.append(
            Thread.objects.create(
                remote_id=remote["id"], kind=Thread.Kind.CONVERSATION, credential=sim_credential, owner=alice
            )
        )
    return threads


def served(simulator, thread) -> bool:
    state = simulator.state
    if thread.kind == Thread.Kind.CONVERSATION:
        return thread.remote_id in state.conversations and not state.conversations[thread.remote_id].deleted
    return thread.remote_id in state.threads


def picked(*threads) -> str:
    return NEW + "?" + "&".join(f"ids={thread.pk}" for thread in threads)


def make_job(threads=None, **options) -> DeletionJob:
    """A job of the threads, made as the page would but not started."""
    return deletion.create_job(
        threads if threads is not None else Thread.objects.all(), summary="test", start=False, **options
    )


# --- Who may -------------------------------------------------------------------------------------------


def job_urls(job_pk):
    yield "get", reverse("job_list")
    yield "get", NEW + "?all=1"
    yield "post", NEW + "?all=1"
    for name in ("job_detail", "job_receipt_csv", "job_receipt_json", "job_archive"):
        yield "get", reverse(name, args=[job_pk])
    for name in ("job_cancel", "job_retry", "job_confirm"):
        yield "post", reverse(name, args=[job_pk])


@pytest.mark.parametrize("headers", [{}, HTMX])
def test_every_job_page_is_for_admins_only(client, world, bob, headers):
    job = make_job(archive=True)
    for method, url in job_urls(job.pk):
        response = getattr(client, method)(url, headers=headers)
        assert response.status_code == 302, f"anonymous {method} {url}"
        assert response["Location"].startswith(reverse("login"))
    client.force_login(bob)
    for method, url in job_urls(job.pk):
        # Pages: refused (403); a job: not found (404), so that a member never learns that one exists.
        expected = 403 if url in (reverse("job_list"), reverse("job_new") + "?all=1") else 404
        response = getattr(client, method)(url, {"confirm_count": "5"}, headers=headers)
        assert response.status_code == expected, url
    job.refresh_from_db()
    assert job.state == DeletionJob.State.QUEUED and DeletionJob.objects.count() == 1


def test_a_job_that_does_not_exist_is_404(admin_client, db):
    for name in ("job_detail", "job_receipt_csv", "job_receipt_json", "job_archive"):
        assert admin_client.get(reverse(name, args=[999999])).status_code == 404
    for name in ("job_cancel", "job_retry", "job_confirm"):
        assert admin_client.post(reverse(name, args=[999999])).status_code == 404


def test_the_jobs_link_and_the_checkboxes_are_shown_to_admins_only(client, admin, bob, world):
    world[0].owner = bob
    world[0].save()
    client.force_login(bob)
    page = client.get(reverse("thread_list")).content.decode()
    assert 'name="ids"' not in page and reverse("job_list") not in page and "data-selection-bar" not in page
    client.force_login(admin)
    page = client.get(reverse("thread_list")).content.decode()
    assert f'href="{reverse("job_list")}"' in page
    assert page.count('name="ids"') == 5 and "data-select-page" in page
    assert f'<input type="checkbox" name="ids" value="{world[0].pk}" form="selection"' in page


def test_the_list_offers_every_thread_matching_its_filters(admin_client, world):
    url = reverse("thread_list")
    for headers in ({}, HTMX):
        page = admin_client.get(url, {"kind": "conversation"}, headers=headers).content.decode()
        assert f'href="{NEW}?kind=conversation&amp;all=1"' in page
        assert "Select all 2 matching this filter" in page
        assert '<form id="selection" method="get" action="/jobs/new/">' in page
        # The bar starts hidden: site.js shows it once a row is ticked.
        assert re.search(r'<div class="selection-bar" data-selection-bar [^>]*hidden>', page)


def test_a_deleted_row_has_no_checkbox(admin_client, world):
    Thread.objects.filter(pk=world[0].pk).update(status=Thread.Status.DELETED)
    page = admin_client.get(reverse("thread_list")).content.decode()
    assert page.count('name="ids"') == 4 and f'name="ids" value="{world[0].pk}"' not in page


# --- The preview ---------------------------------------------------------------------------------------


def test_the_preview_counts_and_splits_the_selection(admin_client, world):
    response = admin_client.get(NEW, {"all": "1"})
    page = response.content.decode()
    assert response.status_code == 200
    assert "5 threads would be deleted" in page
    assert re.search(r"<span>alpha</span> <strong>5</strong>", page)
    assert re.search(r"<span>alice</span> <strong>2</strong>", page)
    assert re.search(r'<span class="muted">unassigned</span></span> <strong>3</strong>', page)
    assert re.search(r"<span>Assistants thread</span> <strong>3</strong>", page)
    assert re.search(r"<span>Conversation</span> <strong>2</strong>", page)
    for thread in world:
        assert f'href="{reverse("thread_detail", args=[thread.pk])}"' in page
    assert "Every thread" in page and "No filter is set" in page
    # Conversations are present: their items' option is offered, on by default.
    assert re.search(r'<input type="checkbox" name="delete_items"[^>]* checked', page)
    assert 'name="archive"' in page and 'name="verify_all"' in page and 'name="confirm_count"' in page


def test_the_preview_of_ticked_rows_leaves_out_what_is_gone_and_offers_items_only_for_conversations(
    admin_client, world
):
    Thread.objects.filter(pk=world[1].pk).update(status=Thread.Status.DELETED)
    page = admin_client.get(picked(world[0], world[1], world[2])).content.decode()
    assert "2 threads would be deleted" in page
    assert "3 threads picked in the list" in page
    assert "1 of the 3 ticked threads is left out" in page
    assert 'name="delete_items"' not in page


def test_the_preview_names_the_filters_in_words(admin_client, world):
    page = admin_client.get(NEW, {"kind": "conversation", "inactive_days": "0", "all": "1"}).content.decode()
    assert "Kind: Conversation · Inactive for more than 0 days" in page


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ("", "Nothing is selected"),
        ("?ids=abc", "not a list of row numbers"),
        ("?ids=-1", "not a list of row numbers"),
        ("?ids=1.5", "not a list of row numbers"),
        ("?ids=99999999999999999999999", "not a list of row numbers"),
        ("?ids=1&all=1", "not both"),
        ("?all=yes", "all=1, or leave it out"),
        ("?all=1&inactive_days=-3", "Inactive for more than"),
        ("?all=1&after=broken", "This page link is broken"),
        ("?all=1&owner=someone", "Choose an owner"),
    ],
)
@pytest.mark.parametrize("method", ["get", "post"])
def test_a_bad_selection_is_explained_with_a_400(admin_client, world, query, message, method):
    # (The test client's GET would replace the query string with its data.)
    data = {"confirm_count": "5"} if method == "post" else None
    response = getattr(admin_client, method)(NEW + query, data)
    assert response.status_code == 400
    assert message in response.content.decode()
    assert not DeletionJob.objects.exists()


def test_too_many_ticked_rows_point_to_select_all(admin_client, db):
    query = "&".join(f"ids={n}" for n in range(1, forms.MAX_PICKED_IDS + 2))
    response = admin_client.get(f"{NEW}?{query}")
    assert response.status_code == 400
    assert "Use “Select all matching this filter” instead" in response.content.decode()


def test_ticked_ids_are_scoped_to_the_threads_that_exist(admin_client, world):
    page = admin_client.get(f"{NEW}?ids={world[0].pk}&ids=999999").content.decode()
    assert "1 thread would be deleted" in page
    assert "1 of the 2 ticked threads is left out" in page


def test_a_selection_with_nothing_left_says_so(admin_client, world):
    Thread.objects.update(status=Thread.Status.DELETED)
    response = admin_client.get(NEW, {"all": "1"})
    assert response.status_code == 200
    assert (
        "Nothing to delete" in response.content.decode()
        and 'name="confirm_count"' not in response.content.decode()
    )
    response = admin_client.post(NEW + "?all=1", {"confirm_count": "0"})
    assert response.status_code == 400 and not DeletionJob.objects.exists()


# --- Confirming: the typed count ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("typed", "message"),
    [
        ("", "Type the number of threads, 5, to start."),
        ("4", "You typed 4, but the selection holds 5 threads."),
        ("50", "You typed 50, but the selection holds 5 threads."),
        ("five", "Type the number as digits: 5."),
        ("-5", "Type the number as digits: 5."),
    ],
)
def test_a_wrong_or_missing_count_refuses_and_makes_nothing(admin_client, world, simulator, typed, message):
    response = admin_client.post(NEW + "?all=1", {"confirm_count": typed, "archive": "on"})
    assert response.status_code == 400
    page = response.content.decode()
    assert message in page
    assert "5 threads would be deleted" in page, "the preview is shown again"
    assert not DeletionJob.objects.exists() and not DeletionItem.objects.exists()
    assert all(served(simulator, thread) for thread in world)


def test_ticked_rows_make_a_job_that_deletes_exactly_them(
    admin_client, admin, world, simulator, django_capture_on_commit_callbacks
):
    chosen, others = [world[0], world[3]], [world[1], world[2], world[4]]
    with django_capture_on_commit_callbacks(execute=True):
        # Filters beside ticked rows play no part: the ids are the selection, neither widened nor narrowed.
        response = admin_client.post(
            picked(*chosen) + "&kind=assistants_thread", {"confirm_count": "2", "delete_items": "on"}
        )
    job = DeletionJob.objects.get()
    assert response.status_code == 302 and response["Location"] == reverse("job_detail", args=[job.pk])
    assert job.state == DeletionJob.State.FINISHED and (job.total, job.deleted) == (2, 2)
    assert job.summary == "2 threads picked in the list" and job.filters == {"picked": 2}
    assert job.requested_by == admin and job.source == DeletionJob.Source.BROWSER
    assert not any(served(simulator, thread) for thread in chosen)
    assert all(served(simulator, thread) for thread in others)
    assert set(Thread.objects.filter(status=Thread.Status.DELETED)) == set(chosen)
    # The conversation's items went first.
    assert job.delete_items and simulator.state.stored_items(world[3].remote_id) == []
    page = admin_client.get(response["Location"]).content.decode()
    assert f"Deletion job {job.pk} started: 2 threads." in page and "Finished" in page


def test_a_typed_count_may_carry_thousands_separators(admin_client, world):
    response = admin_client.post(NEW + "?all=1", {"confirm_count": " 5 "})
    assert response.status_code == 302
    assert forms.parse_count("1,234") == 1234 and forms.parse_count("1 234") == 1234


def test_all_matching_takes_the_filter_with_its_options(
    admin_client, world, simulator, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        response = admin_client.post(
            NEW + "?kind=conversation&sort=title&all=1",
            {"confirm_count": "2", "archive": "on", "verify_all": "on"},  # delete_items unticked
        )
    assert response.status_code == 302
    job = DeletionJob.objects.get()
    assert job.summary == "Kind: Conversation" and job.filters == {"kind": "conversation"}
    assert (job.archive, job.verify_all, job.delete_items) == (True, True, False)
    assert job.deleted == 2 and job.verified == 2
    assert [thread.kind for thread in Thread.objects.filter(status=Thread.Status.DELETED)] == [
        "conversation"
    ] * 2
    assert len(simulator.state.stored_items(world[3].remote_id)) == 2, "items kept, as asked"
    assert Thread.objects.filter(status=Thread.Status.ACTIVE).count() == 3


def test_a_job_made_from_a_filter_is_not_widened_by_threads_added_afterwards(
    admin_client, world, simulator, sim_credential
):
    # Not run on commit here: the job waits, as it would for a busy worker.
    assert admin_client.post(NEW + "?kind=conversation&all=1", {"confirm_count": "2"}).status_code == 302
    job = DeletionJob.objects.get()
    remote = simulator.state.create_conversation("proj_alpha", items=[("user", "late")])
    late = Thread.objects.create(
        remote_id=remote["id"], kind=Thread.Kind.CONVERSATION, credential=sim_credential
    )

    assert deletion.run_job(job.pk) == DeletionJob.State.FINISHED

    job.refresh_from_db()
    assert (job.total, job.deleted) == (2, 2)
    late.refresh_from_db()
    assert late.status == Thread.Status.ACTIVE and served(simulator, late)


def test_a_selection_that_changed_since_the_preview_is_shown_again(admin_client, world, sim_credential):
    Thread.objects.create(
        remote_id="thread_latecomer001", kind=Thread.Kind.ASSISTANTS, credential=sim_credential
    )
    response = admin_client.post(NEW + "?all=1", {"confirm_count": "5"})
    assert response.status_code == 400
    assert "You typed 5, but the selection holds 6 threads." in response.content.decode()
    assert not DeletionJob.objects.exists()


def test_a_selection_that_changes_while_the_job_is_made_is_refused(admin_client, world, monkeypatch):
    # Between the count the page checked and the rows the job copies, another job took one of the threads.
    make = deletion.create_job

    def taken_meanwhile(threads, **kwargs):
        make(Thread.objects.filter(pk=world[0].pk), summary="someone else's", start=False)
        return make(threads, **kwargs)

    monkeypatch.setattr(deletion, "create_job", taken_meanwhile)
    response = admin_client.post(NEW + "?all=1", {"confirm_count": "5"})
    assert response.status_code == 409
    page = response.content.decode()
    assert "The selection now holds 4 threads, not the 5 you confirmed" in page
    assert "4 threads would be deleted" in page
    assert list(DeletionJob.objects.values_list("summary", flat=True)) == ["someone else's"]


# --- The job's page ------------------------------------------------------------------------------------


def test_the_job_page_shows_who_what_and_how_far(admin_client, admin, world):
    job = make_job(requested_by=admin, archive=True)
    response = admin_client.get(reverse("job_detail", args=[job.pk]))
    page = response.content.decode()
    assert response.status_code == 200 and "<html" in page
    assert "Deletion job" in page and "root" in page and "Thread list" in page and "test" in page
    assert "Queued" in page and '<progress max="5" value="0"' in page and "0 of 5 done (0%)" in page
    assert "Each transcript archived before deleting" in page
    assert 'alpha: <span class="muted">none known</span>' in page
    assert f'href="{reverse("job_receipt_csv", args=[job.pk])}"' in page
    assert f'href="{reverse("job_receipt_json", args=[job.pk])}"' in page
    assert f'href="{reverse("job_archive", args=[job.pk])}"' in page
    assert ">Cancel</button>" in page and "Retry" not in page
    # Unfinished: the progress polls itself, and without JavaScript the page refreshes.
    assert f'hx-get="{reverse("job_detail", args=[job.pk])}" hx-trigger="every 1s"' in page
    assert '<noscript><meta http-equiv="refresh" content="3"></noscript>' in page


def test_the_progress_fragment_polls_while_the_job_runs(admin_client, world):
    job = make_job()
    DeletionJob.objects.filter(pk=job.pk).update(state=DeletionJob.State.RUNNING, deleted=2, pending=3)
    response = admin_client.get(reverse("job_detail", args=[job.pk]), headers=HTMX)
    page = response.content.decode()
    assert response.status_code == 200
    assert page.lstrip().startswith('<section id="job-progress"') and "<html" not in page
    assert 'hx-trigger="every 1s"' in page and "2 of 5 done (40%)" in page
    assert "HX-Request" in response["Vary"]
    assert "<dt>Workers</dt><dd>0 of 1 at work</dd>" in page
    DeletionJob.objects.filter(pk=job.pk).update(runs_wanted=2)
    DeletionRun.objects.create(job=job, slot=0, token="a", host="h", pid=1)
    DeletionRun.objects.create(
        job=job, slot=1, token="b", host="h", pid=2, heartbeat_at=timezone.now() - timedelta(minutes=5)
    )
    page = admin_client.get(reverse("job_detail", args=[job.pk]), headers=HTMX).content.decode()
    assert "<dt>Workers</dt><dd>1 of 2 at work</dd>" in page  # the silent one is not counted


def test_the_progress_fragment_stops_polling_when_the_job_has_ended(admin_client, world):
    job = make_job()
    deletion.run_job(job.pk)
    response = admin_client.get(reverse("job_detail", args=[job.pk]), headers=HTMX)
    page = response.content.decode()
    assert response.status_code == 286  # htmx stops polling
    assert "hx-trigger" not in page and "Finished" in page and "5 of 5 done (100%)" in page
    assert re.search(r"<strong>5</strong> deleted", page) and "threads/s" in page
    full = admin_client.get(reverse("job_detail", args=[job.pk]))
    assert full.status_code == 200 and "hx-trigger" not in full.content.decode()
    assert "http-equiv" not in full.content.decode()


def test_cancelling_a_job(admin_client, world, simulator):
    job = make_job()
    url = reverse("job_cancel", args=[job.pk])
    response = admin_client.post(url)
    assert response.status_code == 302 and response["Location"] == reverse("job_detail", args=[job.pk])
    job.refresh_from_db()
    assert job.state == DeletionJob.State.CANCELLED and "nothing was sent" in job.reason
    assert deletion.run_job(job.pk) == DeletionJob.State.CANCELLED
    assert all(served(simulator, thread) for thread in world)
    # Once ended, there is nothing to cancel.
    response = admin_client.post(url, headers=HTMX)
    assert response.status_code == 409 and "has already ended" in response.content.decode()
    assert admin_client.get(url).status_code == 405


def test_cancelling_from_the_page_answers_htmx_with_the_progress(admin_client, world):
    job = make_job()
    # A worker is alive and holds it.
    DeletionJob.objects.filter(pk=job.pk).update(state=DeletionJob.State.RUNNING, heartbeat_at=timezone.now())
    response = admin_client.post(reverse("job_cancel", args=[job.pk]), headers=HTMX)
    page = response.content.decode()
    assert response.status_code == 200 and page.lstrip().startswith('<section id="job-progress"')
    assert "Cancelling: the threads already sent finish" in page and 'hx-trigger="every 1s"' in page
    job.refresh_from_db()
    assert job.state == DeletionJob.State.CANCELLING


def test_retrying_the_failed_items(
    admin_client, world, simulator, sim_credential, django_capture_on_commit_callbacks
):
    sim_credential.api_key = "sk-revoked-0000-0000"
    sim_credential.concurrency = 1
    sim_credential.save()
    with django_capture_on_commit_callbacks(execute=True):
        assert admin_client.post(picked(world[0], world[1]), {"confirm_count": "2"}).status_code == 302
    job = DeletionJob.objects.get()
    assert job.state == DeletionJob.State.FAILED and job.failed == 2

    page = admin_client.get(reverse("job_detail", args=[job.pk])).content.decode()
    assert "Retry failed items" in page and ">Cancel</button>" not in page
    assert "could not be deleted" in page
    failed = re.search(r'<table class="threads failed-items">.*?</table>', page, re.S).group(0)
    assert world[0].remote_id in failed and world[1].remote_id in failed and "alpha" in failed
    assert "The API refused" in failed or "Not attempted" in failed

    sim_credential.api_key = "sk-test-alpha-key-1234"
    sim_credential.save()
    with django_capture_on_commit_callbacks(execute=True):
        response = admin_client.post(reverse("job_retry", args=[job.pk]), follow=True)
    assert "Trying 2 threads again." in response.content.decode()
    job.refresh_from_db()
    assert job.state == DeletionJob.State.FINISHED and job.deleted == 2 and job.failed == 0
    assert not served(simulator, world[0]) and not served(simulator, world[1])
    # Nothing failed any more: nothing to retry.
    assert admin_client.post(reverse("job_retry", args=[job.pk])).status_code == 302
    response = admin_client.post(reverse("job_retry", args=[job.pk]), headers=HTMX)
    assert response.status_code == 409 and "Nothing to retry" in response.content.decode()


def test_a_job_that_is_still_going_cannot_be_retried(admin_client, world):
    job = make_job()
    response = admin_client.post(reverse("job_retry", args=[job.pk]), headers=HTMX)
    assert response.status_code == 409
    job.refresh_from_db()
    assert job.state == DeletionJob.State.QUEUED


def test_confirming_a_job_a_sweep_made(admin_client, world, django_capture_on_commit_callbacks):
    job = make_job(awaiting=True, source=DeletionJob.Source.SWEEP)
    page = admin_client.get(reverse("job_detail", args=[job.pk])).content.decode()
    assert "Awaiting confirmation" in page and "Confirm and delete 5 threads" in page and "Dismiss" in page
    assert "hx-trigger" not in page
    with django_capture_on_commit_callbacks(execute=True):
        response = admin_client.post(reverse("job_confirm", args=[job.pk]), headers=HTMX)
    assert response.status_code == 200 and "confirmed and started" in response.content.decode()
    job.refresh_from_db()
    assert job.state == DeletionJob.State.FINISHED and job.deleted == 5
    assert admin_client.post(reverse("job_confirm", args=[job.pk]), headers=HTMX).status_code == 409


# --- Downloads -----------------------------------------------------------------------------------------


def body(response) -> str:
    return b"".join(response.streaming_content).decode()


def test_the_receipts_list_every_item(admin_client, admin, world):
    job = make_job(requested_by=admin)
    deletion.run_job(job.pk)

    response = admin_client.get(reverse("job_receipt_csv", args=[job.pk]))
    assert response.status_code == 200 and response.streaming
    assert response["Content-Type"] == "text/csv; charset=utf-8"
    assert response["Content-Disposition"] == f'attachment; filename="deletion-job-{job.pk}-receipt.csv"'
    rows = list(csv.DictReader(io.StringIO(body(response))))
    assert list(rows[0]) == deletion.RECEIPT_FIELDS
    # In item order, which is the order the job's INSERT … SELECT wrote them: any order of the threads.
    assert sorted(row["id"] for row in rows) == sorted(thread.remote_id for thread in world)
    assert {row["outcome"] for row in rows} == {"deleted"} and rows[0]["requested_by"] == "root"

    response = admin_client.get(reverse("job_receipt_json", args=[job.pk]))
    assert response["Content-Disposition"] == f'attachment; filename="deletion-job-{job.pk}-receipt.json"'
    receipt = json.loads(body(response))
    assert receipt["job"] == job.pk and receipt["counts"]["deleted"] == 5 and len(receipt["items"]) == 5


def test_the_archive_download_holds_each_transcript(admin_client, world):
    job = make_job(archive=True)
    deletion.run_job(job.pk)
    response = admin_client.get(reverse("job_archive", args=[job.pk]))
    assert response.status_code == 200
    assert (
        response["Content-Disposition"] == f'attachment; filename="deletion-job-{job.pk}-transcripts.jsonl"'
    )
    lines = [json.loads(line) for line in body(response).splitlines()]
    by_id = {line["thread"]["id"]: line for line in lines}
    assert sorted(by_id) == sorted(thread.remote_id for thread in world)
    assert by_id[world[0].remote_id]["entries"][0]["parts"][0]["text"] == "hello 0"


def test_a_job_without_archive_has_no_transcripts_to_download(admin_client, world):
    job = make_job()
    assert admin_client.get(reverse("job_archive", args=[job.pk])).status_code == 404
    assert (
        "Transcripts (JSON Lines)"
        not in admin_client.get(reverse("job_detail", args=[job.pk])).content.decode()
    )


# --- The list of jobs ----------------------------------------------------------------------------------


def test_the_list_of_jobs_is_newest_first_and_paged(admin_client, admin, world, monkeypatch):
    first = make_job(Thread.objects.filter(pk=world[0].pk), requested_by=admin)
    second = make_job(Thread.objects.filter(pk=world[1].pk))
    page = admin_client.get(reverse("job_list")).content.decode()
    assert page.index(f"Job {second.pk}<") < page.index(f"Job {first.pk}<")
    assert "root" in page and "the system" in page and "Thread list" in page and "Queued" in page

    monkeypatch.setattr(job_views, "JOBS_PER_PAGE", 1)
    response = admin_client.get(reverse("job_list"), {"page": "2"}, headers=HTMX)
    fragment = response.content.decode()
    assert response.status_code == 200 and fragment.lstrip().startswith('<div id="job-table"')
    assert f"Job {first.pk}<" in fragment and f"Job {second.pk}<" not in fragment
    assert 'href="/jobs/?page=1" hx-get="/jobs/?page=1" rel="prev"' in fragment

    for headers in ({}, HTMX):
        response = admin_client.get(reverse("job_list"), {"page": "abc"}, headers=headers)
        assert response.status_code == 400 and "not a number" in response.content.decode()
    assert admin_client.get(reverse("job_list"), {"page": "9"}).status_code == 404
