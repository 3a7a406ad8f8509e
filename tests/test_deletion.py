"""Deleting threads: one from its page's function, many in a job, against the simulator (fast layer)."""

import csv
import io
import json
import os
import subprocess
import time
from datetime import timedelta
from types import SimpleNamespace

import pytest
from django.contrib.auth.models import User
from django.utils import timezone

from threads_app import deletion, kinds, outcomes
from threads_app.models import (
    AuditEvent,
    Credential,
    DeletionArchive,
    DeletionItem,
    DeletionJob,
    DeletionRun,
    RetentionPolicy,
    StatusChange,
    Thread,
)

Item = DeletionItem.State
Job = DeletionJob.State


@pytest.fixture(autouse=True)
def quick_retries(monkeypatch):
    """Items that met a transient failure are due again at once (the backoff's length is not tested here)."""
    monkeypatch.setattr(deletion, "backoff", lambda attempt: 0.0)


@pytest.fixture
def world(simulator, sim_credential):
    """Three threads of each kind in the simulator, conversations with two items, all tracked."""
    state = simulator.state
    remote = []
    for n in range(3):
        remote.append(state.create_thread("proj_alpha", messages=[("user", f"hello {n}")])["id"])
        remote.append(
            state.create_conversation("proj_alpha", items=[("user", "a"), ("assistant", "b")])["id"]
        )
        remote.append(state.create_chatkit_thread("proj_alpha", user=f"u{n}", items=[("user", "hi")])["id"])
    for remote_id in remote:
        kind = {"thread": "assistants_thread", "conv": "conversation", "cthr": "chatkit_thread"}[
            remote_id.split("_")[0]
        ]
        Thread.objects.create(remote_id=remote_id, kind=kind, credential=sim_credential)
    return remote


def run_of(job):
    """A worker's run of `job`, joined as `run_job` joins it; a test may make several of one job, as if each
    were a worker of its own."""
    DeletionJob.objects.filter(pk=job.pk).update(runs_wanted=job.runs.count() + 1)
    job.refresh_from_db()
    return deletion.JobRun.join(job)


def on_server(simulator, remote_id) -> bool:
    """Whether the simulator still serves the object."""
    state = simulator.state
    if remote_id.startswith("thread_"):
        return remote_id in state.threads
    if remote_id.startswith("conv_"):
        return remote_id in state.conversations and not state.conversations[remote_id].deleted
    return remote_id in state.chatkit_threads


def deletes(simulator):
    return [path for method, path, status in simulator.state.request_log if method == "DELETE"]


def make_job(**options):
    return deletion.create_job(Thread.objects.all(), summary="test", start=False, **options)


def test_a_job_deletes_every_kind_the_way_its_api_needs(simulator, world, alice):
    job = make_job(requested_by=alice)
    assert job.total == 9 and job.state == DeletionJob.State.QUEUED

    assert deletion.run_job(job.pk) == DeletionJob.State.FINISHED

    job.refresh_from_db()
    assert (job.deleted, job.already_gone, job.failed, job.pending) == (9, 0, 0, 0)
    assert job.started_at and job.finished_at and job.requested_by_name == "alice"
    assert not any(on_server(simulator, remote_id) for remote_id in world)
    for remote_id in world:
        if remote_id.startswith("conv_"):
            assert simulator.state.stored_items(remote_id) == [], "items are deleted before the conversation"
    assert set(Thread.objects.values_list("status", flat=True)) == {Thread.Status.DELETED}
    history = StatusChange.objects.get(remote_id=world[0])
    assert history.changed_by == alice and f"deletion job {job.pk} (alice)" in history.reason
    assert set(job.items.values_list("state", flat=True)) == {Item.DELETED}


def test_keep_items_leaves_a_conversations_items(simulator, world):
    job = make_job(delete_items=False)
    deletion.run_job(job.pk)
    conversation = next(remote_id for remote_id in world if remote_id.startswith("conv_"))
    assert not on_server(simulator, conversation)
    assert len(simulator.state.stored_items(conversation)) == 2


def test_a_404_on_delete_is_already_gone_and_counted_apart(simulator, world):
    simulator.state.threads.pop(world[0])
    job = make_job()
    deletion.run_job(job.pk)
    job.refresh_from_db()
    assert (job.deleted, job.already_gone) == (8, 1)
    item = job.items.get(remote_id=world[0])
    assert item.state == Item.ALREADY_GONE and "No thread found" in item.message
    assert Thread.objects.get(remote_id=world[0]).status == Thread.Status.MISSING


def test_the_job_is_fixed_when_made_and_skips_deleted_threads(simulator, world, sim_credential):
    Thread.objects.filter(remote_id=world[0]).update(status=Thread.Status.DELETED)
    job = make_job()
    Thread.objects.create(
        remote_id="thread_addedlater0001", kind="assistants_thread", credential=sim_credential
    )
    assert job.total == 8
    deletion.run_job(job.pk)
    assert Thread.objects.get(remote_id="thread_addedlater0001").status == Thread.Status.ACTIVE


def test_a_job_refuses_a_count_that_no_longer_matches_or_a_selection_with_nothing_left(world):
    nothing_left = "^No thread of the selection is left to delete\\.$"
    with pytest.raises(deletion.NothingToDelete) as refused:
        make_job(expected_count=5)
    assert str(refused.value) == (
        "The selection now holds 9 threads, not the 5 you confirmed: look at the preview again."
    )
    with pytest.raises(deletion.NothingToDelete, match=nothing_left):
        deletion.create_job(Thread.objects.none(), summary="nothing", start=False)
    Thread.objects.update(status=Thread.Status.DELETED)  # a selection whose threads are all gone already
    with pytest.raises(deletion.NothingToDelete, match=nothing_left):
        make_job()
    assert not DeletionJob.objects.exists() and not DeletionItem.objects.exists()


def test_preview_splits_the_selection(world, alice):
    Thread.objects.filter(kind="conversation").update(owner=alice)
    preview = deletion.preview(Thread.objects.all())
    assert preview.count == 9
    assert preview.by_credential == [("alpha", 9)]
    assert preview.by_owner == [("", 6), ("alice", 3)]
    assert sorted(preview.by_kind) == [("Assistants thread", 3), ("ChatKit thread", 3), ("Conversation", 3)]
    assert len(preview.sample) == 9
    assert preview.lines()[0] == "9 threads would be deleted"


def test_server_faults_and_dropped_connections_end_deleted_or_already_gone(simulator, world, no_retries):
    # A DELETE whose connection drops may or may not have been carried out: either way the thread ends
    # deleted or already gone, and the records agree with the server.
    simulator.state.enqueue_faults("500", "drop", "502_html", "503", "drop", "500")
    job = make_job()
    assert deletion.run_job(job.pk) == DeletionJob.State.FINISHED
    job.refresh_from_db()
    assert job.deleted + job.already_gone == 9 and job.failed == 0
    assert not any(on_server(simulator, remote_id) for remote_id in world)
    retried = job.items.filter(attempts__gt=1)
    assert retried.exists(), "the faults were met and retried"


def test_a_deletion_is_never_sent_twice_after_success(simulator, world):
    job = make_job()
    deletion.run_job(job.pk)
    sent = deletes(simulator)
    assert len(sent) == len(set(sent))


