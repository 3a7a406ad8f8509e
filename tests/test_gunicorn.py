"""The production topology for real: gunicorn started as the Dockerfile starts it, on PostgreSQL, while
three thread pages wait on an API that never answers. The list and the overview go on answering, and each
stuck page shows its deadline message within the deadline."""

import json
import os
import re
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import requests
from django.conf import settings as django_settings
from django.contrib.auth.hashers import PBKDF2PasswordHasher
from django.contrib.auth.models import User
from django.db import connection

from tests.hostile import silent
from threads_app.models import Credential, Thread

ROOT = Path(__file__).resolve().parent.parent
pytestmark = pytest.mark.integration
DEADLINE = 3


def dockerfile_command() -> list[str]:
    line = next(line for line in (ROOT / "Dockerfile").read_text().splitlines() if line.startswith("CMD "))
    return json.loads(line.removeprefix("CMD "))


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def serve(tmp_path: Path, **settings):
    """Start gunicorn as the Dockerfile does, on the test database (PostgreSQL) with `settings` in its
    environment, yield its base URL once it answers, and stop it afterwards; fail with its log if it
    never starts."""
    assert connection.vendor == "postgresql", "this test needs DATABASE_URL to name a PostgreSQL database"
    db = connection.settings_dict
    env = {key: value for key, value in os.environ.items() if key not in ("DEBUG", "THREADSITE_TESTING")}
    env.pop("REDIS_URL", None)
    env.update(
        DATABASE_URL=f"postgres://{db['USER']}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/{db['NAME']}",
        GUNICORN_BIND=f"127.0.0.1:{free_port()}",
        SECRET_KEY=django_settings.SECRET_KEY,
        PYTHONPATH=str(ROOT),
        **settings,
    )
    command = dockerfile_command()
    assert command[0] == "gunicorn"
    log = (tmp_path / "gunicorn.log").open("w+")
    server = subprocess.Popen(
        [str(Path(sys.executable).with_name("gunicorn")), *command[1:]],
        cwd=ROOT,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    base = f"http://{env['GUNICORN_BIND']}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                requests.get(f"{base}/accounts/login/", timeout=10)
                break
            except requests.RequestException:
                if server.poll() is not None or time.monotonic() > deadline:
                    log.seek(0)
                    pytest.fail(f"gunicorn did not start:\n{log.read()}")
                time.sleep(0.1)
        yield base
    finally:
        server.terminate()
        server.wait(20)
        log.close()


@pytest.fixture
def gunicorn(transactional_db, tmp_path):
    yield from serve(tmp_path, OPENAI_WEB_DEADLINE=str(DEADLINE))


def signed_in_session(base: str) -> requests.Session:
    # Hashed as production hashes (the test settings' MD5 hasher is not among gunicorn's).
    password = PBKDF2PasswordHasher().encode("admin-password", "fixedsalt", iterations=1000)
    User.objects.create(username="admin", password=password, is_staff=True, is_superuser=True)
    session = requests.Session()
    page = session.get(f"{base}/accounts/login/", timeout=5)
    token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page.text).group(1)
    answer = session.post(
        f"{base}/accounts/login/",
        {"username": "admin", "password": "admin-password", "csrfmiddlewaretoken": token},
        headers={"Referer": f"{base}/accounts/login/"},
        timeout=5,
    )
    assert answer.status_code == 200 and "sessionid" in session.cookies
    return session


def test_pages_stuck_on_a_silent_api_leave_the_rest_of_the_site_fast(gunicorn, hostile):
    api = hostile(silent)
    credential = Credential(name="silent", base_url=api.base_url, project_id="proj_s")
    credential.api_key = "sk-silent-api-key-0001"
    credential.save()
    threads = [
        Thread.objects.create(
            remote_id=f"thread_stuck{n:06d}", kind="assistants_thread", credential=credential
        )
        for n in range(3)
    ]
    session = signed_in_session(gunicorn)
    stuck = {}

    def open_messages(thread):
        started = time.monotonic()
        page = session.get(
            f"{gunicorn}/threads/{thread.pk}/messages/", headers={"HX-Request": "true"}, timeout=30
        )
        stuck[thread.pk] = (time.monotonic() - started, page.status_code, page.text)

    openers = [threading.Thread(target=open_messages, args=(thread,)) for thread in threads]
    for opener in openers:
        opener.start()
    assert api.wait_for_requests(3), "the three pages reached the silent API"
    timings = []
    for path in ["/", "/overview/"] * 5:
        started = time.monotonic()
        answer = session.get(f"{gunicorn}{path}", timeout=10)
        timings.append(time.monotonic() - started)
        assert answer.status_code == 200
    for opener in openers:
        opener.join(30)

    assert max(timings) < 1.0, f"the list and overview waited behind the stuck pages: {timings}"
    for elapsed, status, body in stuck.values():
        assert status == 200 and f"did not answer within {DEADLINE} s" in body
        assert elapsed < DEADLINE + 1.5
