"""The sweeps against the simulated API at 50 ms latency and 100 requests/s; print the figures.

    .venv/bin/python benchmarks/sweeps.py [--expiry-threads 10000] [--conversations 5000] [--exempt 300]
        [--database postgres://postgres@127.0.0.1:5432/threadsite_bench_sweeps | --sqlite]

1. The expiry check: `--expiry-threads` Assistants threads that the registry last saw active 70 days ago;
   four in five were left idle on the API's side (which has removed them: 404), one in five was used
   since (alive: its activity is refreshed). `sweeps.run("expiry")` at 100 requests/s, against what the
   limit allows for the requests it made (requests / 100 per s; target within 1.2×).
2. A retention policy: `--conversations` conversations, four in five idle for 90 days and the others for
   10, `--exempt` of the idle ones exempt (half pinned, half owned by an exempt owner), a 60-day policy
   on "delete". The first sweep previews exactly the idle ones less the exempt ones and awaits
   confirmation; confirmed, its job deletes exactly those; a second sweep finds nothing to do.

The simulator runs in a child process (its own interpreter), as in `delete_jobs.py`, whose helpers this
script shares. Takes about 5 minutes with the defaults on 2 cores.
"""

import argparse
import os
import sys
import time
from datetime import timedelta

from delete_jobs import (
    API_KEY,
    DEFAULT_DATABASE,
    LATENCY_MS,
    LIMIT_PER_MINUTE,
    PROJECT,
    benchmark_django,
    read_log,
)

from threads_app.simulator import SimulatorConfig, SimulatorProcess


def credential_for(sim, name):
    from threads_app.models import Credential

    credential = Credential(
        name=name, base_url=sim.base_url, project_id=PROJECT, requests_per_minute=LIMIT_PER_MINUTE
    )
    credential.api_key = API_KEY
    credential.save()
    return credential


def track(credential, remote_ids, kind, idle_days, **fields):
    from django.utils import timezone

    from threads_app.models import Thread

    moment = timezone.now() - timedelta(days=idle_days)
    Thread.objects.bulk_create(
        [
            Thread(
                remote_id=remote_id,
                kind=kind,
                credential=credential,
                remote_created_at=moment,
                last_activity_at=moment,
                **fields,
            )
            for remote_id in remote_ids
        ],
        batch_size=1000,
    )