def test_a_refused_key_stops_that_credentials_part_with_the_reason(
    simulator, world, sim_credential, django_capture_on_commit_callbacks
):
    sim_credential.api_key = "sk-revoked-0000-0000"
    sim_credential.concurrency = 1
    sim_credential.save()
    job = make_job()
    assert deletion.run_job(job.pk) == DeletionJob.State.FAILED
    job.refresh_from_db()
    assert job.failed == 9 and "could not be deleted" in job.reason
    assert len(deletes(simulator)) <= 2, "the list is not burned through"
    assert job.items.filter(message__startswith="Not attempted: The API refused").count() >= 7
    sim_credential.refresh_from_db()
    assert sim_credential.last_verification_ok is False
    assert set(Thread.objects.values_list("status", flat=True)) == {Thread.Status.ACTIVE}

    # The key is fixed: retrying the failed items deletes them.
    sim_credential.api_key = "sk-test-alpha-key-1234"
    sim_credential.save()
    with django_capture_on_commit_callbacks(execute=True):
        assert deletion.retry_job(job) == 9
    job.refresh_from_db()
    assert job.state == DeletionJob.State.FINISHED and job.deleted == 9


def test_quota_exhaustion_is_not_retried(simulator, world, sim_credential, no_retries):
    sim_credential.concurrency = 1
    sim_credential.save()
    simulator.state.enqueue_faults("429_quota")
    job = make_job()
    deletion.run_job(job.pk)
    job.refresh_from_db()
    assert job.failed == 9 and job.items.filter(attempts=1).count() == 1
    assert (
        job.items.filter(
            message__startswith="Not attempted: The credential’s project is out of quota"
        ).count()
        == 8
    )


def test_an_item_left_in_flight_is_looked_up_before_anything_is_sent(simulator, world):
    job = make_job()
    stale = timezone.now() - timedelta(minutes=5)
    gone, alive = world[0], world[3]
    job.items.filter(remote_id__in=[gone, alive]).update(
        state=Item.IN_FLIGHT, claimed_by="dead-worker", lease_until=stale, attempts=1
    )
    simulator.state.threads.pop(gone)  # its DELETE was carried out before the worker died

    deletion.run_job(job.pk)

    item = job.items.get(remote_id=gone)
    assert (item.state, item.attempts) == (Item.ALREADY_GONE, 2)
    assert not any(gone in path for path in deletes(simulator)), "no DELETE sent blindly a second time"
    assert job.items.get(remote_id=alive).state == Item.DELETED
    assert sum(alive in path for path in deletes(simulator)) == 1


def test_a_deletion_the_api_claims_but_did_not_do_fails_verification(simulator, world, monkeypatch):
    adapter = kinds.adapter_for("chatkit_thread")
    monkeypatch.setattr(type(adapter), "delete", lambda self, client, remote_id, **options: None)
    job = make_job(verify_all=True)
    deletion.run_job(job.pk)
    job.refresh_from_db()
    liar = job.items.filter(kind="chatkit_thread")
    assert liar.count() == 3
    assert all(item.state == Item.FAILED and item.verified is False for item in liar)
    assert liar[0].message == "The API answered that it deleted this thread, but still serves it."
    assert job.verified == 6
    assert Thread.objects.filter(kind="chatkit_thread", status=Thread.Status.ACTIVE).count() == 3


def test_archive_stores_each_transcript_before_deleting(simulator, world):
    job = make_job(archive=True)
    deletion.run_job(job.pk)
    lines = "".join(deletion.archive_lines(job)).splitlines()
    assert len(lines) == 9
    first = json.loads(lines[0])
    assert first["thread"]["id"] == world[0]
    assert first["entries"][0]["parts"][0]["text"] == "hello 0"


def test_receipts_list_every_item_with_its_outcome(simulator, world, alice):
    job = make_job(requested_by=alice)
    deletion.run_job(job.pk)
    job.refresh_from_db()
    csv_text = "".join(deletion.receipt_csv(job))
    lines = csv_text.strip().splitlines()
    assert lines[0] == "id,kind,credential,outcome,finished_at,attempts,message,requested_by"
    assert len(lines) == 10 and lines[1].startswith(f"{world[0]},assistants_thread,alpha,deleted,")
    receipt = json.loads("".join(deletion.receipt_json(job)))
    assert receipt["counts"] == {"total": 9, "deleted": 9, "already_gone": 0, "failed": 0, "left": 0}
    assert [item["id"] for item in receipt["items"]] == world
    assert receipt["requested_by"] == "alice"


def test_cancelling_a_queued_job_sends_nothing(simulator, world):
    job = make_job()
    deletion.cancel_job(job)
    assert job.state == DeletionJob.State.CANCELLED and "nothing was sent" in job.reason
    assert deletion.run_job(job.pk) == DeletionJob.State.CANCELLED
    assert deletes(simulator) == []


def test_cancelling_a_running_job_stops_it_and_says_what_is_left(simulator, sim_credential, monkeypatch):
    monkeypatch.setattr("threads_app.engine.TICK_SECONDS", 0)
    simulator.config.latency_ms = 20
    sim_credential.concurrency = 1
    sim_credential.save()
    for _ in range(40):
        remote_id = simulator.state.create_thread("proj_alpha")["id"]
        Thread.objects.create(remote_id=remote_id, kind="assistants_thread", credential=sim_credential)
    job = make_job()
    record = deletion.JobRun.record

    def cancel_after_the_first_batch(self, credential, results):
        written = record(self, credential, results)
        deletion.cancel_job(job)  # as a person would, from the job page
        return written

    monkeypatch.setattr(deletion.JobRun, "record", cancel_after_the_first_batch)
    assert deletion.run_job(job.pk) == DeletionJob.State.CANCELLED

    job.refresh_from_db()
    assert job.pending > 0 and job.deleted > 0 and job.deleted + job.pending == 40
    assert f"{job.pending} left untouched" in job.reason
    assert not job.items.filter(state=Item.IN_FLIGHT).exists()
    assert len(deletes(simulator)) == job.deleted
    assert job.items.filter(state=Item.PENDING, attempts=0).count() == job.pending, "unsent claims released"


def test_the_thread_pages_delete_goes_through_the_same_function(simulator, world, alice):
    thread = Thread.objects.get(remote_id=world[1])
    result = deletion.delete_thread(thread, by=alice, delete_items=True)
    assert result.state == "deleted" and "with its items" in result.message
    assert simulator.state.stored_items(world[1]) == []
    assert deletion.delete_thread(thread, by=alice).state == "not_sent"


def long_conversation(simulator, credential, items: int) -> Thread:
    remote = simulator.state.create_conversation(
        "proj_alpha", items=[("user", f"message {n}") for n in range(items)]
    )
    return Thread.objects.create(remote_id=remote["id"], kind="conversation", credential=credential)


def test_a_conversation_of_more_items_than_a_page_is_handed_to_a_job_before_any_is_deleted(
    simulator, sim_credential, alice
):
    thread = long_conversation(simulator, sim_credential, kinds.MAX_PAGE_SIZE + 50)
    result = deletion.delete_thread(thread, by=alice)
    job = result.job
    assert result.state == "queued"
    assert result.message == (
        f"{thread.remote_id} has more items than can be deleted while you wait: the rest, then the "
        f"conversation, are being deleted in the background (deletion job {job.pk})."
    )
    assert deletes(simulator) == [], "one look at the items, and nothing deleted while the page waits"
    assert (job.source, job.requested_by, job.delete_items, job.total) == (
        DeletionJob.Source.THREAD,
        alice,
        True,
        1,
    )
    assert job.summary == f"{thread.remote_id}: more items than could be deleted while its page waited"
    assert AuditEvent.objects.filter(action=AuditEvent.Action.JOB_CREATED, object_pk=job.pk).exists()
    assert not AuditEvent.objects.filter(action=AuditEvent.Action.THREAD_DELETED).exists()
    thread.refresh_from_db()
    assert thread.status == Thread.Status.ACTIVE

    again = deletion.delete_thread(thread, by=alice)  # not handed over twice
    assert (again.state, again.message) == (
        "not_sent",
        f"{thread.remote_id} is already waiting in a deletion job.",
    )

    deletion.run_job(job.pk)
    job.refresh_from_db()
    assert (job.state, job.deleted) == (Job.FINISHED, 1)
    assert not on_server(simulator, thread.remote_id)
    assert simulator.state.stored_items(thread.remote_id) == []
    assert Thread.objects.get(pk=thread.pk).status == Thread.Status.DELETED


