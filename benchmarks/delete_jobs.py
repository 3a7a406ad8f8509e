"""Deletion jobs against the simulated API at 50 ms latency, against a loop of the official client; print
the figures.

    .venv/bin/python benchmarks/delete_jobs.py [--threads 10000] [--concurrency 128,192,256] [--runs 2]
        [--limited-threads 10000] [--fault-threads 3000] [--check-threads 1000] [--sample 200]
        [--database postgres://postgres@127.0.0.1:5432/threadsite_bench_delete_PID | --sqlite]
        [--redis-url redis://127.0.0.1:6379/14]

Every run talks to a fresh simulator in a child process (`simulator.process.SimulatorProcess`: its own
interpreter, so serving the API does not share a GIL with the job) answering after 50 ms, seeded with
the three kinds in one project: Assistants threads, conversations with 1-3 items, ChatKit threads. The
job side runs as Celery workers run it: `deletion.create_job(…, start=False)` made with `--runs` runs
(THREADSITE_RUNS_PER_JOB), then `deletion.run_job(job.pk)` in this process and at the same moment in
`--runs` - 1 other processes (started and set up beforehand, as workers are), each with its share of the
credential's concurrency; conversations' items are deleted first.

1. Baseline: a sequential loop of the official `openai` client's delete calls over `--sample` threads
   (and, for reference, the same loop deleting conversations' items first, as the job does).
2. The job with no rate limit, once for each `--concurrency` (the credential's setting, shared by the
   runs); `--threads` threads registered through `importing.import_threads`. The speed-up is the loop's
   time per thread over the job's. With `--runs` above 1, the best concurrency again in one process;
   and once keeping conversations' items, which is the loop's work (delete calls only, 1.05 requests a
   thread with the sampled lookups, where deleting items first makes about 2).
3. The job at 100 requests/s (simulator limit 6000/min, credential `requests_per_minute=6000`): its time
   against what the limit allows for the requests it made (requests / 100 per s), and the 429s it met.
4. Each job run is checked: nothing left in the simulator, and no DELETE sent for a path whose DELETE
   had been answered 200 (from the simulator's request log).
5. Faults: 5% answered 500/503/HTML 502, 1% dropped before and 1% dropped after being carried out; every
   thread must end deleted or already gone, and the records must agree with the simulator.
6. The check of `--check-threads` freshly imported threads (`sync.check_unchecked`) at 100 requests/s,
   against requests / 100.

The database is PostgreSQL unless `--sqlite`: a database of its own (`--database`; by default named
after the process, so that two runs at once do not drop each other's) is created before and dropped
after. The rate limiter is shared through Redis (`--redis-url`) when several processes run a job, as
with Celery workers; with `--runs 1` it is this process's own unless `--redis-url` is given. Takes about
8 minutes with the defaults on 2 cores.

The CPU columns say what bounds a job with no limit: the cores the job's processes and the simulator's
used during it (1.0 = one core busy). A process near one core is bound by its own interpreter (the HTTP
client's cost per request, and the one thread that writes to the database waiting for the GIL), not by
the API; several runs spread that over several processes.
"""

import argparse
import os
import sys
import tempfile
import time
import warnings
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from threads_app.simulator import SimulatorConfig, SimulatorProcess  # noqa: E402 (no Django needed)

LATENCY_MS = 50
LIMIT_PER_MINUTE = 6000
PROJECT = "proj_bench"
API_KEY = "sk-sim-bench-0000000001"
DEFAULT_DATABASE = f"postgres://postgres@127.0.0.1:5432/threadsite_bench_delete_{os.getpid()}"