def expiry_check(count: int) -> list[str]:
    from threads_app import sweeps
    from threads_app.models import Thread

    config = SimulatorConfig(latency_ms=LATENCY_MS, rate_limit_per_minute=LIMIT_PER_MINUTE, seed=11)
    with SimulatorProcess(config) as sim:
        sim.call("add_key", API_KEY, PROJECT)
        kinds = ("assistants_thread",)
        idle = sim.call("seed_bulk", PROJECT, count=count * 4 // 5, kinds=kinds, idle_days=70, seed=11)
        used = sim.call("seed_bulk", PROJECT, count=count - len(idle), kinds=kinds, seed=12)
        credential = credential_for(sim, "expiry")
        track(credential, idle + used, "assistants_thread", 70)
        sim.call("request_log", clear=True)
        started = time.perf_counter()
        result = sweeps.run("expiry")
        elapsed = time.perf_counter() - started
        log = read_log(sim.call("request_log"))
    allowed = log.requests / (LIMIT_PER_MINUTE / 60)
    expired = Thread.objects.filter(status=Thread.Status.EXPIRED).count()
    print(
        f"expiry     {count:,} threads in {elapsed:.2f} s: {result.summary}; {log.requests:,} requests, "
        f"429s {log.rate_limited}; the limit allows {allowed:.2f} s: ratio {elapsed / allowed:.3f}"
    )
    problems = []
    if expired != len(idle):
        problems.append(f"expiry: {expired} expired, expected {len(idle)}")
    if elapsed > 1.2 * allowed:
        problems.append(f"expiry: {elapsed / allowed:.2f}× the time the limit allows (target 1.2×)")
    return problems


def retention_policy(count: int, exempt: int) -> list[str]:
    from django.contrib.auth import get_user_model
    from django.utils import timezone

    from threads_app import deletion, retention, sweeps
    from threads_app.models import DeletionJob, Thread

    config = SimulatorConfig(latency_ms=LATENCY_MS, rate_limit_per_minute=LIMIT_PER_MINUTE, seed=21)
    problems = []
    with SimulatorProcess(config) as sim:
        sim.call("add_key", API_KEY, PROJECT)
        kinds = ("conversation",)
        old_count = count * 4 // 5
        old = sim.call(
            "seed_bulk", PROJECT, count=old_count, kinds=kinds, idle_days=90, items=(1, 2), seed=21
        )
        recent = sim.call("seed_bulk", PROJECT, count=count - old_count, kinds=kinds, idle_days=10, seed=22)
        credential = credential_for(sim, "retention")
        keeper = get_user_model().objects.create(username="keeper")
        pinned, owned = old[: exempt // 2], old[exempt // 2 : exempt]
        track(credential, pinned, "conversation", 90, pinned=True)
        track(credential, owned, "conversation", 90, owner=keeper)
        track(credential, old[exempt:], "conversation", 90)
        track(credential, recent, "conversation", 10)
        retention.set_policy(credential, mode=retention.Mode.DELETE, window_days=60, exempt_owners=[keeper])
        sim.call("request_log", clear=True)

        started = time.perf_counter()
        [preview] = sweeps.run("retention").jobs
        previewed = time.perf_counter() - started
        expected = set(old[exempt:])
        chosen = set(preview.items.values_list("remote_id", flat=True))
        print(
            f"retention  first sweep ({count:,} conversations, {exempt} exempt): looked up and previewed "
            f"{preview.total:,} in {previewed:.2f} s, state {preview.state}; expected {len(expected):,}"
        )
        if chosen != expected or preview.state != DeletionJob.State.AWAITING:
            problems.append("retention: the first sweep did not preview exactly the idle, unexempt ones")

        started = time.perf_counter()
        assert deletion.confirm_job(preview, by=keeper)  # tasks run inline here: the job runs now
        preview.refresh_from_db()
        deleted = time.perf_counter() - started
        live = set(sim.call("live_ids", PROJECT)["conversation"])
        print(
            f"retention  confirmed: job {preview.pk} {preview.state} in {deleted:.2f} s, {preview.deleted:,} "
            f"deleted, {preview.already_gone} already gone, {preview.failed} failed; receipt lines "
            f"{sum(1 for _ in deletion.receipt_rows(preview)):,}"
        )
        if live != set(old[:exempt]) | set(recent):
            problems.append("retention: the simulator does not hold exactly the exempt and recent ones")
        second = sweeps.run("retention")
        print(f"retention  second sweep: {second.summary}")
        if second.jobs:
            problems.append("retention: the second sweep found something to do")
        past = Thread.objects.filter(retention.removed_by(timezone.now())).count()
        if past:
            problems.append(f"retention: {past} threads still past the window")
    return problems


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--expiry-threads", type=int, default=10_000)
    parser.add_argument("--conversations", type=int, default=5000)
    parser.add_argument("--exempt", type=int, default=300)
    parser.add_argument("--database", default=DEFAULT_DATABASE.replace("_delete", "_sweeps"))
    parser.add_argument("--sqlite", action="store_true", help="use a temporary SQLite file instead")
    args = parser.parse_args()
    with benchmark_django(args.database, sqlite=args.sqlite) as database:
        print(
            f"{database}, simulator at {LATENCY_MS} ms and {LIMIT_PER_MINUTE // 60} requests/s in a child "
            f"process; {os.cpu_count()} CPUs"
        )
        problems = expiry_check(args.expiry_threads)
        problems += retention_policy(args.conversations, args.exempt)
    for problem in problems:
        print(f"MISSED: {problem}")
    sys.exit(1 if problems else 0)


if __name__ == "__main__":
    main()