def test_a_conversation_alone_in_its_job_has_its_items_deleted_several_at_once_within_the_concurrency(
    simulator, sim_credential, alice, calls_at_once
):
    # Deleted one after the other, 250 items at the real API's latency would hold the job for minutes while
    # the credential's other seven calls stay unused.
    sim_credential.concurrency = 8
    sim_credential.save()
    thread = long_conversation(simulator, sim_credential, 2 * kinds.MAX_PAGE_SIZE + 50)
    job = deletion.delete_thread(thread, by=alice).job
    simulator.config.latency_ms = 5
    deletion.run_job(job.pk)
    job.refresh_from_db()
    assert (job.state, job.deleted) == (Job.FINISHED, 1)
    assert simulator.state.stored_items(thread.remote_id) == []
    assert not on_server(simulator, thread.remote_id)
    assert 1 < calls_at_once.most <= 8
    assert len(deletes(simulator)) == 2 * kinds.MAX_PAGE_SIZE + 50 + 1, "each item once, then itself"


def test_a_verified_job_finds_items_the_api_said_it_deleted_but_kept_and_keeps_their_conversation(
    simulator, sim_credential
):
    thread = long_conversation(simulator, sim_credential, 5)
    app = simulator.server.get_app()

    def keeps_items(environ, start_response):  # answers an item's DELETE, and deletes nothing
        if environ["REQUEST_METHOD"] == "DELETE" and "/items/" in environ["PATH_INFO"]:
            start_response("200 OK", [("Content-Type", "application/json")])
            return [json.dumps({"id": thread.remote_id, "object": "conversation"}).encode()]
        return app(environ, start_response)

    simulator.server.set_app(keeps_items)
    job = make_job(verify_all=True)
    deletion.run_job(job.pk)
    item = job.items.get()
    assert (item.state, item.message) == (
        Item.FAILED,
        f"The request failed: Items of {thread.remote_id} were still listed after being deleted (HTTP 200)",
    )
    assert on_server(simulator, thread.remote_id), "the conversation stays, so its items can be found"
    assert len(simulator.state.stored_items(thread.remote_id)) == 5
    assert Thread.objects.get(pk=thread.pk).status == Thread.Status.ACTIVE


def test_a_page_deletes_items_until_its_deadline_and_a_job_deletes_the_rest(
    simulator, sim_credential, alice, monkeypatch, settings
):
    settings.OPENAI_WEB_DEADLINE = 10
    started = time.monotonic()
    ticks = iter(range(1000))
    # Each look at the clock between two item deletions finds 4 s gone: the fourth is past the deadline.
    monkeypatch.setattr(kinds, "time", SimpleNamespace(monotonic=lambda: started + 4 * next(ticks)))
    thread = long_conversation(simulator, sim_credential, 6)
    result = deletion.delete_thread(thread, by=alice)
    assert result.state == "queued"
    assert result.message == (
        f"{thread.remote_id} has more items than can be deleted while you wait: 3 of its items were "
        f"deleted; the rest, then the conversation, are being deleted in the background (deletion job "
        f"{result.job.pk})."
    )
    assert len(simulator.state.stored_items(thread.remote_id)) == 3
    assert on_server(simulator, thread.remote_id)

    deletion.run_job(result.job.pk)
    assert simulator.state.stored_items(thread.remote_id) == []
    assert not on_server(simulator, thread.remote_id)


def deleted_event(thread) -> AuditEvent:
    return AuditEvent.objects.get(action=AuditEvent.Action.THREAD_DELETED, object_pk=thread.pk)


def test_a_conversation_deleted_from_its_page_goes_with_its_items_and_is_recorded(simulator, world, alice):
    thread = Thread.objects.get(remote_id=world[1])
    result = deletion.delete_thread(thread, by=alice)
    assert (result.state, result.message) == ("deleted", f"Deleted {world[1]} with its items.")
    assert not on_server(simulator, world[1]) and simulator.state.stored_items(world[1]) == []
    assert thread.status == Thread.Status.DELETED
    change = StatusChange.objects.get(thread=thread)
    assert (change.changed_by, change.reason) == (alice, "Deleted with its items through the API by alice")
    event = deleted_event(thread)
    assert (event.actor, event.actor_name, event.remote_id) == (alice, "alice", world[1])
    assert event.details == {
        "outcome": "deleted",
        "with_items": True,
        "status": "deleted",
        "message": "",
    }


def test_a_conversations_items_stay_when_asked_and_only_conversations_have_items(simulator, world, alice):
    kept = Thread.objects.get(remote_id=world[1])
    result = deletion.delete_thread(kept, by=alice, delete_items=False)
    assert (result.state, result.message) == ("deleted", f"Deleted {world[1]}.")
    assert len(simulator.state.stored_items(world[1])) == 2
    assert deleted_event(kept).details["with_items"] is False
    assistants = Thread.objects.get(remote_id=world[0])
    simulator.state.request_log.clear()
    assert deletion.delete_thread(assistants, by=alice).message == f"Deleted {world[0]}."
    # One DELETE and nothing else: no lookup first, no transcript, no retrieve after.
    assert [(method, path) for method, path, _ in simulator.state.request_log] == [
        ("DELETE", f"/v1/threads/{world[0]}")
    ]
    assert deleted_event(assistants).details["with_items"] is False
    assert StatusChange.objects.get(thread=assistants).reason == "Deleted through the API by alice"


def test_a_thread_no_longer_active_is_not_sent_again(simulator, world, alice):
    thread = Thread.objects.get(remote_id=world[0])
    Thread.objects.filter(pk=thread.pk).update(status=Thread.Status.EXPIRED)
    thread.refresh_from_db()
    result = deletion.delete_thread(thread, by=alice)
    assert (result.state, result.message) == ("not_sent", f"{world[0]} is already expired; nothing was sent.")
    assert deletes(simulator) == [] and not AuditEvent.objects.filter(action="thread_deleted").exists()


def test_a_thread_the_api_no_longer_has_is_marked_missing_and_said_so(simulator, world, alice):
    thread = Thread.objects.get(remote_id=world[2])
    simulator.state.chatkit_threads.pop(world[2])
    result = deletion.delete_thread(thread, by=alice)
    assert (result.state, result.message) == (
        "already_gone",
        f"The API no longer had {world[2]}; it is now marked missing.",
    )
    assert thread.status == Thread.Status.MISSING
    assert StatusChange.objects.get(thread=thread).reason.endswith(": the API answered 404")
    assert deleted_event(thread).details["outcome"] == "already_gone"


def test_a_deletion_the_api_refuses_changes_nothing_and_says_why(simulator, world, alice, sim_credential):
    sim_credential.api_key = "sk-a-key-the-api-refuses"
    sim_credential.save()
    thread = Thread.objects.select_related("credential").get(remote_id=world[0])
    result = deletion.delete_thread(thread, by=alice)
    assert result.state == "failed"
    assert result.message.startswith(f"{world[0]} was not deleted. The API refused the credential’s key:")
    thread.refresh_from_db()
    assert thread.status == Thread.Status.ACTIVE and not StatusChange.objects.exists()
    assert on_server(simulator, world[0])
    event = deleted_event(thread)
    assert (event.details["outcome"], event.details["status"]) == ("failed", "active")
    assert event.details["message"] == result.message.removeprefix(f"{world[0]} was not deleted. ")


