"""The engine that runs API calls for background work: bounded per credential, results on one thread."""

import threading

import pytest

from threads_app import engine
from threads_app.models import Credential


def credential(name, concurrency):
    cred = Credential(
        name=name, base_url="http://127.0.0.1:9/v1", project_id=f"proj_{name}", concurrency=concurrency
    )
    cred.api_key = "sk-engine-test-0001"
    cred.pk = {"a": 1, "b": 2}[name]
    return cred


@pytest.mark.parametrize(
    ("capacity", "most_at_once"),
    [
        (None, {1: 3, 2: 1}),  # each credential's concurrency
        ({1: 2, 2: 0}, {1: 2, 2: 0}),  # a run's shares of it: a lane of none is not run at all
    ],
)
def test_each_credential_keeps_at_most_its_concurrency_in_flight_and_results_are_recorded_here(
    capacity, most_at_once
):
    credentials = [credential("a", 3), credential("b", 1)]
    queues = {cred.pk: list(range(40)) for cred in credentials}
    running, most, lock, recorded = {1: 0, 2: 0}, {1: 0, 2: 0}, threading.Lock(), []
    caller = threading.current_thread()
    release = threading.Semaphore(0)

    def claim(cred, n):
        queue = queues[cred.pk]
        if not queue:
            return None
        taken, queue[:] = queue[:n], queue[n:]
        return [(cred.pk, unit) for unit in taken]

    def call(client, unit):
        pk, _ = unit
        with lock:
            running[pk] += 1
            most[pk] = max(most[pk], running[pk])
        release.acquire(timeout=0.01)
        with lock:
            running[pk] -= 1
        return unit[1] * 2

    def record(cred, results):
        assert threading.current_thread() is caller
        recorded.extend((cred.pk, unit[1], result) for unit, result in results)
        return False

    options = {"capacity": lambda cred: capacity[cred.pk]} if capacity else {}
    assert engine.run(credentials, claim=claim, call=call, record=record, **options)
    assert most == most_at_once
    served = [pk for pk, at_once in most_at_once.items() if at_once]
    assert sorted(recorded) == sorted((pk, n, 2 * n) for pk in served for n in range(40))
    assert all(queues[pk] for pk in most_at_once if pk not in served), "nothing claimed for a lane not run"


def test_a_result_that_stops_the_lane_ends_its_claims_and_releases_what_was_not_sent():
    cred = credential("a", 1)
    queue, released, sent = list(range(10)), [], []

    def claim(cred, n):
        if not queue:
            return None
        taken, queue[:] = queue[:n], queue[n:]
        return taken

    def call(client, unit):
        sent.append(unit)
        return "refused" if unit == 0 else "ok"

    engine.run(
        [cred],
        claim=claim,
        call=call,
        record=lambda cred, results: any(result == "refused" for _, result in results),
        release=lambda cred, units: released.extend(units),
        stops_lane=lambda result: result == "refused",
    )
    # With one call at a time, nothing is sent after the refusal, though a unit was queued behind it.
    assert sent == [0]
    assert set(sent) | set(released) | set(queue) == set(range(10))


def test_a_unit_alone_in_its_lane_is_lent_the_idle_threads_and_a_full_lane_lends_none():
    cred = credential("a", 4)
    barrier = threading.Barrier(4, timeout=5)  # passed only by four calls at once
    running, most, lock = [0], [0], threading.Lock()

    def step(n):
        with lock:
            running[0] += 1
            most[0] = max(most[0], running[0])
        if n < 4:
            barrier.wait()
        with lock:
            running[0] -= 1
        return n * n

    def run(units):
        queue, recorded = list(units), []

        def claim(cred, n):
            if not queue:
                return None
            taken, queue[:] = queue[:n], queue[n:]
            return taken

        def record(cred, results):
            recorded.extend(result for _, result in results)

        assert engine.run(
            [cred], claim=claim, call=lambda client, unit: client.each(step, list(range(12))), record=record
        )
        return recorded

    # One unit of twelve calls: the three idle threads work with it, and the results keep their order.
    assert run(["alone"]) == [[n * n for n in range(12)]]
    assert most[0] == 4
    # Ten units: they fill the four threads; a unit's calls then go in turn, never more than four at once.
    barrier, most[0] = threading.Barrier(1), 0
    assert run(range(10)) == [[n * n for n in range(12)]] * 10
    assert most[0] <= 4
