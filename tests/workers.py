"""Real Celery worker processes for the integration layer, with Redis as the broker and PostgreSQL as the
database (`scripts/test` provides both). conftest.py makes these fixtures available to every test."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import redis
from django.db import connection

from threadsite.celery import app as celery_app

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
def start_celery(redis_url, transactional_db, settings, tmp_path):
    """Start Celery processes on the test database: `start_celery("worker", "w2", SOME_SETTING="1")` or
    `start_celery("beat", "b1")`. This process queues through Redis meanwhile. Every process still running
    is stopped at the end."""
    assert connection.vendor == "postgresql", "worker tests need DATABASE_URL to name a PostgreSQL database"
    db = connection.settings_dict
    database_url = f"postgres://{db['USER']}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/{db['NAME']}"
    settings.CELERY_TASK_ALWAYS_EAGER = False
    previous = {key: celery_app.conf[key] for key in ("broker_url", "task_always_eager")}
    celery_app.conf.update(broker_url=redis_url, task_always_eager=False)
    processes = []

    def start(program: str, name: str, **extra_env) -> subprocess.Popen:
        env = dict(
            os.environ,
            DATABASE_URL=database_url,
            REDIS_URL=redis_url,
            OPENAI_MAX_RETRIES="0",
            **{key: str(value) for key, value in extra_env.items()},
        )
        log = (tmp_path / f"{name}.log").open("w+")
        command = [sys.executable, "-m", "celery", "-A", "threadsite", program, "--loglevel", "INFO"]
        if program == "worker":
            command += ["--pool", "solo", "--without-gossip", "--without-mingle", "--without-heartbeat"]
            command += ["--hostname", f"{name}@%h"]
        else:
            command += ["--schedule", str(tmp_path / f"{name}-schedule"), "--pidfile", ""]
        process = subprocess.Popen(command, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
        process.log = log
        processes.append(process)
        return process

    yield start
    for process in processes:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
    for process in processes:
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
        process.log.close()
    celery_app.conf.update(previous)


@pytest.fixture
def start_worker(start_celery):
    """Start worker processes: `start_worker("w2", SOME_SETTING="1")`."""
    return lambda name="worker", **env: start_celery("worker", name, **env)


@pytest.fixture
def worker(start_worker):
    """One worker process."""
    return start_worker()


def output(process) -> str:
    process.log.flush()
    process.log.seek(0)
    return process.log.read()


def wait_for(predicate, *processes, timeout=60):
    """Poll `predicate` until it holds; fail at once if a worker exits, or with their logs at the timeout."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        for process in processes:
            if process.poll() is not None:
                pytest.fail(f"a worker exited early:\n{output(process)}")
        time.sleep(0.1)
    logs = "\n".join(output(process) for process in processes)
    pytest.fail(f"timed out; worker output:\n{logs}")
