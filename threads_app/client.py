"""The HTTP client for the OpenAI API (and servers that speak it): pooled sessions, retries, typed errors.

It knows nothing of threads: `kinds.py` says which paths and beta headers each kind uses. Its retry rules
follow OpenAI's own client: 408, 409, 429, 5xx and connection failures are retried, waiting what the server
asks for (`retry-after-ms`, then `retry-after`, then for 429s `x-ratelimit-reset-requests`) or else backing
off 0.5 s × 2ⁿ up to 8 s with jitter. A server that asks for more than two minutes (or a client's smaller
`max_wait`) is not waited for: the error is raised with `.retry_after`, so a task can be rescheduled
instead of holding a worker, and a web page can answer at once.

API keys never leave this module except in the request headers: not in URLs, logs or error messages.
"""

import email.utils
import itertools
import json as jsonlib
import logging
import math
import os
import random
import re
import socket
import threading
import time
import urllib.request
from collections import OrderedDict
from html.parser import HTMLParser
from urllib.parse import urlencode, urlsplit

import requests
from django.conf import settings
from requests.structures import CaseInsensitiveDict
from requests.utils import requote_uri

from .encryption import mask

logger = logging.getLogger(__name__)

INITIAL_RETRY_WAIT = 0.5
MAX_BACKOFF_WAIT = 8.0
# Server-directed waits above this are not slept through (OpenAI's client uses the same limit).
MAX_RETRY_AFTER = 120.0
# A longer wait named by a server is read as a day: a task is rescheduled and the credential's requests are
# held back by it, and a year (or `inf`) would overflow the dates and timers that do so.
MAX_NAMED_WAIT = 86400.0
RETRY_STATUSES = frozenset({408, 409, 429})
SENDABLE_KEY = re.compile(r"[!-~]+")
USER_AGENT = "Threadsite (+requests)"
# Error messages and HTML excerpts are shown to people; keep them to one readable line.
MAX_MESSAGE_LENGTH = 300


class APIError(Exception):
    """A request to the API failed. `.message` is the API's own words where it gave any."""

    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        code: str | None = None,
        type: str | None = None,
        param: str | None = None,
        request_id: str | None = None,
    ):
        super().__init__(message)
        self.message = message
        self.status = status
        self.code = code
        self.type = type
        self.param = param
        self.request_id = request_id

    def __str__(self) -> str:
        details = [f"HTTP {self.status}"] if self.status else []
        if self.code:
            details.append(self.code)
        return f"{self.message} ({', '.join(details)})" if details else self.message


class BadRequest(APIError):
    pass


class AuthenticationError(APIError):
    pass


class PermissionDenied(APIError):
    pass


class NotFound(APIError):
    pass


class Conflict(APIError):
    pass


class RateLimited(APIError):
    def __init__(self, message: str, *, retry_after: float | None = None, **kwargs):
        super().__init__(message, **kwargs)
        self.retry_after = retry_after


class QuotaExceeded(RateLimited):
    """The account is out of credit or over its spend limit: waiting will not help."""


class ServerError(APIError):
    pass


class InvalidResponse(ServerError):
    """A success status whose body is not the JSON object the API promises (a proxy's page, a truncation)."""


class APIConnectionError(APIError):
    """No HTTP answer: refused, dropped, timed out, or a URL that cannot be reached at all."""


class DeadlineExceeded(APIConnectionError):
    """The whole call (every attempt, every byte of the answer) took longer than its deadline."""


class ResponseTooLarge(APIError):
    """The answer is larger than the client reads (OPENAI_MAX_RESPONSE_BYTES); reading more cannot help."""


ERRORS_BY_STATUS = {
    400: BadRequest,
    401: AuthenticationError,
    403: PermissionDenied,
    404: NotFound,
    409: Conflict,
    422: BadRequest,
    429: RateLimited,
}


# --- Reading responses ----------------------------------------------------------------------------


