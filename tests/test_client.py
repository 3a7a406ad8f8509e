"""The API client: header parsing, error mapping, retries and what it sends.

Shapes the simulator never produces (JSON errors without `error`, HTTP-date Retry-After, HTML with status
200, redirects) come from crafted responses or from `scripted_server`, a stdlib HTTP server in this module
that answers from a script. Waits are recorded by an injected sleep, never slept.
"""

import email.utils
import json
import logging
import socket
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
import requests
from requests.structures import CaseInsensitiveDict

from threads_app import client as client_module
from threads_app.client import (
    APIConnectionError,
    APIError,
    AuthenticationError,
    BadRequest,
    Client,
    Conflict,
    InvalidResponse,
    NotFound,
    PermissionDenied,
    QuotaExceeded,
    RateLimited,
    ServerError,
    backoff,
    error_from_response,
    parse_duration,
    retry_after,
)

KEY = "sk-test-secret-key-do-not-leak-9876"


class Waits(list):
    """An injected sleep: records each wait instead of sleeping."""

    def __call__(self, seconds):
        self.append(seconds)


def crafted(status, body=b"", headers=None, reason="") -> requests.Response:
    response = requests.Response()
    response.status_code = status
    response._content = body if isinstance(body, bytes) else json.dumps(body).encode()
    response.headers = CaseInsensitiveDict(headers or {})
    response.reason = reason
    response.encoding = "utf-8"
    return response


# --- Parsing the server's waits -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("6m0s", 360.0),
        ("1.5s", 1.5),
        ("250ms", 0.25),
        ("1h2m3s", 3723.0),
        ("20ms", 0.02),
        ("2", 2.0),
        ("0s", 0.0),
    ],
)
def test_it_reads_go_durations_as_openai_sends_them(text, seconds):
    assert parse_duration(text) == pytest.approx(seconds)


@pytest.mark.parametrize("text", ["", "soon", "5 s", "1x", "m5"])
def test_it_refuses_durations_it_cannot_read(text):
    assert parse_duration(text) is None


def test_it_prefers_retry_after_ms_to_retry_after():
    assert retry_after({"retry-after-ms": "1500", "retry-after": "9"}) == 1.5


def test_it_reads_retry_after_in_seconds_including_fractions():
    assert retry_after({"retry-after": "3"}) == 3.0
    assert retry_after({"retry-after": "0.25"}) == 0.25


def test_it_reads_retry_after_as_an_http_date():
    now = 1_800_000_000.0
    header = email.utils.formatdate(now + 42, usegmt=True)
    assert retry_after({"retry-after": header}, now=now) == pytest.approx(42)


def test_a_retry_after_date_in_the_past_asks_for_no_wait():
    now = 1_800_000_000.0
    assert retry_after({"retry-after": email.utils.formatdate(now - 60, usegmt=True)}, now=now) == 0.0


def test_it_uses_the_request_window_reset_only_for_429():
    headers = {"x-ratelimit-reset-requests": "6m0s"}
    assert retry_after(headers, status=429) == 360.0
    assert retry_after(headers, status=503) is None


def test_unreadable_wait_headers_count_as_none():
    assert retry_after({"retry-after": "whenever", "x-ratelimit-reset-requests": "later"}, status=429) is None
    assert retry_after({"retry-after-ms": "nan"}) is None


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        (" 6m0s\n", 360.0),
        ("1H30M", 5400.0),
        ("1.s", 1.0),
        (".5s", 0.5),
        ("3us", 3e-6),
        ("3µs", 3e-6),
        ("7ns", 7e-9),
    ],
)
def test_a_duration_may_be_spaced_in_capitals_or_in_any_unit_go_writes(text, seconds):
    assert parse_duration(text) == pytest.approx(seconds, rel=1e-9, abs=0)


@pytest.mark.parametrize("text", ["   ", "5s later", "5s 3m", "s", "1.5.5s", "-1s"])
def test_a_duration_with_anything_around_or_between_its_parts_is_unreadable(text):
    assert parse_duration(text) is None


def test_a_retry_after_ms_that_cannot_be_read_gives_way_to_retry_after():
    assert retry_after({"retry-after-ms": "soon", "retry-after": "4"}) == 4.0
    assert retry_after({"retry-after-ms": "inf", "retry-after": "4"}) == 4.0


@pytest.mark.parametrize("value", ["inf", "-inf", "nan", "Infinity"])
def test_a_wait_of_no_finite_length_is_no_wait_at_all(value):
    assert retry_after({"retry-after": value}) is None
    assert retry_after({"retry-after-ms": value}) is None


@pytest.mark.parametrize("text", ["inf", "NaN", "9" * 400 + "s", "9" * 400])
def test_a_duration_of_no_finite_length_is_unreadable(text):
    assert parse_duration(text) is None
    assert retry_after({"x-ratelimit-reset-requests": text}, status=429) is None


