"""Deletion jobs on real Celery worker processes (Redis broker, PostgreSQL): the lifecycle, a worker killed
with SIGKILL mid-job and started again, cancellation, and two workers sharing one rate limit."""

import threading
import time
from collections import Counter

import pytest

from tests.workers import output, wait_for
from threads_app import deletion
from threads_app.models import Credential, DeletionItem, DeletionJob, Thread

pytestmark = pytest.mark.integration

Item = DeletionItem.State


@pytest.fixture
def credential(simulator, transactional_db):
    simulator.state.add_key("sk-sim-worker-delete-01", "proj_alpha")
    credential = Credential(name="alpha", base_url=simulator.base_url, project_id="proj_alpha", concurrency=8)
    credential.api_key = "sk-sim-worker-delete-01"
    credential.save()
    return credential


def track(simulator, credential, count, *, mixed=True):
    """`count` threads on the simulator, tracked: a mix of the three kinds unless `mixed` is False."""
    state, rows = simulator.state, []
    for n in range(count):
        kind = (
            ("assistants_thread", "conversation", "chatkit_thread")[n % 3] if mixed else "assistants_thread"
        )
        if kind == "assistants_thread":
            remote_id = state.create_thread("proj_alpha")["id"]
        elif kind == "conversation":
            remote_id = state.create_conversation("proj_alpha", items=[("user", "hi"), ("assistant", "yo")])[
                "id"
            ]
        else:
            remote_id = state.create_chatkit_thread("proj_alpha", user=f"u{n}")["id"]
        rows.append(Thread(remote_id=remote_id, kind=kind, credential=credential))
    Thread.objects.bulk_create(rows)
    return [row.remote_id for row in rows]


def left_on_server(simulator) -> int:
    state = simulator.state
    with state.lock:
        conversations = sum(1 for record in state.conversations.values() if not record.deleted)
        return len(state.threads) + conversations + len(state.chatkit_threads)


def deletes_after_success(simulator) -> list[str]:
    """Paths to which a DELETE was sent after an earlier DELETE of the same path had been answered 200."""
    answered, repeated = set(), []
    for method, path, status in list(simulator.state.request_log):
        if method != "DELETE":
            continue
        if path in answered:
            repeated.append(path)
        if status == 200:
            answered.add(path)
    return repeated


def job_state(job) -> str:
    job.refresh_from_db()
    return job.state


def test_a_job_runs_on_a_worker_from_queued_to_finished(start_worker, simulator, credential):
    worker = start_worker()
    remote_ids = track(simulator, credential, 300)

    job = deletion.create_job(Thread.objects.all(), summary="all")

    wait_for(lambda: job_state(job) == DeletionJob.State.FINISHED, worker)
    assert (job.deleted, job.already_gone, job.failed, job.pending) == (300, 0, 0, 0)
    assert left_on_server(simulator) == 0
    assert all(simulator.state.stored_items(r) == [] for r in remote_ids if r.startswith("conv_"))
    assert Thread.objects.filter(status=Thread.Status.DELETED).count() == 300
    assert "threads_app.tasks.run_deletion_job" in output(worker), "the worker, not this process, ran it"


def test_a_worker_killed_mid_job_loses_nothing_and_deletes_nothing_twice(start_worker, simulator, credential):
    simulator.config.latency_ms = 20
    track(simulator, credential, 2000)
    first = start_worker("first", THREADSITE_DELETION_LEASE_SECONDS=2)

    job = deletion.create_job(Thread.objects.all(), summary="all")
    wait_for(lambda: job_state(job) == DeletionJob.State.RUNNING and job.deleted >= 300, first)
    first.kill()  # SIGKILL: no cleanup, no acknowledgement
    first.wait(10)
    job.refresh_from_db()
    assert job.state == DeletionJob.State.RUNNING and job.pending > 0
    in_flight_when_killed = job.items.filter(state=Item.IN_FLIGHT).count()

    second = start_worker("second", THREADSITE_DELETION_LEASE_SECONDS=2)

    wait_for(lambda: job_state(job) == DeletionJob.State.FINISHED, second, timeout=120)
    assert job.deleted + job.already_gone == 2000 and job.failed == 0 and job.pending == 0
    assert job.already_gone <= in_flight_when_killed, "only items in flight at the kill can be found gone"
    assert left_on_server(simulator) == 0
    assert deletes_after_success(simulator) == []
    recorded_gone = set(
        Thread.objects.exclude(status=Thread.Status.ACTIVE).values_list("remote_id", flat=True)
    )
    assert len(recorded_gone) == 2000
    assert "resume_deletion_jobs" in output(second)


