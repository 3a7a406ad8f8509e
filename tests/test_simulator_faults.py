"""The simulator's misbehaviour on demand: the rate limit, queued and random faults, drops, delays."""

import json
import pickle
import re
import socket
from urllib.parse import urlsplit

import pytest
import requests

from threads_app.simulator import SimulatorConfig, running_simulator


def get(simulator, api_key, path="/conversations/conv_missing", *, timeout=5.0, headers=None):
    headers = {"Authorization": f"Bearer {api_key}", **(headers or {})}
    return requests.get(simulator.base_url + path, headers=headers, timeout=timeout)


def test_it_limits_requests_per_project_and_recovers(simulator, sim_key, sim_clock):
    simulator.config.rate_limit_per_minute = 2
    alpha = sim_key("proj_alpha")

    first, second, third = (get(simulator, alpha) for _ in range(3))

    assert (first.status_code, second.status_code) == (404, 404)  # let through to the (missing) object
    assert first.headers["x-ratelimit-limit-requests"] == "2"
    assert [
        first.headers["x-ratelimit-remaining-requests"],
        second.headers["x-ratelimit-remaining-requests"],
    ] == [
        "1",
        "0",
    ]
    assert third.status_code == 429
    assert third.json()["error"]["code"] == "rate_limit_exceeded"
    assert third.headers["retry-after"] == "30"
    assert third.headers["x-ratelimit-remaining-requests"] == "0"
    assert third.headers["x-ratelimit-reset-requests"] == "30s"
    # Another project has its own budget.
    assert get(simulator, sim_key("proj_beta")).status_code == 404

    sim_clock.advance(seconds=29)
    assert get(simulator, alpha).status_code == 429
    sim_clock.advance(seconds=1)
    assert get(simulator, alpha).status_code == 404


def test_the_rate_limit_is_off_by_default_and_sends_no_rate_headers(simulator, sim_key):
    responses = [get(simulator, sim_key("proj_alpha")) for _ in range(30)]
    assert {r.status_code for r in responses} == {404}
    assert not any(name.startswith("x-ratelimit") for name in responses[0].headers)


@pytest.mark.parametrize(
    ("fault", "status", "present", "absent"),
    [
        ("429", 429, {"retry-after": "1", "x-ratelimit-reset-requests": "1s"}, ["retry-after-ms"]),
        ("429_ms", 429, {"retry-after-ms": "250", "x-ratelimit-reset-requests": "250ms"}, ["retry-after"]),
        ("429_quota", 429, {}, ["retry-after", "retry-after-ms", "x-ratelimit-reset-requests"]),
        ("500", 500, {}, ["retry-after"]),
        ("503", 503, {}, ["retry-after"]),
    ],
)
def test_a_queued_fault_answers_the_next_request(simulator, sim_key, fault, status, present, absent):
    simulator.state.enqueue_faults(fault)

    response = get(simulator, sim_key("proj_alpha"))

    assert response.status_code == status
    assert response.headers["x-request-id"].startswith("req_")
    for name, value in present.items():
        assert response.headers[name] == value
    for name in absent:
        assert name not in response.headers
    error = response.json()["error"]
    expected_code = {
        "429": "rate_limit_exceeded",
        "429_ms": "rate_limit_exceeded",
        "429_quota": "insufficient_quota",
    }
    assert error["code"] == expected_code.get(fault)
    if status >= 500:
        assert error["type"] == "server_error"
    assert get(simulator, sim_key("proj_alpha")).status_code == 404  # one request per fault


def test_a_queued_502_is_an_html_page_as_a_proxy_sends_it(simulator, sim_key):
    simulator.state.enqueue_faults("502_html")
    response = get(simulator, sim_key("proj_alpha"))
    assert response.status_code == 502
    assert response.headers["content-type"] == "text/html"
    assert "<h1>502 Bad Gateway</h1>" in response.text


def test_queued_faults_apply_in_order_one_per_request(simulator, sim_key):
    simulator.state.enqueue_faults("500", "503", "429")
    statuses = [get(simulator, sim_key("proj_alpha")).status_code for _ in range(4)]
    assert statuses == [500, 503, 429, 404]
    assert [status for _, _, status in simulator.state.request_log] == statuses


