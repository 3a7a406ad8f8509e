"""The WSGI app of the simulated API.

Each request passes, in order: a fault (queued by a test, or drawn at the configured rates), the
configured latency, the key and project check, the per-project rate limit, the route and its beta
header, then the endpoint itself under the state's lock. A `drop_after` fault lets all of that happen,
then closes the connection instead of sending the answer. The hostile faults (hostile.py) that hang or
stream skip all of it; `echo_key` skips everything after the latency; the two list faults change only
what a list endpoint answers.
"""

import json
import logging
import random
import threading
import time
import uuid
from dataclasses import dataclass, field
from http import HTTPStatus
from urllib.parse import parse_qs

from . import assistants, chatkit, conversations, errors, hostile, responses
from .config import HOSTILE_FAULTS, RANDOM_FAULTS, SimulatorConfig
from .limiter import format_duration, retry_after_header
from .routes import Route
from .state import Key, SimulatorState

logger = logging.getLogger(__name__)

ROUTES: list[Route] = [*assistants.ROUTES, *conversations.ROUTES, *chatkit.ROUTES, *responses.ROUTES]
BETA_NAMES = {"assistants=v2": "Assistants", "chatkit_beta=v1": "ChatKit"}
# Faults that change only what a list endpoint answers (see hostile.list_answer).
LIST_FAULTS = ("endless_list", "bad_ids")

HTML_502 = (
    b"<html>\r\n<head><title>502 Bad Gateway</title></head>\r\n<body>\r\n"
    b"<center><h1>502 Bad Gateway</h1></center>\r\n<hr><center>cloudflare</center>\r\n</body>\r\n</html>\r\n"
)


class DropConnection(Exception):
    """Raised to have the server close the connection without writing any answer."""


@dataclass
class Request:
    state: SimulatorState
    method: str
    path: str
    query: dict[str, str]
    body: bytes
    key: Key
    params: dict[str, str] = field(default_factory=dict)
    config: SimulatorConfig | None = None

    @property
    def project_id(self) -> str:
        return self.key.project_id

    def json(self) -> dict:
        if not self.body.strip():
            return {}
        try:
            data = json.loads(self.body)
        except ValueError:
            raise errors.ErrorResponse(400, errors.BAD_JSON) from None
        if not isinstance(data, dict):
            raise errors.invalid_type("body", "an object", data)
        return data


def make_app(state: SimulatorState, config: SimulatorConfig, *, stopping: threading.Event | None = None):
    """The WSGI app serving the three kinds of threads under /v1; `config` is read on every request.
    `stopping`, set when the server closes, ends the answers that would otherwise never end."""
    fault_rng = random.Random(config.seed)
    fault_lock = threading.Lock()
    stopping = stopping or threading.Event()

    def draw_fault() -> str | None:
        fault = state.next_fault()
        if fault is None and (
            config.drop_rate or config.fault_rate or config.drop_after_rate or config.hostile_rate
        ):
            with fault_lock:
                if fault_rng.random() < config.drop_rate:
                    fault = "drop"
                elif fault_rng.random() < config.fault_rate:
                    fault = fault_rng.choice(RANDOM_FAULTS)
                # Drawn last and only when asked for, so that a seed gives the same faults as before.
                elif config.drop_after_rate and fault_rng.random() < config.drop_after_rate:
                    fault = "drop_after"
                elif config.hostile_rate and fault_rng.random() < config.hostile_rate:
                    fault = fault_rng.choice(HOSTILE_FAULTS)
        return fault

    def app(environ, start_response):
        started = time.monotonic()
        method = environ["REQUEST_METHOD"]
        path = environ.get("PATH_INFO", "")
        fault = draw_fault()
        if fault in ("no_headers", "slow_body", "huge_body"):
            return _hang_or_stream(fault, environ, start_response, state, config, stopping)
        try:
            status, headers, body = _answer(
                environ, method, path, state, config, None if fault == "drop_after" else fault
            )
        except DropConnection:
            state.log_request(method, path, None)
            raise
        if fault == "drop_after":
            # Done, and the answer lost on its way back: logged as unanswered, with what was done.
            state.log_request(method, path, None, outcome=status)
            raise DropConnection
        state.log_request(method, path, status)
        if isinstance(body, responses.EventStream):
            return _stream(body, headers, environ, start_response, stopping)
        headers.setdefault("content-type", "application/json")
        headers["x-request-id"] = f"req_{uuid.uuid4().hex}"
        headers["openai-processing-ms"] = str(int((time.monotonic() - started) * 1000))
        headers["content-length"] = str(len(body))
        start_response(f"{status} {HTTPStatus(status).phrase}", list(headers.items()))
        return [body]

    return app


