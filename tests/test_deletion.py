"""Deleting threads: one from its page's function, many in a job, against the simulator (fast layer)."""

from datetime import timedelta

import pytest
from django.utils import timezone

from threads_app import deletion, kinds
from threads_app.models import DeletionItem, DeletionJob, StatusChange, Thread

Item = DeletionItem.State


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


def test_a_job_refuses_a_count_that_no_longer_matches(world):
    with pytest.raises(deletion.NothingToDelete, match="not the 5 you confirmed"):
        make_job(expected_count=5)
    with pytest.raises(deletion.NothingToDelete, match="No thread"):
        deletion.create_job(Thread.objects.none(), summary="nothing", start=False)
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
    monkeypatch.setattr(type(adapter), "delete", lambda self, client, remote_id, delete_items=False: None)
    job = make_job(verify_all=True)
    deletion.run_job(job.pk)
    job.refresh_from_db()
    liar = job.items.filter(kind="chatkit_thread")
    assert liar.count() == 3
    assert all(item.state == Item.FAILED and item.verified is False for item in liar)
    assert "still serves it" in liar[0].message
    assert job.verified == 6
    assert Thread.objects.filter(kind="chatkit_thread", status=Thread.Status.ACTIVE).count() == 3


def test_archive_stores_each_transcript_before_deleting(simulator, world):
    job = make_job(archive=True)
    deletion.run_job(job.pk)
    lines = "".join(deletion.archive_lines(job)).splitlines()
    assert len(lines) == 9
    import json

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
    import json

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