_DURATION_PART = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ms|us|µs|ns|h|m|s)")
_DURATION_UNITS = {"h": 3600.0, "m": 60.0, "s": 1.0, "ms": 1e-3, "us": 1e-6, "µs": 1e-6, "ns": 1e-9}


def parse_duration(value: str) -> float | None:
    """Seconds in a Go-style duration as OpenAI sends in x-ratelimit-reset-*: `6m0s`, `1.5s`, `250ms`."""
    text = value.strip().lower()
    if not text:
        return None
    try:
        total = float(text)  # A bare number: seconds.
    except ValueError:
        position, total = 0, 0.0
        for match in _DURATION_PART.finditer(text):
            if match.start() != position:
                return None
            total += float(match.group(1)) * _DURATION_UNITS[match.group(2)]
            position = match.end()
        if position != len(text):
            return None
    return total if math.isfinite(total) else None


def _finite(value: str) -> float | None:
    try:
        number = float(value)
    except ValueError:
        return None
    return number if math.isfinite(number) else None


def retry_after(headers, *, status: int | None = None, now: float | None = None) -> float | None:
    """Seconds the server asks the client to wait (at most MAX_NAMED_WAIT), from the headers of its answer,
    or None if it does not say.

    `x-ratelimit-reset-requests` is the time until the request window refills; it only says how long to
    wait when the request was refused for that reason (a 429).
    """
    seconds = _named_wait(headers, status, now)
    return None if seconds is None else min(seconds, MAX_NAMED_WAIT)


def _named_wait(headers, status: int | None, now: float | None) -> float | None:
    value = headers.get("retry-after-ms")
    if value is not None and (ms := _finite(value)) is not None:
        return ms / 1000
    value = headers.get("retry-after")
    if value is not None:
        if (seconds := _finite(value)) is not None:
            return seconds
        parsed = email.utils.parsedate_tz(value)
        if parsed is not None:
            try:
                moment = email.utils.mktime_tz(parsed)
            except (OverflowError, ValueError):
                moment = None
            if moment is not None:
                return max(0.0, moment - (time.time() if now is None else now))
    if status == 429 and (value := headers.get("x-ratelimit-reset-requests")):
        return parse_duration(value)
    return None


def backoff(attempt: int) -> float:
    """The wait before retry number `attempt` (0-based) when the server named none: 0.5 s × 2ⁿ, at most 8 s.

    Up to a quarter is taken off at random, so that clients refused together do not return together.
    """
    return min(INITIAL_RETRY_WAIT * 2.0**attempt, MAX_BACKOFF_WAIT) * (1 - 0.25 * random.random())


class _TextOfHTML(HTMLParser):
    """Collects the title and visible text of an HTML error page."""

    def __init__(self):
        super().__init__()
        self.title, self.text, self._skip, self._in_title = "", [], 0, False

    def handle_starttag(self, tag, attrs):
        if tag in {"script", "style"}:
            self._skip += 1
        self._in_title = self._in_title or tag == "title"

    def handle_endtag(self, tag):
        if tag in {"script", "style"} and self._skip:
            self._skip -= 1
        if tag == "title":
            self._in_title = False

    def handle_data(self, data):
        if self._in_title:
            self.title += data
        elif not self._skip:
            self.text.append(data)


def _one_line(text: str) -> str:
    text = " ".join(text.split())
    return text if len(text) <= MAX_MESSAGE_LENGTH else text[: MAX_MESSAGE_LENGTH - 1] + "…"


def _describe_body(response: requests.Response) -> str:
    """A short readable account of a body that is not the API's JSON."""
    body = response.text if response.content else ""
    content_type = response.headers.get("content-type", "").split(";")[0].strip()
    if not body.strip():
        return f"an empty answer with status {response.status_code} {response.reason or ''}".strip()
    if "html" in content_type or body.lstrip()[:1] == "<":
        page = _TextOfHTML()
        page.feed(body[:100_000])
        summary = _one_line(page.title) or _one_line(" ".join(page.text))
        return f"an HTML page ({summary})" if summary else "an HTML page"
    return _one_line(body)