@pytest.mark.parametrize(
    "headers",
    [
        {"retry-after": "1e300"},
        {"retry-after-ms": "1e300"},
        {"retry-after": "Fri, 31 Dec 9999 23:59:59 GMT"},
        {"x-ratelimit-reset-requests": "99999999h"},
    ],
)
def test_a_named_wait_beyond_a_day_is_read_as_a_day(headers):
    """Longer ones would overflow the dates and timers that reschedule the work."""
    assert retry_after(headers, status=429) == 86400.0
    assert retry_after({"retry-after": "86399.5"}) == 86399.5


def test_a_rate_limit_naming_an_absurd_wait_still_gives_a_usable_wait(scripted_server, waits):
    scripted_server.then(429, openai_error("Rate limit reached"), retry_after="1e300")
    with pytest.raises(RateLimited) as caught:
        make_client(scripted_server.base_url, waits).get("/x")
    assert caught.value.retry_after == 86400.0
    assert timedelta(seconds=caught.value.retry_after) == timedelta(days=1)


def test_a_retry_after_date_is_read_against_the_clock_when_no_time_is_given():
    header = email.utils.formatdate(time.time() + 100, usegmt=True)
    assert 97 <= retry_after({"retry-after": header}) <= 100


def test_a_retry_after_date_that_no_calendar_holds_counts_as_none():
    """Year 99999 parses as an HTTP date but converts to no moment: no wait is named, no crash."""
    far = "Fri, 31 Dec 99999 23:59:59 GMT"
    assert retry_after({"retry-after": far}) is None
    assert retry_after({"retry-after": far, "x-ratelimit-reset-requests": "2s"}, status=429) == 2.0


def test_the_request_window_reset_counts_only_when_present_and_only_for_a_429():
    assert retry_after({"x-ratelimit-reset-requests": "2s"}) is None
    assert retry_after({"x-ratelimit-reset-requests": ""}, status=429) is None
    assert retry_after({}, status=429) is None


def test_backoff_doubles_from_half_a_second_with_up_to_a_quarter_of_jitter():
    for attempt, full in [(0, 0.5), (1, 1.0), (2, 2.0), (3, 4.0), (4, 8.0), (10, 8.0)]:
        waits = [backoff(attempt) for _ in range(50)]
        assert all(0.75 * full <= wait <= full for wait in waits)


@pytest.mark.parametrize(("draw", "share"), [(0.0, 1.0), (0.5, 0.875), (0.999999, 0.75)])
def test_the_jitter_takes_off_a_quarter_of_the_wait_at_most(monkeypatch, draw, share):
    monkeypatch.setattr(client_module.random, "random", lambda: draw)
    assert [backoff(attempt) for attempt in (0, 3, 4, 5)] == pytest.approx(
        [0.5 * share, 4.0 * share, 8.0 * share, 8.0 * share], rel=1e-5
    )


# --- Mapping error responses ----------------------------------------------------------------------


def openai_error(message, *, type="invalid_request_error", code=None, param=None):
    return {"error": {"message": message, "type": type, "param": param, "code": code}}


@pytest.mark.parametrize(
    ("status", "error_class"),
    [
        (400, BadRequest),
        (422, BadRequest),
        (401, AuthenticationError),
        (403, PermissionDenied),
        (404, NotFound),
        (409, Conflict),
        (429, RateLimited),
        (500, ServerError),
        (503, ServerError),
        (418, APIError),
    ],
)
def test_it_maps_statuses_to_typed_errors(status, error_class):
    error = error_from_response(crafted(status, openai_error("Something went wrong.")))
    assert type(error) is error_class
    assert error.status == status
    assert error.message == "Something went wrong."


def test_it_keeps_the_apis_own_message_code_type_param_and_request_id():
    body = openai_error("No thread found with id 'thread_abc123'.", code="not_found", param="thread_id")
    error = error_from_response(crafted(404, body, {"x-request-id": "req_42"}))
    assert isinstance(error, NotFound)
    assert (error.message, error.code, error.type, error.param, error.request_id) == (
        "No thread found with id 'thread_abc123'.",
        "not_found",
        "invalid_request_error",
        "thread_id",
        "req_42",
    )
    assert str(error) == "No thread found with id 'thread_abc123'. (HTTP 404, not_found)"


def test_an_insufficient_quota_429_is_a_quota_error():
    body = openai_error(
        "You exceeded your current quota.", type="insufficient_quota", code="insufficient_quota"
    )
    error = error_from_response(crafted(429, body))
    assert isinstance(error, QuotaExceeded)
    assert isinstance(error, RateLimited)


