"""The management commands, as an operator runs them."""

import io

import pytest
from django.core.management import CommandError, call_command

from threads_app.models import Credential, Thread

pytestmark = pytest.mark.usefixtures("no_retries")


def run(*args, stdin=None):
    out, err = io.StringIO(), io.StringIO()
    call_command(*args, stdout=out, stderr=err)
    return out.getvalue(), err.getvalue()


def test_credential_add_reads_the_key_from_the_environment_and_verifies_it(simulator, db, monkeypatch):
    simulator.state.add_key("sk-sim-cli-key-4321", "proj_cli")
    monkeypatch.setenv("OPENAI_API_KEY", "sk-sim-cli-key-4321")
    out, _ = run("credential", "add", "cli", "--base-url", simulator.base_url, "--project", "proj_cli")
    assert "Added credential cli (sk-…4321)" in out
    assert "accepted the key" in out
    assert "sk-sim-cli-key-4321" not in out
    credential = Credential.objects.get(name="cli")
    assert (credential.api_key, credential.last_verification_ok) == ("sk-sim-cli-key-4321", True)

    out, _ = run("credential", "list")
    assert "cli\tsk-…4321" in out and "ok" in out


def test_credential_add_takes_a_read_only_key_from_the_environment_too(simulator, db, monkeypatch):
    simulator.state.add_key("sk-sim-cli-key-4321", "proj_cli")
    simulator.state.add_key("sk-sim-cli-read-8765", "proj_cli")
    monkeypatch.setenv("OPENAI_API_KEY", "sk-sim-cli-key-4321")
    monkeypatch.setenv("CLI_READ_KEY", "sk-sim-cli-read-8765")
    args = ["credential", "add", "cli", "--base-url", simulator.base_url, "--project", "proj_cli"]
    out, _ = run(*args, "--read-key-env", "CLI_READ_KEY")
    assert "Added credential cli (sk-…4321, read-only sk-…8765)" in out and "Read-only key: The API" in out
    assert Credential.objects.get(name="cli").read_key == "sk-sim-cli-read-8765"
    monkeypatch.delenv("CLI_READ_KEY")
    with pytest.raises(CommandError, match="CLI_READ_KEY is unset"):
        run("credential", "add", "cli2", "--read-key-env", "CLI_READ_KEY")


def test_credential_add_without_a_key_refuses_and_adds_nothing(db, monkeypatch):
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    monkeypatch.setattr("threads_app.management.commands.credential.Command.stdin_is_tty", lambda self: False)
    with pytest.raises(CommandError, match="Set OPENAI_API_KEY"):
        run("credential", "add", "cli")
    assert not Credential.objects.exists()


def test_credential_add_prompts_for_the_key_on_a_terminal(db, monkeypatch):
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    monkeypatch.setattr("threads_app.management.commands.credential.Command.stdin_is_tty", lambda self: True)
    monkeypatch.setattr("getpass.getpass", lambda prompt: "sk-typed-at-prompt-0042")
    run("credential", "add", "typed", "--no-verify")
    assert Credential.objects.get(name="typed").api_key == "sk-typed-at-prompt-0042"


