"""Serving the simulator over HTTP: a threaded wsgiref server that can drop a connection unanswered."""

import logging
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from socketserver import ThreadingMixIn
from wsgiref.simple_server import ServerHandler, WSGIRequestHandler, WSGIServer

from .app import DropConnection, make_app
from .config import SimulatorConfig
from .state import SimulatorState

logger = logging.getLogger(__name__)


class _Handler(ServerHandler):
    def handle_error(self):
        # Called from the `except` block of ServerHandler.run, so the exception is the current one.
        if isinstance(sys.exc_info()[1], DropConnection):
            # Write nothing: the request handler returns and the server closes the socket, so the
            # client sees the connection end with no status line (a ConnectionError in requests).
            return
        super().handle_error()


class _RequestHandler(WSGIRequestHandler):
    def handle(self):
        # As WSGIRequestHandler.handle, with the ServerHandler above.
        self.raw_requestline = self.rfile.readline(65537)
        if len(self.raw_requestline) > 65536:
            self.requestline = self.request_version = self.command = ""
            self.send_error(414)
            return
        if not self.parse_request():
            return
        handler = _Handler(self.rfile, self.wfile, self.get_stderr(), self.get_environ(), multithread=True)
        handler.request_handler = self
        handler.run(self.server.get_app())

    def log_message(self, format, *args):  # noqa: A002 - the name BaseHTTPRequestHandler gives it
        if self.server.verbose:
            logger.info("%s %s", self.address_string(), format % args)


class SimulatorServer(ThreadingMixIn, WSGIServer):
    daemon_threads = True
    # Shut down without waiting for requests still sleeping on a simulated delay.
    block_on_close = False
    verbose = False


def make_server(
    host: str, port: int, state: SimulatorState, config: SimulatorConfig, *, verbose: bool = False
) -> SimulatorServer:
    server = SimulatorServer((host, port), _RequestHandler)
    server.verbose = verbose
    server.set_app(make_app(state, config))
    return server


@dataclass
class RunningSimulator:
    base_url: str  # e.g. http://127.0.0.1:PORT/v1
    state: SimulatorState
    config: SimulatorConfig
    server: SimulatorServer

    def add_key(self, api_key: str, project_id: str, organization_id: str = "org-sim") -> str:
        self.state.add_key(api_key, project_id, organization_id)
        return api_key


@contextmanager
def running_simulator(
    config: SimulatorConfig | None = None, state: SimulatorState | None = None, *, host: str = "127.0.0.1"
) -> Iterator[RunningSimulator]:
    """The simulator served on a free port in a background thread until the block ends."""
    config = config or SimulatorConfig()
    state = state or SimulatorState(seed=config.seed)
    server = make_server(host, 0, state, config)
    thread = threading.Thread(
        target=server.serve_forever, kwargs={"poll_interval": 0.05}, name="simulator", daemon=True
    )
    thread.start()
    try:
        port = server.server_address[1]
        yield RunningSimulator(f"http://{host}:{port}/v1", state, config, server)
    finally:
        server.shutdown()
        server.server_close()
        thread.join()