def _stream(stream, headers: dict, environ, start_response, stopping):
    """Server-sent events, each written and flushed as it comes; the answer ends with the connection
    (wsgiref has no chunked encoding), as a client of the real API cannot tell apart."""
    environ[hostile.CLOSE_CONNECTION] = True
    headers["content-type"] = "text/event-stream; charset=utf-8"
    headers["x-request-id"] = f"req_{uuid.uuid4().hex}"
    headers["cache-control"] = "no-cache"
    start_response("200 OK", list(headers.items()))
    return stream.chunks(stopping)


def _hang_or_stream(fault: str, environ, start_response, state, config: SimulatorConfig, stopping):
    """The hostile faults that hold the connection: no answer, a dripped body, a huge body. The request is
    logged when the hang starts, so a test can wait for it (SimulatorState.wait_for_requests)."""
    method, path = environ["REQUEST_METHOD"], environ.get("PATH_INFO", "")
    _body(environ)  # read whole, as for every answer: the client is then waiting on the server alone
    if fault == "no_headers":
        state.log_request(method, path, None)
        hostile.wait_unanswered(environ, stopping)
        raise DropConnection
    state.log_request(method, path, 200)
    # Cut short (the drip) or delimited by the close (the huge body): the connection cannot serve another.
    environ[hostile.CLOSE_CONNECTION] = True
    headers = [("content-type", "application/json"), ("x-request-id", f"req_{uuid.uuid4().hex}")]
    if fault == "slow_body":
        start_response("200 OK", [*headers, ("content-length", str(hostile.DRIP_LENGTH))])
        return hostile.drip(stopping, config.drip_interval)
    start_response("200 OK", headers)
    return hostile.huge_body(config.huge_body_bytes, stopping, state)


def _answer(environ, method: str, path: str, state: SimulatorState, config: SimulatorConfig, fault):
    """(status, headers, body) for one request."""
    # Read the body whatever the answer: closing a socket with unread data in it resets the connection,
    # and the client could lose the answer already sent.
    body = _body(environ)
    api_key = _api_key(environ)
    key = state.key_for(api_key) if api_key else None
    organization = key.organization_id if key else "org-sim"
    if fault == "drop":
        raise DropConnection
    if fault and fault.startswith("slow:"):
        time.sleep(float(fault.removeprefix("slow:")))
    elif fault == "echo_key":
        return 200, {"content-type": "text/plain"}, hostile.echo_key(environ)
    elif fault and fault not in LIST_FAULTS:
        return _fault(fault, organization, config)
    if config.latency_ms:
        time.sleep(config.latency_ms / 1000)

    headers: dict[str, str] = {}
    try:
        if key is None:
            raise _unauthorized(api_key)
        headers["openai-organization"] = key.organization_id
        headers["openai-project"] = key.project_id
        _check_scope(environ, key)
        if config.rate_limit_per_minute:
            with state.lock:
                decision = state.limiter.take(
                    key.project_id, config.rate_limit_per_minute, state.clock().timestamp()
                )
            headers.update(decision.headers())
            if not decision.allowed:
                raise _rate_limited(organization, decision.limit, decision.retry_after_seconds)
        route, params = _route(method, path)
        if route.beta and route.beta not in _betas(environ):
            raise errors.ErrorResponse(
                400,
                f"You must provide the 'OpenAI-Beta' header to access the {BETA_NAMES[route.beta]} API. "
                f"Please try again by setting the header 'OpenAI-Beta: {route.beta}'.",
                code="invalid_beta",
            )
        request = Request(state, method, path, _query(environ), body, key, params, config)
        with state.lock:
            answer = hostile.list_answer(fault, route.handler, request)
            if answer is None:
                answer = route.handler(request)
            if isinstance(answer, responses.EventStream):
                return 200, headers, answer
            # Serialised under the lock: another request must not change an object mid-dump.
            return 200, headers, json.dumps(answer).encode()
    except errors.ErrorResponse as error:
        headers.update(error.headers)
        return error.status, headers, json.dumps(error.body()).encode()
    except Exception:
        logger.exception("Simulator failed on %s %s", method, path)
        error = errors.ErrorResponse(
            500,
            "The server had an error while processing your request. Sorry about that!",
            type="server_error",
        )
        return 500, headers, json.dumps(error.body()).encode()


