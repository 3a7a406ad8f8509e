"""The capture proxy: an OpenAI-compatible endpoint at /proxy/v1/ that an application uses as its
`base_url`, with a Threadsite token as its API key.

Each request is forwarded to the token's credential (its base URL, key and project; the application never
holds the OpenAI key) and the answer passed back unchanged: status, body, and the headers a client acts on.
A streamed answer (server-sent events) is passed on chunk by chunk as the upstream sends it, never
buffered. Once each answer has gone, `capture` records what it did; recording can fail without the
application noticing anything but a log line.

A stream holds one of the web process's threads for its whole length; at most
THREADSITE_PROXY_MAX_STREAMS streams run at once in one process, so that other requests always find a
thread (README: "Serving the capture proxy").
"""

import json
import logging
import threading

import requests
from django.conf import settings
from django.db import connection
from django.http import HttpResponse, StreamingHttpResponse

from .. import capture, outcomes
from ..client import APIError, Client, session_for
from .auth import authorize, error

logger = logging.getLogger(__name__)

# The caller's headers that go upstream; everything else (its Authorization above all) stays here.
FORWARDED_REQUEST_HEADERS = ("Content-Type", "Accept", "OpenAI-Beta", "Idempotency-Key", "User-Agent")
# The upstream's headers that come back: what a client reads or acts on.
RETURNED_PREFIXES = ("x-ratelimit-", "openai-")
RETURNED_HEADERS = {"content-type", "x-request-id", "retry-after", "retry-after-ms", "x-should-retry"}
STREAM_CHUNK = 64 * 1024
PROXY_POOL_SIZE = 256

_streams = threading.BoundedSemaphore(1)
_streams_limit = 0
_streams_lock = threading.Lock()


def _stream_slots() -> threading.BoundedSemaphore:
    global _streams, _streams_limit
    with _streams_lock:
        if _streams_limit != settings.THREADSITE_PROXY_MAX_STREAMS:
            _streams_limit = settings.THREADSITE_PROXY_MAX_STREAMS
            _streams = threading.BoundedSemaphore(_streams_limit)
        return _streams


METHODS = ("GET", "POST", "DELETE")


@authorize
def forward(request, path: str):
    token = request.api_token
    if request.method not in METHODS:
        return error(
            405,
            f"The capture proxy forwards {', '.join(METHODS)} only.",
            headers={"Allow": ", ".join(METHODS)},
        )
    if any(segment in ("", ".", "..") for segment in path.split("/")):
        # Never a path that would climb out of the credential's base URL (…/v1/../) with its key.
        return error(404, "No such path under /proxy/v1/.", code="invalid_path")
    if not token.has_scope("register") or (request.method == "DELETE" and not token.has_scope("delete")):
        needed = "register and delete" if request.method == "DELETE" else "register"
        return error(403, f"The capture proxy needs a token with the {needed} scopes.", code="missing_scope")
    if token.credential is None:
        return error(
            403,
            "This token is bound to no credential, so the proxy has nowhere to forward.",
            code="no_credential",
        )
    remote_id = capture.named_id(path)
    if remote_id and capture.outside_reach(token, remote_id):
        return error(404, f"No thread found with id '{remote_id}'.", code="not_found")

    body = request.body
    payload = None
    if body and request.content_type == "application/json":
        try:
            payload = json.loads(body)
        except (ValueError, RecursionError):
            payload = None  # forwarded as it is: the API says what is wrong with it
    if request.method == "POST" and capture.stamp_owner(token, path, payload):
        body = json.dumps(payload).encode()
    streaming = isinstance(payload, dict) and payload.get("stream") is True
    slots = _stream_slots()
    if streaming and not slots.acquire(blocking=False):
        return error(
            503,
            "This Threadsite process holds as many streams as it may; try again shortly.",
            code="too_many_streams",
            headers={"Retry-After": "1"},
        )
    try:
        response = _forward(request, token, path, body, payload, slots if streaming else None)
    except BaseException:
        if streaming:
            slots.release()
        raise
    return response


