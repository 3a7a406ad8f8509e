"""One request-rate limiter per API project, shared by every worker: through Redis when there is one
(REDIS_URL), else in this process.

The API limits requests per minute per project, and answers 429 past it. Background work runs at that
limit instead of bouncing off it: before each request a worker reserves the next free slot of the
project's schedule and sleeps until its time (GCRA, the "virtual scheduling" form of a token bucket: one
number per project, the theoretical arrival time, so a reservation is one atomic step). The limit is the
credential's own setting, or what the API's `x-ratelimit-limit-requests` says, whichever is lower; a 429's
wait, or an answer that says no requests remain, pauses every worker of that project.

A project is named by its base URL, organization and project ID; a credential with no project ID is its
own project (by a hash of its key, never the key).
"""

import hashlib
import threading
import time
from functools import cache
from urllib.parse import urlsplit

from django.conf import settings

from .client import parse_duration

# How far ahead of the steady pace requests may run: one second of the limit (at least one request).
BURST_SECONDS = 1.0
# A limit learned from the API's headers is trusted this long without being seen again.
LEARNED_TTL = 3600


def pace(per_minute: int, burst_seconds: float = BURST_SECONDS) -> tuple[float, float]:
    """The schedule of a limit (both limiters', both ways of asking): the interval between two requests,
    and how far ahead of it requests may run (`burst_seconds` of the limit, at least one request)."""
    interval = 60.0 / per_minute
    return interval, max(0.0, per_minute / 60.0 * burst_seconds - 1) * interval


class Cancelled(Exception):
    """The work this request belonged to was cancelled while it waited for its slot."""


def bucket_key(credential) -> str:
    parts = urlsplit(credential.base_url)
    host = (parts.netloc.rpartition("@")[2] or credential.base_url).lower()
    project = credential.project_id or "key:" + hashlib.sha256(credential.api_key.encode()).hexdigest()[:16]
    return f"{host}{parts.path.rstrip('/')}|{credential.organization_id or '-'}|{project}"


class MemoryLimiter:
    """The limiter of one process: the embedded default, and tests of the fast layer."""

    def __init__(self, clock=time.monotonic):
        self._lock = threading.Lock()
        self._arrival: dict[str, float] = {}
        self._learned: dict[str, tuple[int, float]] = {}
        self._clock = clock

    def reserve(self, key: str, per_minute: int | None) -> float:
        """Reserve the next request of `key` at `per_minute`; return how long to wait before sending it."""
        with self._lock:
            now = self._clock()
            arrival = max(self._arrival.get(key, now), now)
            if not per_minute:
                # No known limit: send now, unless a pause holds the project back.
                return max(0.0, self._arrival.get(key, now) - now)
            interval, tolerance = pace(per_minute)
            wait = max(0.0, arrival - tolerance - now)
            self._arrival[key] = arrival + interval
            return wait

    def take(self, key: str, per_minute: int, burst_seconds: float = BURST_SECONDS) -> float:
        """As `reserve`, but only when no wait is needed: 0 (the request is counted) or the seconds until
        one would be allowed (nothing is counted). For callers that refuse rather than wait (API tokens)."""
        with self._lock:
            now = self._clock()
            arrival = max(self._arrival.get(key, now), now)
            interval, tolerance = pace(per_minute, burst_seconds)
            wait = max(0.0, arrival - tolerance - now)
            if wait == 0:
                self._arrival[key] = arrival + interval
            return wait

    def pause(self, key: str, seconds: float) -> None:
        """Hold every request of `key` back for `seconds` (the server asked for it)."""
        with self._lock:
            now = self._clock()
            self._arrival[key] = max(self._arrival.get(key, now), now + seconds)

    def learn(self, key: str, per_minute: int) -> None:
        with self._lock:
            self._learned[key] = (per_minute, self._clock() + LEARNED_TTL)

    def learned(self, key: str) -> int | None:
        with self._lock:
            value = self._learned.get(key)
            return value[0] if value and value[1] > self._clock() else None


# KEYS[1]: the arrival time of the project. ARGV: interval, tolerance (seconds; interval 0 = no limit).
_RESERVE = """
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local stored = tonumber(redis.call('GET', KEYS[1]) or '0')
local interval = tonumber(ARGV[1])
local tolerance = tonumber(ARGV[2])
local arrival = math.max(stored, now)
if interval == 0 then
    return tostring(math.max(0, stored - now))
end
local wait = math.max(0, arrival - tolerance - now)
local ttl = math.ceil((arrival + interval - now) * 1000) + 60000
redis.call('SET', KEYS[1], tostring(arrival + interval), 'PX', ttl)
return tostring(wait)
"""
# As _RESERVE with a limit, but nothing is stored unless the request may go now.
_TAKE = """
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local stored = tonumber(redis.call('GET', KEYS[1]) or '0')
local interval = tonumber(ARGV[1])
local tolerance = tonumber(ARGV[2])
local arrival = math.max(stored, now)
local wait = math.max(0, arrival - tolerance - now)
if wait == 0 then
    local ttl = math.ceil((arrival + interval - now) * 1000) + 60000
    redis.call('SET', KEYS[1], tostring(arrival + interval), 'PX', ttl)
end
return tostring(wait)
"""
# KEYS[1]: the arrival time of the project. ARGV[1]: seconds to hold every request back.
_PAUSE = """
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local stored = tonumber(redis.call('GET', KEYS[1]) or '0')
local arrival = math.max(stored, now + tonumber(ARGV[1]))
redis.call('SET', KEYS[1], tostring(arrival), 'PX', math.ceil((arrival - now) * 1000) + 60000)
return tostring(arrival - now)
"""


