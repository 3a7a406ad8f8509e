"""The simulator in a child process, for benchmarks: serving the API there does not share a GIL with the
code being measured, yet the parent still seeds the state, turns the knobs and reads the request log,
through a pipe.

    with SimulatorProcess(SimulatorConfig(latency_ms=50)) as sim:
        sim.call("add_key", "sk-sim-bench-0001", "proj_bench")
        remote_ids = sim.call("seed_bulk", "proj_bench", count=3000)
        ...  # point a client at sim.base_url
        log = sim.call("request_log", clear=True)  # LoggedRequest entries
        left = sim.call("live_ids", "proj_bench")

The child is started with "spawn": it holds nothing of the parent's (no database connection, no thread),
and runs nothing but the simulator. Spawning imports the parent's main module again in the child, so a
script starts the simulator under `if __name__ == "__main__":` only. Only the commands in COMMANDS can be
called.
"""

import contextlib
import multiprocessing
import threading
import time
from dataclasses import fields

from .config import SimulatorConfig
from .seed import seed_bulk
from .server import make_server
from .state import SimulatorState

START_TIMEOUT = 30.0


def _request_log(state: SimulatorState, config, *, clear: bool = False) -> list:
    with state.lock:
        log = list(state.request_log)
        if clear:
            state.request_log.clear()
    return log


def _configure(state: SimulatorState, config: SimulatorConfig, **knobs) -> None:
    """Turn knobs of the running simulator (checked as SimulatorConfig checks them)."""
    checked = SimulatorConfig(**{**{f.name: getattr(config, f.name) for f in fields(config)}, **knobs})
    for name in knobs:
        setattr(config, name, getattr(checked, name))
    if "rate_limit_per_minute" in knobs:
        with state.lock:
            state.limiter.reset()


COMMANDS = {
    "add_key": lambda state, config, *args: state.add_key(*args),
    "seed_bulk": lambda state, config, *args, **kwargs: seed_bulk(state, *args, **kwargs),
    "enqueue_faults": lambda state, config, *faults: state.enqueue_faults(*faults),
    "configure": _configure,
    "request_log": _request_log,
    "live_ids": lambda state, config, project_id: state.live_ids(project_id),
    # Blocks the pipe until that many requests have been logged: e.g. clients stuck on a hanging fault.
    "wait_for_requests": lambda state, config, count, timeout=10.0: state.wait_for_requests(count, timeout),
    # The child's CPU time so far (every thread): how busy serving kept it.
    "cpu_seconds": lambda state, config: time.process_time(),
}


def _serve(connection, config: SimulatorConfig, host: str) -> None:
    """The child: serve on a free port, tell the parent which, then answer its commands until it says stop
    (or goes away)."""
    state = SimulatorState(seed=config.seed)
    server = make_server(host, 0, state, config)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    connection.send(server.server_address[1])
    try:
        while True:
            try:
                name, args, kwargs = connection.recv()
            except EOFError:
                break
            if name == "stop":
                break
            try:
                connection.send(("ok", COMMANDS[name](state, config, *args, **kwargs)))
            except Exception as error:  # sent back, to be raised in the parent
                connection.send(("error", f"{type(error).__name__}: {error}"))
    finally:
        server.shutdown()
        server.server_close()


class SimulatorProcess:
    """A simulator served by a child process; `base_url` once started (as a context manager)."""

    def __init__(self, config: SimulatorConfig | None = None, *, host: str = "127.0.0.1"):
        self.config = config or SimulatorConfig()
        self.host = host
        self.base_url = ""
        self._connection = None
        self._process = None

    def __enter__(self) -> "SimulatorProcess":
        context = multiprocessing.get_context("spawn")
        self._connection, child_end = context.Pipe()
        self._process = context.Process(
            target=_serve, args=(child_end, self.config, self.host), name="simulator", daemon=True
        )
        self._process.start()
        child_end.close()
        try:
            if not self._connection.poll(START_TIMEOUT):
                raise EOFError
            port = self._connection.recv()
        except EOFError:
            self._process.kill()
            self._process.join()
            raise RuntimeError(
                f"The simulator process did not start (exit code {self._process.exitcode}); a script that "
                "starts one must do it under `if __name__ == '__main__':`"
            ) from None
        self.base_url = f"http://{self.host}:{port}/v1"
        return self

    def call(self, name: str, *args, **kwargs):
        """Run one of COMMANDS in the child and return its result."""
        if name not in COMMANDS:
            raise ValueError(f"Unknown command {name!r}: use one of {', '.join(COMMANDS)}")
        self._connection.send((name, args, kwargs))
        status, result = self._connection.recv()
        if status == "error":
            raise RuntimeError(f"The simulator process failed on {name}: {result}")
        return result

    def __exit__(self, *exc_info) -> None:
        with contextlib.suppress(OSError):  # the child may be gone already
            self._connection.send(("stop", (), {}))
        self._process.join(10)
        if self._process.is_alive():
            self._process.kill()
            self._process.join()
        self._connection.close()