def test_unknown_faults_are_refused_and_nothing_is_queued(simulator, sim_key):
    with pytest.raises(ValueError, match="Unknown fault 'teapot'"):
        simulator.state.enqueue_faults("500", "teapot")
    with pytest.raises(ValueError):
        simulator.state.enqueue_faults("slow:soon")
    assert get(simulator, sim_key("proj_alpha")).status_code == 404


def test_a_dropped_request_gets_its_connection_closed_without_an_answer(simulator, sim_key):
    simulator.state.enqueue_faults("drop")
    address = urlsplit(simulator.base_url)
    with socket.create_connection((address.hostname, address.port), timeout=5) as connection:
        connection.sendall(b"GET /v1/chatkit/threads HTTP/1.1\r\nHost: sim\r\n\r\n")
        assert connection.recv(1024) == b""  # closed, not a single byte of status line
    assert simulator.state.request_log == [("GET", "/v1/chatkit/threads", None)]


def test_requests_sees_a_drop_as_a_connection_error_and_the_next_request_works(simulator, sim_key):
    simulator.state.enqueue_faults("drop")
    with pytest.raises(requests.ConnectionError):
        get(simulator, sim_key("proj_alpha"))
    assert get(simulator, sim_key("proj_alpha")).status_code == 404


def test_random_faults_follow_the_configured_rates(simulator, sim_key):
    simulator.config.fault_rate = 1.0
    statuses = {get(simulator, sim_key("proj_alpha")).status_code for _ in range(30)}
    assert statuses == {500, 502, 503}

    simulator.config.fault_rate = 0.0
    simulator.config.drop_rate = 1.0
    with pytest.raises(requests.ConnectionError):
        get(simulator, sim_key("proj_alpha"))

    simulator.config.drop_rate = 0.0
    assert get(simulator, sim_key("proj_alpha")).status_code == 404


def test_a_slow_fault_and_the_latency_delay_the_answer(simulator, sim_key):
    # The delay is slept by the simulator's server thread (the remote side); the test only waits for its
    # own short read timeout.
    simulator.state.enqueue_faults("slow:2")
    with pytest.raises(requests.ReadTimeout):
        get(simulator, sim_key("proj_alpha"), timeout=0.05)
    simulator.config.latency_ms = 2000
    with pytest.raises(requests.ReadTimeout):
        get(simulator, sim_key("proj_alpha"), timeout=0.05)
    simulator.config.latency_ms = 0
    assert get(simulator, sim_key("proj_alpha")).status_code == 404


# --- Dropped after the work is done --------------------------------------------------------------------


def delete(simulator, api_key, path, *, session=None):
    headers = {"Authorization": f"Bearer {api_key}", "OpenAI-Beta": "assistants=v2"}
    return (session or requests).delete(simulator.base_url + path, headers=headers, timeout=5)


def test_a_drop_after_carries_the_delete_out_and_loses_its_answer(simulator, sim_key):
    conversation = simulator.state.create_conversation("proj_alpha")
    path = f"/conversations/{conversation['id']}"
    simulator.state.enqueue_faults("drop_after")

    with pytest.raises(requests.ConnectionError):
        delete(simulator, sim_key("proj_alpha"), path)

    assert simulator.state.conversations[conversation["id"]].deleted  # done, though never answered
    assert delete(simulator, sim_key("proj_alpha"), path).status_code == 404  # the client's retry
    dropped, retried = simulator.state.request_log
    assert dropped == ("DELETE", "/v1" + path, None)  # the client got nothing
    assert (dropped.outcome, dropped.unanswered_but_done) == (200, True)
    assert (retried.status, retried.outcome, retried.unanswered_but_done) == (404, 404, False)


def test_the_log_tells_a_drop_before_from_a_drop_after(simulator, sim_key):
    simulator.state.enqueue_faults("drop", "drop_after", "500")
    for _ in range(2):
        with pytest.raises(requests.ConnectionError):
            get(simulator, sim_key("proj_alpha"))
    assert get(simulator, sim_key("proj_alpha")).status_code == 500

    log = simulator.state.request_log
    assert [(entry.status, entry.outcome) for entry in log] == [(None, None), (None, 404), (500, 500)]
    assert [entry.unanswered_but_done for entry in log] == [False, True, False]


