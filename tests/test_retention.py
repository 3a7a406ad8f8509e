"""The one rule of when a thread goes (the API's expiry, a credential's retention policy), and the sweeps
that apply it against the simulator."""

import io
from datetime import timedelta

import pytest
from django.core.management import CommandError, call_command
from django.utils import timezone

from threads_app import deletion, retention, sweeps
from threads_app.models import Credential, DeletionJob, RetentionPolicy, SweepLock, SweepRun, Thread

Mode = RetentionPolicy.Mode
DAY = timedelta(days=1)


@pytest.fixture
def now():
    return timezone.now()


@pytest.fixture
def openai(db):
    cred = Credential(name="openai", base_url="https://api.openai.com/v1", project_id="proj_o")
    cred.api_key = "sk-openai-key-0000"
    cred.save()
    return cred


def thread(credential, kind="conversation", idle_days=None, **fields):
    prefix = {"conversation": "conv", "chatkit_thread": "cthr", "assistants_thread": "thread"}[kind]
    n = Thread.objects.count() + 1
    last = timezone.now() - timedelta(days=idle_days) if idle_days is not None else None
    return Thread.objects.create(
        remote_id=f"{prefix}_rule{n:06d}", kind=kind, credential=credential, last_activity_at=last, **fields
    )


def test_a_conversation_without_a_policy_never_goes(credential):
    assert retention.removal(thread(credential, idle_days=400)) is None


def test_an_assistants_thread_on_a_compatible_server_expires_60_days_after_its_activity(credential, now):
    removal = retention.removal(thread(credential, "assistants_thread", idle_days=50))
    assert removal.how == "expires" and removal.window_days == 60
    assert abs(removal.at - (now + 10 * DAY)) < timedelta(seconds=5)


def test_on_openai_an_assistants_thread_is_gone_since_the_sunset(openai):
    removal = retention.removal(thread(openai, "assistants_thread", idle_days=1))
    assert removal.how == "expires" and removal.at.date().isoformat() == "2026-08-26" and removal.is_past


def test_a_policy_deletes_after_its_window_and_exemptions_spare(credential, alice, now):
    policy = retention.set_policy(
        credential, mode=Mode.DELETE, window_days=30, exempt_metadata=[("hold", "yes")]
    )
    plain = thread(credential, idle_days=10)
    removal = retention.removal(plain)
    assert (removal.how, removal.window_days) == ("deleted", 30)
    assert abs(removal.at - (now + 20 * DAY)) < timedelta(seconds=5)
    assert retention.removal(thread(credential, idle_days=10, pinned=True)).exempt == "pinned"
    assert (
        retention.removal(thread(credential, idle_days=10, metadata={"hold": "yes"})).exempt
        == "metadata hold=yes"
    )
    policy.exempt_owners.add(alice)
    assert retention.removal(thread(credential, idle_days=10, owner=alice)).exempt == "owner alice"
    assert retention.removal(thread(credential, "assistants_thread", idle_days=10)).how == "expires"


def test_flag_only_flags(credential):
    retention.set_policy(credential, mode=Mode.FLAG, window_days=30)
    assert retention.removal(thread(credential, "chatkit_thread", idle_days=40)).how == "flagged"


