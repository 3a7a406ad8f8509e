"""Serving the simulator over HTTP: a threaded wsgiref server that keeps connections alive (HTTP/1.1) and
can drop a connection unanswered.

wsgiref speaks HTTP/1.0, one connection (and one server thread) per request. The API's clients keep
their connections open, and at hundreds of requests a second the new connections would cost more than
the simulated work; so a connection here serves requests until the client closes it, asks to close it,
stays idle for IDLE_TIMEOUT, or a fault drops it. The server closes every open connection when it closes.
"""

import contextlib
import http.client
import logging
import socket
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from http import HTTPStatus
from socketserver import ThreadingMixIn
from wsgiref.simple_server import ServerHandler, WSGIRequestHandler, WSGIServer

from . import hostile
from .app import DropConnection, make_app
from .config import SimulatorConfig
from .state import SimulatorState

logger = logging.getLogger(__name__)

# A kept-alive connection with no request for this long is closed, so that its thread ends.
IDLE_TIMEOUT = 60.0


class _Handler(ServerHandler):
    # The request handler answers HTTP/1.0 requests itself (and then closes); see _RequestHandler.
    http_version = "1.1"

    def cleanup_headers(self):
        super().cleanup_headers()
        if self.environ.get(hostile.CLOSE_CONNECTION):
            self.request_handler.close_connection = True
        if self.request_handler.close_connection:
            self.headers["Connection"] = "close"

    def handle_error(self):
        # Called from the `except` block of ServerHandler.run, so the exception is the current one. After
        # an error nothing more is read from the connection: what is left of the request is unknown.
        self.request_handler.close_connection = True
        if isinstance(sys.exc_info()[1], DropConnection):
            # Write nothing: the request handler returns and the server closes the socket, so the
            # client sees the connection end with no status line (a ConnectionError in requests).
            return
        super().handle_error()


class _Headers:
    """A request's headers as wsgiref and http.server read them from `email.message.Message` (`get`, `[]`,
    `items`, `get_content_type`), read without the email parser: that parser was half of what the
    simulator spent on a request."""

    def __init__(self, pairs: list[tuple[str, str]]):
        self._pairs = pairs
        self._by_name: dict[str, str] = {}
        for name, value in pairs:
            self._by_name.setdefault(name.lower(), value)

    def get(self, name: str, default=None):
        return self._by_name.get(name.lower(), default)

    def __getitem__(self, name: str):
        return self._by_name.get(name.lower())  # as Message: None when absent

    def __contains__(self, name: str) -> bool:
        return name.lower() in self._by_name

    def items(self) -> list[tuple[str, str]]:
        return list(self._pairs)

    def get_content_type(self) -> str:
        value = self.get("content-type")
        return value.split(";")[0].strip().lower() if value else "text/plain"


def _read_headers(rfile) -> _Headers:
    """The header lines of a request, as http.client reads them: at most MAX_HEADERS lines of at most
    MAX_LINE bytes (http.client.LineTooLong / HTTPException past them), up to the empty line."""
    pairs: list[list[str]] = []
    while True:
        line = rfile.readline(http.client._MAXLINE + 1)
        if len(line) > http.client._MAXLINE:
            raise http.client.LineTooLong("header line")
        if line in (b"\r\n", b"\n", b""):
            break
        if len(pairs) >= http.client._MAXHEADERS:
            raise http.client.HTTPException(f"got more than {http.client._MAXHEADERS} headers")
        text = line.decode("iso-8859-1").rstrip("\r\n")
        if text[:1] in (" ", "\t") and pairs:  # a folded line continues the header before it (RFC 9112)
            pairs[-1][1] = f"{pairs[-1][1].rstrip()} {text.strip()}"
        elif ":" in text:
            name, value = text.split(":", 1)
            pairs.append([name, value.lstrip(" \t")])
    return _Headers([(name, value) for name, value in pairs])