class RedisLimiter:
    """The limiter shared by every worker and web process through Redis; Redis's clock is the only one.

    With no limit known, only a pause holds requests back; each process then reads a project's pause at
    most every PAUSE_POLL seconds rather than on every request (a round trip to Redis per request cost a
    busy worker more than the request), so a pause another process sets is seen within that time."""

    PREFIX = "threadsite:ratelimit:"
    PAUSE_POLL = 0.1

    def __init__(self, url: str, clock=time.monotonic):
        import redis

        self._redis = redis.Redis.from_url(url)
        self._reserve = self._redis.register_script(_RESERVE)
        self._pause = self._redis.register_script(_PAUSE)
        self._take = self._redis.register_script(_TAKE)
        self._clock = clock
        self._pauses: dict[str, tuple[float, float]] = {}  # key: (when read, this process's clock; wait)

    def reserve(self, key: str, per_minute: int | None) -> float:
        if not per_minute:
            return self._pause_left(key)
        interval, tolerance = pace(per_minute)
        return float(self._reserve(keys=[self.PREFIX + key], args=[repr(interval), repr(tolerance)]))

    def _pause_left(self, key: str) -> float:
        now = self._clock()
        read_at, wait = self._pauses.get(key, (-self.PAUSE_POLL, 0.0))
        if now - read_at >= self.PAUSE_POLL:
            wait = float(self._reserve(keys=[self.PREFIX + key], args=["0.0", "0.0"]))
            read_at = now
            self._pauses[key] = (now, wait)
        return max(0.0, wait - (now - read_at))

    def take(self, key: str, per_minute: int, burst_seconds: float = BURST_SECONDS) -> float:
        interval, tolerance = pace(per_minute, burst_seconds)
        return float(self._take(keys=[self.PREFIX + key], args=[repr(interval), repr(tolerance)]))

    def pause(self, key: str, seconds: float) -> None:
        wait = float(self._pause(keys=[self.PREFIX + key], args=[repr(float(seconds))]))
        self._pauses[key] = (self._clock(), wait)  # this process holds back at once

    def learn(self, key: str, per_minute: int) -> None:
        self._redis.set(f"{self.PREFIX}learned:{key}", per_minute, ex=LEARNED_TTL)

    def learned(self, key: str) -> int | None:
        value = self._redis.get(f"{self.PREFIX}learned:{key}")
        return int(value) if value else None


@cache
def _limiter_for(url: str):
    return RedisLimiter(url) if url else MemoryLimiter()


def limiter():
    return _limiter_for(settings.REDIS_URL)


def _header_int(headers, name: str) -> int | None:
    try:
        value = int(headers.get(name, ""))
    except ValueError:
        return None
    return value if value >= 0 else None


class Throttle:
    """What the client calls around every request of one credential: wait for a slot, then learn from
    the answer. `cancel()` wakes every waiting request with Cancelled."""

    def __init__(self, credential, limiter=None):
        self.key = bucket_key(credential)
        self.configured = credential.requests_per_minute or None
        self.limiter = limiter or _limiter_for(settings.REDIS_URL)
        self._cancelled = threading.Event()
        self._learned = self.limiter.learned(self.key)

    @property
    def per_minute(self) -> int | None:
        """The limit in force: the credential's setting or the API's, whichever is lower."""
        known = [value for value in (self.configured, self._learned) if value]
        return min(known) if known else None

    def cancel(self) -> None:
        self._cancelled.set()

    def before_request(self) -> None:
        if self._cancelled.is_set():
            raise Cancelled
        wait = self.limiter.reserve(self.key, self.per_minute)
        if wait > 0 and self._cancelled.wait(wait):
            raise Cancelled

    def after_response(self, headers, status: int, retry_after: float | None) -> None:
        limit = _header_int(headers, "x-ratelimit-limit-requests")
        if limit and limit != self._learned:
            self._learned = limit
            self.limiter.learn(self.key, limit)
        if status == 429 and retry_after:
            self.limiter.pause(self.key, retry_after)
        elif limit and _header_int(headers, "x-ratelimit-remaining-requests") == 0:
            # Out of requests for now: wait for the next one to come back (not for the whole window).
            reset = parse_duration(headers.get("x-ratelimit-reset-requests", "")) or 0.0
            self.limiter.pause(self.key, min(reset, 60.0 / limit))


def person_may_call_api(user) -> bool:
    """Whether a person may make one more API call from a page this minute (at most
    THREADSITE_PAGE_API_CALLS_PER_MINUTE): pages that read from the API on a GET also record what it
    said, and another site's links or a stuck script must not turn that into a flood."""
    from django.core.cache import cache

    key = f"threadsite:page-calls:{user.pk}:{int(time.time() // 60)}"
    cache.add(key, 0, timeout=120)
    try:
        count = cache.incr(key)
    except ValueError:  # evicted between add and incr
        cache.set(key, 1, timeout=120)
        count = 1
    return count <= settings.THREADSITE_PAGE_API_CALLS_PER_MINUTE
