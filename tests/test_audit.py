"""The audit trail: append-only events, each action recorded exactly once by the function where it
happens, the operator of a command as its actor, the audit log's pages and CSV, and its retention."""

import csv
import io
import json
import re
from datetime import timedelta

import pytest
from django.contrib.auth.models import User
from django.core.management import call_command
from django.core.management.base import CommandError
from django.test import RequestFactory
from django.urls import reverse
from django.utils import timezone

from tests.conftest import make_user
from threads_app import (
    audit,
    credentials,
    deletion,
    editing,
    importing,
    listing,
    locating,
    retention,
    sweeps,
    sync,
    tasks,
)
from threads_app.forms import CredentialForm
from threads_app.models import AuditEvent, AuditRefused, Credential, DeletionJob, RetentionPolicy, Thread

Action = AuditEvent.Action
HTMX = {"HX-Request": "true"}
LOG = reverse("audit_log")
SECRET_MESSAGE = "the customer's card number is 4242"

pytestmark = pytest.mark.usefixtures("no_retries")


@pytest.fixture(autouse=True)
def quick_retries(monkeypatch):
    monkeypatch.setattr(deletion, "backoff", lambda attempt: 0.0)


@pytest.fixture
def auditor(db):
    return make_user("audrey", "auditor")


@pytest.fixture
def admin(db):
    return User.objects.create_user("root", password="root-password", is_staff=True, is_superuser=True)


@pytest.fixture
def as_auditor(client, auditor):
    client.force_login(auditor)
    return client


@pytest.fixture
def as_admin(client, admin):
    client.force_login(admin)
    return client


def events(action=None):
    """The events of `action`; without one, every event but sign-ins (a test client's force_login is one)."""
    found = AuditEvent.objects.all()
    return list(found.filter(action=action) if action else found.exclude(action=Action.SIGN_IN))


def only(action) -> AuditEvent:
    """The one event of `action`: exactly one was recorded."""
    found = events(action)
    assert len(found) == 1, [(e.action, e.details) for e in AuditEvent.objects.all()]
    return found[0]


def every_event_as_text() -> str:
    return json.dumps(list(AuditEvent.objects.values()), default=str)


@pytest.fixture
def served(simulator, sim_credential):
    """A thread with a message (SECRET_MESSAGE) tracked under the simulator's credential."""
    remote = simulator.state.create_thread(
        "proj_alpha", messages=[("user", SECRET_MESSAGE)], metadata={"ticket": "ZD-1"}
    )
    return Thread.objects.create(
        remote_id=remote["id"],
        kind=Thread.Kind.ASSISTANTS,
        credential=sim_credential,
        metadata={"ticket": "ZD-1"},
    )


# --- Append-only ----------------------------------------------------------------------------------------


def test_an_event_cannot_be_changed_or_deleted(alice):
    event = audit.record(Action.SIGN_IN, actor=alice, obj=alice)
    event.actor_name = "mallory"
    with pytest.raises(AuditRefused):
        event.save()
    with pytest.raises(AuditRefused):
        event.delete()
    with pytest.raises(AuditRefused):
        AuditEvent.objects.filter(pk=event.pk).update(actor_name="mallory")
    with pytest.raises(AuditRefused):
        AuditEvent.objects.all().delete()
    with pytest.raises(AuditRefused):
        AuditEvent.objects.bulk_update([event], ["actor_name"])
    stored = AuditEvent.objects.get(pk=event.pk)
    assert (stored.actor_name, stored.action) == ("alice", Action.SIGN_IN)


def test_an_event_outlives_its_actor_and_keeps_the_name(alice):
    audit.record(Action.SIGN_IN, actor=alice, obj=alice)
    alice.delete()
    stored = AuditEvent.objects.get()
    assert stored.actor_id is None and stored.actor_name == "alice"