def test_the_queryset_rule_agrees_with_the_rule_for_one_thread(credential, openai, alice, now):
    other = Credential(name="beta", base_url="http://127.0.0.1:9/v1", project_id="proj_b")
    other.api_key = "sk-beta-key-00000"
    other.save()
    retention.set_policy(credential, mode=Mode.DELETE, window_days=30, exempt_metadata=[("hold", "yes")])
    retention.set_policy(
        other, mode=Mode.FLAG, window_days=90, include_assistants=True, exempt_owners=[alice]
    )
    for cred in (credential, openai, other):
        for kind in ("conversation", "chatkit_thread", "assistants_thread"):
            for idle in (None, 5, 29, 31, 59, 61, 89, 91, 400):
                thread(cred, kind, idle_days=idle)
            thread(cred, kind, idle_days=100, pinned=True)
            thread(cred, kind, idle_days=100, metadata={"hold": "yes"})
            thread(cred, kind, idle_days=100, metadata={"hold": "no"})
            thread(cred, kind, idle_days=100, owner=alice)
            thread(cred, kind, idle_days=100, status=Thread.Status.DELETED)
    for days in (0, 7, 30, 45):
        moment = now + days * DAY
        by_query = set(Thread.objects.filter(retention.removed_by(moment)).values_list("pk", flat=True))
        by_rule = {
            t.pk
            for t in Thread.objects.select_related("credential", "owner")
            if (r := retention.removal(t)) and not r.exempt and r.at is not None and r.at <= moment
        }
        assert by_query == by_rule, f"{days} days ahead"


def test_switching_to_delete_or_shortening_its_window_asks_for_confirmation_again(credential, alice):
    policy = retention.set_policy(credential, mode=Mode.DELETE, window_days=60)
    assert policy.confirmed_at is None
    RetentionPolicy.objects.filter(pk=policy.pk).update(confirmed_at=timezone.now())
    policy = retention.set_policy(credential, mode=Mode.DELETE, window_days=90)
    assert policy.confirmed_at is not None, "a longer window deletes less: no new confirmation"
    policy = retention.set_policy(credential, mode=Mode.DELETE, window_days=30)
    assert policy.confirmed_at is None


# --- Sweeps against the simulator --------------------------------------------------------------------


@pytest.fixture
def tracked(simulator, sim_credential):
    """Track a simulator object created `days` ago and idle since: `tracked("conversation", 70)`."""

    def make(kind, days, **fields):
        created = timezone.now() - timedelta(days=days)
        state = simulator.state
        if kind == "assistants_thread":
            remote_id = state.create_thread("proj_alpha", created_at=created)["id"]
        elif kind == "conversation":
            remote_id = state.create_conversation("proj_alpha", created_at=created, items=[("user", "hi")])[
                "id"
            ]
        else:
            remote_id = state.create_chatkit_thread("proj_alpha", user="u", created_at=created)["id"]
        return Thread.objects.create(
            remote_id=remote_id,
            kind=kind,
            credential=sim_credential,
            remote_created_at=created,
            last_activity_at=created,
            **fields,
        )

    return make


def test_the_expiry_sweep_marks_expired_what_the_api_removed_and_refreshes_what_is_still_used(
    simulator, tracked, no_retries
):
    gone = [tracked("assistants_thread", 70) for _ in range(3)]
    kept = tracked("assistants_thread", 70)
    simulator.state.add_message(kept.remote_id, "user", "still here")  # used since our last look
    young = tracked("assistants_thread", 10)

    result = sweeps.run("expiry")

    assert result.summary == "4 checked: 3 expired, 1 still there"
    assert {t.status for t in Thread.objects.filter(pk__in=[t.pk for t in gone])} == {Thread.Status.EXPIRED}
    kept.refresh_from_db()
    assert kept.status == Thread.Status.ACTIVE and kept.last_activity_at > timezone.now() - DAY
    assert Thread.objects.get(pk=young.pk).last_synced_at is None, "not past its window: not looked up"
    assert sweeps.run("expiry").summary == "0 checked: 0 expired, 0 still there", "nothing is swept twice"