def test_a_key_that_cannot_be_decrypted_sends_nothing_and_says_so(simulator, world, alice, sim_credential):
    Credential.objects.filter(pk=sim_credential.pk).update(api_key_encrypted="not a token")
    thread = Thread.objects.select_related("credential").get(remote_id=world[0])
    result = deletion.delete_thread(thread, by=alice)
    assert result.state == "failed"
    assert result.message.startswith(f"{world[0]} was not deleted. The credential’s key cannot be used:")
    assert "The stored API key cannot be decrypted" in result.message
    assert deletes(simulator) == [] and Thread.objects.get(pk=thread.pk).status == Thread.Status.ACTIVE
    assert deleted_event(thread).details["outcome"] == "failed"


def test_a_deletion_uses_the_main_key_where_a_read_only_key_is_set(simulator, world, alice, sim_credential):
    sim_credential.read_key = "sk-a-read-only-key-the-api-does-not-know"
    sim_credential.save()
    thread = Thread.objects.select_related("credential").get(remote_id=world[0])
    assert deletion.delete_thread(thread, by=alice).state == "deleted"


def test_a_deletion_by_an_api_token_names_it(simulator, world, alice):
    unowned = Thread.objects.get(remote_id=world[0])
    deletion.delete_thread(unowned, by=None, actor="token ci-cleanup")
    event = deleted_event(unowned)
    assert (event.actor, event.actor_name, event.details["via"]) == (
        None,
        "token ci-cleanup",
        "token ci-cleanup",
    )
    assert StatusChange.objects.get(thread=unowned).reason == "Deleted through the API by token ci-cleanup"
    owned = Thread.objects.get(remote_id=world[3])
    deletion.delete_thread(owned, by=alice, actor="token alice-script")
    event = deleted_event(owned)
    assert (event.actor, event.actor_name, event.details["via"]) == (alice, "alice", "token alice-script")
    assert StatusChange.objects.get(thread=owned).changed_by == alice


def test_status_history_outlives_its_thread(world, alice):
    thread = Thread.objects.get(remote_id=world[0])
    assert thread.set_status(Thread.Status.MISSING, by=alice, reason="test")
    thread.delete()
    change = StatusChange.objects.get(remote_id=world[0])
    assert (change.thread, change.changed_by_name, change.new_status) == (None, "alice", "missing")


def test_a_status_change_and_its_history_are_written_together(world, monkeypatch):
    thread = Thread.objects.get(remote_id=world[0])

    def fail(*args, **kwargs):
        raise RuntimeError("the history row could not be written")

    monkeypatch.setattr(StatusChange.objects, "bulk_create", fail)
    with pytest.raises(RuntimeError):
        thread.set_status(Thread.Status.MISSING, reason="test")
    assert Thread.objects.get(pk=thread.pk).status == Thread.Status.ACTIVE


def test_a_status_changed_meanwhile_is_not_overwritten(world):
    thread = Thread.objects.get(remote_id=world[0])
    Thread.objects.filter(pk=thread.pk).update(status=Thread.Status.EXPIRED)
    assert not thread.set_status(Thread.Status.DELETED)
    assert Thread.objects.get(pk=thread.pk).status == Thread.Status.EXPIRED
    assert not StatusChange.objects.exists()


# --- A job's actions: each on the job named, recorded with who asked --------------------------------------


def two_jobs(world, **options):
    """Two jobs of three threads each, neither started."""
    return [
        deletion.create_job(
            Thread.objects.filter(remote_id__in=ids), summary=f"job of {ids[0]}", start=False, **options
        )
        for ids in (world[:3], world[3:6])
    ]


def events(action) -> list:
    return [
        (e.actor, e.object_pk, e.details) for e in AuditEvent.objects.filter(action=action).order_by("id")
    ]


def test_cancelling_a_job_not_started_ends_it_alone_at_once(world, alice):
    first, second = two_jobs(world)
    job = deletion.cancel_job(first, by=alice)
    assert (job.state, job.reason) == (Job.CANCELLED, "Cancelled before it started; nothing was sent.")
    assert job.finished_at is not None
    assert DeletionJob.objects.get(pk=second.pk).state == Job.QUEUED
    cancelled = {"before_start": True, "deleted_so_far": 0, "pending": 3}
    assert events("job_cancelled") == [(alice, first.pk, cancelled)]
    deletion.cancel_job(first, by=alice)  # a job that has ended: nothing to do, nothing recorded
    assert len(events("job_cancelled")) == 1


def test_cancelling_a_running_job_asks_its_worker_or_ends_it_when_no_worker_is_alive(world, alice):
    first, second = two_jobs(world)
    now = timezone.now()
    DeletionJob.objects.update(state=Job.RUNNING, started_at=now, heartbeat_at=now)
    job = deletion.cancel_job(first, by=alice)
    assert job.state == Job.CANCELLING and job.finished_at is None  # its worker ends it
    assert DeletionJob.objects.get(pk=second.pk).state == Job.RUNNING
    assert events("job_cancelled") == [
        (alice, first.pk, {"before_start": False, "deleted_so_far": 0, "pending": 3})
    ]
    # The second job's worker stopped beating a lease ago: nobody would end it, so cancelling does.
    DeletionJob.objects.filter(pk=second.pk).update(
        heartbeat_at=now - timedelta(seconds=deletion.lease_seconds() + 5)
    )
    job = deletion.cancel_job(second, by=alice)
    assert (job.state, job.reason) == (
        Job.CANCELLED,
        "Cancelled: 0 deleted, 0 already gone, 0 failed; 3 left untouched.",
    )
    assert job.finished_at is not None
    assert DeletionJob.objects.get(pk=first.pk).state == Job.CANCELLING


def test_confirming_a_sweeps_job_starts_it_alone_and_confirms_its_policy_once(
    world, alice, bob, sim_credential, monkeypatch
):
    started = []
    monkeypatch.setattr(deletion, "start_job", lambda job: started.append(job.pk))
    policy = RetentionPolicy.objects.create(credential=sim_credential, mode="delete")
    other = RetentionPolicy.objects.create(
        credential=Credential.objects.create(name="beta", api_key_encrypted="x"), mode="delete"
    )
    first, second = (
        deletion.create_job(
            Thread.objects.filter(remote_id__in=ids), summary="sweep", awaiting=True, policy=chosen
        )
        for ids, chosen in ((world[:3], policy), (world[3:6], other))
    )
    assert deletion.confirm_job(first, by=alice)
    assert started == [first.pk] and first.state == Job.QUEUED
    assert DeletionJob.objects.get(pk=second.pk).state == Job.AWAITING
    policy.refresh_from_db()
    confirmed_at = policy.confirmed_at
    assert confirmed_at is not None and policy.confirmed_by == alice
    assert RetentionPolicy.objects.get(pk=other.pk).confirmed_at is None
    assert events("job_confirmed") == [(alice, first.pk, {"threads": 3})]
    assert not deletion.confirm_job(first, by=alice)  # no longer awaiting: nothing started twice
    assert started == [first.pk] and len(events("job_confirmed")) == 1
    # A later job of a confirmed policy keeps the first confirmation: who and when.
    later = deletion.create_job(
        Thread.objects.filter(remote_id__in=world[6:]), summary="sweep", awaiting=True, policy=policy
    )
    assert deletion.confirm_job(later, by=bob)
    policy.refresh_from_db()
    assert (policy.confirmed_at, policy.confirmed_by) == (confirmed_at, alice)


