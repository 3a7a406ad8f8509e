"""The simulator's HTTP/1.1 over a raw socket: the request line and headers as http.server reads them
(the simulator reads headers without the email parser), kept-alive connections, and what it refuses."""

import json
import socket
from urllib.parse import urlsplit

import pytest


def exchange(simulator, data: bytes, *, answers: int = 1) -> list[tuple[str, dict, bytes]]:
    """Send raw bytes on one connection; read `answers` answers (status line, headers, body)."""
    address = urlsplit(simulator.base_url)
    with socket.create_connection((address.hostname, address.port), timeout=5) as sock:
        sock.sendall(data)
        reader = sock.makefile("rb")
        results = []
        for _ in range(answers):
            status = reader.readline().decode().rstrip("\r\n")
            headers = {}
            while (line := reader.readline()) not in (b"\r\n", b""):
                name, _, value = line.decode().partition(":")
                headers[name.strip().lower()] = value.strip()
            body = reader.read(int(headers.get("content-length", 0)))
            results.append((status, headers, body))
        return results


def request(
    path="/v1/conversations/conv_missing", *lines, method="GET", version="HTTP/1.1", body=b""
) -> bytes:
    head = [f"{method} {path} {version}", "Host: sim", *lines]
    if body:
        head.append(f"Content-Length: {len(body)}")
    return ("\r\n".join(head) + "\r\n\r\n").encode() + body


def test_headers_are_read_whatever_their_case_and_a_kept_alive_connection_serves_each_request(
    simulator, sim_key
):
    key = sim_key("proj_alpha")
    data = request("/v1/conversations/conv_missing", f"aUtHoRiZaTiOn: Bearer {key}") + request(
        "/v1/conversations",
        f"Authorization:Bearer {key}",
        "content-type: application/json",
        "Connection: close",
        method="POST",
        body=json.dumps({"metadata": {"topic": "raw"}}).encode(),
    )
    (missing, _, body), (created, headers, created_body) = exchange(simulator, data, answers=2)
    assert missing == "HTTP/1.1 404 Not Found"
    assert json.loads(body)["error"]["message"] == "Conversation with id 'conv_missing' not found."
    assert created == "HTTP/1.1 200 OK"
    assert json.loads(created_body)["metadata"] == {"topic": "raw"}
    assert headers["connection"] == "close"


def test_a_header_folded_onto_a_second_line_continues_the_first(simulator, sim_key):
    ((status, _, _),) = exchange(
        simulator,
        request("/v1/conversations/conv_missing", "Authorization: Bearer", f"\t{sim_key('proj_alpha')}"),
    )
    assert status == "HTTP/1.1 404 Not Found"  # the key was read whole: not a 401


def test_without_a_key_the_api_answers_401(simulator):
    ((status, _, body),) = exchange(simulator, request())
    assert status == "HTTP/1.1 401 Unauthorized"
    assert "API key" in json.loads(body)["error"]["message"]


@pytest.mark.parametrize(
    ("data", "status"),
    [
        (request("/v1/x", *(f"X-{n}: {n}" for n in range(101))), "HTTP/1.1 431 Too many headers"),
        (request("/v1/x", "X-Long: " + "a" * 70_000), "HTTP/1.1 431 Line too long"),
    ],
)
def test_a_request_http_cannot_read_is_refused_as_http_server_refuses_it(simulator, data, status):
    ((answer, headers, _),) = exchange(simulator, data)
    assert answer.startswith(status)
    assert headers["connection"] == "close"


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"GET /v1/conversations HTTP/1.x\r\n\r\n", "Bad request version ('HTTP/1.x')"),
        (b"GET /v1 conversations HTTP/1.1 extra\r\n\r\n", "Bad request version ('extra')"),
        (b"GET /v1/conversations HTTP/2.0\r\n\r\n", "Invalid HTTP version (2.0)"),
        (b"POST /v1/conversations\r\n\r\n", "Bad HTTP/0.9 request type ('POST')"),
    ],
)
def test_a_request_of_no_known_version_is_answered_as_http_0_9_and_closed(simulator, data, message):
    address = urlsplit(simulator.base_url)
    with socket.create_connection((address.hostname, address.port), timeout=5) as sock:
        sock.sendall(data)
        answer = sock.makefile("rb").read()  # to the end: the connection is closed after it
    assert answer.startswith(b"<!DOCTYPE HTML>")  # no status line in HTTP/0.9
    assert message.encode() in answer


def test_a_client_that_expects_100_continue_is_told_to_go_on(simulator, sim_key):
    body = json.dumps({"metadata": {}}).encode()
    data = request(
        "/v1/conversations",
        f"Authorization: Bearer {sim_key('proj_alpha')}",
        "Expect: 100-continue",
        method="POST",
        body=body,
    )
    (go_on, _, _), (created, _, created_body) = exchange(simulator, data, answers=2)
    assert go_on == "HTTP/1.1 100 Continue"
    assert created == "HTTP/1.1 200 OK"
    assert json.loads(created_body)["object"] == "conversation"


def test_a_burst_of_new_connections_waits_in_the_backlog_until_the_server_accepts_it():
    # A job opens a connection for each request it runs at once, hundreds in the same instant, while the
    # server's accepting thread waits for its turn at the GIL. The kernel queues them up to the listen
    # backlog and drops the handshakes past it; socketserver's default of 5 held a connection back a
    # second, or left a request unanswered until the client's read timeout.
    from threads_app.simulator import SimulatorConfig, SimulatorState
    from threads_app.simulator.server import make_server

    server = make_server("127.0.0.1", 0, SimulatorState(seed=1), SimulatorConfig())  # not accepting yet
    address = server.server_address
    connections = []
    try:
        for number in range(64):
            try:
                connections.append(socket.create_connection(address, timeout=1))
            except TimeoutError:
                pytest.fail(f"connection {number + 1} was not taken into the backlog")
    finally:
        for connection in connections:
            connection.close()
        server.server_close()