def test_the_admin_shows_events_read_only(client, admin, alice):
    event = audit.record(Action.SIGN_IN, actor=alice, obj=alice)
    client.force_login(admin)
    assert client.get("/admin/threads_app/auditevent/").status_code == 200
    assert client.get("/admin/threads_app/auditevent/add/").status_code == 403
    change = client.get(f"/admin/threads_app/auditevent/{event.pk}/change/")
    assert change.status_code == 200 and 'name="_save"' not in change.content.decode()
    assert (
        client.post(f"/admin/threads_app/auditevent/{event.pk}/change/", {"actor_name": "x"}).status_code
        == 403
    )
    assert (
        client.post(f"/admin/threads_app/auditevent/{event.pk}/delete/", {"post": "yes"}).status_code == 403
    )
    bulk = {"action": "delete_selected", "_selected_action": [event.pk], "post": "yes"}
    client.post("/admin/threads_app/auditevent/", bulk)
    assert AuditEvent.objects.get(pk=event.pk).actor_name == "alice"


# --- Addresses ------------------------------------------------------------------------------------------


def test_the_address_is_the_connection_unless_proxies_are_trusted(settings):
    factory = RequestFactory()
    request = factory.get("/", REMOTE_ADDR="10.0.0.9", HTTP_X_FORWARDED_FOR="6.6.6.6, 203.0.113.7")
    settings.TRUSTED_PROXIES = 0
    assert audit.client_address(request) == "10.0.0.9"
    settings.TRUSTED_PROXIES = 1
    assert audit.client_address(request) == "203.0.113.7"  # what the nearest proxy saw, not the client's word
    settings.TRUSTED_PROXIES = 2
    assert audit.client_address(request) == "6.6.6.6"
    settings.TRUSTED_PROXIES = 1
    assert audit.client_address(factory.get("/", REMOTE_ADDR="10.0.0.9", HTTP_X_FORWARDED_FOR="junk")) is None
    settings.TRUSTED_PROXIES = 3  # fewer entries than proxies: the connection's address
    assert audit.client_address(request) == "10.0.0.9"


def test_a_plain_function_called_from_a_request_records_its_address(client, alice, make_thread):
    thread = make_thread()
    client.force_login(alice)
    client.post(reverse("thread_pin", args=[thread.pk]), {"pinned": "1"}, REMOTE_ADDR="192.0.2.44")
    assert only(Action.THREAD_PINNED).address == "192.0.2.44"
    retention.set_pinned(thread, False, by=alice)  # no request being served: no address
    assert events(Action.THREAD_PINNED)[0].address is None


# --- Signing in -----------------------------------------------------------------------------------------


def test_a_sign_in_is_recorded_once(client, alice):
    client.post(
        reverse("login"), {"username": "alice", "password": "alice-password"}, REMOTE_ADDR="192.0.2.1"
    )
    event = only(Action.SIGN_IN)
    assert (event.actor, event.address, event.object_type) == (alice, "192.0.2.1", "user")
    assert not events(Action.SIGN_IN_FAILED)


def test_a_failed_sign_in_records_the_name_tried_and_never_the_password(client, alice):
    client.post(reverse("login"), {"username": "alice", "password": "wrong-secret-guess"})
    client.post(reverse("login"), {"username": "nobody-here", "password": "another-secret-guess"})
    failed = events(Action.SIGN_IN_FAILED)
    assert {(e.actor_name, e.details["known_user"]) for e in failed} == {
        ("alice", True),
        ("nobody-here", False),
    }
    assert not events(Action.SIGN_IN)
    text = every_event_as_text()
    assert "secret-guess" not in text and "password" not in text


# --- Each action, exactly once -------------------------------------------------------------------------


def test_a_single_deletion_is_recorded_once_with_its_outcome(client, alice, served):
    client.force_login(alice)
    client.post(reverse("thread_delete", args=[served.pk]), REMOTE_ADDR="192.0.2.5")
    event = only(Action.THREAD_DELETED)
    assert (event.actor_name, event.remote_id, event.object_pk, event.address) == (
        "alice",
        served.remote_id,
        served.pk,
        "192.0.2.5",
    )
    assert event.details["outcome"] == "deleted" and event.details["status"] == "deleted"
    # A second try sends nothing, and records nothing.
    client.post(reverse("thread_delete", args=[served.pk]))
    assert len(events(Action.THREAD_DELETED)) == 1


