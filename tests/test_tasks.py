"""How background work starts: in-process threads on the embedded default, Celery with a broker."""

import threading

import pytest

from threads_app import importing, tasks
from threads_app.models import Thread


@pytest.fixture
def sim_alpha(transactional_db, sim_credential, no_retries):
    """The simulator's credential, committed: these tasks read it from other threads."""
    return sim_credential


def test_embedded_dispatch_runs_the_task_on_a_background_thread(sim_alpha, simulator, settings, monkeypatch):
    settings.THREADSITE_INPROCESS_WORKERS = 1
    tasks._executor.cache_clear()
    ran_on = []
    real = tasks.sync.check_unchecked
    monkeypatch.setattr(
        tasks.sync,
        "check_unchecked",
        lambda credential: ran_on.append(threading.current_thread().name) or real(credential),
    )
    real_ids = [simulator.state.create_thread("proj_alpha")["id"] for _ in range(3)]
    importing.import_threads("\n".join(real_ids), credential=sim_alpha)

    tasks.dispatch(tasks.check_threads, sim_alpha.pk)

    # Wait for the worker thread itself, not by polling the table: on SQLite's shared in-memory test
    # database a read here while the worker writes makes the worker's write fail ("table is locked").
    tasks._executor().shutdown(wait=True)
    assert Thread.objects.filter(last_check=Thread.Check.OK).count() == 3
    assert ran_on and ran_on[0].startswith("threadsite-task")
    tasks._executor.cache_clear()


def test_without_workers_dispatch_runs_the_task_inline_after_commit(sim_alpha, simulator, settings):
    settings.THREADSITE_INPROCESS_WORKERS = 0
    importing.import_threads(simulator.state.create_thread("proj_alpha")["id"], credential=sim_alpha)
    tasks.dispatch(tasks.check_threads, sim_alpha.pk)
    assert Thread.objects.get().last_check == Thread.Check.OK


def test_with_a_broker_dispatch_queues_the_task_by_primary_key_after_commit(
    settings, monkeypatch, credential, django_capture_on_commit_callbacks
):
    settings.CELERY_TASK_ALWAYS_EAGER = False
    queued = []
    monkeypatch.setattr(tasks.check_threads, "delay", lambda *args: queued.append(args))
    with django_capture_on_commit_callbacks(execute=True):
        tasks.dispatch(tasks.check_threads, credential.pk)
        assert queued == [], "a worker must not look for rows that are not committed yet"
    assert queued == [(credential.pk,)]


def test_tasks_for_a_removed_credential_end_quietly(db):
    assert tasks.check_threads.apply(args=(424242,)).get() == "credential gone"
    assert tasks.discover_threads.apply(args=(424242,)).get() == "credential gone"


def test_the_web_process_resumes_unfinished_deletion_jobs_when_it_starts(db, settings, monkeypatch):
    from threads_app.models import DeletionJob
    from threadsite import wsgi

    unfinished = [DeletionJob.objects.create(summary="s", state=state) for state in ("queued", "running")]
    DeletionJob.objects.create(summary="s", state="finished")
    started = []
    monkeypatch.setattr(tasks, "dispatch", lambda task, *args: started.append((task.name, *args)))

    settings.THREADSITE_INPROCESS_WORKERS = 2
    wsgi._resume_background_work()
    assert sorted(started) == [("threads_app.tasks.run_deletion_job", job.pk) for job in unfinished]

    started.clear()
    settings.THREADSITE_INPROCESS_WORKERS = 0  # tests and inline runs: nothing runs behind their back
    wsgi._resume_background_work()
    assert started == []