def error_from_response(response: requests.Response) -> APIError:
    """The typed error for a failed response, keeping the API's own message, code, type and param."""
    status = response.status_code
    request_id = response.headers.get("x-request-id")
    fields = {}
    try:
        payload = response.json()
    except ValueError:
        payload = None
    if isinstance(payload, dict):
        detail = payload.get("error", payload)
        if isinstance(detail, dict):
            fields = detail
        elif isinstance(detail, str):
            fields = {"message": detail}
        # Servers other than OpenAI's answer {"detail": "…"} (FastAPI) or {"message": "…"}.
        if not isinstance(fields.get("message"), str) or not fields.get("message"):
            for key in ("message", "detail", "error_description", "title"):
                if isinstance(payload.get(key), str) and payload[key]:
                    fields = {**fields, "message": payload[key]}
                    break
    message = fields.get("message")
    if isinstance(message, str) and message.strip():
        message = _one_line(message)
    else:
        what = _describe_body(response) if payload is None else "an error without a message"
        message = f"The API answered {status} {response.reason or ''} with {what}".replace("  ", " ")

    def text_field(name):
        value = fields.get(name)
        return str(value) if value not in (None, "") else None

    code, error_type, param = text_field("code"), text_field("type"), text_field("param")
    common = {"status": status, "code": code, "type": error_type, "param": param, "request_id": request_id}
    if status == 429:
        if "insufficient_quota" in (code, error_type):
            return QuotaExceeded(message, **common)
        return RateLimited(message, retry_after=retry_after(response.headers, status=429), **common)
    if status >= 500:
        return ServerError(message, **common)
    return ERRORS_BY_STATUS.get(status, APIError)(message, **common)


def _describe_connection_failure(error: requests.RequestException, timeout) -> str:
    connect, read = timeout if isinstance(timeout, tuple) else (timeout, timeout)
    if isinstance(error, requests.ConnectTimeout):
        return f"could not connect within {connect:g} s"
    if isinstance(error, requests.ReadTimeout):
        return f"no answer within {read:g} s"
    reason = repr(error)
    if "RemoteDisconnected" in reason or "Connection aborted" in reason or "reset by peer" in reason:
        return "the connection was closed without an answer"
    if isinstance(error, requests.exceptions.ChunkedEncodingError):
        return "the answer was cut off"
    if "NameResolutionError" in reason or "Name or service not known" in reason or "getaddrinfo" in reason:
        return "the host name could not be resolved"
    if "Connection refused" in reason:
        return "the connection was refused"
    if isinstance(error, requests.exceptions.SSLError):
        return "the TLS handshake failed"
    return "the connection failed"


def _host(url: str) -> str:
    """The host and port of a URL, without any user:password@ it may carry."""
    return urlsplit(url).netloc.rpartition("@")[2] or url[:80]


# --- Sessions -------------------------------------------------------------------------------------

_sessions: OrderedDict = OrderedDict()
_sessions_lock = threading.Lock()
MAX_POOLED_SESSIONS = 64


def new_session(pool_size: int = 16) -> requests.Session:
    """A session whose pool keeps `pool_size` connections per host (as many as requests run at once)."""
    session = requests.Session()
    # Retries are this module's job, with the API's own rules; urllib3 must not retry underneath.
    adapter = requests.adapters.HTTPAdapter(pool_connections=4, pool_maxsize=pool_size, max_retries=0)
    session.mount("https://", adapter)
    session.mount("http://", adapter)
    if not urllib.request.getproxies():
        # No proxy in the environment: the environment is not read again for every request, which cost
        # a scan of every variable per call (a tenth of a busy worker's time). Its CA bundle still counts.
        session.trust_env = False
        session.verify = os.environ.get("REQUESTS_CA_BUNDLE") or os.environ.get("CURL_CA_BUNDLE") or True
    return session