def test_retrying_puts_a_jobs_failed_items_back_as_new_and_leaves_other_jobs_alone(world, alice, monkeypatch):
    started = []
    monkeypatch.setattr(deletion, "start_job", lambda job: started.append(job.pk))
    first, second = two_jobs(world)
    now = timezone.now()
    DeletionItem.objects.update(state=Item.FAILED, attempts=8, not_before=now, finished_at=now, message="no")
    DeletionJob.objects.update(
        state=Job.FAILED, finished_at=now, reason="3 of 3 threads could not be deleted."
    )
    assert deletion.retry_job(first, by=alice) == 3
    assert started == [first.pk]
    assert (first.state, first.finished_at, first.reason, first.pending, first.failed) == (
        Job.QUEUED,
        None,
        "",
        3,
        0,
    )
    assert set(first.items.values_list("state", "attempts", "not_before", "finished_at")) == {
        (Item.PENDING, 0, None, None)
    }
    assert events("job_retried") == [(alice, first.pk, {"threads": 3, "failed_only": True})]
    assert DeletionJob.objects.get(pk=second.pk).state == Job.FAILED
    assert set(second.items.values_list("state", flat=True)) == {Item.FAILED}
    # A job that has not ended is not retried: nothing moves, nothing is recorded.
    assert deletion.retry_job(first, by=alice) == 0
    assert started == [first.pk] and len(events("job_retried")) == 1


# --- A worker's bookkeeping -------------------------------------------------------------------------------


def test_a_workers_tick_beats_renews_only_its_own_leases_and_sees_a_cancellation(world, sim_credential):
    first, second = two_jobs(world)
    DeletionJob.objects.update(state=Job.RUNNING)
    mine, other_worker = run_of(first), run_of(second)
    claimed = mine.claim(sim_credential, 2)
    other_worker.claim(sim_credential, 2)
    almost_over = timezone.now() + timedelta(seconds=1)
    DeletionItem.objects.filter(state=Item.IN_FLIGHT).update(lease_until=almost_over)
    assert mine.tick()
    renewed = timezone.now() + timedelta(seconds=deletion.lease_seconds() - 5)
    assert all(item.lease_until > renewed for item in first.items.filter(pk__in=[i.pk for i in claimed]))
    assert set(second.items.filter(state=Item.IN_FLIGHT).values_list("lease_until", flat=True)) == {
        almost_over
    }
    first.refresh_from_db()
    assert first.heartbeat_at is not None and DeletionJob.objects.get(pk=second.pk).heartbeat_at is None
    assert first.pending == 3  # the counts are refreshed too: in flight counts as not done
    deletion.cancel_job(first)
    assert not mine.tick()


def test_items_claimed_but_never_sent_are_released_as_if_never_claimed(world, sim_credential):
    (job, _) = two_jobs(world)
    DeletionJob.objects.filter(pk=job.pk).update(state=Job.RUNNING)
    run = run_of(job)
    claimed = run.claim(sim_credential, 3)
    run.release(sim_credential, claimed)
    assert set(job.items.values_list("state", "claimed_by", "lease_until", "attempts")) == {
        (Item.PENDING, "", None, 0)
    }


def test_a_refused_credential_fails_only_its_own_pending_items_in_this_job(world, sim_credential):
    other_credential = Credential.objects.create(name="beta", api_key_encrypted="x")
    Thread.objects.filter(remote_id=world[2]).update(credential=other_credential)
    first, second = two_jobs(world)
    run = run_of(first)
    refused = outcomes.Outcome(
        "quota", Thread.Check.ERROR, "The credential’s project is out of quota" + "!" * 600, ""
    )
    run.stop_credential(sim_credential, refused)
    assert run.stopped_credentials == {sim_credential.pk}
    stopped = first.items.filter(credential=sim_credential)
    assert {(i.state, i.message) for i in stopped} == {
        (Item.FAILED, ("Not attempted: The credential’s project is out of quota" + "!" * 600)[:500])
    }
    assert all(item.finished_at is not None for item in stopped)
    assert first.items.get(credential=other_credential).state == Item.PENDING
    assert set(second.items.values_list("state", flat=True)) == {Item.PENDING}


# --- Receipts ---------------------------------------------------------------------------------------------


def test_a_receipt_states_the_job_and_keeps_each_words_own_characters(world, alice):
    job = deletion.create_job(
        Thread.objects.filter(remote_id__in=world[:2]),
        requested_by=alice,
        summary="Kündigung: “alt”",
        start=False,
    )
    now = timezone.now()
    job.items.filter(remote_id=world[0]).update(
        state=Item.DELETED, finished_at=now, attempts=1, message="Gelöscht"
    )
    unfinished = json.loads("".join(deletion.receipt_json(job)))
    assert (unfinished["state"], unfinished["finished_at"]) == ("queued", None)
    DeletionJob.objects.filter(pk=job.pk).update(state=Job.CANCELLED, finished_at=now)
    job = deletion.refresh_counts(DeletionJob.objects.get(pk=job.pk))
    text = "".join(deletion.receipt_json(job))
    assert "Kündigung: “alt”" in text and "Gelöscht" in text  # not \u escapes: it reads as written
    receipt = json.loads(text)
    assert {key: value for key, value in receipt.items() if key != "items"} == {
        "job": job.pk,
        "requested_by": "alice",
        "source": "browser",
        "selection": "Kündigung: “alt”",
        "created_at": job.created_at.isoformat(),
        "finished_at": now.isoformat(),
        "state": "cancelled",
        "counts": {"total": 2, "deleted": 1, "already_gone": 0, "failed": 0, "left": 1},
    }
    done, left = receipt["items"]
    assert (done["outcome"], done["finished_at"], done["attempts"]) == ("deleted", now.isoformat(), 1)
    assert (left["outcome"], left["finished_at"], left["attempts"]) == ("pending", None, 0)


def test_a_long_receipt_is_sent_in_chunks_that_join_into_one_csv(world, sim_credential):
    Thread.objects.bulk_create(
        Thread(remote_id=f"thread_bulk{n:05d}", kind=Thread.Kind.ASSISTANTS, credential=sim_credential)
        for n in range(2_400)
    )
    job = deletion.create_job(
        Thread.objects.filter(remote_id__startswith="thread_bulk"), summary="bulk", start=False
    )
    chunks = list(deletion.receipt_csv(job))
    assert len(chunks) == 3  # a thousand rows at a time, then the rest
    assert chunks[1].startswith("thread_bulk01000,") and chunks[2].startswith("thread_bulk02000,")
    rows = list(csv.DictReader(io.StringIO("".join(chunks))))
    assert [row["id"] for row in rows] == [f"thread_bulk{n:05d}" for n in range(2_400)]


# --- Before and while a job runs --------------------------------------------------------------------------


def test_the_preview_reads_largest_group_first_and_shows_the_latest_threads(
    world, alice, bob, sim_credential, django_assert_num_queries
):
    now = timezone.now()
    for n, remote_id in enumerate(world):
        Thread.objects.filter(remote_id=remote_id).update(
            owner=[bob, alice, bob][n % 3] if n < 6 else None,
            title=f"Chat {n}" if n != 8 else "",
            last_activity_at=now - timedelta(days=n % 4),
        )
    preview = deletion.preview(Thread.objects.all())
    assert preview.lines()[:4] == [
        "9 threads would be deleted",
        "  by credential: alpha 9",
        "  by owner: bob 4, unassigned 3, alice 2",
        "  by kind: Assistants thread 3, ChatKit thread 3, Conversation 3",
    ]
    # Newest activity first; on the same day, the latest tracked first.
    assert preview.lines()[4:7] == [
        f"  e.g. {world[8]}",
        f"  e.g. {world[4]}  Chat 4",
        f"  e.g. {world[0]}  Chat 0",
    ]
    with django_assert_num_queries(0):
        assert {thread.credential.name for thread in preview.sample} == {"alpha"}
    assert deletion.preview(Thread.objects.none()).lines()[1:] == [
        "  by credential: —",
        "  by owner: —",
        "  by kind: —",
    ]


