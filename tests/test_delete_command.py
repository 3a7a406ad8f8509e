"""`manage.py delete_threads`, as an operator runs it (the embedded default: the job runs in the command)."""

import io

import pytest
from django.core.management import CommandError, call_command

from threads_app.models import DeletionJob, Thread


def run(*args, stdin=None, monkeypatch=None):
    out, err = io.StringIO(), io.StringIO()
    call_command("delete_threads", *args, stdout=out, stderr=err)
    return out.getvalue(), err.getvalue()


@pytest.fixture
def tracked(simulator, sim_credential, alice):
    """Four Assistants threads (two owned by alice) and two conversations, on the simulator."""
    threads = []
    for n in range(4):
        remote_id = simulator.state.create_thread("proj_alpha")["id"]
        threads.append(
            Thread.objects.create(
                remote_id=remote_id,
                kind="assistants_thread",
                credential=sim_credential,
                owner=alice if n < 2 else None,
                title=f"thread {n}",
            )
        )
    for _ in range(2):
        remote_id = simulator.state.create_conversation("proj_alpha", items=[("user", "x")])["id"]
        threads.append(
            Thread.objects.create(remote_id=remote_id, kind="conversation", credential=sim_credential)
        )
    return threads


def test_dry_run_prints_the_preview_and_changes_nothing(tracked, simulator):
    out, _ = run("--owner", "alice", "--dry-run")
    assert "2 threads would be deleted" in out
    assert "by credential: alpha 2" in out and "by owner: alice 2" in out
    assert "Dry run: nothing was deleted." in out
    assert not DeletionJob.objects.exists()
    assert all(method != "DELETE" for method, _, _ in simulator.state.request_log)


def test_yes_deletes_the_filtered_threads_and_reports_the_job(tracked, simulator):
    out, _ = run("--kind", "conversation", "--yes", "--wait")
    job = DeletionJob.objects.get()
    assert f"Job {job.pk} finished." in out
    assert job.source == DeletionJob.Source.COMMAND and job.summary == "Kind: Conversation"
    assert job.delete_items
    assert Thread.objects.filter(status="deleted").count() == 2
    assert Thread.objects.filter(kind="assistants_thread", status="active").count() == 4


def test_ids_from_a_file_are_matched_and_untracked_ones_reported(tracked, tmp_path):
    ids = tmp_path / "ids.txt"
    ids.write_text(
        f"{tracked[0].remote_id}\nlog line with {tracked[3].remote_id}\nthread_nottracked01\nrun_abc123\n"
    )
    out, err = run("--ids", str(ids), "--yes")
    assert "2 threads would be deleted" in out
    assert "1 IDs are not tracked" in err and "thread_nottracked01" in err
    assert "run_abc123 is a run" in err
    assert {t.remote_id for t in Thread.objects.filter(status="deleted")} == {
        tracked[0].remote_id,
        tracked[3].remote_id,
    }


def test_a_failed_item_makes_wait_exit_non_zero(tracked, simulator, sim_credential):
    sim_credential.api_key = "sk-revoked-key-000001"
    sim_credential.save()
    with pytest.raises(CommandError, match="ended failed") as raised:
        run("--kind", "conversation", "--yes", "--wait")
    assert raised.value.returncode == 1


def test_without_a_terminal_it_asks_for_yes(tracked):
    with pytest.raises(CommandError, match="--yes"):
        run("--kind", "conversation")
    assert not DeletionJob.objects.exists()


def test_a_typed_count_confirms_and_a_wrong_one_refuses(tracked, monkeypatch):
    monkeypatch.setattr("sys.stdin.isatty", lambda: True, raising=False)
    monkeypatch.setattr("builtins.input", lambda prompt: "5")
    with pytest.raises(CommandError, match="not the count"):
        run("--status", "active")
    assert not DeletionJob.objects.exists()
    monkeypatch.setattr("builtins.input", lambda prompt: "6")
    run("--status", "active")
    assert DeletionJob.objects.get().deleted == 6


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--credential", "nope"], "No credential named 'nope'"),
        (["--owner", "nobody"], "No team member named 'nobody'"),
        (["--inactive-days", "-3"], "inactive_days"),
    ],
)
def test_bad_filters_are_refused_with_a_reason(tracked, args, message):
    with pytest.raises(CommandError, match=message):
        run(*args, "--yes")
    assert not DeletionJob.objects.exists()


def test_an_empty_selection_deletes_nothing(tracked):
    out, _ = run("--kind", "chatkit_thread", "--yes")
    assert "Nothing to delete." in out
    assert not DeletionJob.objects.exists()