def session_for(credential, pool_size: int = 16) -> requests.Session:
    """The pooled session of a saved credential; a new one for each version of it (edits change the key).
    The capture proxy asks for a larger pool (one connection per stream it holds open) than the rest.

    The session carries no secrets (headers go with each request); it is kept only for its connection pool.
    """
    if credential.pk is None:
        return new_session(pool_size)
    version = (credential.pk, credential.updated_at, credential.base_url, pool_size)
    with _sessions_lock:
        session = _sessions.get(version)
        if session is not None:
            _sessions.move_to_end(version)
            return session
        for stale in [key for key in _sessions if key[0] == credential.pk and key[3] == pool_size]:
            del _sessions[stale]
        session = _sessions[version] = new_session(pool_size)
        while len(_sessions) > MAX_POOLED_SESSIONS:
            _sessions.popitem(last=False)
        return session


# --- The client -----------------------------------------------------------------------------------


class _Watchdog:
    """One thread for the whole process that shuts the sockets of answers still being read at their
    deadline: a timer thread per request would cost more than the request when hundreds run at once.

    Answers are registered in a dict without a lock (each step is one operation under the GIL): a lock
    taken twice per request by a hundred threads was a tenth of a busy deletion job's time. The thread
    looks through them every TICK seconds while any is registered, and sleeps while none is.
    """

    TICK = 0.05

    def __init__(self):
        self._active: dict[int, tuple[float, requests.Response]] = {}
        self._numbers = itertools.count()
        self._busy = threading.Event()  # set while answers are registered
        self._start_lock = threading.Lock()
        self._thread: threading.Thread | None = None

    def watch(self, deadline: float, response: requests.Response) -> int:
        number = next(self._numbers)
        self._active[number] = (deadline, response)
        if not self._busy.is_set():  # the thread sleeps: wake it (a lock only then)
            self._busy.set()
        if self._thread is None:
            self._start()
        return number

    def release(self, number: int) -> None:
        self._active.pop(number, None)

    def _start(self) -> None:
        with self._start_lock:
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="threadsite-api-watchdog", daemon=True)
                self._thread.start()

    def _after_fork(self) -> None:
        """In a forked child (a Celery worker's process): the parent's thread does not exist, and the
        answers the parent was reading are not the child's to shut (their sockets are shared)."""
        self._active = {}
        self._busy, self._start_lock, self._thread = threading.Event(), threading.Lock(), None

    def _run(self) -> None:
        while True:
            self._busy.wait()
            now = time.monotonic()
            for number, (deadline, response) in self._active.copy().items():
                if deadline <= now and self._active.pop(number, None) is not None:
                    _abort(response)
            if self._active:
                time.sleep(self.TICK)
            else:
                self._busy.clear()
                if self._active:  # registered meanwhile, by a watch() that saw the event still set
                    self._busy.set()


_watchdog = _Watchdog()
os.register_at_fork(after_in_child=_watchdog._after_fork)


def _socket_of(response: requests.Response):
    """The socket an answer is read from. urllib3's connection holds it, except for an answer that
    closes its connection ("Connection: close"), which http.client reads straight from the socket's file."""
    connection = getattr(response.raw, "connection", None) or getattr(response.raw, "_connection", None)
    sock = getattr(connection, "sock", None)
    if sock is None:
        reader = getattr(getattr(response.raw, "_fp", None), "fp", None)  # http.client's buffered file
        sock = getattr(getattr(reader, "raw", None), "_sock", None)  # its SocketIO's socket
    return sock


def _abort(response: requests.Response) -> None:
    """Shut the socket under a response being read, from another thread: the blocked read ends at once."""
    sock = _socket_of(response)
    try:
        if sock is not None:
            sock.shutdown(socket.SHUT_RDWR)
        else:
            response.close()
    except OSError:
        pass  # already closed