def test_a_worker_claims_only_its_jobs_items_of_the_credential_it_serves_under_a_lease(world, sim_credential):
    other_credential = Credential.objects.create(name="beta", api_key_encrypted="x")
    Thread.objects.filter(remote_id=world[1]).update(credential=other_credential)
    first, second = two_jobs(world)
    claimed = run_of(first).claim(sim_credential, 10)
    assert [item.remote_id for item in claimed] == [world[0], world[2]]
    soon = timezone.now() + timedelta(seconds=deletion.lease_seconds() - 5)
    assert all(item.lease_until > soon and item.attempts == 1 for item in claimed)
    assert set(second.items.values_list("state", flat=True)) == {Item.PENDING}
    assert first.items.get(remote_id=world[1]).state == Item.PENDING


def test_unfinished_jobs_are_started_again_when_the_process_starts(world, monkeypatch):
    started = []
    monkeypatch.setattr(deletion, "start_job", lambda job, runs=None: started.append((job.pk, runs)))
    first, second = two_jobs(world)
    DeletionJob.objects.filter(pk=second.pk).update(state=Job.FINISHED)
    assert deletion.resume_unfinished() == [first.pk]
    assert started == [(first.pk, 1)]


def a_run_elsewhere(job, slot, *, seconds_ago=0, host="another-host", pid=4242):
    return DeletionRun.objects.create(
        job=job,
        slot=slot,
        token=f"elsewhere-{job.pk}-{slot}",
        host=host,
        pid=pid,
        heartbeat_at=timezone.now() - timedelta(seconds=seconds_ago),
    )


def gone_pid() -> int:
    """The ID of a process that no longer exists on this machine."""
    process = subprocess.Popen(["true"])
    process.wait()
    return process.pid


def test_resuming_starts_only_the_runs_a_job_lacks_and_takes_back_the_slots_of_dead_runs(world, monkeypatch):
    started = []
    monkeypatch.setattr(deletion, "start_job", lambda job, runs=None: started.append((job.pk, runs)))
    healthy, short = two_jobs(world)
    DeletionJob.objects.update(state=Job.RUNNING, runs_wanted=2)
    a_run_elsewhere(healthy, 0)
    a_run_elsewhere(healthy, 1, seconds_ago=deletion.lease_seconds() - 5)
    a_run_elsewhere(short, 0)
    a_run_elsewhere(short, 1, seconds_ago=deletion.lease_seconds() + 1)  # silent past its lease: dead
    assert deletion.resume_unfinished() == [short.pk]
    assert started == [(short.pk, 1)]
    assert list(short.runs.values_list("slot", flat=True)) == [0]
    # A run of this machine whose process is gone is dead at once, whatever its heartbeat says.
    DeletionRun.objects.filter(job=healthy, slot=1).update(host=deletion.HOST, pid=gone_pid())
    started.clear()
    assert deletion.resume_unfinished() == [healthy.pk, short.pk]
    assert started == [(healthy.pk, 1), (short.pk, 1)]
    # Beat runs this every minute: a job whose runs are all alive is left alone.
    a_run_elsewhere(healthy, 1, host=deletion.HOST, pid=os.getpid())  # a run of this very process
    started.clear()
    DeletionJob.objects.filter(pk=short.pk).update(state=Job.FINISHED)
    assert deletion.resume_unfinished() == [] and started == []


def test_a_job_has_at_most_the_runs_it_wants_each_with_its_share_of_the_concurrency(world, sim_credential):
    sim_credential.concurrency = 5
    job, _ = two_jobs(world)
    DeletionJob.objects.filter(pk=job.pk).update(state=Job.RUNNING, runs_wanted=2)
    job.refresh_from_db()
    first, second = deletion.JobRun.join(job), deletion.JobRun.join(job)
    assert (first.slot, second.slot) == (0, 1)
    assert deletion.JobRun.join(job) is None, "a third run would exceed the credential's concurrency"
    assert (first.capacity(sim_credential), second.capacity(sim_credential)) == (3, 2)
    # A run taken for dead (silent past its lease) gives its slot to the next; told so, it stops.
    DeletionRun.objects.filter(token=first.token).update(
        heartbeat_at=timezone.now() - timedelta(seconds=deletion.lease_seconds() + 1)
    )
    third = deletion.JobRun.join(job)
    assert third.slot == 0
    assert not first.tick()
    assert second.tick() and third.tick()


@pytest.mark.parametrize("concurrency", [1, 2, 3, 8, 97])
@pytest.mark.parametrize("runs", [1, 2, 3])
def test_the_runs_shares_add_up_to_the_credentials_concurrency(concurrency, runs):
    shares = [deletion.share(concurrency, runs, slot) for slot in range(runs)]
    assert sum(shares) == concurrency
    assert max(shares) - min(shares) <= 1


def test_a_run_that_ends_gives_back_its_slot_and_a_run_with_no_slot_changes_nothing(world, settings):
    settings.THREADSITE_RUNS_PER_JOB = 2
    job, _ = two_jobs(world)
    assert job.runs_wanted == 2
    a_run_elsewhere(job, 0)
    a_run_elsewhere(job, 1)
    DeletionJob.objects.filter(pk=job.pk).update(state=Job.RUNNING)
    assert deletion.run_job(job.pk) == Job.RUNNING  # both slots alive elsewhere: it leaves at once
    assert set(job.items.values_list("state", flat=True)) == {Item.PENDING}
    DeletionRun.objects.filter(job=job, slot=1).delete()
    assert deletion.run_job(job.pk) == Job.FINISHED
    assert list(job.runs.values_list("slot", flat=True)) == [0], "its own slot is given back"


def test_the_progress_says_how_far_how_fast_and_how_long_still(world):
    job, _ = two_jobs(world)
    now = timezone.now()
    job.total, job.deleted, job.already_gone, job.failed, job.pending = 100, 20, 5, 5, 70
    job.state, job.started_at = Job.RUNNING, now - timedelta(seconds=10)
    shown = deletion.progress(job)
    assert shown.percent == 30
    assert shown.rate == pytest.approx(3.0, rel=0.05)
    assert shown.seconds_left == pytest.approx(70 / 3.0, rel=0.05)
    assert shown.limits == [("alpha", None)]
    # Ended: the rate of its whole run, and no time left, whatever was left untouched.
    job.state, job.finished_at = Job.CANCELLED, job.started_at + timedelta(seconds=60)
    shown = deletion.progress(job)
    assert (shown.rate, shown.seconds_left) == (pytest.approx(0.5), None)
    job.total = job.deleted = job.already_gone = job.failed = job.pending = 0
    assert deletion.progress(job).percent == 100


def test_an_item_whose_thread_was_removed_from_the_registry_fails_with_the_reason(simulator, world):
    job = make_job()
    Thread.objects.filter(remote_id=world[0]).delete()
    deletion.run_job(job.pk)
    item = job.items.get(remote_id=world[0])
    assert (item.state, item.message) == (Item.FAILED, "The thread's record was removed from the registry.")
    assert not any(world[0] in path for path in deletes(simulator))


def test_one_deletion_in_twenty_is_confirmed_by_a_retrieve(simulator, sim_credential):
    for _ in range(45):
        remote_id = simulator.state.create_chatkit_thread("proj_alpha", user="u")["id"]
        Thread.objects.create(remote_id=remote_id, kind=Thread.Kind.CHATKIT, credential=sim_credential)
    job = make_job()
    deletion.run_job(job.pk)
    verified = set(job.items.filter(verified=True).values_list("pk", flat=True))
    assert verified == {
        pk for pk in job.items.values_list("pk", flat=True) if pk % deletion.VERIFY_EVERY == 0
    }
    assert len(verified) in (2, 3)
    assert set(job.items.exclude(pk__in=verified).values_list("verified", flat=True)) == {None}