def test_the_retention_sweep_previews_first_then_deletes_exactly_the_threads_past_the_window(
    simulator, sim_credential, tracked, alice, no_retries, django_capture_on_commit_callbacks
):
    retention.set_policy(
        sim_credential, mode=Mode.DELETE, window_days=60, exempt_metadata=[("legal_hold", "true")]
    )
    old = [tracked("conversation", 90) for _ in range(4)] + [tracked("chatkit_thread", 61)]
    exempt = [
        tracked("conversation", 90, pinned=True),
        tracked("conversation", 90, metadata={"legal_hold": "true"}),
    ]
    young = [tracked("conversation", 30) for _ in range(2)]
    used = tracked("conversation", 90, newest_entry_id="item_seen_before")  # a new item came since

    first = sweeps.run("retention")

    [job] = first.jobs
    assert job.state == DeletionJob.State.AWAITING and job.source == DeletionJob.Source.SWEEP
    assert set(job.items.values_list("remote_id", flat=True)) == {t.remote_id for t in old}
    assert not any(method == "DELETE" for method, _, _ in simulator.state.request_log)
    assert "awaits confirmation" in sweeps.run("retention").summary
    assert DeletionJob.objects.count() == 1

    with django_capture_on_commit_callbacks(execute=True):
        assert deletion.confirm_job(job, by=alice)
    job.refresh_from_db()
    assert job.state == DeletionJob.State.FINISHED and job.deleted == 5
    assert RetentionPolicy.objects.get().confirmed_by == alice
    assert "deletion job" in Thread.objects.get(pk=old[0].pk).status_changes.get().reason
    for kept in [*exempt, *young, used]:
        assert Thread.objects.get(pk=kept.pk).status == Thread.Status.ACTIVE
    assert Thread.objects.get(pk=used.pk).activity_source == Thread.ActivitySource.SEEN

    assert sweeps.run("retention").summary == "alpha: nothing past the window"


def test_a_confirmed_policy_deletes_without_asking(simulator, sim_credential, tracked, no_retries):
    policy = retention.set_policy(sim_credential, mode=Mode.DELETE, window_days=60)
    RetentionPolicy.objects.filter(pk=policy.pk).update(confirmed_at=timezone.now())
    tracked("chatkit_thread", 90)
    [job] = sweeps.run("retention").jobs
    assert job.state == DeletionJob.State.QUEUED


def test_flag_mode_counts_and_deletes_nothing(simulator, sim_credential, tracked):
    retention.set_policy(sim_credential, mode=Mode.FLAG, window_days=60)
    tracked("conversation", 90)
    assert sweeps.run("retention").summary == "alpha: 1 past the window (flag only)"
    assert not DeletionJob.objects.exists()


def test_the_sync_sweep_notices_a_conversations_new_item(simulator, tracked, no_retries):
    conversation = tracked("conversation", 3)
    sweeps.run("sync")
    conversation.refresh_from_db()
    assert conversation.newest_entry_id and conversation.activity_source != Thread.ActivitySource.SEEN
    simulator.state.add_items(conversation.remote_id, [("user", "again")])
    Thread.objects.filter(pk=conversation.pk).update(last_synced_at=timezone.now() - timedelta(hours=1))
    sweeps.run("sync")
    conversation.refresh_from_db()
    assert conversation.activity_source == Thread.ActivitySource.SEEN


def test_a_sweep_runs_once_at_a_time(db):
    with sweeps.lock("retention"), pytest.raises(sweeps.SweepBusy):
        sweeps.run("retention")
    assert not SweepRun.objects.exists()
    sweeps.run("retention")
    assert SweepRun.objects.get().finished_at is not None
    assert SweepLock.objects.get(name="retention").holder == ""


def test_sweep_threads_dry_run_changes_nothing(simulator, sim_credential, tracked):
    retention.set_policy(sim_credential, mode=Mode.DELETE, window_days=60)
    tracked("conversation", 90)
    out = io.StringIO()
    call_command("sweep_threads", "--dry-run", stdout=out)
    assert out.getvalue().startswith("Dry run. expiry: 0 threads past their expiry would be checked;")
    assert "retention: alpha: 1 would be deleted" in out.getvalue()
    assert not DeletionJob.objects.exists()