class _Shared:
    """The calls of one `Client.each`, taken one at a time by the threads that share them."""

    def __init__(self, function, items: list):
        self.function, self.items = function, items
        self.results: list = [None] * len(items)
        self.error: BaseException | None = None
        self._next = 0
        self._lock = threading.Lock()

    def work(self) -> None:
        while True:
            with self._lock:
                if self.error is not None or self._next >= len(self.items):
                    return
                index, self._next = self._next, self._next + 1
            try:
                self.results[index] = self.function(self.items[index])
            except BaseException as error:  # Cancelled and the like too: the caller re-raises it
                with self._lock:
                    self.error = self.error or error
                return

    def close(self) -> None:
        """No more calls begin (a thread lent too late finds nothing left)."""
        with self._lock:
            self._next = len(self.items)


class _KeyAuth(requests.auth.AuthBase):
    """Puts the key on each request. Being the request's auth, it also keeps requests from adding a .netrc
    login of its own (proxy settings from the environment still apply)."""

    def __init__(self, api_key: str, azure: bool):
        self.api_key, self.azure = api_key, azure

    def redact(self, error: APIError) -> None:
        """Mask the key wherever a server quoted it back (some proxies and compatible servers do), so
        that no stored check result, log line or page can show it."""
        if self.api_key and self.api_key in error.message:
            error.message = error.message.replace(self.api_key, mask(self.api_key))
            error.args = (error.message,)

    def __call__(self, request):
        if self.azure:
            request.headers["api-key"] = self.api_key
        else:
            request.headers["Authorization"] = f"Bearer {self.api_key}"
        return request

    def __repr__(self) -> str:
        return "<_KeyAuth>"


