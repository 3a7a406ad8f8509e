"""The simulator served by a child process, as the benchmarks run it: seeded, configured and read through
a pipe."""

import pytest
import requests

from threads_app.simulator import SimulatorConfig
from threads_app.simulator.process import SimulatorProcess

API_KEY = "sk-sim-process-0001"


def test_a_child_process_serves_the_api_and_reports_what_it_did():
    with SimulatorProcess(SimulatorConfig(seed=5)) as sim:
        sim.call("add_key", API_KEY, "proj_alpha")
        remote_ids = sim.call("seed_bulk", "proj_alpha", count=6)
        chatkit = [remote_id for remote_id in remote_ids if remote_id.startswith("cthr_")]
        headers = {"Authorization": f"Bearer {API_KEY}", "OpenAI-Beta": "chatkit_beta=v1"}

        response = requests.delete(f"{sim.base_url}/chatkit/threads/{chatkit[0]}", headers=headers, timeout=5)
        assert response.status_code == 200
        sim.call("configure", drop_after_rate=1.0)
        with pytest.raises(requests.ConnectionError):
            requests.delete(f"{sim.base_url}/chatkit/threads/{chatkit[1]}", headers=headers, timeout=5)

        log = sim.call("request_log", clear=True)
        assert [(entry.status, entry.outcome) for entry in log] == [(200, 200), (None, 200)]
        assert sim.call("request_log") == []
        assert sim.call("live_ids", "proj_alpha")["chatkit_thread"] == []
        assert sim.call("cpu_seconds") > 0


def test_the_child_refuses_unknown_commands_and_bad_knobs():
    with SimulatorProcess() as sim:
        with pytest.raises(ValueError, match="Unknown command 'exec'"):
            sim.call("exec", "print(1)")
        with pytest.raises(RuntimeError, match="drop_after_rate must be between 0 and 1"):
            sim.call("configure", drop_after_rate=2)
        sim.call("configure", latency_ms=1)  # still answering after a refusal
