"""The simulator's misbehaviour on demand: the rate limit, queued and random faults, drops, delays."""

import socket
from urllib.parse import urlsplit

import pytest
import requests


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