def setup_django(database_url: str, redis_url: str, *, migrate: bool = True) -> None:
    os.environ["DATABASE_URL"] = database_url
    os.environ.pop("REDIS_URL", None)
    if redis_url:
        os.environ["REDIS_URL"] = redis_url
    os.environ.setdefault("SECRET_KEY", "benchmark-only-secret")
    os.environ["DEBUG"] = "false"
    # The client logs each retry as a warning: hundreds in the fault run.
    os.environ["LOG_LEVEL"] = "ERROR"
    os.environ["THREADSITE_INPROCESS_WORKERS"] = "0"
    os.environ["DJANGO_SETTINGS_MODULE"] = "threadsite.settings"
    import django

    django.setup()
    if migrate:
        from django.core.management import call_command

        call_command("migrate", verbosity=0)


def recreate_database(database_url: str, *, drop_only: bool = False) -> None:
    import psycopg

    base, name = database_url.rsplit("/", 1)
    with psycopg.connect(f"{base}/postgres", autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        if not drop_only:
            conn.execute(f'CREATE DATABASE "{name}"')


@contextmanager
def benchmark_django(database_url: str, *, sqlite: bool = False, redis_url: str = "") -> Iterator[str]:
    """Django on a database of the benchmark's own: a temporary SQLite file, or the PostgreSQL database
    `database_url`, created now and dropped at the end. Yields the database's name for people."""
    with tempfile.TemporaryDirectory() as tmp:
        if not sqlite:
            recreate_database(database_url)
        try:
            setup_django(f"sqlite:///{tmp}/bench.sqlite3" if sqlite else database_url, redis_url)
            yield "SQLite" if sqlite else "PostgreSQL"
        finally:
            if not sqlite:
                from django.db import connections

                connections.close_all()
                recreate_database(database_url, drop_only=True)


# --- The simulator and the registry -------------------------------------------------------------------


_seeds = iter(range(1, 1000))


@contextmanager
def simulator(count: int, **knobs) -> Iterator[tuple[SimulatorProcess, list[str]]]:
    """A simulator process with `count` threads of the three kinds in turn in PROJECT, and their IDs (new
    ones each time: every run registers its own); stopped when the block ends."""
    seed = next(_seeds)
    with SimulatorProcess(SimulatorConfig(latency_ms=LATENCY_MS, seed=seed, **knobs)) as sim:
        sim.call("add_key", API_KEY, PROJECT)
        yield sim, sim.call("seed_bulk", PROJECT, count=count, items=(1, 3), seed=seed)


def register(sim: SimulatorProcess, remote_ids: list[str], name: str, **settings):
    """A credential for the simulator, and the threads registered under it as an import does."""
    from threads_app import importing
    from threads_app.models import Credential

    credential = Credential(name=name, base_url=sim.base_url, project_id=PROJECT, **settings)
    credential.api_key = API_KEY
    credential.save()
    report = importing.import_threads("\n".join(remote_ids), credential=credential)
    assert report.added == len(remote_ids), report.summary()
    return credential


# --- Reading the request log ---------------------------------------------------------------------------


@dataclass
class LogFigures:
    requests: int = 0
    by_status: Counter = field(default_factory=Counter)
    deletes: int = 0
    dropped_before: int = 0
    done_unanswered: int = 0  # carried out, answer dropped
    deletes_done_unanswered: int = 0
    repeated_after_success: list = field(default_factory=list)  # DELETE paths sent again after a 200

    @property
    def rate_limited(self) -> int:
        return self.by_status[429]


def read_log(log) -> LogFigures:
    figures = LogFigures(requests=len(log))
    answered_deleted = set()
    for entry in log:
        figures.by_status[entry.status] += 1
        if entry.status is None:
            if entry.outcome is None:
                figures.dropped_before += 1
            else:
                figures.done_unanswered += 1
        if entry.method != "DELETE":
            continue
        figures.deletes += 1
        if entry.path in answered_deleted:
            figures.repeated_after_success.append(entry.path)
        if entry.status == 200:
            answered_deleted.add(entry.path)
        elif entry.unanswered_but_done and entry.outcome == 200:
            figures.deletes_done_unanswered += 1
    return figures


def leftovers(sim: SimulatorProcess) -> dict:
    return {kind: len(ids) for kind, ids in sim.call("live_ids", PROJECT).items() if ids}


# --- 1. The baseline -------------------------------------------------------------------------------------


def baseline(sample: int) -> dict:
    import openai

    warnings.filterwarnings("ignore", category=DeprecationWarning)  # the Assistants API is sunset

    def delete(client, remote_id, with_items):
        if remote_id.startswith("thread_"):
            client.beta.threads.delete(remote_id)
        elif remote_id.startswith("conv_"):
            if with_items:
                for item in list(client.conversations.items.list(remote_id, limit=100)):
                    client.conversations.items.delete(item.id, conversation_id=remote_id)
            client.conversations.delete(remote_id)
        else:
            client.beta.chatkit.threads.delete(remote_id)

    figures = {}
    for label, with_items in (("loop", False), ("loop_items", True)):
        with simulator(sample + 3) as (sim, remote_ids):
            client = openai.OpenAI(api_key=API_KEY, base_url=sim.base_url, max_retries=0)
            # One of each kind first, untimed: the client builds its types on first use.
            for remote_id in remote_ids[:3]:
                delete(client, remote_id, with_items)
            sim.call("request_log", clear=True)
            remote_ids = remote_ids[3:]
            started = time.perf_counter()
            for remote_id in remote_ids:
                delete(client, remote_id, with_items)
            elapsed = time.perf_counter() - started
            requests_made = len(sim.call("request_log"))
            left = leftovers(sim)
        if not with_items:
            left.pop("conversation_item", None)  # the API keeps them: the loop left them behind
        assert not left, left
        figures[label] = elapsed / len(remote_ids)
        print(
            f"baseline {'(items first)' if with_items else '(delete calls)':<15} {len(remote_ids)} threads "
            f"in {elapsed:.2f} s: {figures[label] * 1000:.1f} ms per thread, {requests_made} requests"
        )
    return figures


# --- 2., 3., 5. Jobs ---------------------------------------------------------------------------------------


def _helper_run(database_url: str, redis_url: str, job_id: int, ready, go, results) -> None:
    """Another worker process's run of the job, as a Celery worker's would be: Django set up first, then
    one `run_job` started at the same moment as this process's; its CPU time and end are reported."""
    setup_django(database_url, redis_url, migrate=False)
    from threads_app import deletion

    ready.put(os.getpid())
    go.wait()
    cpu = time.process_time()
    deletion.run_job(job_id)
    results.put((time.process_time() - cpu, time.monotonic()))


@dataclass
class Helpers:
    """Other worker processes, each ready to run the job: `start()` them, then `collect()` their (CPU
    seconds, end time) once they end."""

    go: object = None
    results: object = None
    count: int = 0

    def start(self) -> None:
        if self.count:
            self.go.set()

    def collect(self) -> list[tuple[float, float]]:
        return [self.results.get(timeout=3600) for _ in range(self.count)]


@contextmanager
def helper_runs(count: int, job_id: int) -> Iterator[Helpers]:
    """`count` more processes with Django set up, waiting to run the job."""
    import multiprocessing

    from django.db import connections

    if not count:
        yield Helpers()
        return
    context = multiprocessing.get_context("spawn")
    ready, results, go = context.Queue(), context.Queue(), context.Event()
    database_url, redis_url = os.environ["DATABASE_URL"], os.environ.get("REDIS_URL", "")
    processes = [
        context.Process(target=_helper_run, args=(database_url, redis_url, job_id, ready, go, results))
        for _ in range(count)
    ]
    connections.close_all()  # this process's connection is not left open across the wait
    for process in processes:
        process.start()
    for _ in processes:
        ready.get(timeout=120)
    try:
        yield Helpers(go, results, count)
    finally:
        for process in processes:
            process.join(timeout=60)


@dataclass
class JobFigures:
    label: str
    threads: int
    concurrency: int
    runs: int
    seconds: float
    create_seconds: float
    cpu_share: float  # CPU time of the job's processes over the job's wall time: 1.0 = one core busy
    sim_cpu_share: float  # the same for the simulator's process
    log: LogFigures
    left: dict
    states: dict
    statuses: dict
    disagreements: list

    @property
    def per_thread_ms(self) -> float:
        return self.seconds / self.threads * 1000


def run_job(
    label: str,
    threads: int,
    *,
    concurrency: int,
    runs: int = 1,
    limit: int = 0,
    keep_items: bool = False,
    **faults,
) -> JobFigures:
    from django.conf import settings
    from django.db.models import Count

    from threads_app import deletion
    from threads_app.models import DeletionItem, DeletionJob, Thread

    settings.THREADSITE_RUNS_PER_JOB = runs

    with simulator(threads, rate_limit_per_minute=limit) as (sim, remote_ids):
        credential = register(
            sim,
            remote_ids,
            f"{label} c{concurrency}",
            concurrency=concurrency,
            requests_per_minute=limit or None,
        )
        # Faults only once the threads are in: seeding and registering do not go through the API anyway.
        if faults:
            sim.call("configure", **faults)
        started = time.perf_counter()
        job = deletion.create_job(
            Thread.objects.filter(credential=credential),
            summary=f"benchmark: {label}",
            delete_items=not keep_items,
            start=False,
        )
        with helper_runs(runs - 1, job.pk) as helpers:
            created = time.perf_counter()
            cpu, sim_cpu = time.process_time(), sim.call("cpu_seconds")
            began = time.monotonic()
            helpers.start()
            deletion.run_job(job.pk)
            ended = time.monotonic()
            cpu = time.process_time() - cpu
            for helper_cpu, helper_end in helpers.collect():
                cpu, ended = cpu + helper_cpu, max(ended, helper_end)
        finished = created + (ended - began)
        sim_cpu = sim.call("cpu_seconds") - sim_cpu
        state = DeletionJob.objects.values_list("state", flat=True).get(pk=job.pk)
        log = read_log(sim.call("request_log"))
        live = sim.call("live_ids", PROJECT)
    items = DeletionItem.objects.filter(job=job)
    states = dict(items.order_by().values_list("state").annotate(n=Count("pk")))
    statuses = dict(
        Thread.objects.filter(credential=credential).order_by().values_list("status").annotate(n=Count("pk"))
    )
    # The records agree with the server: a thread recorded deleted or already gone is not there.
    still_there = {
        remote_id
        for kind in ("assistants_thread", "conversation", "chatkit_thread")
        for remote_id in live[kind]
    }
    gone = set(
        items.filter(state__in=[DeletionItem.State.DELETED, DeletionItem.State.ALREADY_GONE]).values_list(
            "remote_id", flat=True
        )
    )
    disagreements = sorted(gone & still_there)[:5]
    figures = JobFigures(
        label=label,
        threads=len(remote_ids),
        concurrency=concurrency,
        runs=runs,
        seconds=finished - created,
        create_seconds=created - started,
        cpu_share=cpu / (finished - created),
        sim_cpu_share=sim_cpu / (finished - created),
        log=log,
        # A job that keeps items leaves them on the server, as the API does (and as the loop does).
        left={
            kind: len(ids)
            for kind, ids in live.items()
            if ids and not (keep_items and kind == "conversation_item")
        },
        states=states,
        statuses=statuses,
        disagreements=disagreements,
    )
    print(
        f"{label:<10} c={concurrency:<3} runs={runs} {figures.threads} threads: "
        f"job {state} in {figures.seconds:.2f} s "
        f"({figures.per_thread_ms:.2f} ms per thread; create_job {figures.create_seconds:.2f} s), "
        f"{log.requests} requests ({log.requests / figures.seconds:.0f}/s), 429s {log.rate_limited}, "
        f"items {states}, left {figures.left or 'none'}, DELETEs after a 200: "
        f"{len(log.repeated_after_success)}; CPU: job {figures.cpu_share:.2f} cores, simulator "
        f"{figures.sim_cpu_share:.2f}"
    )
    return figures


def check_job(figures: JobFigures) -> list[str]:
    """What a job run got wrong, if anything."""
    problems = []
    if figures.left:
        problems.append(f"left in the simulator: {figures.left}")
    if figures.log.repeated_after_success:
        problems.append(f"DELETE after a 200: {figures.log.repeated_after_success[:3]}")
    unfinished = {s: n for s, n in figures.states.items() if s not in ("deleted", "already_gone")}
    if unfinished:
        problems.append(f"items not deleted: {unfinished}")
    if figures.disagreements:
        problems.append(f"recorded gone but still served: {figures.disagreements}")
    if figures.statuses.get("active"):
        problems.append(f"threads still recorded active: {figures.statuses['active']}")
    return problems


# --- 6. Checks of imported threads ---------------------------------------------------------------------


def run_checks(threads: int) -> dict:
    from threads_app import sync

    with simulator(threads, rate_limit_per_minute=LIMIT_PER_MINUTE) as (sim, remote_ids):
        credential = register(sim, remote_ids, "checks", requests_per_minute=LIMIT_PER_MINUTE)
        started = time.perf_counter()
        report = sync.check_unchecked(credential)
        elapsed = time.perf_counter() - started
        log = read_log(sim.call("request_log"))
    allowed = log.requests / (LIMIT_PER_MINUTE / 60)
    print(
        f"checks     {threads} threads in {elapsed:.2f} s: {report.summary()}; {log.requests} requests, "
        f"429s {log.rate_limited}; the limit allows {allowed:.2f} s: ratio {elapsed / allowed:.3f}"
    )
    return {"threads": threads, "seconds": elapsed, "allowed": allowed, "log": log, "found": report.found}


# --- Main --------------------------------------------------------------------------------------------------


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--threads", type=int, default=10_000)
    parser.add_argument("--concurrency", default="128,192,256", help="credential concurrencies to try")
    parser.add_argument("--limited-threads", type=int, default=None, help="default: --threads")
    parser.add_argument("--fault-threads", type=int, default=3000)
    parser.add_argument("--check-threads", type=int, default=1000)
    parser.add_argument("--sample", type=int, default=200, help="threads deleted by the baseline loop")
    parser.add_argument("--database", default=DEFAULT_DATABASE)
    parser.add_argument("--sqlite", action="store_true", help="use a temporary SQLite file instead")
    parser.add_argument(
        "--runs",
        type=int,
        default=2,
        help="worker processes sharing each job (THREADSITE_RUNS_PER_JOB); 1 = this process alone",
    )
    parser.add_argument(
        "--redis-url",
        default="",
        help="share the rate limit through Redis (default with --runs above 1: redis://127.0.0.1:6379/14)",
    )
    args = parser.parse_args()
    if args.runs > 1 and not args.redis_url:
        args.redis_url = "redis://127.0.0.1:6379/14"  # processes share a limit only through Redis
    concurrencies = [int(value) for value in args.concurrency.split(",")]
    limited_threads = args.limited_threads or args.threads

    with tempfile.TemporaryDirectory() as tmp:
        if args.sqlite:
            database_url, database_label = f"sqlite:///{tmp}/bench.sqlite3", "SQLite"
        else:
            recreate_database(args.database)
            database_url, database_label = args.database, "PostgreSQL"
        try:
            setup_django(database_url, args.redis_url)
            limiter = "Redis" if args.redis_url else "in-process"
            print(
                f"{database_label}, {limiter} rate limiter, simulator at {LATENCY_MS} ms in a child process; "
                f"jobs in {args.runs} worker process{'es' if args.runs > 1 else ''}; "
                f"{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.2f}"
            )
            loop = baseline(args.sample)
            unlimited = [
                run_job("no limit", args.threads, concurrency=c, runs=args.runs) for c in concurrencies
            ]
            best = min(unlimited, key=lambda figures: figures.seconds)
            if args.runs > 1:  # the same job in one process, for comparison
                unlimited.append(run_job("one run", args.threads, concurrency=best.concurrency))
            # The work of the loop: delete calls only, conversations' items left on the server.
            unlimited.append(
                run_job(
                    "keep items", args.threads, concurrency=best.concurrency, runs=args.runs, keep_items=True
                )
            )
            limited = run_job(
                "100 req/s",
                limited_threads,
                concurrency=best.concurrency,
                runs=args.runs,
                limit=LIMIT_PER_MINUTE,
            )
            faulty = run_job(
                "faults",
                args.fault_threads,
                concurrency=best.concurrency,
                runs=args.runs,
                fault_rate=0.05,
                drop_rate=0.01,
                drop_after_rate=0.01,
            )
            checks = run_checks(args.check_threads)
        finally:
            from django.db import connections

            connections.close_all()
            if not args.sqlite:
                recreate_database(args.database, drop_only=True)

    allowed = limited.log.requests / (LIMIT_PER_MINUTE / 60)
    print(f"\n== figures (simulator at 50 ms); load average now {os.getloadavg()[0]:.2f}")
    rows = [
        ("baseline: openai client loop, delete calls", f"{loop['loop'] * 1000:.1f} ms/thread", ""),
        ("baseline: same loop, conversation items first", f"{loop['loop_items'] * 1000:.1f} ms/thread", ""),
    ]
    for figures in unlimited:
        kept = figures.label == "keep items"
        # Against the loop (target 40x), and against the loop that does the same work as the job.
        same_work = (
            "" if kept else f"{loop['loop_items'] * 1000 / figures.per_thread_ms:.1f}x the loop with items; "
        )
        rows.append(
            (
                f"job{', items kept' if kept else ''}, no limit, c={figures.concurrency}, "
                f"{figures.runs} process{'es' if figures.runs > 1 else ''}, {figures.threads:,} threads",
                f"{figures.per_thread_ms:.2f} ms/thread",
                f"{loop['loop'] * 1000 / figures.per_thread_ms:.1f}x the loop (target 40x), {same_work}"
                f"{figures.log.requests / figures.threads:.2f} req/thread, "
                f"{figures.log.requests / figures.seconds:.0f} req/s; CPU (cores) {figures.cpu_share:.2f} "
                f"job, {figures.sim_cpu_share:.2f} simulator",
            )
        )
    rows.append(
        (
            f"job, 100 req/s, concurrency {limited.concurrency}, {limited.threads:,} threads",
            f"{limited.seconds:.1f} s",
            f"limit allows {allowed:.1f} s for {limited.log.requests:,} requests: ratio "
            f"{limited.seconds / allowed:.3f} (target <= 1.05); 429s met: {limited.log.rate_limited}",
        )
    )
    rows.append(
        (
            f"job with faults, concurrency {faulty.concurrency}, {faulty.threads:,} threads",
            f"{faulty.seconds:.1f} s",
            f"items {faulty.states}; answers {dict(faulty.log.by_status)}; DELETEs done but unanswered "
            f"{faulty.log.deletes_done_unanswered}",
        )
    )
    rows.append(
        (
            f"check of {checks['threads']:,} imported threads, 100 req/s",
            f"{checks['seconds']:.1f} s",
            f"limit allows {checks['allowed']:.1f} s for {checks['log'].requests:,} requests: ratio "
            f"{checks['seconds'] / checks['allowed']:.3f} (target <= 1.2); found {checks['found']}",
        )
    )
    for label, value, note in rows:
        print(f"{label:<58} {value:>15}  {note}")
    print("\n== checks: nothing left, no DELETE after a 200, records agree with the simulator")
    failed = False
    for figures in [*unlimited, limited, faulty]:
        problems = check_job(figures)
        failed = failed or bool(problems)
        print(f"{figures.label:<10} c={figures.concurrency:<3} {'; '.join(problems) or 'ok'}")
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
