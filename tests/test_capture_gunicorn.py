"""The capture proxy under gunicorn as the Dockerfile starts it (gthread, one worker, on PostgreSQL): the
official client streams through it, a stream's events arrive as the simulator sends them (gunicorn's
chunked encoding included), streams past THREADSITE_PROXY_MAX_STREAMS are refused with a 503 rather than
taking the last threads, and the dashboard answers at once while streams are open."""

import threading
import time

import openai
import pytest
import requests

from tests.test_capture_proxy import _chunked_body, _raw_stream, assert_passed_on_as_sent
from tests.test_gunicorn import serve
from threads_app import tokens

pytestmark = [pytest.mark.integration, pytest.mark.filterwarnings("ignore::DeprecationWarning")]
MAX_STREAMS = 3


@pytest.fixture
def capture_server(transactional_db, tmp_path):
    yield from serve(
        tmp_path,
        GUNICORN_WORKERS="1",
        GUNICORN_THREADS="12",
        THREADSITE_PROXY_MAX_STREAMS=str(MAX_STREAMS),
    )


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
    # What it records (on the server's background threads, once the answer has gone) is tested in
    # test_capture_proxy.py, in one process that can wait for it.

    request = {"model": "gpt-sim", "input": "Hi", "conversation": conversation.id, "stream": True}
    direct = _raw_stream(
        simulator.base_url, "/responses", {"Authorization": f"Bearer {sim_key('proj_alpha')}"}, request
    )
    proxied = _raw_stream(
        f"{capture_server}/proxy/v1", "/responses", {"Authorization": f"Bearer {app_secret}"}, request
    )
    assert_passed_on_as_sent(direct, proxied)
    assert _chunked_body(proxied.body).count(b"event: response.output_text.delta") == 19


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