def test_a_deletion_job_records_creation_start_and_end_once_each(alice, served, simulator, sim_credential):
    other = simulator.state.create_thread("proj_alpha")
    Thread.objects.create(remote_id=other["id"], kind=Thread.Kind.ASSISTANTS, credential=sim_credential)
    job = deletion.create_job(Thread.objects.all(), requested_by=alice, summary="Every thread", start=False)
    created = only(Action.JOB_CREATED)
    assert (created.object_type, created.object_pk, created.details["threads"]) == ("job", job.pk, 2)

    deletion.run_job(job.pk)
    deletion.run_job(job.pk)  # a second worker finds it ended: neither starts nor ends it again

    started, ended = only(Action.JOB_STARTED), only(Action.JOB_FINISHED)
    assert started.actor_name == ended.actor_name == "alice"
    assert ended.details | {"total": 2} == {
        "state": "finished",
        "total": 2,
        "deleted": 2,
        "already_gone": 0,
        "failed": 0,
        "left": 0,
        "verified": ended.details["verified"],
    }


def test_cancelling_retrying_and_confirming_a_job_are_recorded_once(
    alice, bob, served, django_capture_on_commit_callbacks
):
    job = deletion.create_job(Thread.objects.all(), requested_by=alice, summary="s", start=False)
    deletion.cancel_job(job, by=bob)
    deletion.cancel_job(job, by=bob)  # already cancelled: nothing happens
    cancelled = only(Action.JOB_CANCELLED)
    assert (cancelled.actor_name, cancelled.details["before_start"]) == ("bob", True)

    with django_capture_on_commit_callbacks(execute=True):
        assert deletion.retry_job(job, by=bob) == 1  # runs inline, to its end
    assert only(Action.JOB_RETRIED).actor_name == "bob"
    assert only(Action.JOB_FINISHED).details["deleted"] == 1

    policy = RetentionPolicy.objects.create(credential=served.credential, mode="delete")
    fresh = Thread.objects.create(
        remote_id="thread_confirmable", kind="assistants_thread", credential=served.credential
    )
    awaiting = deletion.create_job(
        Thread.objects.filter(pk=fresh.pk), summary="sweep", policy=policy, awaiting=True
    )
    assert events(Action.JOB_CREATED)[0].actor_name == audit.SYSTEM
    with django_capture_on_commit_callbacks(execute=True):
        deletion.confirm_job(awaiting, by=alice)
        deletion.confirm_job(awaiting, by=alice)
    assert only(Action.JOB_CONFIRMED).actor_name == "alice"


def test_an_import_and_an_addition_are_recorded_once(alice, credential):
    report = importing.import_threads(
        "thread_import000001\nthread_import000002\nthread_import000001\n",
        credential=credential,
        added_by=alice,
    )
    assert report.added == 2
    event = only(Action.THREADS_IMPORTED)
    assert (event.actor_name, event.details["added"], event.details["duplicates"]) == ("alice", 2, 1)
    with pytest.raises(importing.ImportRefused):
        importing.import_threads("nothing here", credential=credential, added_by=alice)
    assert len(events(Action.THREADS_IMPORTED)) == 1  # a refused input changed nothing

    thread = importing.add_thread("thread_byhand0001", credential=credential, added_by=alice)
    assert only(Action.THREAD_ADDED).remote_id == thread.remote_id
    with pytest.raises(importing.AlreadyTracked):
        importing.add_thread("thread_byhand0001", credential=credential, added_by=alice)
    assert len(events(Action.THREAD_ADDED)) == 1