def _fault(fault: str, organization: str, config: SimulatorConfig):
    limit = config.rate_limit_per_minute or 60
    if fault == "502_html":
        return 502, {"content-type": "text/html"}, HTML_502
    if fault == "429":
        error = _rate_limited(organization, limit, 1.0)
    elif fault == "429_ms":
        error = _rate_limited(organization, limit, 0.25)
        del error.headers["retry-after"]
        error.headers["retry-after-ms"] = "250"
    elif fault == "429_quota":
        error = errors.ErrorResponse(
            429,
            "You exceeded your current quota, please check your plan and billing details. For more "
            "information on this error, read the docs: https://platform.openai.com/docs/guides/error-codes/api-errors.",
            type="insufficient_quota",
            code="insufficient_quota",
        )
    elif fault == "500":
        error = errors.ErrorResponse(
            500,
            "The server had an error while processing your request. Sorry about that!",
            type="server_error",
        )
    else:
        error = errors.ErrorResponse(503, "The server is overloaded or not ready yet.", type="server_error")
    return error.status, dict(error.headers), json.dumps(error.body()).encode()


def _rate_limited(organization: str, limit: int, wait: float) -> errors.ErrorResponse:
    return errors.ErrorResponse(
        429,
        f"Rate limit reached for requests in organization {organization} on requests per min (RPM): "
        f"Limit {limit}, Used {limit}, Requested 1. Please try again in {format_duration(wait)}. "
        "Visit https://platform.openai.com/account/rate-limits to learn more.",
        type="requests",
        code="rate_limit_exceeded",
        headers={
            "retry-after": retry_after_header(wait),
            "x-ratelimit-limit-requests": str(limit),
            "x-ratelimit-remaining-requests": "0",
            "x-ratelimit-reset-requests": format_duration(wait),
        },
    )


def _api_key(environ) -> str:
    authorization = environ.get("HTTP_AUTHORIZATION", "")
    if authorization[:7].lower() == "bearer ":
        return authorization[7:].strip()
    # Azure OpenAI sends the key in its own header.
    return environ.get("HTTP_API_KEY", "").strip()


def _unauthorized(api_key: str) -> errors.ErrorResponse:
    if not api_key:
        return errors.ErrorResponse(
            401,
            "You didn't provide an API key. You need to provide your API key in an Authorization header "
            "using Bearer auth (i.e. Authorization: Bearer YOUR_KEY), or as the password field (with blank "
            "username) if you're accessing the API from your browser and are prompted for a username and "
            "password. You can obtain an API key from https://platform.openai.com/account/api-keys.",
        )
    return errors.ErrorResponse(
        401,
        f"Incorrect API key provided: {mask(api_key)}. You can find your API key at "
        "https://platform.openai.com/account/api-keys.",
        code="invalid_api_key",
    )


def mask(api_key: str) -> str:
    """The API shows a refused key with its middle starred out; only the last four characters are kept
    here (the real API also shows the first few), so no log or screen ever holds more of a key."""
    if len(api_key) <= 8:
        return "*" * len(api_key)
    prefix = "sk-" if api_key.startswith("sk-") else ""
    return prefix + "*" * min(len(api_key) - len(prefix) - 4, 40) + api_key[-4:]


def _check_scope(environ, key: Key) -> None:
    """A key belongs to one project; headers naming another project or organization are refused."""
    project = environ.get("HTTP_OPENAI_PROJECT", "").strip()
    if project and project != key.project_id:
        raise errors.ErrorResponse(
            401, "OpenAI-Project header should match project for API key", code="mismatched_project"
        )
    organization = environ.get("HTTP_OPENAI_ORGANIZATION", "").strip()
    if organization and organization != key.organization_id:
        raise errors.ErrorResponse(
            401,
            "OpenAI-Organization header should match organization for API key",
            code="mismatched_organization",
        )


def _route(method: str, path: str) -> tuple[Route, dict[str, str]]:
    for route in ROUTES:
        if route.method == method:
            match = route.pattern.fullmatch(path)
            if match:
                return route, match.groupdict()
    raise errors.invalid_url(method, path)


def _betas(environ) -> set[str]:
    return {value.strip() for value in environ.get("HTTP_OPENAI_BETA", "").split(",")}


def _query(environ) -> dict[str, str]:
    return {name: values[-1] for name, values in parse_qs(environ.get("QUERY_STRING", "")).items()}


def _body(environ) -> bytes:
    try:
        length = int(environ.get("CONTENT_LENGTH") or 0)
    except ValueError:
        length = 0
    return environ["wsgi.input"].read(length) if length > 0 else b""