def test_a_rate_limit_error_carries_the_wait_the_server_asked_for():
    error = error_from_response(crafted(429, openai_error("Slow down."), {"retry-after": "7"}))
    assert type(error) is RateLimited
    assert error.retry_after == 7.0


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"detail": "Thread not found"}, "Thread not found"),
        ({"message": "No such thread"}, "No such thread"),
        ({"error": "thread missing"}, "thread missing"),
        ({"error": {"code": "gone"}, "detail": "Gone for good"}, "Gone for good"),
    ],
)
def test_it_reads_messages_of_json_errors_without_an_error_object(body, message):
    error = error_from_response(crafted(404, body))
    assert isinstance(error, NotFound)
    assert error.message == message


def test_a_json_error_without_any_message_still_explains_itself():
    error = error_from_response(crafted(400, {"ok": False}, reason="Bad Request"))
    assert isinstance(error, BadRequest)
    assert error.message == "The API answered 400 Bad Request with an error without a message"


def test_an_html_502_from_a_proxy_becomes_a_short_server_error():
    page = (
        b"<html><head><title>502 Bad Gateway</title><style>body{color:red}</style></head>"
        b"<body><center><h1>502 Bad Gateway</h1></center><hr><center>nginx</center></body></html>"
    )
    error = error_from_response(crafted(502, page, {"content-type": "text/html"}, reason="Bad Gateway"))
    assert isinstance(error, ServerError)
    assert error.message == "The API answered 502 Bad Gateway with an HTML page (502 Bad Gateway)"
    assert "\n" not in str(error)


def test_plain_text_and_empty_error_bodies_become_readable_messages():
    text = error_from_response(
        crafted(404, b"404 page not found\n", {"content-type": "text/plain"}, "Not Found")
    )
    assert isinstance(text, NotFound)
    assert text.message == "The API answered 404 Not Found with 404 page not found"
    empty = error_from_response(crafted(503, b"", reason="Service Unavailable"))
    assert isinstance(empty, ServerError)
    assert (
        empty.message
        == "The API answered 503 Service Unavailable with an empty answer with status 503 Service Unavailable"
    )


def test_an_enormous_error_message_is_cut_to_one_line():
    error = error_from_response(crafted(400, openai_error("bad\n" + "x" * 5000)))
    assert len(error.message) <= client_module.MAX_MESSAGE_LENGTH
    assert "\n" not in error.message


# --- A scripted server for what the simulator never does ------------------------------------------