def test_a_discovery_is_recorded_once(alice, simulator, sim_credential):
    simulator.state.create_chatkit_thread("proj_alpha", user="customer-1")
    sync.discover(sim_credential, added_by=alice)
    event = only(Action.THREADS_DISCOVERED)
    assert (event.object_type, event.details["added"]) == ("credential", 1)
    sync.discover(sim_credential)  # beat's: nothing new, nobody asked: not news
    assert len(events(Action.THREADS_DISCOVERED)) == 1


def test_edits_record_the_owner_change_and_the_labels_apart(client, alice, bob, make_thread):
    thread = make_thread(title="Old", owner=alice)
    client.force_login(alice)
    url = reverse("thread_edit", args=[thread.pk])
    client.post(url, {"title": "New", "owner": bob.pk, "end_user": ""})
    owner = only(Action.OWNER_CHANGED)
    assert (owner.details["before"], owner.details["after"], owner.remote_id) == (
        "alice",
        "bob",
        thread.remote_id,
    )
    assert only(Action.THREAD_EDITED).details == {"before": {"title": "Old"}, "after": {"title": "New"}}
    client.post(url, {"title": "New", "owner": bob.pk, "end_user": ""})  # nothing changed
    assert len(events()) == 2
    thread.refresh_from_db()
    assert (thread.title, thread.owner) == ("New", bob)


def test_a_metadata_edit_records_the_keys_never_the_values(client, alice, served):
    client.force_login(alice)
    client.post(
        reverse("thread_metadata", args=[served.pk]),
        {"key_0": "ticket", "value_0": "ZD-2", "key_1": "secret_note", "value_1": "very private value"},
    )
    event = only(Action.METADATA_EDITED)
    assert event.details == {"added": ["secret_note"], "removed": [], "changed": ["ticket"]}
    assert "very private value" not in every_event_as_text()


def test_pinning_is_recorded_only_when_it_changes(alice, make_thread):
    thread = make_thread()
    retention.set_pinned(thread, True, by=alice)
    retention.set_pinned(thread, True, by=alice)
    assert only(Action.THREAD_PINNED).details == {"pinned": True}


def test_reading_messages_and_exporting_are_recorded_without_their_content(client, alice, served):
    client.force_login(alice)
    client.get(reverse("thread_messages", args=[served.pk]), headers=HTMX)
    viewed = only(Action.MESSAGES_VIEWED)
    assert viewed.details == {"page": "newest", "messages": 1}
    client.get(reverse("thread_export", args=[served.pk, "md"]))
    assert only(Action.THREAD_EXPORTED).details == {"format": "md", "entries": 1}
    assert SECRET_MESSAGE not in every_event_as_text()
    assert len(events()) == 2


def test_a_failed_read_is_not_a_view(client, alice, make_thread):
    thread = make_thread()  # its credential's API is at 127.0.0.1:9: nobody answers
    client.force_login(alice)
    client.get(reverse("thread_messages", args=[thread.pk]), headers=HTMX)
    assert not events()


def test_a_sweep_a_policy_change_and_a_move_are_recorded_once(alice, served, simulator, credential):
    sweeps.run("expiry", by=alice)
    assert only(Action.SWEEP_RUN).details["sweep"] == "expiry"

    retention.set_policy(served.credential, mode="flag", window_days=30, by=alice)
    retention.set_policy(served.credential, mode="flag", window_days=30, by=alice)  # the same: no change
    changed = only(Action.POLICY_CHANGED)
    assert (changed.details["before"], changed.details["after"]["window_days"]) == (None, 30)

    beta = Credential(name="beta", base_url=served.credential.base_url, project_id="proj_beta")
    beta.api_key = "sk-test-beta-key-5678"
    beta.save()
    remote = simulator.state.create_thread("proj_beta")
    lost = Thread.objects.create(
        remote_id=remote["id"], kind="assistants_thread", credential=served.credential, status="missing"
    )
    result = locating.rehome(lost, Credential.objects.all(), by=alice)
    assert result.moved
    moved = only(Action.THREAD_MOVED)
    assert (moved.remote_id, moved.details["moved_to"]) == (lost.remote_id, "beta")


