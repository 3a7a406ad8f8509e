"""The knobs of the simulated remote: latency, rate limit, faults, dropped connections.

Two ways of dropping a connection, as real deployments do: `drop` closes it before the request is handled
(nothing happened; a load balancer gave up), `drop_after` closes it after the server carried the request
out, so that a DELETE is done but its answer never arrives (a proxy timed out, a connection was reset on
the way back). A client that retries the second sees a 404 for what it deleted itself.

The hostile faults (HOSTILE_FAULTS, served by hostile.py) are what a broken or malicious server answers:
- `slow_body`: a 200 declaring a large Content-Length, then a byte every `drip_interval` seconds;
- `no_headers`: the request read, never answered;
- `huge_body`: a valid-looking 200 JSON list of `huge_body_bytes` (far past the client's 20 MB limit);
- `echo_key`: a 200 `text/plain` that quotes the request's Authorization / api-key header;
- `endless_list`: a list endpoint (messages, items, ChatKit threads or items) that always has more, with a
  new cursor and fresh entries; paging on from its cursors stays endless;
- `bad_ids`: the ChatKit threads list adds entries with malformed IDs (empty, CRLF, markup, a path, 305
  characters), every entry with 200 metadata pairs.
The first three hang or stream until the client gives up or the server closes; the server's other
connections are answered meanwhile. The two list faults answer any other endpoint as usual.
"""

from dataclasses import dataclass

# The faults `SimulatorState.enqueue_faults` accepts, besides "slow:SECONDS".
HOSTILE_FAULTS = ("slow_body", "no_headers", "huge_body", "echo_key", "endless_list", "bad_ids")
FAULTS = ("429", "429_ms", "429_quota", "500", "503", "502_html", "drop", "drop_after", *HOSTILE_FAULTS)
# What `fault_rate` picks from, at random.
RANDOM_FAULTS = ("500", "503", "502_html")


@dataclass
class SimulatorConfig:
    """Mutable on purpose: tests may turn a knob while the simulator runs; each request reads them anew."""

    latency_ms: int = 0
    rate_limit_per_minute: int = 0  # 0 = off; counted per project
    fault_rate: float = 0.0  # share of requests answered 500, 503 or an HTML 502
    drop_rate: float = 0.0  # share of requests whose connection is closed with no answer
    drop_after_rate: float = 0.0  # share of requests carried out, whose connection is then closed unanswered
    hostile_rate: float = 0.0  # share of requests answered with one of HOSTILE_FAULTS, picked at random
    drip_interval: float = 1.0  # seconds between the bytes of a slow_body
    huge_body_bytes: int = 64 * 1024 * 1024  # the length of a huge_body
    seed: int | None = None  # makes the random faults, and the IDs of a fresh state, repeatable
    # A streamed response (POST /responses with stream: true): the wait before its first token, and
    # between the tokens after it, as a model paces them.
    stream_first_token_ms: int = 300
    stream_token_ms: int = 30

    def __post_init__(self):
        if self.latency_ms < 0 or self.rate_limit_per_minute < 0:
            raise ValueError("latency_ms and rate_limit_per_minute must be 0 or more")
        for name in ("fault_rate", "drop_rate", "drop_after_rate", "hostile_rate"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"{name} must be between 0 and 1")
        if self.stream_first_token_ms < 0 or self.stream_token_ms < 0:
            raise ValueError("stream_first_token_ms and stream_token_ms must be 0 or more")
        if self.drip_interval <= 0 or self.huge_body_bytes <= 0:
            raise ValueError("drip_interval and huge_body_bytes must be more than 0")


def check_fault(fault: str) -> str:
    if fault in FAULTS:
        return fault
    if fault.startswith("slow:"):
        try:
            seconds = float(fault.removeprefix("slow:"))
        except ValueError:
            seconds = -1.0
        if seconds >= 0:
            return fault
    raise ValueError(f"Unknown fault {fault!r}: use one of {', '.join(FAULTS)} or slow:SECONDS")
