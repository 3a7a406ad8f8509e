"""Background work on a real Celery worker process, with Redis as the broker and PostgreSQL as the
database (the integration layer; `scripts/test` provides both)."""

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
import redis
from django.conf import settings as django_settings
from django.db import connection

from threads_app import importing, tasks
from threads_app.models import Credential, Thread
from threadsite.celery import app as celery_app

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def redis_url():
    url = os.environ.get("THREADSITE_TEST_REDIS_URL")
    assert url, "Set THREADSITE_TEST_REDIS_URL (scripts/test does) to run the worker tests"
    client = redis.Redis.from_url(url)
    client.flushdb()
    yield url
    client.flushdb()


@pytest.fixture
def worker(redis_url, transactional_db, settings, tmp_path):
    """A `celery worker` process on the test database, and this process queueing through Redis."""
    assert connection.vendor == "postgresql", "worker tests need DATABASE_URL to name a PostgreSQL database"
    db = connection.settings_dict
    database_url = f"postgres://{db['USER']}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/{db['NAME']}"
    settings.CELERY_TASK_ALWAYS_EAGER = False
    previous = {key: celery_app.conf[key] for key in ("broker_url", "task_always_eager")}
    celery_app.conf.update(broker_url=redis_url, task_always_eager=False)
    env = dict(os.environ, DATABASE_URL=database_url, REDIS_URL=redis_url, OPENAI_MAX_RETRIES="0")
    log = (tmp_path / "worker.log").open("w+")
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "celery",
            "-A",
            "threadsite",
            "worker",
            "--pool",
            "solo",
            "--loglevel",
            "INFO",
            "--without-gossip",
            "--without-mingle",
            "--without-heartbeat",
        ],
        cwd=ROOT,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    process.log = log
    yield process
    process.terminate()
    try:
        process.wait(timeout=20)
    except subprocess.TimeoutExpired:
        process.kill()
    celery_app.conf.update(previous)
    log.close()


def output(process) -> str:
    process.log.flush()
    process.log.seek(0)
    return process.log.read()


def wait_for(predicate, process, timeout=60):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        if process.poll() is not None:
            pytest.fail(f"the worker exited early:\n{output(process)}")
        time.sleep(0.2)
    pytest.fail(f"timed out; worker output:\n{output(process)}")


def test_a_large_import_is_checked_by_the_worker(worker, simulator, settings):
    assert not django_settings.CELERY_TASK_ALWAYS_EAGER
    simulator.state.add_key("sk-sim-worker-key-0001", "proj_alpha")
    credential = Credential(name="alpha", base_url=simulator.base_url, project_id="proj_alpha")
    credential.api_key = "sk-sim-worker-key-0001"
    credential.save()
    real = [simulator.state.create_thread("proj_alpha")["id"] for _ in range(30)]
    report = importing.import_threads("\n".join([*real, "thread_gone000001"]), credential=credential)
    assert report.added == 31

    tasks.dispatch(tasks.check_threads, credential.pk)

    wait_for(lambda: not Thread.objects.filter(last_check="").exists(), worker)
    assert Thread.objects.filter(last_check=Thread.Check.OK).count() == 30
    gone = Thread.objects.get(remote_id="thread_gone000001")
    assert (gone.last_check, gone.status) == (Thread.Check.NOT_FOUND, Thread.Status.MISSING)
    assert "threads_app.tasks.check_threads" in output(worker), "the worker, not this process, ran it"


def test_discovery_runs_on_the_worker(worker, simulator):
    simulator.state.add_key("sk-sim-worker-key-0002", "proj_alpha")
    credential = Credential(name="alpha", base_url=simulator.base_url, project_id="proj_alpha")
    credential.api_key = "sk-sim-worker-key-0002"
    credential.save()
    for n in range(5):
        simulator.state.create_chatkit_thread("proj_alpha", user=f"customer-{n}", title=f"Chat {n}")

    tasks.dispatch(tasks.discover_all)

    wait_for(lambda: Thread.objects.filter(source=Thread.Source.DISCOVERY).count() == 5, worker)
    assert set(Thread.objects.values_list("end_user", flat=True)) == {f"customer-{n}" for n in range(5)}
    assert "threads_app.tasks.discover_threads" in output(worker)