def test_the_retention_command_sets_and_shows_a_policy(credential, alice):
    out = io.StringIO()
    call_command(
        "retention",
        "alpha",
        "--days",
        "30",
        "--mode",
        "delete",
        "--exempt-metadata",
        "legal_hold=true",
        "--exempt-owner",
        "alice",
        stdout=out,
    )
    assert out.getvalue().strip() == (
        "alpha: delete after 30 days; exempt: legal_hold=true, owner alice and pinned threads; "
        "the next sweep's preview awaits confirmation"
    )
    with pytest.raises(CommandError, match="KEY=VALUE"):
        call_command("retention", "alpha", "--exempt-metadata", "nokey")
    with pytest.raises(CommandError, match="between 1 and 36500"):
        call_command("retention", "alpha", "--days", "0")
    with pytest.raises(CommandError, match="No team member named bob"):
        call_command("retention", "alpha", "--exempt-owner", "bob")
    assert RetentionPolicy.objects.get().window_days == 30


# --- Pages -----------------------------------------------------------------------------------------------


def test_the_thread_page_says_when_a_thread_goes_and_pinning_keeps_it(client, credential, alice):
    client.force_login(alice)
    retention.set_policy(credential, mode=Mode.DELETE, window_days=30)
    conversation = thread(credential, idle_days=20)
    page = client.get(f"/threads/{conversation.pk}/").content.decode()
    assert "Deleted by the retention policy in about 9 days without activity" in page

    response = client.post(
        f"/threads/{conversation.pk}/pin/", {"pinned": "1"}, headers={"HX-Request": "true"}
    )
    assert response.status_code == 200 and "Pinned" in response.content.decode()
    conversation.refresh_from_db()
    assert conversation.pinned
    assert not Thread.objects.filter(retention.removed_by(timezone.now() + 60 * DAY)).exists()

    client.post(f"/threads/{conversation.pk}/pin/", {"pinned": "0"})
    conversation.refresh_from_db()
    assert not conversation.pinned
    assert client.get(f"/threads/{conversation.pk}/pin/").status_code == 405


def test_the_list_filters_threads_removed_within_n_days(client, credential, alice):
    client.force_login(alice)
    soon = thread(credential, "assistants_thread", idle_days=55)
    later = thread(credential, "assistants_thread", idle_days=10)
    page = client.get("/?removal_days=7").content.decode()
    assert soon.remote_id in page and later.remote_id not in page
    assert client.get("/?removal_days=-1").status_code == 400


def test_an_admin_sets_a_policy_on_the_credentials_page(admin_client, credential, alice):
    thread(credential, idle_days=90)
    thread(credential, idle_days=90, metadata={"legal_hold": "true"})
    url = f"/credentials/{credential.pk}/retention/"
    data = {
        "mode": "delete",
        "window_days": "60",
        "exempt_owners": [alice.pk],
        "exempt_metadata": "legal_hold=true",
    }
    response = admin_client.post(url, data, follow=True)
    page = response.content.decode()
    assert "waits for your confirmation" in page
    assert "1 thread past the window, 0 more within 7 days, 1 exempt" in page
    policy = RetentionPolicy.objects.get()
    assert (policy.mode, policy.exempt_metadata, list(policy.exempt_owners.all())) == (
        "delete",
        [["legal_hold", "true"]],
        [alice],
    )


@pytest.mark.parametrize(
    ("data", "error"),
    [
        ({"mode": "purge", "window_days": "60"}, "Select a valid choice"),
        ({"mode": "delete", "window_days": "0"}, "greater than or equal to 1"),
        ({"mode": "delete", "window_days": "60", "exempt_metadata": "novalue"}, "Line 1: write KEY=VALUE."),
    ],
)
def test_a_bad_policy_is_refused_and_changes_nothing(admin_client, credential, data, error):
    response = admin_client.post(f"/credentials/{credential.pk}/retention/", data)
    assert response.status_code == 400 and error in response.content.decode()
    assert not RetentionPolicy.objects.exists()


def test_only_admins_set_policies(client, credential, bob):
    client.force_login(bob)
    response = client.post(f"/credentials/{credential.pk}/retention/", {"mode": "delete", "window_days": "1"})
    assert response.status_code == 403
    assert not RetentionPolicy.objects.exists()