def test_credential_add_refuses_bad_values(db, monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", "sk-some-key-0001")
    with pytest.raises(CommandError, match="start with org-"):
        run("credential", "add", "x", "--organization", "acme", "--no-verify")
    with pytest.raises(CommandError, match="base_url: Enter a valid URL"):
        run("credential", "add", "x", "--base-url", "file:///etc/passwd", "--no-verify")
    assert not Credential.objects.exists()


def test_credential_add_reports_a_refused_key(simulator, db, monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", "sk-not-registered-0001")
    with pytest.raises(CommandError, match="does not work"):
        run("credential", "add", "bad", "--base-url", simulator.base_url)


def test_credential_remove_refuses_while_threads_are_tracked(credential):
    Thread.objects.create(remote_id="thread_aaaaaa111", kind=Thread.Kind.ASSISTANTS, credential=credential)
    with pytest.raises(CommandError, match="still tracks 1 threads"):
        run("credential", "remove", "alpha")
    with pytest.raises(CommandError, match="No credential named 'nope' \\(known: alpha\\)"):
        run("credential", "remove", "nope")


def test_import_threads_reads_a_file_checks_and_summarises(sim_credential, simulator, alice, tmp_path):
    real = simulator.state.create_thread("proj_alpha")["id"]
    path = tmp_path / "ids.txt"
    path.write_text(f"{real}\n{real}\nrun_abcdef123\nthread_gone000001\n")
    out, err = run("import_threads", str(path), "--credential", "alpha", "--owner", "alice")
    assert "Imported: 2 added, 0 already tracked, 1 duplicates in the input, 1 refused." in out
    assert "line 3: run_abcdef123 is a run of an Assistants thread" in err
    assert Thread.objects.get(remote_id=real).last_check == Thread.Check.OK
    assert Thread.objects.get(remote_id="thread_gone000001").status == Thread.Status.MISSING
    assert set(Thread.objects.values_list("owner__username", flat=True)) == {"alice"}


def test_import_threads_reads_standard_input(sim_credential, monkeypatch):
    monkeypatch.setattr("sys.stdin", io.TextIOWrapper(io.BytesIO(b"conv_abcdef123\n")))
    out, _ = run("import_threads", "-", "--credential", "alpha", "--no-check")
    assert "1 added" in out
    assert Thread.objects.get().last_check == ""


@pytest.mark.parametrize(
    ("args", "error"),
    [
        (["missing.txt", "--credential", "alpha"], "Cannot read missing.txt"),
        (["ids.txt", "--credential", "nope"], "No credential named 'nope'"),
        (["ids.txt", "--credential", "alpha", "--owner", "nobody"], "No team member named 'nobody'"),
        (["runs.txt", "--credential", "alpha"], "only IDs of other objects"),
        (["binary.bin", "--credential", "alpha"], "not UTF-8"),
    ],
)
def test_import_threads_refuses_bad_input_and_changes_nothing(
    sim_credential, tmp_path, monkeypatch, args, error
):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "ids.txt").write_text("thread_aaaaaa111\n")
    (tmp_path / "runs.txt").write_text("run_aaaaaa111\n")
    (tmp_path / "binary.bin").write_bytes(b"\xff\xfe\x00\x01thread_aaaaaa111")
    with pytest.raises(CommandError, match=error):
        run("import_threads", *args)
    assert not Thread.objects.exists()


def test_discover_threads_registers_chatkit_threads(sim_credential, simulator):
    simulator.state.create_chatkit_thread("proj_alpha", user="customer-1", title="Hello")
    out, _ = run("discover_threads")
    assert "alpha: 1 threads listed, 1 new" in out
    assert Thread.objects.get().end_user == "customer-1"


def test_discover_threads_reports_a_failing_credential_and_goes_on(
    sim_credential, simulator, credential_factory=None
):
    broken = Credential(name="broken", base_url=simulator.base_url)
    broken.api_key = "sk-not-registered-0002"
    broken.save()
    simulator.state.create_chatkit_thread("proj_alpha", user="customer-1")
    out, err = run("discover_threads")
    assert "broken:" in err and "Incorrect API key" in err
    assert "sk-not-registered-0002" not in err
    assert "Discovered 1 new threads among 1 listed; 1 credentials failed." in out


def test_demo_seeds_the_simulator_and_registers_everything(db):
    out, _ = run("demo", "--no-serve", "--threads-per-kind", "10", "--latency-ms", "0")
    assert "sign in as admin / admin" in out
    assert Credential.objects.count() == 2
    kinds = set(Thread.objects.values_list("kind", flat=True))
    assert kinds == {Thread.Kind.ASSISTANTS, Thread.Kind.CONVERSATION, Thread.Kind.CHATKIT}
    assert Thread.objects.filter(source=Thread.Source.DISCOVERY).exists()
    assert not Thread.objects.filter(last_check="").exists()
    assert Thread.objects.exclude(owner=None).exists()
