"""An offline stand-in for the OpenAI API's three kinds of threads, for tests, demos and benchmarks.

Plain WSGI and the standard library only (no Django), so it starts in milliseconds:

    with running_simulator(SimulatorConfig(rate_limit_per_minute=60)) as sim:
        sim.state.add_key("sk-sim-test", "proj_test")
        requests.get(f"{sim.base_url}/chatkit/threads", headers=…)

`python manage.py simulator` serves it until Ctrl-C; `SimulatorProcess` serves it from a child process
(benchmarks), driven through a pipe.
"""

from .app import make_app
from .config import SimulatorConfig
from .process import SimulatorProcess
from .seed import seed_bulk, seed_demo
from .server import RunningSimulator, running_simulator
from .state import SimulatorState

__all__ = [
    "RunningSimulator",
    "SimulatorConfig",
    "SimulatorProcess",
    "SimulatorState",
    "make_app",
    "running_simulator",
    "seed_bulk",
    "seed_demo",
]