class _RequestHandler(WSGIRequestHandler):
    protocol_version = "HTTP/1.1"
    timeout = IDLE_TIMEOUT
    # wsgiref writes a response in several pieces (status line, Date, Server, headers, body) and flushes
    # after the body: buffered, they leave in one segment. Unbuffered, on a kept-alive connection, Nagle's
    # algorithm would hold the body back until the client's delayed ACK (40 ms) for every request.
    wbufsize = 64 * 1024
    disable_nagle_algorithm = True

    def handle(self):
        # WSGIRequestHandler.handle serves one request; this serves the connection's requests in turn.
        self.close_connection = True
        self.handle_one_request()
        while not self.close_connection:
            self.handle_one_request()

    def handle_one_request(self):
        # As WSGIRequestHandler.handle, with the ServerHandler above.
        try:
            self.raw_requestline = self.rfile.readline(65537)
            if not self.raw_requestline:
                self.close_connection = True
                return
            if len(self.raw_requestline) > 65536:
                self.requestline = self.request_version = self.command = ""
                self.send_error(414)
                return
            # Sets close_connection from the request's version and Connection header.
            if not self.parse_request():
                return
            if self.headers.get("Transfer-Encoding"):
                # The app reads a body by its Content-Length only: the rest of a chunked body would be
                # taken for the next request.
                self.close_connection = True
            if self.request_version != "HTTP/1.1":
                self.close_connection = True
            handler = _Handler(
                self.rfile, self.wfile, self.get_stderr(), self.get_environ(), multithread=True
            )
            handler.http_version = "1.1" if self.request_version == "HTTP/1.1" else "1.0"
            handler.request_handler = self
            handler.run(self.server.get_app())
        except (TimeoutError, ConnectionError):
            # Idle too long, or the client went away: end this connection quietly.
            self.close_connection = True

    def parse_request(self):
        # As BaseHTTPRequestHandler.parse_request (Python 3.12), with the headers read by _read_headers.
        self.command = None
        self.request_version = version = self.default_request_version
        self.close_connection = True
        self.requestline = requestline = str(self.raw_requestline, "iso-8859-1").rstrip("\r\n")
        words = requestline.split()
        if not words:
            return False
        if len(words) >= 3:
            version = words[-1]
            numbers = version[5:].split(".") if version.startswith("HTTP/") else []
            if len(numbers) != 2 or not all(n.isdigit() and len(n) <= 10 for n in numbers):
                self.send_error(HTTPStatus.BAD_REQUEST, f"Bad request version ({version!r})")
                return False
            number = int(numbers[0]), int(numbers[1])
            if number >= (1, 1) and self.protocol_version >= "HTTP/1.1":
                self.close_connection = False
            if number >= (2, 0):
                self.send_error(
                    HTTPStatus.HTTP_VERSION_NOT_SUPPORTED, f"Invalid HTTP version ({version[5:]})"
                )
                return False
            self.request_version = version
        if not 2 <= len(words) <= 3:
            self.send_error(HTTPStatus.BAD_REQUEST, f"Bad request syntax ({requestline!r})")
            return False
        self.command, self.path = words[:2]
        if len(words) == 2:
            self.close_connection = True
            if self.command != "GET":
                self.send_error(HTTPStatus.BAD_REQUEST, f"Bad HTTP/0.9 request type ({self.command!r})")
                return False
        if self.path.startswith("//"):
            self.path = "/" + self.path.lstrip("/")
        try:
            self.headers = _read_headers(self.rfile)
        except http.client.LineTooLong as error:
            self.send_error(HTTPStatus.REQUEST_HEADER_FIELDS_TOO_LARGE, "Line too long", str(error))
            return False
        except http.client.HTTPException as error:
            self.send_error(HTTPStatus.REQUEST_HEADER_FIELDS_TOO_LARGE, "Too many headers", str(error))
            return False
        connection = self.headers.get("Connection", "").lower()
        if connection == "close":
            self.close_connection = True
        elif connection == "keep-alive" and self.protocol_version >= "HTTP/1.1":
            self.close_connection = False
        if (
            self.headers.get("Expect", "").lower() == "100-continue"
            and self.protocol_version >= "HTTP/1.1"
            and self.request_version >= "HTTP/1.1"
        ):
            return self.handle_expect_100()
        return True

    def finish(self):
        # A client gone in the middle of a streamed answer (a drip, a huge body) leaves bytes in the write
        # buffer that closing it would try, and fail, to send again.
        with contextlib.suppress(OSError):
            super().finish()

    def get_environ(self):
        environ = super().get_environ()
        environ[hostile.SOCKET] = self.connection
        return environ

    def log_message(self, format, *args):  # noqa: A002 - the name BaseHTTPRequestHandler gives it
        if self.server.verbose:
            logger.info("%s %s", self.address_string(), format % args)


class SimulatorServer(ThreadingMixIn, WSGIServer):
    daemon_threads = True
    # Shut down without waiting for requests still sleeping on a simulated delay.
    block_on_close = False
    verbose = False
    # socketserver's backlog is 5 connections: a job opening a hundred at once overflowed it, and the
    # kernel dropped the handshakes past it. The clients saw a connection held for a second, or a request
    # sent on a connection the server never accepted, unanswered until the read timeout (30 s).
    request_queue_size = socket.SOMAXCONN

    def __init__(self, *args, **kwargs):
        # Set on close: ends the answers of faults that hang or drip (see hostile.py).
        self.stopping = threading.Event()
        self._connections: set[socket.socket] = set()
        self._connections_lock = threading.Lock()
        super().__init__(*args, **kwargs)

    def process_request(self, request, client_address):
        with self._connections_lock:
            self._connections.add(request)
        super().process_request(request, client_address)

    def close_request(self, request):
        with self._connections_lock:
            self._connections.discard(request)
        super().close_request(request)

    def server_close(self):
        """Stop listening, and end the kept-alive connections: a stopped simulator answers nothing more."""
        self.stopping.set()
        super().server_close()
        with self._connections_lock:
            connections = list(self._connections)
        for connection in connections:
            with contextlib.suppress(OSError):  # already closed by its thread
                connection.shutdown(socket.SHUT_RDWR)


def make_server(
    host: str, port: int, state: SimulatorState, config: SimulatorConfig, *, verbose: bool = False
) -> SimulatorServer:
    server = SimulatorServer((host, port), _RequestHandler)
    server.verbose = verbose
    server.set_app(make_app(state, config, stopping=server.stopping))
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