def test_a_drop_after_sends_not_a_byte(simulator, sim_key):
    thread = simulator.state.create_chatkit_thread("proj_alpha", user="user_ada")
    simulator.state.enqueue_faults("drop_after")
    address = urlsplit(simulator.base_url)
    request = (
        f"DELETE /v1/chatkit/threads/{thread['id']} HTTP/1.1\r\nHost: sim\r\n"
        f"Authorization: Bearer {sim_key('proj_alpha')}\r\nOpenAI-Beta: chatkit_beta=v1\r\n\r\n"
    )
    with socket.create_connection((address.hostname, address.port), timeout=5) as connection:
        connection.sendall(request.encode())
        assert connection.recv(1024) == b""
    assert thread["id"] not in simulator.state.chatkit_threads


def test_a_drop_after_still_passes_the_rate_limit_first(simulator, sim_key, sim_clock):
    simulator.config.rate_limit_per_minute = 1
    thread = simulator.state.create_thread("proj_alpha")
    assert get(simulator, sim_key("proj_alpha")).status_code == 404  # the one request of the minute
    simulator.state.enqueue_faults("drop_after")

    with pytest.raises(requests.ConnectionError):
        delete(simulator, sim_key("proj_alpha"), f"/threads/{thread['id']}")

    assert thread["id"] in simulator.state.threads  # refused, so nothing was done
    assert simulator.state.request_log[-1].outcome == 429


def test_random_drops_after_follow_their_rate(simulator, sim_key):
    simulator.config.drop_after_rate = 1.0
    threads = [simulator.state.create_thread("proj_alpha") for _ in range(5)]
    for thread in threads:
        with pytest.raises(requests.ConnectionError):
            delete(simulator, sim_key("proj_alpha"), f"/threads/{thread['id']}")
    assert simulator.state.threads == {}
    assert all(entry.unanswered_but_done for entry in simulator.state.request_log)

    simulator.config.drop_after_rate = 0.0
    assert get(simulator, sim_key("proj_alpha")).status_code == 404


def test_drop_after_rate_must_be_a_share():
    with pytest.raises(ValueError, match="drop_after_rate must be between 0 and 1"):
        SimulatorConfig(drop_after_rate=1.5)


def test_the_log_pickles_with_what_was_done(simulator, sim_key):
    # A benchmark reads the log of a simulator in another process, through pickle.
    simulator.state.enqueue_faults("drop_after")
    with pytest.raises(requests.ConnectionError):
        get(simulator, sim_key("proj_alpha"))
    (entry,) = pickle.loads(pickle.dumps(simulator.state.request_log))  # noqa: S301 - made just above
    assert (tuple(entry), entry.outcome) == (("GET", "/v1/conversations/conv_missing", None), 404)


# --- Kept-alive connections -------------------------------------------------------------------------------


def raw_exchange(connection, request: bytes) -> bytes:
    """Send one request and read its whole answer (headers and a Content-Length body)."""
    connection.sendall(request)
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = connection.recv(65536)
        assert chunk, f"closed after {data!r}"
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    length = int(re.search(rb"(?i)content-length: (\d+)", head).group(1))
    while len(body) < length:
        body += connection.recv(65536)
    return head


def test_a_connection_serves_requests_until_the_client_asks_to_close(simulator, sim_key):
    address = urlsplit(simulator.base_url)
    request = (
        f"GET /v1/conversations/conv_x HTTP/1.1\r\nHost: sim\r\nAuthorization: Bearer {sim_key('proj_alpha')}"
    )
    with socket.create_connection((address.hostname, address.port), timeout=5) as connection:
        for _ in range(3):
            head = raw_exchange(connection, f"{request}\r\n\r\n".encode())
            assert head.startswith(b"HTTP/1.1 404")
            assert b"connection: close" not in head.lower()
        head = raw_exchange(connection, f"{request}\r\nConnection: close\r\n\r\n".encode())
        assert b"connection: close" in head.lower()
        assert connection.recv(1024) == b""
    assert [status for _, _, status in simulator.state.request_log] == [404] * 4