def _forward(request, token, path, body, payload, slots):
    credential = token.credential
    client = Client.for_credential(
        credential,
        session=session_for(credential, pool_size=PROXY_POOL_SIZE),
        timeout=(settings.OPENAI_CONNECT_TIMEOUT, settings.THREADSITE_PROXY_READ_TIMEOUT),
        deadline=settings.THREADSITE_PROXY_READ_TIMEOUT,
    )
    headers = {name: request.headers[name] for name in FORWARDED_REQUEST_HEADERS if name in request.headers}
    try:
        upstream = client.forward(
            request.method, path, query=request.META.get("QUERY_STRING", ""), body=body, headers=headers
        )
    except APIError as failure:
        if slots:
            slots.release()
        return error(502, outcomes.classify(failure).message, code="upstream_unreachable")
    exchange = capture.Exchange(
        token_id=token.pk,
        method=request.method,
        path=path,
        status=upstream.status_code,
        request=payload if isinstance(payload, dict) else None,
        answer=None,
        end_user=capture.end_user_of(request.headers.get(capture.END_USER_HEADER, ""), payload),
    )
    if upstream.headers.get("content-type", "").startswith("text/event-stream"):
        # No database connection held for a stream of minutes: what the stream tells the registry (activity
        # in a conversation, known from the request) is recorded when it has ended, on a new one.
        connection.close()
        answer = RecordedStream(_Stream(upstream, slots, exchange), status=upstream.status_code)
        answer.after = capture.record_after_answer(exchange, token)
        answer["Cache-Control"] = "no-cache"
        answer["X-Accel-Buffering"] = "no"  # nginx and the like: pass each chunk on at once
    else:
        if slots:
            slots.release()
        try:
            content = client.read_forwarded(upstream)
        except (APIError, requests.RequestException, OSError) as failure:
            upstream.close()
            message = outcomes.classify(failure).message if isinstance(failure, APIError) else "cut off"
            return error(502, f"The upstream answer could not be read: {message}", code="upstream_unreadable")
        answer = RecordedResponse(content, status=upstream.status_code)
        if exchange.status < 300 and request.method in ("POST", "DELETE"):
            try:
                exchange.answer = json.loads(content)
            except (ValueError, RecursionError):
                exchange.answer = None
            answer.after = capture.record_after_answer(exchange, token)
    for name, value in upstream.headers.items():
        lower = name.lower()
        if lower in RETURNED_HEADERS or lower.startswith(RETURNED_PREFIXES):
            answer[name] = value
    return answer


class _RecordsWhenClosed:
    """An answer that records what it did once it has gone: the server closes a response after writing
    its last byte to the client, so the registry's write never delays the answer (nor breaks it: the
    recording is fail-open). Django's own closing (request_finished, which returns the database
    connection) follows."""

    after = None

    def close(self):
        try:
            if self.after is not None:
                self.after()
        finally:
            super().close()


class RecordedResponse(_RecordsWhenClosed, HttpResponse):
    pass


class RecordedStream(_RecordsWhenClosed, StreamingHttpResponse):
    pass


class _Stream:
    """The upstream's body as it arrives: each read returns whatever bytes are there (read1), so an event
    is passed on the moment it lands, however small. `close()` (called by Django when the answer ends,
    or the client goes away, even before the first chunk) frees the connection and the stream's slot."""

    def __init__(self, upstream, slots, exchange=None):
        self.upstream, self.slots, self.closed = upstream, slots, False
        # A create streamed (`POST /threads/runs` with stream: true) names its thread in its first event:
        # its opening bytes are kept until that event is read, for the recording.
        self.exchange = exchange if exchange is not None and exchange.path in capture.CREATES else None
        self.opening = b""

    def __iter__(self):
        return self

    def __next__(self) -> bytes:
        try:
            chunk = self.upstream.raw.read1(STREAM_CHUNK, decode_content=True)
        except Exception as failure:  # urllib3's and the socket's errors alike: the stream just ends
            logger.warning("Capture proxy: the upstream stream ended early (%s)", type(failure).__name__)
            chunk = b""
        if not chunk:
            self.close()
            raise StopIteration
        if self.exchange is not None:
            self._read_opening(chunk)
        return chunk

    def _read_opening(self, chunk: bytes) -> None:
        self.opening += chunk
        answer = capture.first_event(self.opening)
        if answer is not None or len(self.opening) > STREAM_CHUNK:
            self.exchange.answer, self.exchange, self.opening = answer, None, b""

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            self.upstream.close()
            if self.slots:
                self.slots.release()
