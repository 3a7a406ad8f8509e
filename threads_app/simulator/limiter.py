"""The per-project request-rate limit, a token bucket like the API's requests-per-minute limit."""

import math
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Decision:
    allowed: bool
    limit: int
    remaining: int
    reset_seconds: float  # until the bucket is full again
    retry_after_seconds: float  # until the next request would pass (0 when allowed)

    def headers(self) -> dict[str, str]:
        return {
            "x-ratelimit-limit-requests": str(self.limit),
            "x-ratelimit-remaining-requests": str(self.remaining),
            "x-ratelimit-reset-requests": format_duration(self.reset_seconds),
        }


class RateLimiter:
    """`per_minute` requests per project, refilled continuously; not thread-safe (the state's lock is)."""

    def __init__(self):
        self._buckets: dict[str, tuple[float, float]] = {}  # project -> (tokens, at)

    def take(self, project_id: str, per_minute: int, now: float) -> Decision:
        rate = per_minute / 60.0
        tokens, at = self._buckets.get(project_id, (float(per_minute), now))
        # The limit may be changed while the simulator runs: never hold more than the new capacity.
        tokens = min(float(per_minute), tokens + max(0.0, now - at) * rate)
        allowed = tokens >= 1.0
        if allowed:
            tokens -= 1.0
        self._buckets[project_id] = (tokens, now)
        return Decision(
            allowed=allowed,
            limit=per_minute,
            remaining=int(tokens),
            reset_seconds=(per_minute - tokens) / rate,
            retry_after_seconds=0.0 if allowed else (1.0 - tokens) / rate,
        )

    def reset(self) -> None:
        self._buckets.clear()


def format_duration(seconds: float) -> str:
    """The API's way of writing a wait: `250ms`, `1s`, `8.64s`, `6m0s`."""
    if seconds < 1:
        return f"{max(1, round(seconds * 1000))}ms" if seconds > 0 else "0s"
    if seconds < 60:
        return f"{_trim(seconds)}s"
    minutes = int(seconds // 60)
    return f"{minutes}m{_trim(seconds - minutes * 60)}s"


def retry_after_header(seconds: float) -> str:
    # Whole seconds, at least 1: the spec's TooManyRequests response declares an integer >= 1.
    return str(max(1, math.ceil(seconds)))


def _trim(seconds: float) -> str:
    text = f"{seconds:.3f}".rstrip("0").rstrip(".")
    return text or "0"