def test_credential_changes_are_recorded_without_the_key(alice, credential):
    form = CredentialForm(
        data={
            "name": "gamma",
            "base_url": "http://127.0.0.1:9/v1",
            "api_key": "sk-brand-new-secret-9999",
            "concurrency": 4,
        }
    )
    assert form.is_valid(), form.errors
    gamma, is_new = credentials.save(form, by=alice)
    assert is_new and only(Action.CREDENTIAL_ADDED).object_pk == gamma.pk
    form = CredentialForm(
        data={
            "name": "gamma",
            "base_url": "http://127.0.0.1:9/v1",
            "api_key": "sk-rotated-secret-7777",
            "concurrency": 4,
        },
        instance=gamma,
    )
    assert form.is_valid(), form.errors
    credentials.save(form, by=alice)
    assert "api_key" in only(Action.CREDENTIAL_CHANGED).details["fields"]
    credentials.remove(gamma, by=alice)
    assert only(Action.CREDENTIAL_REMOVED).details["name"] == "gamma"
    Thread.objects.create(remote_id="thread_kept", kind="assistants_thread", credential=credential)
    with pytest.raises(credentials.StillTracking):
        credentials.remove(credential, by=alice)
    assert len(events(Action.CREDENTIAL_REMOVED)) == 1
    text = every_event_as_text()
    assert "secret" not in text and "9999" not in text and "7777" not in text


def test_a_job_download_is_recorded(client, admin, alice, served):
    job = deletion.create_job(Thread.objects.all(), requested_by=alice, summary="s", start=False)
    client.force_login(admin)
    response = client.get(reverse("job_receipt_csv", args=[job.pk]))
    b"".join(response.streaming_content)
    assert only(Action.JOB_DOWNLOADED).details == {"download": "receipt.csv"}


# --- Commands: the operator as the actor ----------------------------------------------------------------


def test_a_command_records_its_actor_or_the_system(alice, credential, tmp_path):
    path = tmp_path / "ids.txt"
    path.write_text("thread_command000001\n")
    call_command(
        "import_threads", str(path), credential="alpha", no_check=True, actor="alice", stdout=io.StringIO()
    )
    assert only(Action.THREADS_IMPORTED).actor == alice
    call_command("retention", "alpha", days=30, mode="flag", stdout=io.StringIO())
    event = only(Action.POLICY_CHANGED)
    assert (event.actor, event.actor_name) == (None, audit.SYSTEM)


@pytest.mark.parametrize(
    "command, args, options",
    [
        ("retention", ["alpha"], {"days": 30, "mode": "delete"}),
        ("import_threads", ["IDS"], {"credential": "alpha", "no_check": True}),
        ("sweep_threads", [], {"only": ["expiry"]}),
        ("discover_threads", [], {}),
        ("locate_threads", [], {}),
        ("delete_threads", [], {"yes": True}),
        ("credential", ["remove", "alpha"], {}),
        ("purge_audit_events", [], {}),
    ],
)
def test_an_unknown_actor_stops_a_command_before_it_changes_anything(
    command, args, options, credential, make_thread, tmp_path, settings
):
    settings.AUDIT_RETENTION_DAYS = 1
    make_thread(remote_id="thread_untouched")
    path = tmp_path / "ids.txt"
    path.write_text("thread_new000000001\n")
    args = [str(path) if arg == "IDS" else arg for arg in args]
    before = (
        list(Thread.objects.values_list("remote_id", "status", "credential_id")),
        list(Credential.objects.values_list("name")),
        RetentionPolicy.objects.count(),
        DeletionJob.objects.count(),
    )
    with pytest.raises(CommandError, match="No team member named 'nosuch'"):
        call_command(command, *args, actor="nosuch", stdout=io.StringIO(), stderr=io.StringIO(), **options)
    after = (
        list(Thread.objects.values_list("remote_id", "status", "credential_id")),
        list(Credential.objects.values_list("name")),
        RetentionPolicy.objects.count(),
        DeletionJob.objects.count(),
    )
    assert after == before and not events()


