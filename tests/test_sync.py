"""Checking, verifying and discovering against the simulator (over real HTTP, in a thread)."""

from datetime import timedelta

import pytest
from django.utils import timezone

from threads_app import importing, sync
from threads_app.client import ServerError
from threads_app.models import Thread

pytestmark = pytest.mark.usefixtures("no_retries")


@pytest.fixture
def alpha(sim_credential):
    return sim_credential


def test_check_records_what_the_api_shows(simulator, alpha):
    created = timezone.now() - timedelta(days=3)
    remote = simulator.state.create_thread(
        "proj_alpha", created_at=created, metadata={"team": "support"}, messages=[("user", "hello")]
    )
    thread = importing.add_thread(remote["id"], credential=alpha)

    assert sync.check_thread(thread) == Thread.Check.OK

    thread.refresh_from_db()
    assert thread.last_check == Thread.Check.OK
    assert thread.metadata == {"team": "support"}
    assert thread.remote_created_at == created.replace(microsecond=0)
    assert thread.last_activity_at >= thread.remote_created_at
    assert thread.activity_source == Thread.ActivitySource.MESSAGE
    assert thread.status == Thread.Status.ACTIVE


def test_a_thread_of_another_project_is_recorded_missing_not_as_an_error(simulator, alpha):
    remote = simulator.state.create_conversation("proj_other", items=[("user", "hi")])
    thread = importing.add_thread(remote["id"], credential=alpha)

    assert sync.check_thread(thread) == Thread.Check.NOT_FOUND

    thread.refresh_from_db()
    assert thread.status == Thread.Status.MISSING
    assert remote["id"] in thread.last_check_message and "not found" in thread.last_check_message
    change = thread.status_changes.get()
    assert (change.old_status, change.new_status) == (Thread.Status.ACTIVE, Thread.Status.MISSING)
    assert "404" in change.reason


def test_a_refused_key_is_a_bad_key_not_a_missing_thread(sim_credential):
    credential = sim_credential
    credential.api_key = "sk-sim-revoked-key-9999"  # never registered with the simulator
    credential.save()
    importing.import_threads("thread_aaaaaa111 thread_bbbbbb222 thread_cccccc333", credential=credential)

    report = sync.check_unchecked(credential)

    assert report.checked == 1, "the run stops at the first refusal"
    assert "refused the credential’s key" in report.stopped
    # Checks run concurrently: whichever answer came back first is recorded; the others stay unchecked.
    first = Thread.objects.exclude(last_check="").get()
    assert (first.last_check, first.status) == (Thread.Check.BAD_KEY, Thread.Status.ACTIVE)
    assert Thread.objects.filter(last_check="").count() == 2
    credential.refresh_from_db()
    assert credential.last_verification_ok is False


def test_check_unchecked_checks_each_new_thread_once(simulator, alpha):
    found = [simulator.state.create_thread("proj_alpha")["id"] for _ in range(3)]
    importing.import_threads("\n".join([*found, "conv_doesnotexist1"]), credential=alpha)

    report = sync.check_unchecked(alpha)

    assert (report.checked, report.found, report.not_found, report.failed) == (4, 3, 1, 0)
    assert sync.check_unchecked(alpha).checked == 0


def test_server_failures_propagate_so_the_task_retries_later(simulator, alpha):
    thread = importing.add_thread(simulator.state.create_thread("proj_alpha")["id"], credential=alpha)
    simulator.state.enqueue_faults("503")

    with pytest.raises(ServerError):
        sync.check_thread(thread)

    thread.refresh_from_db()
    assert thread.last_check == ""


def test_verify_tells_a_working_key_from_a_refused_one(simulator, alpha):
    assert sync.verify_credential(alpha) == (True, "The API accepted the key.")
    alpha.api_key = "sk-sim-wrong-key-0000"
    alpha.save()
    ok, message = sync.verify_credential(alpha)
    assert not ok
    assert "refused the credential’s key" in message
    assert "sk-sim-wrong-key-0000" not in message
    alpha.refresh_from_db()
    assert alpha.last_verification_ok is False


def test_discovery_registers_new_chatkit_threads_with_their_end_user(simulator, alpha):
    state = simulator.state
    first = state.create_chatkit_thread("proj_alpha", user="customer-1", title="Billing question")
    state.create_chatkit_thread("proj_alpha", user="customer-2", title="Login help")
    state.create_chatkit_thread("proj_other", user="customer-3", title="Not ours")
    importing.add_thread(first["id"], credential=alpha)

    report = sync.discover(alpha)

    assert (report.seen, report.added) == (2, 1)
    discovered = Thread.objects.get(source=Thread.Source.DISCOVERY)
    assert (discovered.kind, discovered.end_user, discovered.title) == (
        Thread.Kind.CHATKIT,
        "customer-2",
        "Login help",
    )
    assert discovered.remote_created_at is not None
    assert sync.discover(alpha).added == 0


def test_discovery_stores_only_valid_ids_and_clips_what_the_api_lists(simulator, alpha):
    state = simulator.state
    good = state.create_chatkit_thread("proj_alpha", user="customer", title="T" * 500)
    state.chatkit_threads[good["id"]].data["metadata"] = {f"k{n}": "v" * 900 for n in range(200)}
    for bad_id in ["", "cthr_abc\r\nX-Evil: 1", 'cthr_"<img src=x>', "../../threads/x", "cthr_" + "a" * 300]:
        record = state.create_chatkit_thread("proj_alpha", user="hostile")
        record["id"] = bad_id  # what a hostile server could list

    report = sync.discover(alpha)

    assert report.seen == 6 and report.added == 1
    stored = Thread.objects.get()
    assert stored.remote_id == good["id"] and len(stored.title) == 300
    assert len(stored.metadata) == 16 and all(len(value) == 512 for value in stored.metadata.values())


def test_discovery_dates_chatkit_threads_by_their_newest_item(simulator, alpha):
    created = timezone.now().replace(microsecond=0) - timedelta(days=30)
    talked = created + timedelta(days=20)
    quiet = simulator.state.create_chatkit_thread("proj_alpha", user="a", created_at=created)
    busy = simulator.state.create_chatkit_thread(
        "proj_alpha",
        user="b",
        created_at=created,
        items=[
            ("user", "hello", {"created_at": created + timedelta(days=1)}),
            ("assistant", "hi", {"created_at": talked}),
        ],
    )

    assert sync.discover(alpha).added == 2

    busy_row = Thread.objects.get(remote_id=busy["id"])
    assert (busy_row.last_activity_at, busy_row.activity_source) == (talked, Thread.ActivitySource.MESSAGE)
    assert busy_row.newest_entry_id
    quiet_row = Thread.objects.get(remote_id=quiet["id"])
    assert (quiet_row.last_activity_at, quiet_row.activity_source) == (created, Thread.ActivitySource.CREATED)
