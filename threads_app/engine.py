"""Running many API calls at once for background work (deletion jobs, checks of imported threads).

Each credential gets a lane: its own client, a pool of `credential.concurrency` threads, and the
project's shared rate limit (`ratelimit.Throttle`). The calling thread claims units of work for each lane
as room frees up, and records the results in batches; pool threads only talk to the API, so every
database write happens on the calling thread, in a few statements per batch. Threads the units leave
idle are lent to a unit with several calls to make (`Client.each`: a long conversation's items).

The callbacks:
- `claim(credential, n)`: up to n units to start now; [] when none is ready yet; None when the lane has
  no more work;
- `call(client, unit)`: the API work for one unit, in a pool thread; it returns a result;
- `record(credential, [(unit, result), …])`: write the results; it returns True to stop the lane (its
  credential was refused, say);
- `stops_lane(result)`: True for a result that makes every other call of the lane pointless (the key
  was refused): the lane stops claiming at once, before its results are recorded;
- `tick()`: called about once a second; it returns False to stop everything (the job was cancelled);
- `release(credential, units)`: units claimed but never sent, when a lane stops early;
- `capacity(credential)`: how many calls of the lane run at once (the credential's concurrency, unless
  several runs share it).
"""

import functools
import logging
import time
from collections.abc import Callable
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field

from .client import Client, new_session
from .ratelimit import Cancelled, Throttle

logger = logging.getLogger(__name__)

# Results are written at least this often, and at the latest when this many have gathered.
FLUSH_SECONDS = 0.25
FLUSH_SIZE = 200
TICK_SECONDS = 1.0
IDLE_WAIT = 0.2

NOT_SENT = object()  # the result of a call cancelled before it sent anything


@dataclass(eq=False)
class Lane:
    credential: object
    capacity: int  # calls at once
    client: Client
    throttle: Throttle
    pool: ThreadPoolExecutor
    futures: dict[Future, object] = field(default_factory=dict)
    results: list = field(default_factory=list)
    exhausted: bool = False
    stopped: bool = False
    ready_at: float = 0.0  # when to ask claim() again after it had nothing ready


def _lane(credential, capacity: int, client_options) -> Lane:
    throttle = Throttle(credential)
    session = new_session(pool_size=capacity)
    client = Client.for_credential(credential, throttle=throttle, session=session, **client_options)
    pool = ThreadPoolExecutor(max_workers=capacity, thread_name_prefix="threadsite-api")
    lane = Lane(credential, capacity, client, throttle, pool)
    client.lend = functools.partial(_lend, lane)
    return lane


def _lend(lane: Lane, work, wanted: int) -> list[Future]:
    """Run `work` on up to `wanted` of the lane's threads that its units leave idle (`Client.each`): a
    conversation with many items, alone in its job, has them deleted several at once. The pool's size
    is still the bound on calls at once; a lane full of units lends nothing."""
    idle = min(wanted, lane.capacity - len(lane.futures))
    try:
        return [lane.pool.submit(work) for _ in range(idle)]
    except RuntimeError:  # the pool is shutting down (the run is ending): nothing to lend
        return []


def _guarded(lane: Lane, call, stops_lane, unit):
    """One call on a pool thread. A lane stopped by an answer (a refused key, no quota) sends nothing
    more: the answer stops it here, at once, so that a unit queued behind it on the same pool thread
    is released unsent rather than sent before the loop has read the answer."""
    if lane.stopped:
        return NOT_SENT
    try:
        result = call(lane.client, unit)
    except Cancelled:
        return NOT_SENT
    if stops_lane is not None and stops_lane(result):
        lane.stopped = True
        lane.throttle.cancel()
    return result


def run(
    credentials,
    *,
    claim: Callable,
    call: Callable,
    record: Callable,
    tick: Callable[[], bool] | None = None,
    release: Callable | None = None,
    stops_lane: Callable[[object], bool] | None = None,
    client_options: dict | None = None,
    capacity: Callable[[object], int] | None = None,
) -> bool:
    """Run every lane to its end. Returns False if `tick` stopped the run early, else True.

    `capacity(credential)`: how many calls the lane makes at once; by default the credential's
    concurrency (at least 1). A lane of no capacity is not run."""
    capacity = capacity or (lambda credential: max(1, credential.concurrency))
    lanes = [
        _lane(credential, size, client_options or {})
        for credential in credentials
        if (size := capacity(credential)) > 0
    ]
    stopping = False
    last_tick = last_flush = time.monotonic()
    try:
        while True:
            now = time.monotonic()
            if tick is not None and now - last_tick >= TICK_SECONDS:
                last_tick = now
                if not stopping and not tick():
                    stopping = True
                    for lane in lanes:
                        _stop(lane)
            for lane in lanes:
                if lane.stopped or lane.exhausted or now < lane.ready_at:
                    continue
                # Keep a second round queued behind the running one, so that threads never wait on us.
                room = 2 * lane.capacity - len(lane.futures)
                if room < lane.capacity:
                    continue
                units = claim(lane.credential, room)
                if units is None:
                    lane.exhausted = True
                elif not units:
                    lane.ready_at = now + IDLE_WAIT
                for unit in units or ():
                    lane.futures[lane.pool.submit(_guarded, lane, call, stops_lane, unit)] = unit
            running = [future for lane in lanes for future in lane.futures]
            if running:
                wait(running, timeout=IDLE_WAIT, return_when=FIRST_COMPLETED)
            elif all(lane.exhausted or lane.stopped for lane in lanes):
                break
            else:
                time.sleep(IDLE_WAIT)
            for lane in lanes:
                for future in [future for future in lane.futures if future.done()]:
                    unit = lane.futures.pop(future)
                    result = NOT_SENT if future.cancelled() else future.result()
                    lane.results.append((unit, result))
                    if stops_lane is not None and result is not NOT_SENT and stops_lane(result):
                        _stop(lane)
            now = time.monotonic()
            pending_results = sum(len(lane.results) for lane in lanes)
            if pending_results >= FLUSH_SIZE or (pending_results and now - last_flush >= FLUSH_SECONDS):
                last_flush = now
                for lane in lanes:
                    _flush(lane, record, release)
        for lane in lanes:
            _flush(lane, record, release)
    finally:
        for lane in lanes:
            lane.throttle.cancel()
            lane.pool.shutdown(wait=True, cancel_futures=True)
    return not stopping


def _stop(lane: Lane) -> None:
    """Stop claiming for the lane and wake the calls still waiting for a slot; running ones finish."""
    lane.stopped = True
    lane.throttle.cancel()
    for future in lane.futures:
        future.cancel()


def _flush(lane: Lane, record, release) -> None:
    results, lane.results = lane.results, []
    unsent = [unit for unit, result in results if result is NOT_SENT]
    sent = [(unit, result) for unit, result in results if result is not NOT_SENT]
    # Unsent units first: a lane stopped by what it records must find them back in the queue.
    if unsent and release is not None:
        release(lane.credential, unsent)
    if sent and record(lane.credential, sent) and not lane.stopped:
        _stop(lane)