def test_delete_threads_still_takes_as_for_its_actor(alice, served):
    call_command("delete_threads", yes=True, actor="alice", stdout=io.StringIO(), stderr=io.StringIO())
    assert only(Action.JOB_CREATED).actor == alice


# --- The audit log's pages -------------------------------------------------------------------------------


def test_only_those_who_may_read_the_log_see_it(client, bob, auditor, admin):
    assert client.get(LOG).status_code == 302  # to the sign-in page
    client.force_login(bob)
    assert client.get(LOG).status_code == 403
    assert client.get(reverse("audit_export")).status_code == 403
    assert "Audit log" not in client.get(reverse("thread_list")).content.decode()
    for user in (auditor, admin):
        client.force_login(user)
        assert client.get(LOG).status_code == 200
        assert f'href="{LOG}"' in client.get(reverse("thread_list")).content.decode()


def test_the_log_filters_by_actor_action_thread_and_time(as_auditor, alice, bob, make_thread):
    thread, other = make_thread(), make_thread()
    retention.set_pinned(thread, True, by=alice)
    retention.set_pinned(other, True, by=bob)
    editing.edit(thread, {"title": "x"}, by=bob)
    audit.record(Action.SIGN_IN, actor=alice)

    def shown(**params):
        body = as_auditor.get(LOG, params, headers=HTMX).content.decode()
        return len(re.findall(r'data-event="\d+"', body))

    assert shown() == 5  # and the auditor's own sign-in
    assert shown(actor="bob") == 2
    assert shown(action=Action.THREAD_PINNED) == 2
    assert shown(object=thread.remote_id) == 2
    assert shown(actor="bob", object=thread.remote_id) == 1
    today = timezone.localdate()
    assert shown(since=today.isoformat(), until=today.isoformat()) == 5
    assert shown(until=(today - timedelta(days=1)).isoformat()) == 0


def test_the_log_pages_by_keyset_newest_first(as_auditor, alice, monkeypatch):
    monkeypatch.setattr(audit, "PAGE_SIZE", 7)
    made = [audit.record(Action.SIGN_IN, actor=alice).pk for _ in range(20)]
    seen, url = [], f"{LOG}?actor=alice"
    while url:
        body = as_auditor.get(url, headers=HTMX).content.decode()
        seen += [int(pk) for pk in re.findall(r'data-event="(\d+)"', body)]
        found = re.search(r'href="([^"]+)"[^>]*rel="next"', body)
        url = found.group(1).replace("&amp;", "&") if found else ""
    assert seen == made[::-1]


def test_a_broken_cursor_or_range_is_a_400(as_auditor):
    assert as_auditor.get(LOG, {"after": "garbage!"}).status_code == 400
    assert as_auditor.get(LOG, {"after": "x", "before": "y"}, headers=HTMX).status_code == 400
    response = as_auditor.get(LOG, {"since": "2026-02-02", "until": "2026-01-01"})
    assert response.status_code == 400 and "is before" in response.content.decode()
    assert as_auditor.get(LOG, {"action": "made_up"}).status_code == 400


def test_who_deleted_a_thread_in_a_job_is_one_search_away(as_auditor, alice, served):
    """An auditor's three clicks: the audit log, a search by remote ID, the job (or its receipt)."""
    job = deletion.create_job(Thread.objects.all(), requested_by=alice, summary="All of it", start=False)
    deletion.run_job(job.pk)
    body = as_auditor.get(LOG, {"object": served.remote_id}).content.decode()
    assert f'href="{reverse("job_detail", args=[job.pk])}"' in body
    assert f'href="{reverse("job_receipt_csv", args=[job.pk])}"' in body
    assert "Deletion jobs that held" in body and "deleted</strong> at" in body
    for action in (Action.JOB_CREATED, Action.JOB_STARTED, Action.JOB_FINISHED):
        assert AuditEvent.Action(action).label in body
    assert "alice" in body