class ScriptedServer:
    """Answers each request with the next scripted (status, headers, body); records what it received."""

    def __init__(self):
        self.script = []
        self.received = []
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def answer(self):
                length = int(self.headers.get("content-length") or 0)
                body = self.rfile.read(length) if length else b""
                server.received.append((self.command, self.path, dict(self.headers), body))
                status, headers, payload = server.script.pop(0) if server.script else (200, {}, {})
                if isinstance(payload, dict | list):
                    payload = json.dumps(payload).encode()
                    headers = {"content-type": "application/json", **headers}
                self.send_response(status)
                for name, value in headers.items():
                    self.send_header(name, value)
                self.send_header("content-length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            do_GET = do_POST = do_DELETE = answer

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.base_url = f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"
        self.thread = threading.Thread(target=self.httpd.serve_forever, args=(0.02,), daemon=True)

    def then(self, status, payload=b"", **headers):
        self.script.append((status, {k.replace("_", "-"): v for k, v in headers.items()}, payload))
        return self


@pytest.fixture
def scripted_server():
    server = ScriptedServer()
    server.thread.start()
    yield server
    server.httpd.shutdown()
    server.httpd.server_close()


@pytest.fixture
def waits():
    return Waits()


def make_client(base_url, waits, **options):
    return Client(base_url=base_url, api_key=KEY, sleep=waits, timeout=(2, 5), **options)


def test_it_sends_the_key_scope_and_beta_headers(scripted_server, waits):
    scripted_server.then(200, {"id": "thread_abc123"})
    client = make_client(scripted_server.base_url, waits, organization="org-1", project="proj_1")
    assert client.get("/threads/thread_abc123", beta="assistants=v2") == {"id": "thread_abc123"}
    method, path, headers, _ = scripted_server.received[0]
    assert (method, path) == ("GET", "/v1/threads/thread_abc123")
    assert headers["Authorization"] == f"Bearer {KEY}"
    assert headers["OpenAI-Organization"] == "org-1"
    assert headers["OpenAI-Project"] == "proj_1"
    assert headers["OpenAI-Beta"] == "assistants=v2"


def test_it_sends_no_beta_or_scope_headers_unless_asked(scripted_server, waits):
    scripted_server.then(200, {"id": "conv_abc123"})
    make_client(scripted_server.base_url, waits).get("/conversations/conv_abc123")
    headers = scripted_server.received[0][2]
    assert not {"OpenAI-Beta", "OpenAI-Organization", "OpenAI-Project"} & set(headers)


def test_it_posts_json_and_sends_query_parameters_without_empty_ones(scripted_server, waits):
    scripted_server.then(200, {"ok": True}).then(200, {"data": []})
    client = make_client(scripted_server.base_url, waits)
    client.post("/conversations/conv_abc123", json={"metadata": {"a": "b"}})
    client.get("/chatkit/threads", params={"limit": 5, "after": None, "user": "u 1"})
    (_, _, headers, body), (_, path, _, _) = scripted_server.received
    assert json.loads(body) == {"metadata": {"a": "b"}}
    assert headers["Content-Type"] == "application/json"
    assert path == "/v1/chatkit/threads?limit=5&user=u+1"


def test_azure_credentials_send_an_api_key_header_and_the_api_version(scripted_server, waits):
    scripted_server.then(200, {"id": "thread_abc123"})
    client = make_client(scripted_server.base_url, waits, azure_api_version="2024-05-01-preview")
    client.get("/threads/thread_abc123", params={"limit": 1})
    _, path, headers, _ = scripted_server.received[0]
    assert headers["api-key"] == KEY
    assert "Authorization" not in headers
    assert path == "/v1/threads/thread_abc123?limit=1&api-version=2024-05-01-preview"


def test_a_request_without_a_body_says_so_as_requests_would(scripted_server, waits):
    client = make_client(scripted_server.base_url, waits)
    client.delete("/threads/thread_abc123")
    client.get("/threads/thread_abc123")
    (_, _, deleted, _), (_, _, got, _) = scripted_server.received
    assert deleted["Content-Length"] == "0"  # proxies in front of an API refuse a DELETE without it
    assert "Content-Length" not in got
    assert got["Accept-Encoding"] == "gzip, deflate"  # listings are large: compressed where offered


def test_a_body_that_is_not_json_is_refused_before_anything_is_sent(scripted_server, waits):
    with pytest.raises(APIConnectionError, match="Cannot send the request"):
        make_client(scripted_server.base_url, waits).post("/conversations", json={"n": float("nan")})
    assert scripted_server.received == []


def test_a_proxy_named_in_the_environment_carries_the_requests(scripted_server, waits, monkeypatch):
    monkeypatch.setenv("HTTP_PROXY", scripted_server.base_url.removesuffix("/v1"))
    monkeypatch.delenv("NO_PROXY", raising=False)
    monkeypatch.delenv("no_proxy", raising=False)
    scripted_server.then(200, {"id": "thread_abc123"})
    client = make_client("http://api.example.invalid/v1", waits)
    assert client.get("/threads/thread_abc123", params={"limit": 1}) == {"id": "thread_abc123"}
    _, path, headers, _ = scripted_server.received[0]
    assert path == "http://api.example.invalid/v1/threads/thread_abc123?limit=1"
    assert headers["Authorization"] == f"Bearer {KEY}"


def test_a_host_in_no_proxy_is_reached_directly(scripted_server, waits, monkeypatch):
    with socket.socket() as probe:  # a proxy that would refuse every connection
        probe.bind(("127.0.0.1", 0))
        monkeypatch.setenv("HTTP_PROXY", f"http://127.0.0.1:{probe.getsockname()[1]}")
    monkeypatch.setenv("NO_PROXY", "127.0.0.1")
    scripted_server.then(200, {"id": "thread_abc123"})
    assert make_client(scripted_server.base_url, waits).get("/threads/thread_abc123") == {
        "id": "thread_abc123"
    }
    assert scripted_server.received[0][1] == "/v1/threads/thread_abc123"


def test_it_retries_a_429_after_the_http_date_it_names(scripted_server, waits):
    when = email.utils.formatdate(time.time() + 30, usegmt=True)
    scripted_server.then(429, openai_error("Rate limit reached"), retry_after=when).then(200, {"ok": 1})
    assert make_client(scripted_server.base_url, waits).get("/x") == {"ok": 1}
    assert len(waits) == 1
    assert 27 <= waits[0] <= 30


def test_it_does_not_wait_for_more_than_two_minutes(scripted_server, waits):
    scripted_server.then(429, openai_error("Rate limit reached"), retry_after="600")
    with pytest.raises(RateLimited) as caught:
        make_client(scripted_server.base_url, waits).get("/x")
    assert caught.value.retry_after == 600
    assert waits == []
    assert len(scripted_server.received) == 1


def test_it_obeys_x_should_retry(scripted_server, waits):
    scripted_server.then(503, openai_error("down"), x_should_retry="false")
    with pytest.raises(ServerError):
        make_client(scripted_server.base_url, waits).get("/x")
    assert len(scripted_server.received) == 1
    scripted_server.then(400, openai_error("try again"), x_should_retry="true").then(200, {"ok": 1})
    assert make_client(scripted_server.base_url, waits).get("/x") == {"ok": 1}


def test_it_does_not_retry_client_errors(scripted_server, waits):
    scripted_server.then(400, openai_error("Invalid limit", param="limit"))
    with pytest.raises(BadRequest) as caught:
        make_client(scripted_server.base_url, waits).get("/x")
    assert caught.value.param == "limit"
    assert waits == []


def test_it_gives_up_after_max_retries_with_the_last_error(scripted_server, waits):
    for _ in range(4):
        scripted_server.then(500, openai_error("The server had an error", type="server_error"))
    with pytest.raises(ServerError) as caught:
        make_client(scripted_server.base_url, waits, max_retries=2).get("/x")
    assert caught.value.message == "The server had an error"
    assert len(scripted_server.received) == 3
    assert len(waits) == 2
    assert 0.375 <= waits[0] <= 0.5 and 0.75 <= waits[1] <= 1.0


def test_a_200_that_is_not_json_is_a_typed_error_not_retried(scripted_server, waits):
    scripted_server.then(200, b"<html><title>Sign in to the Wi-Fi</title></html>", content_type="text/html")
    with pytest.raises(InvalidResponse) as caught:
        make_client(scripted_server.base_url, waits).get("/x")
    assert isinstance(caught.value, ServerError)
    assert "Sign in to the Wi-Fi" in caught.value.message
    assert len(scripted_server.received) == 1


def test_a_200_with_json_that_is_not_an_object_is_a_typed_error(scripted_server, waits):
    scripted_server.then(200, [1, 2, 3])
    with pytest.raises(InvalidResponse):
        make_client(scripted_server.base_url, waits).get("/x")


def test_an_empty_success_answer_is_an_empty_object(scripted_server, waits):
    scripted_server.then(204).then(200)
    client = make_client(scripted_server.base_url, waits)
    assert client.delete("/threads/thread_abc123") == {}
    assert client.delete("/threads/thread_abc123") == {}


def test_it_does_not_follow_redirects_that_would_carry_the_key_away(scripted_server, waits):
    scripted_server.then(301, location="https://elsewhere.example/v1/x")
    with pytest.raises(APIError) as caught:
        make_client(scripted_server.base_url, waits).get("/x")
    assert caught.value.status == 301
    assert "elsewhere.example" in caught.value.message
    assert len(scripted_server.received) == 1


def test_a_refused_connection_is_retried_then_a_connection_error(waits):
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    client = make_client(f"http://127.0.0.1:{port}/v1", waits, max_retries=1)
    with pytest.raises(APIConnectionError) as caught:
        client.get("/threads/thread_abc123")
    assert caught.value.status is None
    assert caught.value.message == f"Could not reach 127.0.0.1:{port}: the connection was refused"
    assert len(waits) == 1


def test_an_unusable_base_url_fails_at_once(waits):
    client = make_client("notaurl", waits)
    with pytest.raises(APIConnectionError):
        client.get("/x")
    assert waits == []


def test_retries_are_logged_without_the_key(scripted_server, waits, caplog):
    scripted_server.then(503, openai_error("busy"), retry_after_ms="250").then(200, {"ok": 1})
    with caplog.at_level(logging.DEBUG):
        make_client(scripted_server.base_url, waits, project="proj_1").get("/threads/thread_abc123")
    assert waits == [0.25]
    assert "GET /v1/threads/thread_abc123 answered 503; retry 1 of 2 in 0.25 s" in caplog.text
    assert KEY not in caplog.text
    assert "Bearer" not in caplog.text


def test_the_client_does_not_show_its_key():
    client = Client(base_url="http://127.0.0.1:9/v1", api_key=KEY)
    assert KEY not in repr(client)
    assert KEY not in repr(vars(client))
    assert KEY not in json.dumps(client.headers("assistants=v2"))


# --- Sessions per credential ----------------------------------------------------------------------


def test_a_credential_keeps_its_session_until_it_is_edited(credential):
    first = Client.for_credential(credential)
    again = Client.for_credential(credential)
    assert first.session is again.session
    credential.project_id = "proj_other"
    credential.save()
    edited = Client.for_credential(credential)
    assert edited.session is not first.session
    assert edited.project == "proj_other"


def test_a_client_for_a_credential_uses_its_url_scope_and_azure_version(credential):
    credential.organization_id = "org-9"
    credential.azure_api_version = "2024-05-01-preview"
    client = Client.for_credential(credential, max_retries=0)
    assert (client.base_url, client.organization, client.project) == (
        "http://127.0.0.1:9/v1",
        "org-9",
        "proj_alpha",
    )
    assert client.azure_api_version == "2024-05-01-preview"
    assert client.max_retries == 0


def test_an_unsaved_credential_gets_a_session_of_its_own(db):
    from threads_app.models import Credential

    draft = Credential(name="draft", base_url="http://127.0.0.1:9/v1")
    draft.api_key = "sk-draft-0000"
    assert Client.for_credential(draft).session is not Client.for_credential(draft).session


def test_it_retries_408_and_409_but_never_an_insufficient_quota_429(scripted_server, waits):
    scripted_server.then(408, b"").then(409, openai_error("locked")).then(200, {"ok": 1})
    assert make_client(scripted_server.base_url, waits).get("/x") == {"ok": 1}
    assert len(waits) == 2
    quota = openai_error(
        "You exceeded your current quota.", type="insufficient_quota", code="insufficient_quota"
    )
    scripted_server.then(429, quota, retry_after="1")
    with pytest.raises(QuotaExceeded):
        make_client(scripted_server.base_url, waits).get("/x")
    assert len(waits) == 2
    assert len(scripted_server.received) == 4


def test_it_waits_as_long_as_x_ratelimit_reset_requests_says_when_nothing_else_does(scripted_server, waits):
    scripted_server.then(429, openai_error("Rate limit reached"), x_ratelimit_reset_requests="1.5s")
    scripted_server.then(200, {"ok": 1})
    assert make_client(scripted_server.base_url, waits).get("/x") == {"ok": 1}
    assert waits == [1.5]


@pytest.mark.parametrize("asked", [{"retry_after": "0"}, {"retry_after_ms": "0"}, {"retry_after": "past"}])
def test_a_server_asking_for_no_wait_gets_the_usual_backoff_not_an_immediate_retry(
    scripted_server, waits, asked
):
    if asked.get("retry_after") == "past":
        asked = {"retry_after": email.utils.formatdate(time.time() - 60, usegmt=True)}
    scripted_server.then(503, openai_error("busy"), **asked).then(200, {"ok": 1})
    assert make_client(scripted_server.base_url, waits).get("/x") == {"ok": 1}
    assert len(waits) == 1 and 0.375 <= waits[0] <= 0.5


def test_the_usual_backoff_is_cut_to_the_longest_wait_the_client_may_take(scripted_server, waits):
    scripted_server.then(500, openai_error("busy")).then(500, openai_error("busy")).then(200, {"ok": 1})
    assert make_client(scripted_server.base_url, waits, max_wait=0.6).get("/x") == {"ok": 1}
    assert 0.375 <= waits[0] <= 0.5 and waits[1] == 0.6


def test_a_named_wait_of_exactly_the_longest_allowed_is_waited_and_a_longer_one_is_not(
    scripted_server, waits
):
    scripted_server.then(429, openai_error("Rate limit reached"), retry_after="2.5").then(200, {"ok": 1})
    assert make_client(scripted_server.base_url, waits, max_wait=2.5).get("/x") == {"ok": 1}
    assert waits == [2.5]
    scripted_server.then(429, openai_error("Rate limit reached"), retry_after="2.51")
    with pytest.raises(RateLimited) as caught:
        make_client(scripted_server.base_url, waits, max_wait=2.5).get("/x")
    assert caught.value.retry_after == 2.51
    assert waits == [2.5]


@pytest.mark.parametrize(
    ("status", "retried"),
    [
        (400, False),
        (404, False),
        (408, True),
        (409, True),
        (422, False),
        (429, True),
        (499, False),
        (500, True),
    ],
)
def test_which_statuses_are_retried_when_the_server_does_not_say(scripted_server, waits, status, retried):
    scripted_server.then(status, openai_error("no")).then(200, {"ok": 1})
    client = make_client(scripted_server.base_url, waits)
    if retried:
        assert client.get("/x") == {"ok": 1}
    else:
        with pytest.raises(APIError):
            client.get("/x")
    assert len(scripted_server.received) == (2 if retried else 1)


@pytest.mark.parametrize("should_retry", ["maybe", "True", ""])
def test_an_x_should_retry_other_than_true_or_false_changes_nothing(scripted_server, waits, should_retry):
    scripted_server.then(400, openai_error("no"), x_should_retry=should_retry)
    scripted_server.then(503, openai_error("busy"), x_should_retry=should_retry).then(200, {"ok": 1})
    client = make_client(scripted_server.base_url, waits)
    with pytest.raises(BadRequest):
        client.get("/x")
    assert client.get("/x") == {"ok": 1}


def test_no_retries_means_one_request(scripted_server, waits):
    scripted_server.then(503, openai_error("busy")).then(200, {"ok": 1})
    with pytest.raises(ServerError):
        make_client(scripted_server.base_url, waits, max_retries=0).get("/x")
    assert len(scripted_server.received) == 1 and waits == []


# --- Against the simulator --------------------------------------------------------------------------

SIM_KEY = "sk-sim-client-tests-4242"


@pytest.fixture
def sim(simulator):
    simulator.state.add_key(SIM_KEY, "proj_client")
    simulator.state.add_key("sk-sim-other-project-7777", "proj_other")
    return simulator


@pytest.fixture
def conversation_id(sim):
    return sim.state.create_conversation("proj_client", items=[("user", "Hello!")])["id"]


def sim_client(sim, waits, *, key=SIM_KEY, **options):
    return Client(base_url=sim.base_url, api_key=key, sleep=waits, timeout=(2, 5), **options)


def statuses(sim):
    return [status for _, _, status in sim.state.request_log]


@pytest.mark.parametrize(("fault", "wait"), [("429", 1.0), ("429_ms", 0.25)])
def test_it_retries_the_simulators_429_after_the_wait_it_names(sim, waits, conversation_id, fault, wait):
    sim.state.enqueue_faults(fault, fault)
    answer = sim_client(sim, waits).get(f"/conversations/{conversation_id}")
    assert answer["id"] == conversation_id
    assert waits == [wait, wait]
    assert statuses(sim) == [429, 429, 200]


def test_it_waits_out_a_real_rate_limit_as_the_headers_say(sim, conversation_id):
    """A sleep that moves the simulator's clock: the retry after the named wait is let through."""
    now = [datetime.now(UTC)]
    sim.state.clock = lambda: now[0]
    sim.config.rate_limit_per_minute = 2
    waits = Waits()

    def sleep(seconds):
        waits.append(seconds)
        now[0] += timedelta(seconds=seconds)

    client = sim_client(sim, sleep)
    for _ in range(3):
        client.get(f"/conversations/{conversation_id}")
    assert statuses(sim) == [200, 200, 429, 200]
    assert waits == [30.0]  # One request every 30 s refills the bucket of 2 per minute.


def test_a_rate_limit_outlasting_the_retries_raises_with_the_wait(sim, waits, conversation_id):
    sim.state.enqueue_faults("429", "429", "429")
    with pytest.raises(RateLimited) as caught:
        sim_client(sim, waits, max_retries=2).get(f"/conversations/{conversation_id}")
    assert caught.value.retry_after == 1.0
    assert caught.value.code == "rate_limit_exceeded"
    assert caught.value.message.startswith("Rate limit reached for requests in organization org-sim")
    assert waits == [1.0, 1.0]


def test_an_insufficient_quota_429_is_never_retried(sim, waits, conversation_id):
    sim.state.enqueue_faults("429_quota")
    with pytest.raises(QuotaExceeded) as caught:
        sim_client(sim, waits).get(f"/conversations/{conversation_id}")
    assert caught.value.message.startswith("You exceeded your current quota")
    assert waits == []
    assert statuses(sim) == [429]


def test_server_errors_html_pages_and_dropped_connections_are_retried(sim, waits, conversation_id):
    sim.state.enqueue_faults("500", "503", "502_html", "drop")
    answer = sim_client(sim, waits, max_retries=4).get(f"/conversations/{conversation_id}")
    assert answer["id"] == conversation_id
    assert statuses(sim) == [500, 503, 502, None, 200]
    for wait, full in zip(waits, [0.5, 1, 2, 4], strict=True):
        assert 0.75 * full <= wait <= full


def test_a_simulated_html_502_becomes_a_server_error_when_retries_run_out(sim, waits, conversation_id):
    sim.state.enqueue_faults("502_html")
    with pytest.raises(ServerError) as caught:
        sim_client(sim, waits, max_retries=0).get(f"/conversations/{conversation_id}")
    assert caught.value.status == 502
    assert caught.value.message == "The API answered 502 Bad Gateway with an HTML page (502 Bad Gateway)"


def test_a_dropped_connection_becomes_a_connection_error_when_retries_run_out(sim, waits, conversation_id):
    sim.state.enqueue_faults("drop")
    with pytest.raises(APIConnectionError) as caught:
        sim_client(sim, waits, max_retries=0).get(f"/conversations/{conversation_id}")
    assert caught.value.message.endswith("the connection was closed without an answer")
    assert caught.value.status is None


def test_a_slow_answer_times_out_and_is_retried(sim, waits, conversation_id):
    sim.state.enqueue_faults("slow:1")
    client = Client(base_url=sim.base_url, api_key=SIM_KEY, sleep=waits, timeout=(2, 0.2), max_retries=1)
    assert client.get(f"/conversations/{conversation_id}")["id"] == conversation_id
    assert len(waits) == 1
    sim.state.enqueue_faults("slow:1")
    with pytest.raises(APIConnectionError, match=r"no answer within 0.2 s"):
        Client(base_url=sim.base_url, api_key=SIM_KEY, timeout=(2, 0.2), max_retries=0).get(
            f"/conversations/{conversation_id}"
        )


def test_another_projects_key_gets_the_apis_404(sim, waits):
    thread = sim.state.create_thread("proj_client", messages=[("user", "hi")])
    with pytest.raises(NotFound) as caught:
        sim_client(sim, waits, key="sk-sim-other-project-7777").get(
            f"/threads/{thread['id']}", beta="assistants=v2"
        )
    assert caught.value.message == f"No thread found with id '{thread['id']}'."
    assert waits == []


def test_a_bad_key_is_refused_without_retrying_or_repeating_the_key(sim, waits, conversation_id):
    bad_key = "sk-sim-wrong-key-123456789"
    with pytest.raises(AuthenticationError) as caught:
        sim_client(sim, waits, key=bad_key).get(f"/conversations/{conversation_id}")
    assert caught.value.code == "invalid_api_key"
    assert caught.value.message.startswith("Incorrect API key provided")
    assert bad_key not in str(caught.value)
    assert statuses(sim) == [401]


def test_a_project_header_that_does_not_match_the_key_is_refused(sim, waits, conversation_id):
    with pytest.raises(AuthenticationError) as caught:
        sim_client(sim, waits, project="proj_somebody_else").get(f"/conversations/{conversation_id}")
    assert caught.value.code == "mismatched_project"


def test_the_simulator_accepts_azure_style_requests(sim, waits, conversation_id):
    client = sim_client(sim, waits, azure_api_version="2025-04-01-preview")
    assert client.get(f"/conversations/{conversation_id}")["id"] == conversation_id


@pytest.mark.parametrize("bad_key", ["", "sk-with space-1234", "sk-line\nbreak-1234", "sk-ünïcode-1234"])
def test_a_key_that_cannot_be_sent_is_refused_before_any_request(scripted_server, waits, bad_key):
    with pytest.raises(AuthenticationError) as caught:
        Client(base_url=scripted_server.base_url, api_key=bad_key, sleep=waits).get("/x")
    assert scripted_server.received == []
    assert caught.value.__cause__ is None
    if bad_key:
        assert bad_key not in str(caught.value) and "1234" not in str(caught.value)


def test_a_pasted_key_loses_its_surrounding_whitespace(scripted_server, waits):
    scripted_server.then(200, {"ok": 1})
    Client(base_url=scripted_server.base_url, api_key=f"  {KEY}\n", sleep=waits).get("/x")
    assert scripted_server.received[0][2]["Authorization"] == f"Bearer {KEY}"


def test_a_header_that_cannot_be_sent_is_an_error_not_a_crash(scripted_server, waits):
    with pytest.raises(APIConnectionError) as caught:
        make_client(scripted_server.base_url, waits, project="prøject’s").get("/x")
    assert caught.value.__cause__ is None
    assert waits == []


def test_a_credentials_client_reaches_the_simulator_with_its_scope(sim_credential, simulator):
    thread = simulator.state.create_thread("proj_alpha", messages=[("user", "hi")])
    client = Client.for_credential(sim_credential)
    assert client.get(f"/threads/{thread['id']}", beta="assistants=v2")["id"] == thread["id"]


def test_a_client_for_a_web_request_does_not_wait_longer_than_it_may(sim, waits, conversation_id):
    sim.state.enqueue_faults("429", "500", "500")
    client = sim_client(sim, waits, max_wait=0.5, max_retries=3)
    with pytest.raises(RateLimited) as caught:
        client.get(f"/conversations/{conversation_id}")
    assert caught.value.retry_after == 1.0
    assert waits == []
    assert client.get(f"/conversations/{conversation_id}")["id"] == conversation_id
    assert len(waits) == 2 and all(wait <= 0.5 for wait in waits)


def test_a_server_that_quotes_the_key_back_never_gets_it_stored_or_shown(scripted_server, waits):
    scripted_server.then(401, {"error": {"message": f"Key {KEY} is not valid here", "type": "auth"}})
    client = make_client(scripted_server.base_url, waits, max_retries=0)
    with pytest.raises(AuthenticationError) as excinfo:
        client.get("/threads/thread_abc123")
    assert KEY not in str(excinfo.value)
    assert KEY not in repr(excinfo.value.args)
    assert f"sk-…{KEY[-4:]}" in excinfo.value.message


def test_each_goes_in_turn_unless_lent_threads_and_stops_at_the_first_error():
    client = Client(base_url="http://127.0.0.1:9/v1", api_key="sk-each-test-0001")
    callers, seen = set(), []

    def square(n):
        callers.add(threading.current_thread())
        seen.append(n)
        if n == 3:
            raise NotFound("no such item", status=404)
        return n * n

    assert client.each(square, [0, 1, 2]) == [0, 1, 4]
    assert callers == {threading.current_thread()}, "no threads lent: all on the caller's"
    with pytest.raises(NotFound):
        client.each(square, [3, 4, 5])
    assert seen[-1] == 3, "nothing begun after the error"

    with ThreadPoolExecutor(2) as pool:
        lent = []
        client.lend = lambda work, n: lent.append(n) or [pool.submit(work) for _ in range(n)]
        assert client.each(square, list(range(3))) == [0, 1, 4]
        assert client.each(square, [2]) == [4]
    assert lent == [2], "a single call borrows nothing"