def test_a_defect_while_deleting_is_logged_retried_then_given_up_with_its_name(
    simulator, world, monkeypatch, caplog
):
    def defect(*args, **kwargs):
        raise RuntimeError("a bug")

    monkeypatch.setattr(deletion, "delete_remote", defect)
    job = deletion.create_job(Thread.objects.filter(remote_id=world[0]), summary="one", start=False)
    assert deletion.run_job(job.pk) == Job.FAILED
    item = job.items.get()
    assert (item.state, item.attempts) == (Item.FAILED, deletion.MAX_ATTEMPTS)
    assert item.message == f"Gave up after {deletion.MAX_ATTEMPTS} attempts. Unexpected error: RuntimeError"
    assert f"Deleting {world[0]} failed unexpectedly" in caplog.text
    assert Thread.objects.get(remote_id=world[0]).status == Thread.Status.ACTIVE


def test_a_passing_failure_is_tried_again_after_the_wait_the_api_named_else_after_a_backoff(
    world, sim_credential, monkeypatch
):
    monkeypatch.setattr(deletion, "backoff", lambda attempt: 10.0 * attempt)
    job = deletion.create_job(Thread.objects.filter(remote_id__in=world[:2]), summary="two", start=False)
    run = run_of(job)
    named, unnamed = run.claim(sim_credential, 2)
    limited = outcomes.Outcome("rate_limited", Thread.Check.ERROR, "Slow down", "", retry_after=30.0)
    before = timezone.now()
    run.record(
        sim_credential,
        [
            (named, deletion.Attempt(Item.PENDING, "x" * 600, outcome=limited)),
            (unnamed, deletion.Attempt(Item.PENDING, "The server had an error")),
        ],
    )
    named, unnamed = job.items.order_by("id")
    assert (named.state, named.claimed_by, named.lease_until, len(named.message)) == (
        Item.PENDING,
        "",
        None,
        500,
    )
    assert before + timedelta(seconds=30) <= named.not_before <= timezone.now() + timedelta(seconds=30)
    assert before + timedelta(seconds=10) <= unnamed.not_before <= timezone.now() + timedelta(seconds=10)


def test_an_outcome_recorded_frees_its_item_and_says_when(world, sim_credential):
    job = deletion.create_job(Thread.objects.filter(remote_id=world[0]), summary="one", start=False)
    run = run_of(job)
    (item,) = run.claim(sim_credential, 1)
    before = timezone.now()
    run.record(sim_credential, [(item, deletion.Attempt(Item.FAILED, "y" * 600))])
    item.refresh_from_db()
    assert (item.state, item.claimed_by, item.lease_until, len(item.message)) == (Item.FAILED, "", None, 500)
    assert before <= item.finished_at <= timezone.now()


def test_a_workers_tick_leaves_the_leases_of_another_worker_on_the_same_job(world, sim_credential):
    job = make_job()
    DeletionJob.objects.filter(pk=job.pk).update(state=Job.RUNNING)
    mine, theirs = run_of(job), run_of(job)
    mine.claim(sim_credential, 2)
    theirs.claim(sim_credential, 2)
    almost_over = timezone.now() + timedelta(seconds=1)
    job.items.filter(state=Item.IN_FLIGHT).update(lease_until=almost_over)
    mine.tick()
    leases = dict(job.items.filter(state=Item.IN_FLIGHT).values_list("claimed_by", "lease_until").distinct())
    assert leases[theirs.token] == almost_over and leases[mine.token] > almost_over


def test_a_worker_takes_over_at_most_the_stale_items_it_asked_for_under_a_new_lease(world, sim_credential):
    job = make_job()
    expired = timezone.now() - timedelta(minutes=5)
    stale = list(job.items.order_by("id")[:3].values_list("pk", flat=True))
    job.items.filter(pk__in=stale).update(
        state=Item.IN_FLIGHT, claimed_by="dead", lease_until=expired, attempts=1
    )
    run = run_of(job)
    taken = run.claim(sim_credential, 2)
    assert len(taken) == 2 and all(item.recovering for item in taken)
    soon = timezone.now() + timedelta(seconds=deletion.lease_seconds() - 5)
    assert all(item.lease_until > soon and item.attempts == 2 for item in taken)
    left = job.items.get(pk=stale[2])
    assert (left.claimed_by, left.lease_until) == ("dead", expired)  # for the next claim, not lost


def test_a_worker_that_lost_its_lease_does_not_overwrite_the_new_holders_outcome(world, sim_credential):
    job = make_job()
    slow, quick = run_of(job), run_of(job)
    (item,) = slow.claim(sim_credential, 1)
    job.items.filter(pk=item.pk).update(lease_until=timezone.now() - timedelta(seconds=1))
    (taken,) = quick.claim(sim_credential, 1)
    assert taken.pk == item.pk
    slow.record(sim_credential, [(item, deletion.Attempt(Item.FAILED, "late answer"))])
    item.refresh_from_db()
    assert (item.state, item.claimed_by, item.message) == (Item.IN_FLIGHT, quick.token, "")


def test_the_end_of_a_job_is_recorded_with_its_counts_and_who_asked(simulator, world, alice):
    simulator.state.threads.pop(world[0])
    job = make_job(requested_by=alice, verify_all=True)
    deletion.run_job(job.pk)
    started = AuditEvent.objects.get(action="job_started")
    assert (started.actor, started.object_pk, started.details) == (alice, job.pk, {"pending": 9})
    event = AuditEvent.objects.get(action="job_finished")
    assert (event.actor, event.actor_name, event.object_pk) == (alice, "alice", job.pk)
    assert event.details == {
        "state": "finished",
        "total": 9,
        "deleted": 8,
        "already_gone": 1,
        "failed": 0,
        "left": 0,
        "verified": 8,
    }
    unasked = make_job()  # nobody asked (a sweep's job): the one thread left, the one the API had no more
    assert deletion.run_job(unasked.pk) == Job.FINISHED
    event = AuditEvent.objects.filter(action="job_finished").latest("id")
    assert (event.actor, event.actor_name) == (None, "(system)")


def test_items_whose_credential_was_removed_fail_with_the_reason_and_the_job_ends(simulator, world, alice):
    job = make_job(requested_by=alice)
    done = list(job.items.order_by("id")[:3].values_list("pk", flat=True))
    job.items.filter(pk__in=done).update(state=Item.DELETED)  # before the worker died
    Thread.objects.all().delete()  # forgotten, then their credential removed
    Credential.objects.all().delete()
    assert deletion.run_job(job.pk) == Job.FAILED
    assert set(job.items.exclude(pk__in=done).values_list("state", "message")) == {
        (Item.FAILED, "The credential was removed.")
    }
    assert set(job.items.filter(pk__in=done).values_list("state", flat=True)) == {Item.DELETED}
    job.refresh_from_db()
    assert (job.failed, job.reason) == (6, "6 of 9 threads could not be deleted.")
    assert all(item.finished_at is not None for item in job.items.exclude(pk__in=done))
    assert deletes(simulator) == []


def test_a_job_not_asked_to_archive_stores_no_transcript(simulator, world):
    job = make_job()
    deletion.run_job(job.pk)
    assert job.items.filter(state=Item.DELETED).count() == 9
    assert not DeletionArchive.objects.exists() and list(deletion.archive_lines(job)) == []