def test_an_http_1_0_request_gets_one_answer_and_the_connection_closed(simulator, sim_key):
    address = urlsplit(simulator.base_url)
    with socket.create_connection((address.hostname, address.port), timeout=5) as connection:
        head = raw_exchange(connection, b"GET /v1/chatkit/threads HTTP/1.0\r\n\r\n")
        assert head.startswith(b"HTTP/1.0 401")
        assert connection.recv(1024) == b""


def test_a_session_reuses_its_connection_and_a_drop_on_it_is_a_connection_error(simulator, sim_key):
    conversation = simulator.state.create_conversation("proj_alpha", items=[("user", "Hi")])
    path = f"/conversations/{conversation['id']}"
    with requests.Session() as session:
        first = session.get(
            simulator.base_url + path, headers={"Authorization": f"Bearer {sim_key('proj_alpha')}"}
        )
        assert first.status_code == 200
        assert len(simulator.server._connections) == 1
        simulator.state.enqueue_faults("drop_after")
        with pytest.raises(requests.ConnectionError):
            delete(simulator, sim_key("proj_alpha"), path, session=session)
        assert delete(simulator, sim_key("proj_alpha"), path, session=session).status_code == 404
    assert [status for _, _, status in simulator.state.request_log] == [200, None, 404]


def test_closing_the_server_ends_its_kept_alive_connections(sim_key):
    with running_simulator() as simulator:
        simulator.state.add_key(sim_key("proj_alpha"), "proj_alpha")
        address = urlsplit(simulator.base_url)
        connection = socket.create_connection((address.hostname, address.port), timeout=5)
        raw_exchange(connection, b"GET /v1/chatkit/threads HTTP/1.1\r\nHost: sim\r\n\r\n")
    with connection:
        assert connection.recv(1024) == b""  # closed by the server, not left to answer for a dead state


# --- Hostile answers ----------------------------------------------------------------------------------


def raw_request(simulator, path, api_key, *, timeout=5.0) -> socket.socket:
    """A connection with one request sent on it (its answer left to the test to read)."""
    address = urlsplit(simulator.base_url)
    connection = socket.create_connection((address.hostname, address.port), timeout=timeout)
    connection.sendall(
        f"GET /v1{path} HTTP/1.1\r\nHost: sim\r\nAuthorization: Bearer {api_key}\r\n"
        "OpenAI-Beta: assistants=v2\r\n\r\n".encode()
    )
    return connection


def read_until_closed(connection) -> bytes:
    data = b""
    while chunk := connection.recv(65536):
        data += chunk
    return data


def test_a_slow_body_drips_while_the_server_answers_others(simulator, sim_key):
    simulator.config.drip_interval = 0.02
    simulator.state.enqueue_faults("slow_body")

    with get_streamed(simulator, sim_key("proj_alpha")) as dripped:
        assert dripped.status_code == 200
        assert dripped.headers["content-length"] == "1000000"
        assert dripped.headers["connection"] == "close"  # cut short, it cannot carry another request
        assert dripped.raw.read(1) == b"{"
        assert dripped.raw.read(5) == b"     "  # one byte at a time, still coming
        assert get(simulator, sim_key("proj_alpha"), timeout=2).status_code == 404  # the others are served
        assert dripped.raw.read(5) == b"     "
    assert [entry.status for entry in simulator.state.request_log] == [200, 404]


def test_a_slow_body_outlasts_a_read_timeout(simulator, sim_key):
    simulator.state.enqueue_faults("slow_body")  # a byte a second
    # On a raw socket with a timeout of its own, so that nothing here can wait on the drip for ever.
    with raw_request(simulator, "/threads/thread_x", sim_key("proj_alpha")) as connection:
        connection.settimeout(2)
        head = b""
        while b"\r\n\r\n{" not in head:
            head += connection.recv(1024)
        connection.settimeout(0.2)
        with pytest.raises(TimeoutError):
            connection.recv(1024)  # the next byte is a second away


