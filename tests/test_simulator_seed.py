"""The demo world, the server's lifecycle and the `simulator` management command."""

import os
import re
import shlex
import signal
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta

import pytest
import requests
from django.conf import settings
from django.core.management import CommandError, call_command

from threads_app.simulator import SimulatorConfig, SimulatorState, running_simulator, seed_bulk, seed_demo
from threads_app.simulator.state import ASSISTANTS_THREAD_TTL

NOW = datetime(2026, 6, 1, 12, tzinfo=UTC)


def test_the_demo_world_has_the_same_ids_on_every_run():
    first = seed_demo(SimulatorState(), now=NOW)
    second = seed_demo(SimulatorState(seed=99), now=NOW + timedelta(days=3))
    assert [project["remote_ids"] for project in first] == [project["remote_ids"] for project in second]


def test_the_demo_world_holds_two_projects_with_every_kind():
    state = SimulatorState()
    projects = seed_demo(state, threads_per_kind=30, now=NOW)

    assert len({project["project_id"] for project in projects}) == 2
    for project in projects:
        assert project["api_key"].startswith("sk-sim-") and len(project["api_key"]) < 40
        assert state.key_for(project["api_key"]).project_id == project["project_id"]
        prefixes = [remote_id.split("_")[0] for remote_id in project["remote_ids"]]
        assert {prefix: prefixes.count(prefix) for prefix in set(prefixes)} == {
            "thread": 30,
            "conv": 30,
            "cthr": 30,
        }
        assert len(project["users"]) >= 3


def test_the_demo_world_spreads_assistants_threads_up_to_the_60_day_edge():
    state = SimulatorState(clock=lambda: NOW)
    seed_demo(state, now=NOW)
    idle = [NOW.timestamp() - record.last_active_at for record in state.threads.values()]
    edge = ASSISTANTS_THREAD_TTL.total_seconds()
    assert max(idle) < edge  # none gone yet…
    assert sum(edge - i < timedelta(days=3).total_seconds() for i in idle) >= 5  # …some about to go
    assert min(idle) < timedelta(days=2).total_seconds()


def test_the_demo_world_has_varied_content():
    state = SimulatorState()
    seed_demo(state, now=NOW)
    messages = [m for record in state.threads.values() for m in record.messages]
    runs = [r for record in state.threads.values() for r in record.runs]
    items = [i for record in state.conversations.values() for i in record.items]
    chatkit_items = [i for record in state.chatkit_threads.values() for i in record.items]

    assert any(m["attachments"] for m in messages)
    assert any(m["content"][0]["text"]["annotations"] for m in messages)
    assert any("```" in m["content"][0]["text"]["value"] for m in messages)
    assert {r["status"] for r in runs} == {"completed", "failed"}
    assert all(m["run_id"] for m in messages if m["role"] == "assistant")
    assert {"message", "function_call", "function_call_output"} <= {i["type"] for i in items}
    assert {
        "chatkit.user_message",
        "chatkit.assistant_message",
        "chatkit.widget",
        "chatkit.client_tool_call",
    } <= {i["type"] for i in chatkit_items}
    assert any(record.data["metadata"] for record in state.threads.values())
    assert any(record.data["title"] is None for record in state.chatkit_threads.values())


def test_the_server_stops_when_the_block_ends():
    with running_simulator(SimulatorConfig(latency_ms=0)) as simulator:
        simulator.state.enqueue_faults("slow:5")
        # A request still sleeping on its delay must not hold up the shutdown.
        with pytest.raises(requests.ReadTimeout):
            requests.get(f"{simulator.base_url}/chatkit/threads", timeout=0.05)
        base_url = simulator.base_url
        started = time.monotonic()
    assert time.monotonic() - started < 2
    with pytest.raises(requests.ConnectionError):
        requests.get(f"{base_url}/chatkit/threads", timeout=1)


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        (["--key", "sk-without-project"], "--key takes KEY=PROJECT"),
        (["--fault-rate", "1.5"], "fault_rate must be between 0 and 1"),
        (["--drop-after-rate", "2"], "drop_after_rate must be between 0 and 1"),
        (["--latency-ms", "-1"], "must be 0 or more"),
    ],
)
def test_the_command_refuses_bad_options_before_serving(arguments, message):
    with pytest.raises(CommandError, match=message):
        call_command("simulator", "--port", "0", *arguments)


@pytest.mark.parametrize("stop", [signal.SIGINT, signal.SIGTERM], ids=["ctrl-c", "sigterm"])
def test_the_command_serves_the_demo_world_until_stopped_however_it_was_started(stop):
    # Started with both signals ignored, as a script's background job inherits SIGINT (and as a test run
    # started that way passes it on): Ctrl-C and SIGTERM still stop it, cleanly. faulthandler: a process
    # that does not stop is aborted, and says where each thread was.
    command = f"trap '' INT TERM; exec {shlex.quote(sys.executable)} -u -X faulthandler manage.py simulator"
    process = subprocess.Popen(
        ["sh", "-c", f"{command} --port 0 --seed-demo --quiet"],
        cwd=settings.BASE_DIR,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        lines = [process.stdout.readline() for _ in range(3)]
        base_url = re.search(r"http://\S+/v1", lines[0]).group(0)
        api_key = re.search(r"key (sk-sim-\S+)", lines[1]).group(1)
        response = requests.get(
            f"{base_url}/chatkit/threads",
            headers={"Authorization": f"Bearer {api_key}", "OpenAI-Beta": "chatkit_beta=v1"},
            timeout=5,
        )
        assert response.status_code == 200
        assert len(response.json()["data"]) == 20
    finally:
        process.send_signal(stop)
        try:
            output, _ = process.communicate(timeout=10)
        except subprocess.TimeoutExpired:
            process.send_signal(signal.SIGABRT)
            pytest.fail(f"the simulator did not stop on {stop.name}:\n" + process.communicate(timeout=10)[0])
    assert process.returncode == 0
    assert "Simulator stopped." in output


def test_bulk_seeding_makes_every_kind_with_items_and_the_same_ids_for_a_seed():
    state = SimulatorState()
    remote_ids = seed_bulk(state, "proj_alpha", count=89, items=(1, 3), seed=3)

    assert len(remote_ids) == len(set(remote_ids)) == 89
    live = state.live_ids("proj_alpha")
    assert sorted(live["assistants_thread"] + live["conversation"] + live["chatkit_thread"]) == sorted(
        remote_ids
    )
    sizes = [len(state.conversations[conversation_id].items) for conversation_id in live["conversation"]]
    assert set(sizes) == {1, 2, 3}
    assert len(live["conversation_item"]) == sum(sizes)
    assert [len(live[kind]) for kind in ("assistants_thread", "conversation", "chatkit_thread")] == [
        30,
        30,
        29,
    ]
    assert seed_bulk(SimulatorState(), "proj_alpha", count=89, seed=3) == remote_ids
    assert state.live_ids("proj_beta") == {
        "assistants_thread": [],
        "conversation": [],
        "chatkit_thread": [],
        "conversation_item": [],
    }