def test_the_thread_page_shows_its_events_to_those_who_may_read_the_log(
    client, alice, bob, auditor, make_thread
):
    thread = make_thread(owner=bob)
    retention.set_pinned(thread, True, by=alice)
    client.force_login(auditor)
    # The history panel, as it loads itself on the page, and inline on the page without JavaScript.
    page = reverse("thread_detail", args=[thread.pk])
    for url, query in ((reverse("thread_history", args=[thread.pk]), {}), (page, {"show": "history"})):
        body = client.get(url, query, headers={} if query else HTMX).content.decode()
        assert "Audit trail" in body and "Pinned or unpinned" in body
        assert f"{LOG}?object={thread.remote_id}" in body
    client.force_login(bob)  # a member who owns it: no audit trail
    assert "Audit trail" not in client.get(page, {"show": "history"}).content.decode()


def test_the_csv_streams_the_filtered_events_and_is_recorded(as_auditor, alice, bob):
    audit.record(Action.SIGN_IN, actor=alice)
    audit.record(Action.SIGN_IN_FAILED, actor=None, actor_name='=HYPERLINK("http://evil")')
    audit.record(Action.SIGN_IN, actor=bob)
    response = as_auditor.get(reverse("audit_export"), {"action": Action.SIGN_IN_FAILED})
    assert response.streaming and response["Content-Type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(b"".join(response.streaming_content).decode())))
    assert [row["actor"] for row in rows] == ['\'=HYPERLINK("http://evil")']  # never a formula
    exported = only(Action.AUDIT_EXPORTED)
    assert (exported.actor_name, exported.details) == ("audrey", {"filters": {"action": "sign_in_failed"}})


# --- Retention ------------------------------------------------------------------------------------------


def test_events_are_kept_forever_by_default(alice, settings):
    assert settings.AUDIT_RETENTION_DAYS == 0
    audit.record(Action.SIGN_IN, actor=alice)
    assert audit.purge(now=timezone.now() + timedelta(days=10_000)) == 0
    assert len(events(Action.SIGN_IN)) == 1
    out = io.StringIO()
    call_command("purge_audit_events", stdout=out)
    assert "kept forever" in out.getvalue()


def test_the_purge_removes_only_expired_events_and_records_itself(alice, settings, monkeypatch):
    settings.AUDIT_RETENTION_DAYS = 30
    monkeypatch.setattr(audit, "PURGE_BATCH", 2)
    now = timezone.now()
    for days in (40, 35, 31, 29, 1):
        AuditEvent.objects.create(at=now - timedelta(days=days), action=Action.SIGN_IN, actor_name="alice")
    assert tasks.purge_audit_events.apply().get() == 3
    assert sorted((now - e.at).days for e in events(Action.SIGN_IN)) == [1, 29]
    purged = only(Action.AUDIT_PURGED)
    assert (purged.actor_name, purged.details["removed"]) == (audit.SYSTEM, 3)
    out = io.StringIO()
    call_command("purge_audit_events", actor="alice", stdout=out)
    assert "Removed 0 audit events" in out.getvalue()


# --- The keyset machinery, shared with the thread list ---------------------------------------------------


def test_the_thread_lists_keyset_pages_any_model(alice):
    pks = [audit.record(Action.SIGN_IN, actor=alice).pk for _ in range(5)]
    first = listing.keyset_page(AuditEvent.objects.all(), audit.SORT, size=2, sorts=audit.SORTS)
    assert [e.pk for e in first.rows] == pks[:-3:-1]
    key = audit.SORTS["time"]
    second = listing.keyset_page(
        AuditEvent.objects.all(),
        audit.SORT,
        after=listing.decode_cursor(key, first.next_cursor),
        size=2,
        sorts=audit.SORTS,
    )
    assert [e.pk for e in second.rows] == [pks[2], pks[1]]
    back = listing.keyset_page(
        AuditEvent.objects.all(),
        audit.SORT,
        before=listing.decode_cursor(key, second.previous_cursor),
        size=2,
        sorts=audit.SORTS,
    )
    assert back.is_first and [e.pk for e in back.rows] == [e.pk for e in first.rows]


# --- PostgreSQL: every page of the log is an index range, whatever its depth ------------------------------


def plan_nodes(plan: dict):
    yield plan
    for child in plan.get("Plans", []):
        yield from plan_nodes(child)


@pytest.mark.integration
def test_each_page_of_the_log_reads_an_index_in_order_without_sorting(alice, bob):
    from django.db import connection, transaction
    from django.test.utils import CaptureQueriesContext

    assert connection.vendor == "postgresql", "the plans are PostgreSQL's"
    now = timezone.now()
    AuditEvent.objects.bulk_create(
        AuditEvent(
            at=now - timedelta(minutes=n),
            actor_name=("alice", "bob")[n % 2],
            action=(Action.SIGN_IN, Action.MESSAGES_VIEWED)[n % 3 == 0],
            remote_id=f"thread_plan{n % 40:06d}",
        )
        for n in range(400)
    )
    middle = AuditEvent.objects.order_by("-at", "-id")[200]
    cases = {
        "first page": ({}, None, "auditevent_at_idx"),
        "deep page": ({}, (middle.at, middle.pk), "auditevent_at_idx"),
        "by actor, deep": ({"actor": "bob"}, (middle.at, middle.pk), "auditevent_actor_idx"),
        "by action": ({"action": Action.MESSAGES_VIEWED}, None, "auditevent_action_idx"),
    }
    for name, (filters, position, index) in cases.items():
        events = audit.apply_filters(AuditEvent.objects.all(), filters)
        with CaptureQueriesContext(connection) as queries:
            listing.keyset_page(events, audit.SORT, after=position, sorts=audit.SORTS)
        with transaction.atomic(), connection.cursor() as cursor:
            # Sorting and sequential scans priced out: a plan still sorts unless an index gives the order.
            cursor.execute("SET LOCAL enable_sort = off")
            cursor.execute("SET LOCAL enable_seqscan = off")
            cursor.execute("EXPLAIN (FORMAT JSON) " + queries.captured_queries[-1]["sql"])
            plan = cursor.fetchone()[0]
        plan = json.loads(plan) if isinstance(plan, str) else plan
        nodes = list(plan_nodes(plan[0]["Plan"]))
        assert not [n for n in nodes if "Sort" in n["Node Type"]], (name, nodes)
        assert index in {n.get("Index Name") for n in nodes}, (name, nodes)


@pytest.mark.integration
def test_postgresql_itself_refuses_changes_and_deletions_outside_the_purge(alice, bob, settings):
    from django.db import DatabaseError, connection, transaction

    assert connection.vendor == "postgresql", "the trigger is PostgreSQL's"
    event = audit.record(Action.SIGN_IN, actor=alice, obj=alice)
    for sql, params in (
        ("UPDATE threads_app_auditevent SET actor_name = 'mallory' WHERE id = %s", [event.pk]),
        (
            "UPDATE threads_app_auditevent SET actor_id = NULL, details = %s WHERE id = %s",
            ['{"x": 1}', event.pk],
        ),
        ("UPDATE threads_app_auditevent SET actor_id = %s WHERE id = %s", [bob.pk, event.pk]),
        ("DELETE FROM threads_app_auditevent WHERE id = %s", [event.pk]),
    ):
        with (
            pytest.raises(DatabaseError, match="audit events cannot be"),
            transaction.atomic(),
            connection.cursor() as cursor,
        ):
            cursor.execute(sql, params)
    alice.delete()  # the one change allowed: SET_NULL of the actor, every other column as it was
    stored = AuditEvent.objects.get(pk=event.pk)
    assert (stored.actor_id, stored.actor_name, stored.action) == (None, "alice", Action.SIGN_IN)
    settings.AUDIT_RETENTION_DAYS = 1
    assert audit.purge(now=timezone.now() + timedelta(days=2)) == 1
    assert AuditEvent.objects.filter(pk=event.pk).count() == 0