def test_a_slow_body_ends_when_the_server_closes(sim_key):
    with running_simulator() as simulator:
        simulator.state.add_key(sim_key("proj_alpha"), "proj_alpha")
        simulator.state.enqueue_faults("slow_body")
        connection = raw_request(simulator, "/threads/thread_x", sim_key("proj_alpha"))
        head = b""
        while b"\r\n\r\n{" not in head:
            head += connection.recv(1024)
        assert head.startswith(b"HTTP/1.1 200 OK")
    with connection:
        read_until_closed(connection)  # returns: the server closed the drip with it


def test_no_headers_holds_the_request_unanswered_while_the_server_answers_others(simulator, sim_key):
    simulator.state.enqueue_faults("no_headers")
    with raw_request(simulator, "/threads/thread_x", sim_key("proj_alpha")) as connection:
        assert simulator.state.wait_for_requests(1)
        assert simulator.state.request_log == [("GET", "/v1/threads/thread_x", None)]
        assert get(simulator, sim_key("proj_alpha"), timeout=2).status_code == 404
        connection.settimeout(0.2)
        with pytest.raises(TimeoutError):
            connection.recv(1024)  # not a byte, not even a status line


def test_requests_gives_up_on_no_headers_and_the_next_request_works(simulator, sim_key):
    simulator.state.enqueue_faults("no_headers")
    with pytest.raises(requests.ReadTimeout):
        get(simulator, sim_key("proj_alpha"), timeout=(2, 0.2))
    assert get(simulator, sim_key("proj_alpha"), timeout=2).status_code == 404


def test_no_headers_ends_when_the_server_closes(sim_key):
    with running_simulator() as simulator:
        simulator.state.enqueue_faults("no_headers")
        connection = raw_request(simulator, "/threads/thread_x", sim_key("proj_alpha"))
        assert simulator.state.wait_for_requests(1)
    with connection:
        assert read_until_closed(connection) == b""


def get_streamed(simulator, api_key, path="/threads/thread_x", **options):
    headers = {"Authorization": f"Bearer {api_key}", "OpenAI-Beta": "assistants=v2"}
    return requests.get(simulator.base_url + path, headers=headers, stream=True, timeout=5, **options)


def test_a_huge_body_is_valid_json_of_the_configured_size(simulator, sim_key):
    simulator.config.huge_body_bytes = 1_000_000
    simulator.state.enqueue_faults("huge_body")

    with get_streamed(simulator, sim_key("proj_alpha")) as answer:
        body = answer.content

    assert answer.status_code == 200 and "content-length" not in answer.headers  # read to the close
    assert len(body) == 1_000_000
    listed = json.loads(body)
    assert listed["object"] == "list" and len(listed["data"]) > 100
    assert listed["data"][0]["object"] == "thread.message"


def test_a_huge_body_goes_far_past_20_mb_by_default(simulator, sim_key):
    simulator.state.enqueue_faults("huge_body")
    read = 0
    with get_streamed(simulator, sim_key("proj_alpha")) as answer:
        assert answer.headers["content-type"] == "application/json"
        for chunk in answer.iter_content(1024 * 1024):
            read += len(chunk)
            if read > 21 * 1024 * 1024:
                break
    assert read > 21 * 1024 * 1024
    assert get(simulator, sim_key("proj_alpha"), timeout=2).status_code == 404


def test_echo_key_quotes_the_request_credentials_in_a_200(simulator, sim_key):
    simulator.state.enqueue_faults("echo_key", "echo_key")
    bearer = get(simulator, sim_key("proj_alpha"))
    azure = requests.get(
        simulator.base_url + "/threads/thread_x", headers={"api-key": "azure-key-0123456789"}, timeout=5
    )
    assert (bearer.status_code, bearer.headers["content-type"]) == (200, "text/plain")
    assert f"Authorization: Bearer {sim_key('proj_alpha')}" in bearer.text
    assert "api-key: azure-key-0123456789" in azure.text


LIST_PATHS = {
    "messages": ("/threads/thread_missing/messages", "thread.message"),
    "conversation items": ("/conversations/conv_missing/items", "message"),
    "chatkit threads": ("/chatkit/threads", "chatkit.thread"),
    "chatkit items": ("/chatkit/threads/cthr_missing/items", "chatkit.thread_item"),
}