def test_a_jobs_end_names_who_asked_after_their_account_is_removed(simulator, world):
    leaver = User.objects.create_user("leaver")
    job = make_job(requested_by=leaver)
    leaver.delete()
    deletion.run_job(job.pk)
    assert {
        (event.actor, event.actor_name) for event in AuditEvent.objects.filter(action__startswith="job_")
    } == {(None, "leaver")}


def test_a_worker_starts_and_ends_only_the_job_it_was_given(simulator, world):
    first, second = two_jobs(world)
    assert deletion.run_job(first.pk) == Job.FINISHED
    assert DeletionJob.objects.get(pk=second.pk).state == Job.QUEUED
    assert second.items.filter(state=Item.PENDING).count() == 3
    now = timezone.now()
    DeletionJob.objects.filter(pk=second.pk).update(state=Job.RUNNING, started_at=now, heartbeat_at=now)
    third = deletion.create_job(Thread.objects.filter(remote_id__in=world[6:]), summary="third", start=False)
    DeletionJob.objects.filter(pk=third.pk).update(state=Job.RUNNING)
    third.items.update(state=Item.DELETED)
    assert deletion.finish(third).state == Job.FINISHED
    assert DeletionJob.objects.get(pk=second.pk).state == Job.RUNNING
    assert deletion.run_job(10_000) == "job gone"


def test_a_job_with_an_item_in_flight_is_not_ended(world, sim_credential):
    job = make_job()
    DeletionJob.objects.filter(pk=job.pk).update(state=Job.RUNNING)
    job.items.update(state=Item.DELETED)
    job.items.filter(pk=job.items.earliest("id").pk).update(state=Item.IN_FLIGHT, claimed_by="alive")
    assert deletion.finish(job).state == Job.RUNNING
    job.items.update(state=Item.DELETED)
    ended = deletion.finish(job)
    assert (ended.state, ended.reason) == (Job.FINISHED, "") and ended.finished_at is not None
    assert deletion.finish(job).state == Job.FINISHED
    assert AuditEvent.objects.filter(action="job_finished").count() == 1  # ended once


def test_a_job_deletes_with_the_main_key_where_a_read_only_key_is_set(simulator, world, sim_credential):
    sim_credential.read_key = "sk-a-read-only-key-the-api-does-not-know"
    sim_credential.save()
    job = make_job()
    assert deletion.run_job(job.pk) == Job.FINISHED
    job.refresh_from_db()
    assert job.deleted == 9


def test_a_transcript_archived_by_an_earlier_try_is_kept(simulator, world):
    job = make_job(archive=True)
    first = job.items.earliest("id")
    DeletionArchive.objects.create(item=first, content='{"stored": "by the worker that died"}')
    assert deletion.run_job(job.pk) == Job.FINISHED
    assert DeletionArchive.objects.get(item=first).content == '{"stored": "by the worker that died"}'
    assert DeletionArchive.objects.count() == 9


def test_a_jobs_creation_records_what_was_selected_and_how_it_will_be_deleted(world, alice, sim_credential):
    policy = RetentionPolicy.objects.create(credential=sim_credential, mode="delete")
    job = deletion.create_job(
        Thread.objects.filter(kind=Thread.Kind.CONVERSATION),
        requested_by=alice,
        summary="Kind: Conversation " + "x" * 1200,
        filters={"kind": "conversation"},
        source=DeletionJob.Source.COMMAND,
        delete_items=False,
        archive=True,
        verify_all=True,
        policy=policy,
        awaiting=True,
    )
    assert (job.state, job.requested_by_name, job.total, job.pending, len(job.summary)) == (
        Job.AWAITING,
        "alice",
        3,
        3,
        1000,
    )
    assert (job.filters, job.source, job.delete_items, job.archive, job.verify_all) == (
        {"kind": "conversation"},
        "command",
        False,
        True,
        True,
    )
    event = AuditEvent.objects.get(action="job_created")
    assert (event.actor, event.object_pk) == (alice, job.pk)
    assert event.details == {
        "threads": 3,
        "source": "command",
        "selection": job.summary,
        "delete_items": False,
        "archive": True,
        "verify_all": True,
        "awaiting_confirmation": True,
        "policy": policy.pk,
    }
    assert set(job.items.values_list("kind", "credential_name", "state", "attempts")) == {
        ("conversation", "alpha", Item.PENDING, 0)
    }


def test_a_thread_waits_in_one_job_at_a_time_and_is_free_again_once_it_no_longer_waits(world):
    first = deletion.create_job(Thread.objects.filter(remote_id__in=world[:3]), summary="first", start=False)
    assert deletion.create_job(Thread.objects.all(), summary="the rest", start=False).total == 6
    with pytest.raises(deletion.NothingToDelete):
        deletion.create_job(Thread.objects.all(), summary="nothing left", start=False)
    # An item that failed in a job still running waits no more: its thread may go in a new job.
    DeletionJob.objects.filter(pk=first.pk).update(state=Job.RUNNING)
    first.items.filter(remote_id=world[0]).update(state=Item.FAILED)
    assert deletion.create_job(Thread.objects.all(), summary="retry one", start=False).total == 1
    # A thread forgotten while its job waits leaves that job an item without a thread (which must not
    # make every thread look taken); cancelled, a job's pending threads are free again.
    Thread.objects.filter(remote_id=world[3]).delete()
    DeletionJob.objects.filter(pk=first.pk).update(state=Job.QUEUED)
    deletion.cancel_job(first)
    assert deletion.create_job(Thread.objects.all(), summary="again", start=False).total == 2


def test_an_item_waiting_for_its_retry_is_not_claimed_before_its_time(world, sim_credential):
    job = deletion.create_job(Thread.objects.filter(remote_id=world[0]), summary="one", start=False)
    job.items.update(not_before=timezone.now() + timedelta(minutes=1), attempts=1)
    run = run_of(job)
    assert run.claim(sim_credential, 5) == []  # not yet: wait, do not finish
    job.items.update(not_before=timezone.now() - timedelta(seconds=1))
    assert [item.remote_id for item in run.claim(sim_credential, 5)] == [world[0]]
    assert run.claim(sim_credential, 5) == []  # held by this run
    job.items.update(state=Item.DELETED)
    assert run.claim(sim_credential, 5) is None  # nothing left for this credential


def test_in_one_batch_a_failure_does_not_keep_the_others_from_their_new_status(world, sim_credential, alice):
    job = deletion.create_job(Thread.objects.filter(remote_id__in=world[:3]), summary="three", start=False)
    run = run_of(job)
    failed, deleted, gone = run.claim(sim_credential, 3)
    run.record(
        sim_credential,
        [
            (failed, deletion.Attempt(Item.FAILED, "refused")),
            (deleted, deletion.Attempt(Item.DELETED)),
            (gone, deletion.Attempt(Item.ALREADY_GONE, "No thread found")),
        ],
    )
    statuses = dict(Thread.objects.filter(remote_id__in=world[:3]).values_list("remote_id", "status"))
    assert statuses == {
        world[0]: Thread.Status.ACTIVE,
        world[1]: Thread.Status.DELETED,
        world[2]: Thread.Status.MISSING,
    }


def test_a_cancelled_job_is_not_ended_while_an_item_is_in_flight(world):
    job = make_job()
    DeletionJob.objects.filter(pk=job.pk).update(state=Job.CANCELLING)
    job.items.filter(pk=job.items.earliest("id").pk).update(state=Item.IN_FLIGHT, claimed_by="alive")
    assert deletion.finish(job).state == Job.CANCELLING  # its DELETE may be under way
    job.items.update(state=Item.PENDING, claimed_by="")
    assert deletion.finish(job).state == Job.CANCELLED