class Client:
    """One credential's view of the API. `get`/`post`/`delete` return the decoded JSON object or raise."""

    def __init__(
        self,
        *,
        base_url: str,
        api_key: str,
        organization: str = "",
        project: str = "",
        azure_api_version: str = "",
        timeout: tuple[float, float] | None = None,
        max_retries: int | None = None,
        session: requests.Session | None = None,
        sleep=time.sleep,
        max_wait: float = MAX_RETRY_AFTER,
        throttle=None,
        deadline: float | None = None,
        max_response_bytes: int | None = None,
    ):
        self.base_url = base_url.rstrip("/")
        api_key = api_key.strip()
        self._auth = _KeyAuth(api_key, azure=bool(azure_api_version))
        # A key that cannot travel in a header would fail deep in http.client with the key in the
        # exception; refuse it up front with a message that names no character of it.
        if not api_key:
            self._key_problem = "The API key is empty."
        elif not SENDABLE_KEY.fullmatch(api_key):
            self._key_problem = "The API key holds spaces, line breaks or characters that are not ASCII."
        else:
            self._key_problem = ""
        self.organization = organization
        self.project = project
        self.azure_api_version = azure_api_version
        self.timeout = timeout or (settings.OPENAI_CONNECT_TIMEOUT, settings.OPENAI_READ_TIMEOUT)
        self.max_retries = settings.OPENAI_MAX_RETRIES if max_retries is None else max_retries
        self.session = session or new_session()
        self.sleep = sleep
        # A web request cannot wait minutes for a rate limit to clear; views pass a few seconds here.
        self.max_wait = max_wait
        # Background work shares the project's request rate (`ratelimit.Throttle`): it is asked before
        # every attempt and told of every answer.
        self.throttle = throttle
        # The read timeout bounds each socket read, not the call: a server that drips one byte at a time
        # could hold it for ever. The deadline bounds the whole call, retries and body included.
        self.deadline = settings.OPENAI_TASK_DEADLINE if deadline is None else deadline
        self.max_response_bytes = max_response_bytes or settings.OPENAI_MAX_RESPONSE_BYTES
        self._transport_settings = None
        # Background work (`engine`) lends the idle threads of its pool here: `lend(work, n)` runs `work`
        # on up to n of them and returns their futures. See `each`.
        self.lend = None

    def __repr__(self) -> str:
        return f"<Client {self.base_url} project={self.project or '-'}>"

    @classmethod
    def for_credential(cls, credential, *, write: bool = False, **options) -> "Client":
        """A client with the credential's key for the work: its read-only key (if it has one) unless the
        work changes or deletes something."""
        return cls(
            base_url=credential.base_url,
            api_key=credential.key_for(write=write),
            organization=credential.organization_id,
            project=credential.project_id,
            azure_api_version=credential.azure_api_version,
            session=options.pop("session", None) or session_for(credential),
            **options,
        )

    def get(self, path: str, *, params: dict | None = None, beta: str | None = None) -> dict:
        return self.request("GET", path, params=params, beta=beta)

    def post(self, path: str, *, json: dict | None = None, beta: str | None = None) -> dict:
        return self.request("POST", path, json=json if json is not None else {}, beta=beta)

    def delete(self, path: str, *, beta: str | None = None) -> dict:
        return self.request("DELETE", path, beta=beta)

    def each(self, function, items: list) -> list:
        """`function(item)` for each item, their results in the items' order.

        In turn, unless the client's owner lends it idle threads (`lend`): then at once on as many as are
        idle, the calling thread working too. The threads are the owner's, so its bound on calls at once
        holds. After an exception no call begins; it is raised once the calls begun have ended.
        """
        shared = _Shared(function, items)
        lent = self.lend(shared.work, len(items) - 1) if self.lend is not None and len(items) > 1 else []
        try:
            shared.work()
        finally:
            shared.close()
            for future in lent:
                future.cancel()  # queued behind other work: nothing left for it
            for future in lent:
                if not future.cancelled():
                    future.result()
        if shared.error is not None:
            raise shared.error
        return shared.results

    def headers(self, beta: str | None = None) -> dict:
        """Every header but the key's (which `_KeyAuth` adds), so that these may be shown or logged."""
        headers = {"Accept": "application/json", "User-Agent": USER_AGENT}
        if self.organization:
            headers["OpenAI-Organization"] = self.organization
        if self.project:
            headers["OpenAI-Project"] = self.project
        if beta:
            headers["OpenAI-Beta"] = beta
        return headers

    def url(self, path: str) -> str:
        return f"{self.base_url}/{path.lstrip('/')}"

    def request(self, method: str, path: str, *, params=None, json=None, beta=None) -> dict:
        try:
            return self._request(method, path, params=params, json=json, beta=beta)
        except APIError as error:
            # Whatever built the message (an error body, a 2xx that is not JSON, a proxy's page), a key
            # that the server quoted back never reaches a page, a row or a log line.
            self._auth.redact(error)
            raise

    def _request(self, method: str, path: str, *, params=None, json=None, beta=None) -> dict:
        if self._key_problem:
            raise AuthenticationError(self._key_problem)
        params = {key: value for key, value in (params or {}).items() if value is not None}
        if self.azure_api_version:
            params["api-version"] = self.azure_api_version
        url = self.url(path) + (f"?{urlencode(params, doseq=True)}" if params else "")
        shown_path = urlsplit(url).path
        headers = self.headers(beta)
        if json is not None:
            headers["Content-Type"] = "application/json"
        deadline = time.monotonic() + self.deadline
        attempt = 0
        while True:
            if self.throttle is not None:
                self.throttle.before_request()
            remaining = self._remaining(deadline, url)
            connect, read = self.timeout
            timeout = (min(connect, remaining), min(read, remaining))
            try:
                # As requests encodes `json=`: no NaN or Infinity, which are not JSON (a ValueError).
                body = None if json is None else jsonlib.dumps(json, allow_nan=False).encode()
                response = self._send(method, url, headers, body, timeout)
                self._read_body(response, deadline, url)
            except (
                requests.ConnectionError,
                requests.Timeout,
                requests.exceptions.ChunkedEncodingError,
            ) as e:
                self._remaining(deadline, url)  # past the deadline: say so, rather than "timed out"
                error = APIConnectionError(
                    f"Could not reach {_host(url)}: {_describe_connection_failure(e, timeout)}"
                )
                if attempt >= self.max_retries:
                    raise error from e
                wait = min(backoff(attempt), self.max_wait)
                logger.warning(
                    "%s %s failed (%s); retry %d of %d in %.2f s",
                    method,
                    shown_path,
                    error.message,
                    attempt + 1,
                    self.max_retries,
                    wait,
                )
            except (requests.RequestException, ValueError) as e:
                # Invalid URLs, headers that cannot be sent and the like: retrying cannot help. Not
                # chained: a header's error quotes the header.
                raise APIConnectionError(
                    f"Cannot send the request to {_host(url)}: {type(e).__name__}"
                ) from None
            else:
                if self.throttle is not None:
                    self.throttle.after_response(
                        response.headers,
                        response.status_code,
                        retry_after(response.headers, status=429) if response.status_code == 429 else None,
                    )
                if response.status_code < 300:
                    return self._decode(response)
                if 300 <= response.status_code < 400:
                    location = response.headers.get("location", "")
                    raise APIError(
                        f"The API redirected to {urlsplit(location).netloc or location or 'elsewhere'}; "
                        "check the credential's base URL",
                        status=response.status_code,
                    )
                error = error_from_response(response)
                self._auth.redact(error)
                wait = self._retry_wait(response, error, attempt)
                if wait is None:
                    raise error
                logger.warning(
                    "%s %s answered %s; retry %d of %d in %.2f s",
                    method,
                    shown_path,
                    response.status_code,
                    attempt + 1,
                    self.max_retries,
                    wait,
                )
            if time.monotonic() + wait >= deadline:
                self._remaining(deadline - wait, url)
            self.sleep(wait)
            attempt += 1

    def forward(self, method: str, path: str, *, query: str, body: bytes, headers: dict) -> requests.Response:
        """Send a request that another client made (the capture proxy): its headers that matter, this
        credential's key and project, no retries (that client retries itself), and the answer left unread
        (`read_forwarded`, or streamed by the caller)."""
        if self._key_problem:
            raise AuthenticationError(self._key_problem)
        if self.azure_api_version:
            query = "&".join(filter(None, [query, urlencode({"api-version": self.azure_api_version})]))
        url = self.url(path) + ("?" + query if query else "")
        sent = {**self.headers(), **headers}
        for name in ("OpenAI-Organization", "OpenAI-Project"):  # the credential's, never the caller's
            sent.pop(name, None)
            if self.headers().get(name):
                sent[name] = self.headers()[name]
        try:
            return self._send(method, url, sent, body or None, self.timeout)
        except (requests.ConnectionError, requests.Timeout) as e:
            raise APIConnectionError(
                f"Could not reach {_host(url)}: {_describe_connection_failure(e, self.timeout)}"
            ) from None
        except (requests.RequestException, ValueError) as e:
            raise APIConnectionError(f"Cannot send the request to {_host(url)}: {type(e).__name__}") from None

    def read_forwarded(self, response: requests.Response) -> bytes:
        """The whole body of a forwarded answer, decoded, within the deadline and the size limit."""
        self._read_body(response, time.monotonic() + self.deadline, response.url)
        return response.content

    def _send(self, method: str, url: str, headers: dict, body: bytes | None, timeout) -> requests.Response:
        """Send one request through the session's adapter, its answer left unread.

        This is `Session.request` without what the API never needs: cookies, hooks, redirects (a redirect
        would carry the key to wherever it points: requests strips only Authorization, not Azure's
        api-key; a base URL that redirects is a mistake to report) and, for every request, the merging of
        settings that do not change between requests. Building the request by hand costs a third less CPU
        than `Session.request`, which is most of what a busy deletion job spends per request.
        """
        request = requests.PreparedRequest()
        request.method = method
        if url.isascii():
            request.url = requote_uri(url)
        else:  # a host name to encode (IDNA), say: requests' own way
            request.prepare_url(url, None)
        request.headers = CaseInsensitiveDict(self.session.headers)
        request.headers.update(headers)
        request.body = body
        if body is not None:
            request.headers["Content-Length"] = str(len(body))
        elif method not in ("GET", "HEAD"):
            request.headers["Content-Length"] = "0"
        request.hooks = {"response": []}
        self._auth(request)
        adapter = self.session.get_adapter(request.url)
        return adapter.send(request, stream=True, timeout=timeout, **self._transport())

    def _transport(self) -> dict:
        """The proxies, CA bundle and client certificate of the base URL's requests, as `Session.request`
        would take them from the session and the environment (read once per client, not per request)."""
        if self._transport_settings is None:
            # Checks the base URL as requests does (MissingSchema, InvalidURL) before anything is sent.
            requests.PreparedRequest().prepare_url(self.base_url, None)
            found = self.session.merge_environment_settings(self.base_url, {}, None, None, None)
            if urlsplit(self.base_url).scheme == "http":
                # No certificate to check: not even a CA bundle's path, which requests looks up on disk
                # for every request (REQUESTS_CA_BUNDLE).
                found["verify"] = True
            self._transport_settings = {name: found[name] for name in ("proxies", "verify", "cert")}
        return self._transport_settings

    def _remaining(self, deadline: float, url: str) -> float:
        """Seconds left before the deadline; DeadlineExceeded when none are."""
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise DeadlineExceeded(f"{_host(url)} did not answer within {self.deadline:g} s")
        return remaining

    def _read_body(self, response: requests.Response, deadline: float, url: str) -> None:
        """Read the answer's body into the response, within the deadline and the size limit.

        A watchdog shuts the socket at the deadline, so that a read blocked on a server that sends one
        byte every few seconds ends then, rather than a read timeout after the last byte.
        """
        limit = self.max_response_bytes
        declared = response.headers.get("content-length", "")
        too_large = ResponseTooLarge(
            f"The answer of {_host(url)} is larger than {limit:,} bytes; it was not read",
            status=response.status_code,
        )
        if declared.isdigit() and int(declared) > limit:
            response.close()
            raise too_large
        watched = _watchdog.watch(deadline, response)
        chunks, size = [], 0
        try:
            for chunk in response.iter_content(64 * 1024):
                size += len(chunk)
                if size > limit:
                    response.close()
                    raise too_large
                chunks.append(chunk)
        except (requests.RequestException, OSError):
            self._remaining(deadline, url)
            raise
        finally:
            _watchdog.release(watched)
        self._remaining(deadline, url)
        response._content = b"".join(chunks)

    def _retry_wait(self, response: requests.Response, error: APIError, attempt: int) -> float | None:
        """Seconds to wait before retrying, or None when the error should be raised now."""
        if attempt >= self.max_retries or isinstance(error, QuotaExceeded):
            return None
        should_retry = response.headers.get("x-should-retry")
        if should_retry == "false":
            return None
        status = response.status_code
        if should_retry != "true" and status not in RETRY_STATUSES and status < 500:
            return None
        asked = retry_after(response.headers, status=status)
        if asked is None or asked <= 0:
            return min(backoff(attempt), self.max_wait)
        return asked if asked <= self.max_wait else None

    @staticmethod
    def _decode(response: requests.Response) -> dict:
        if response.status_code == 204 or not response.content.strip():
            # Some servers answer DELETE with no body at all.
            return {}
        try:
            payload = response.json()
        except ValueError:
            payload = None
        if not isinstance(payload, dict):
            what = _describe_body(response) if payload is None else "JSON that is not an object"
            raise InvalidResponse(
                f"The API answered {response.status_code} with {what} instead of a JSON object",
                status=response.status_code,
                request_id=response.headers.get("x-request-id"),
            )
        return payload