@pytest.mark.parametrize(("path", "kind"), LIST_PATHS.values(), ids=LIST_PATHS.keys())
def test_an_endless_list_always_has_more_fresh_entries(simulator, sim_key, path, kind):
    simulator.state.enqueue_faults("endless_list")
    headers = {"OpenAI-Beta": "assistants=v2, chatkit_beta=v1"}
    seen, after = set(), None
    for _ in range(5):
        query = f"?limit=7&order=asc&after={after}" if after else "?limit=7&order=asc"
        listed = get(simulator, sim_key("proj_alpha"), path + query, headers=headers).json()
        assert listed["has_more"] is True and len(listed["data"]) == 7
        assert {entry.get("object", entry.get("type")) for entry in listed["data"]} == {kind}
        ids = [entry["id"] for entry in listed["data"]]
        assert listed["last_id"] == ids[-1] != after and seen.isdisjoint(ids)
        seen.update(ids)
        after = listed["last_id"]
    # A listing started afresh is the real one again.
    fresh = get(simulator, sim_key("proj_alpha"), path, headers=headers)
    assert fresh.status_code == 404 or fresh.json()["has_more"] is False


def test_list_faults_answer_other_endpoints_as_usual(simulator, sim_key):
    simulator.state.enqueue_faults("endless_list", "bad_ids")
    assert get(simulator, sim_key("proj_alpha")).status_code == 404
    assert get(simulator, sim_key("proj_alpha")).status_code == 404
    assert [entry.status for entry in simulator.state.request_log] == [404, 404]


def test_bad_ids_add_malformed_entries_to_the_chatkit_list(simulator, sim_key):
    good = simulator.state.create_chatkit_thread("proj_alpha", user="customer")
    simulator.state.enqueue_faults("bad_ids")
    headers = {"OpenAI-Beta": "chatkit_beta=v1"}

    listed = get(simulator, sim_key("proj_alpha"), "/chatkit/threads", headers=headers).json()

    ids = [entry["id"] for entry in listed["data"]]
    assert ids[0] == good["id"]
    assert set(ids[1:]) == {"", "cthr_abc\r\nX-Evil: 1", "../../threads/x", "cthr_" + "a" * 300, ids[3]}
    assert ids[3].startswith('cthr_"<img')
    assert {len(entry["metadata"]) for entry in listed["data"]} == {200}
    assert "metadata" not in simulator.state.chatkit_threads[good["id"]].data  # the stored one is untouched
    again = get(simulator, sim_key("proj_alpha"), "/chatkit/threads", headers=headers).json()
    assert [entry["id"] for entry in again["data"]] == [good["id"]]


def test_hostile_knobs_are_checked():
    with pytest.raises(ValueError, match="hostile_rate must be between 0 and 1"):
        SimulatorConfig(hostile_rate=2)
    with pytest.raises(ValueError, match="drip_interval"):
        SimulatorConfig(drip_interval=0)


def test_a_hostile_rate_of_one_answers_every_request_with_a_hostile_fault(simulator, sim_key):
    simulator.config.hostile_rate = 1.0
    # Only each answer's first bytes are read, on a raw socket with a timeout of its own: a dripped or
    # endless body can then never hold the test, whatever the machine's load.
    host, port = urlsplit(simulator.base_url).netloc.split(":")
    request = (
        f"GET /v1/conversations/conv_missing HTTP/1.1\r\nHost: {host}\r\n"
        f"Authorization: Bearer {sim_key('proj_alpha')}\r\nConnection: close\r\n\r\n"
    ).encode()
    answers = []
    for _ in range(12):
        with socket.create_connection((host, int(port)), timeout=2) as connection:
            connection.sendall(request)
            try:
                first = connection.recv(64)
            except TimeoutError:
                first = b""
        status = re.match(rb"HTTP/1\.[01] (\d{3})", first)
        answers.append(int(status.group(1)) if status else None)
    # 404 only where a list fault met an endpoint that lists nothing; 200 for the others that answer; None
    # where no answer came (no_headers).
    assert set(answers) <= {200, 404, None} and 200 in answers and None in answers
