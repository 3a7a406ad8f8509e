"""The capture proxy under gunicorn as the Dockerfile starts it (gthread, one worker, on PostgreSQL): the
official client streams through it, a stream's events arrive as the simulator sends them (gunicorn's
chunked encoding included), streams past THREADSITE_PROXY_MAX_STREAMS are refused with a 503 rather than
taking the last threads, and the dashboard answers at once while streams are open."""

import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import openai
import pytest
import requests
from django.conf import settings as django_settings
from django.db import connection

from tests.test_capture_proxy import _chunked_body, _raw_stream
from tests.test_gunicorn import ROOT, dockerfile_command, free_port
from threads_app import tokens
from threads_app.models import Thread

pytestmark = [pytest.mark.integration, pytest.mark.filterwarnings("ignore::DeprecationWarning")]
MAX_STREAMS = 3


@pytest.fixture
def capture_server(transactional_db, tmp_path):
    assert connection.vendor == "postgresql", "this test needs DATABASE_URL to name a PostgreSQL database"
    db = connection.settings_dict
    port = free_port()
    env = {key: value for key, value in os.environ.items() if key not in ("DEBUG", "THREADSITE_TESTING")}
    env.update(
        DATABASE_URL=f"postgres://{db['USER']}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/{db['NAME']}",
        GUNICORN_BIND=f"127.0.0.1:{port}",
        GUNICORN_WORKERS="1",
        GUNICORN_THREADS="12",
        THREADSITE_PROXY_MAX_STREAMS=str(MAX_STREAMS),
        SECRET_KEY=django_settings.SECRET_KEY,
        PYTHONPATH=str(ROOT),
    )
    env.pop("REDIS_URL", None)
    log = (tmp_path / "gunicorn.log").open("w+")
    command = dockerfile_command()
    server = subprocess.Popen(
        [str(Path(sys.executable).with_name("gunicorn")), *command[1:]],
        cwd=ROOT,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    base = f"http://127.0.0.1:{port}"
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
def app_secret(sim_credential, alice):
    return tokens.create(
        "gunicorn-app", scopes=["register", "read", "delete"], credential=sim_credential
    ).secret


def test_streams_pass_through_gunicorn_as_sent(capture_server, app_secret, simulator, sim_key):
    simulator.config.stream_first_token_ms = 400
    simulator.config.stream_token_ms = 40
    client = openai.OpenAI(api_key=app_secret, base_url=f"{capture_server}/proxy/v1", max_retries=0)
    conversation = client.conversations.create()
    with client.responses.create(
        model="gpt-sim", input="Hi", conversation=conversation.id, stream=True
    ) as stream:
        text = "".join(event.delta for event in stream if event.type == "response.output_text.delta")
    assert text.startswith("Thanks for your message")
    # Recorded once the stream has ended; gunicorn reads the next request of a kept-alive connection only
    # after closing the previous answer, so one more call on it comes after the recording.
    client.conversations.retrieve(conversation.id)
    assert Thread.objects.get(remote_id=conversation.id).activity_source == Thread.ActivitySource.CAPTURED

    request = {"model": "gpt-sim", "input": "Hi", "conversation": conversation.id, "stream": True}
    direct_first, direct_total, _ = _raw_stream(
        simulator.base_url, "/responses", {"Authorization": f"Bearer {sim_key('proj_alpha')}"}, request
    )
    first, total, body = _raw_stream(
        f"{capture_server}/proxy/v1", "/responses", {"Authorization": f"Bearer {app_secret}"}, request
    )
    assert first < direct_first + 0.2 and total < direct_total + 0.3, (
        first,
        direct_first,
        total,
        direct_total,
    )
    assert first < 0.4  # response.created, long before the first token: not held back to the end
    assert _chunked_body(body).count(b"event: response.output_text.delta") == 19


def test_streams_past_the_cap_are_refused_and_the_dashboard_stays_fast(capture_server, app_secret, simulator):
    simulator.config.stream_first_token_ms = 3000  # streams that stay open while the rest is measured
    conversation = simulator.state.create_conversation("proj_alpha")["id"]
    statuses = []

    def stream():
        answer = requests.post(
            f"{capture_server}/proxy/v1/responses",
            json={"model": "m", "input": "Hi", "conversation": conversation, "stream": True},
            headers={"Authorization": f"Bearer {app_secret}"},
            stream=True,
            timeout=30,
        )
        statuses.append(answer.status_code)
        answer.content  # noqa: B018 - read it to the end

    openers = [threading.Thread(target=stream) for _ in range(MAX_STREAMS)]
    for opener in openers:
        opener.start()
    assert simulator.state.wait_for_requests(MAX_STREAMS), "the streams reached the simulator"
    refused = requests.post(
        f"{capture_server}/proxy/v1/responses",
        json={"model": "m", "input": "Hi", "stream": True},
        headers={"Authorization": f"Bearer {app_secret}"},
        timeout=10,
    )
    assert refused.status_code == 503 and refused.json()["error"]["code"] == "too_many_streams"
    assert refused.headers["retry-after"] == "1"
    timings = []
    for _ in range(10):
        started = time.monotonic()
        assert requests.get(f"{capture_server}/accounts/login/", timeout=10).status_code == 200
        timings.append(time.monotonic() - started)
    for opener in openers:
        opener.join(30)
    assert statuses == [200] * MAX_STREAMS
    assert max(timings) < 1.0, timings