def test_a_cancelled_job_stops_within_seconds_and_says_what_it_left(start_worker, simulator, credential):
    simulator.config.latency_ms = 30
    credential.concurrency = 2
    credential.save()
    track(simulator, credential, 600, mixed=False)
    worker = start_worker()
    job = deletion.create_job(Thread.objects.all(), summary="all")
    wait_for(lambda: job_state(job) == DeletionJob.State.RUNNING and job.deleted >= 20, worker)

    deletion.cancel_job(job)
    cancelled_at = time.monotonic()

    wait_for(lambda: job_state(job) == DeletionJob.State.CANCELLED, worker, timeout=10)
    assert time.monotonic() - cancelled_at < 5
    assert job.pending > 0 and job.deleted + job.pending == 600
    assert f"{job.pending:,} left untouched" in job.reason
    assert not job.items.filter(state=Item.IN_FLIGHT).exists()
    assert left_on_server(simulator) == job.pending


def test_two_workers_share_one_job_and_its_rate_limit(start_worker, simulator, credential, settings):
    settings.THREADSITE_RUNS_PER_JOB = 2  # what a job is made with when a broker is configured
    per_second = 20
    credential.requests_per_minute = per_second * 60
    credential.save()
    track(simulator, credential, 120, mixed=False)
    arrivals, lock = [], threading.Lock()
    log_request = simulator.state.log_request

    def timed(method, path, status):
        with lock:
            arrivals.append(time.monotonic())
        log_request(method, path, status)

    simulator.state.log_request = timed
    workers = [start_worker("one"), start_worker("two")]
    job = deletion.create_job(Thread.objects.all(), summary="all")  # two runs: one for each worker

    wait_for(lambda: job_state(job) == DeletionJob.State.FINISHED, *workers, timeout=60)
    assert job.deleted == 120
    for process in workers:
        assert f"Deletion job {job.pk}: working on" in output(process), "both workers took part"
    # The job ends with the last item; each run gives its slot back as it leaves, the last a moment later.
    wait_for(lambda: not job.runs.exists(), *workers)
    arrivals.sort()
    # The schedule lets one second of requests go at once, then paces them; two workers with a limiter
    # each would send twice that.
    busiest = max(sum(1 for t in arrivals[i:] if t - start < 1.0) for i, start in enumerate(arrivals))
    assert busiest <= 2 * per_second + 2
    steady = arrivals[per_second:]
    assert (len(steady) - 1) / (steady[-1] - steady[0]) <= per_second * 1.1
    assert Counter(status for _, _, status in simulator.state.request_log)[429] == 0


def test_two_workers_together_keep_no_more_calls_in_flight_than_the_credentials_concurrency(
    start_worker, simulator, credential, settings, calls_at_once
):
    settings.THREADSITE_RUNS_PER_JOB = 2
    credential.concurrency = 5  # shares of 3 and 2
    credential.save()
    simulator.config.latency_ms = 40
    track(simulator, credential, 300, mixed=False)
    workers = [start_worker("one"), start_worker("two")]
    job = deletion.create_job(Thread.objects.all(), summary="all")

    wait_for(lambda: job_state(job) == DeletionJob.State.FINISHED, *workers, timeout=60)
    assert job.deleted == 300
    # Each run at the whole concurrency would make up to 10 at once; the shares keep the two to 5.
    assert calls_at_once.most <= 5
    for process in workers:
        assert f"Deletion job {job.pk}: working on" in output(process), "both workers took part"
