"""The capture proxy driven by the official `openai` client, pointed at /proxy/v1/ of a live server with a
Threadsite token as its key, forwarding to the simulator: what it creates lands in the registry once,
with the token's credential and owner and the request's end user; what it deletes is marked deleted;
streams pass through chunk by chunk; bad tokens forward nothing."""

import json
import socket
import time
from urllib.parse import urlsplit

import openai
import pytest

from threads_app import capture, tokens
from threads_app.models import Credential, StatusChange, Thread

pytestmark = [
    pytest.mark.filterwarnings("ignore::DeprecationWarning"),
    pytest.mark.django_db(transaction=True),
]


@pytest.fixture
def app_token(sim_credential, alice):
    return tokens.create(
        "support-bot", scopes=["register", "read", "delete"], credential=sim_credential, owner=alice
    )


@pytest.fixture
def proxied(live_server, app_token):
    """The official client as an application would configure it: base_url at the proxy, the token as key."""
    return openai.OpenAI(api_key=app_token.secret, base_url=f"{live_server.url}/proxy/v1", max_retries=0)


def test_the_official_client_creates_pages_and_deletes_through_the_proxy(
    proxied, app_token, simulator, alice
):
    threads = proxied.beta.threads
    first = threads.create(messages=[{"role": "user", "content": "Hello"}], metadata={"end_user": "cust-1"})
    second = threads.create()
    for n in range(4):
        threads.messages.create(first.id, role="user", content=f"Question {n}")
    page = threads.messages.list(first.id, limit=2)
    assert page.has_more is True
    assert len(list(threads.messages.list(first.id, limit=2))) == 5  # paged through the proxy

    conversations = proxied.conversations
    conversation = conversations.create(
        items=[{"role": "user", "content": "Hi"}], extra_headers={"X-Threadsite-End-User": "cust-42"}
    )
    other = conversations.create()
    conversations.items.create(
        conversation.id, items=[{"role": "user", "content": f"More {n}"} for n in range(3)]
    )
    assert len(list(conversations.items.list(conversation.id, limit=2))) == 4
    reply = proxied.responses.create(model="gpt-sim", input="And now?", conversation=conversation.id)
    assert reply.output_text

    assert threads.delete(second.id).deleted is True
    assert conversations.delete(other.id).deleted is True

    # Each exchange is recorded once its answer has gone: wait for the last few.
    assert capture.wait_recorded()
    recorded = {t.remote_id: t for t in Thread.objects.all()}
    assert set(recorded) == {first.id, second.id, conversation.id, other.id}  # nothing else, nothing twice
    for thread in recorded.values():
        assert thread.credential == app_token.token.credential
        assert thread.owner == alice
        assert thread.source == Thread.Source.CAPTURE
        assert thread.api_token == app_token.token
    assert recorded[first.id].end_user == "cust-1"
    assert recorded[conversation.id].end_user == "cust-42"
    assert recorded[conversation.id].kind == Thread.Kind.CONVERSATION
    assert recorded[conversation.id].activity_source == Thread.ActivitySource.CAPTURED
    assert recorded[first.id].activity_source == Thread.ActivitySource.CAPTURED
    assert recorded[second.id].status == recorded[other.id].status == Thread.Status.DELETED
    assert recorded[first.id].status == recorded[conversation.id].status == Thread.Status.ACTIVE
    assert StatusChange.objects.filter(remote_id=second.id, new_status="deleted").count() == 1
    # The simulator really holds what the registry says.
    assert first.id in simulator.state.threads and second.id not in simulator.state.threads
    assert simulator.state.conversations[other.id].deleted is True


def test_answers_pass_back_with_status_and_headers(proxied, simulator):
    response = proxied.conversations.with_raw_response.create()
    assert response.http_response.headers["x-request-id"].startswith("req_")
    assert response.http_response.headers["openai-project"] == "proj_alpha"
    with pytest.raises(openai.NotFoundError, match="not found"):
        proxied.conversations.retrieve("conv_" + "0" * 48)
    simulator.config.rate_limit_per_minute = 1
    proxied.conversations.create()
    with pytest.raises(openai.RateLimitError) as refused:
        proxied.conversations.create()
    headers = refused.value.response.headers
    assert headers["retry-after"] and headers["x-ratelimit-limit-requests"] == "1"


def test_a_repeated_create_answer_is_recorded_once(app_token, sim_credential):
    exchange = capture.Exchange(
        app_token.token.pk, "POST", "conversations", 200, {}, {"id": "conv_" + "a" * 48, "created_at": 1}
    )
    capture.record_exchange(exchange)
    capture.record_exchange(exchange)
    assert Thread.objects.filter(remote_id="conv_" + "a" * 48).count() == 1


def test_the_owner_is_stamped_in_metadata_when_the_token_asks(live_server, sim_credential, alice, simulator):
    stamping = tokens.create(
        "stamper", scopes=["register"], credential=sim_credential, owner=alice, stamp_owner=True
    )
    client = openai.OpenAI(api_key=stamping.secret, base_url=f"{live_server.url}/proxy/v1", max_retries=0)
    conversation = client.conversations.create(metadata={"topic": "billing"})
    assert conversation.metadata == {"topic": "billing", "threadsite_owner": "alice"}
    assert capture.wait_recorded()
    assert Thread.objects.get(remote_id=conversation.id).metadata["threadsite_owner"] == "alice"


@pytest.mark.parametrize("how", ["wrong", "revoked", "none"])
def test_a_bad_token_gets_401_and_nothing_is_forwarded(live_server, app_token, simulator, how):
    key = {"wrong": "tsk_" + "x" * 43, "revoked": app_token.secret, "none": "sk-not-a-threadsite-token"}[how]
    if how == "revoked":
        tokens.revoke(app_token.token)
    client = openai.OpenAI(api_key=key, base_url=f"{live_server.url}/proxy/v1", max_retries=0)
    with pytest.raises(openai.AuthenticationError, match="Invalid or revoked Threadsite token"):
        client.conversations.create()
    with pytest.raises(openai.AuthenticationError):
        client.beta.threads.delete("thread_abcdefgh")
    assert simulator.state.request_log == []
    assert not Thread.objects.exists()


def test_a_token_cannot_reach_a_thread_of_another_credential(
    live_server, app_token, simulator, sim_key, make_thread
):
    other = Credential(name="beta", base_url=simulator.base_url, project_id="proj_beta")
    other.api_key = sim_key("proj_beta")
    other.save()
    theirs = simulator.state.create_conversation("proj_beta")
    make_thread(remote_id=theirs["id"], kind=Thread.Kind.CONVERSATION, credential=other)
    client = openai.OpenAI(api_key=app_token.secret, base_url=f"{live_server.url}/proxy/v1", max_retries=0)
    with pytest.raises(openai.NotFoundError):
        client.conversations.delete(theirs["id"])
    assert simulator.state.request_log == []  # refused before forwarding
    assert Thread.objects.get(remote_id=theirs["id"]).status == Thread.Status.ACTIVE


def test_a_token_without_the_scope_or_credential_is_refused(live_server, sim_credential, simulator):
    reader = tokens.create("reader", scopes=["read"], credential=sim_credential)
    unbound = tokens.create("unbound", scopes=["register"])
    for made, message in ((reader, "scopes"), (unbound, "bound to no credential")):
        client = openai.OpenAI(api_key=made.secret, base_url=f"{live_server.url}/proxy/v1", max_retries=0)
        with pytest.raises(openai.PermissionDeniedError, match=message):
            client.conversations.create()
    assert simulator.state.request_log == []


def test_a_failed_recording_never_breaks_the_answer_and_is_retried(proxied, monkeypatch, caplog):
    real = capture.record_exchange
    calls = []

    def failing_once(exchange, token=None):
        calls.append(exchange)
        if len(calls) == 1:
            raise capture.IntegrityError("database unavailable")
        return real(exchange, token)

    monkeypatch.setattr(capture, "record_exchange", failing_once)
    # A retrier that counts as running, so that none starts: the test retries by hand.
    monkeypatch.setattr(capture, "_retrier", type("Running", (), {"is_alive": lambda self: True})())
    conversation = proxied.conversations.create()
    assert conversation.id.startswith("conv_")
    assert capture.wait_recorded()
    assert not Thread.objects.filter(remote_id=conversation.id).exists()
    assert f"recording POST conversations ({conversation.id}) failed (IntegrityError); retry 1" in caplog.text
    assert capture.pending_count() == 1
    assert capture.retry_pending(now=time.monotonic() + 60) == 1
    assert Thread.objects.filter(remote_id=conversation.id).count() == 1


def _raw_stream(base: str, path: str, headers: dict, body: dict) -> tuple[float, float, bytes]:
    """POST `body` on a raw socket; (seconds to the first body byte, to the end, the body)."""
    url = urlsplit(base)
    payload = json.dumps(body).encode()
    lines = [f"POST {url.path}{path} HTTP/1.1", f"Host: {url.netloc}", "Content-Type: application/json"]
    lines += [f"{name}: {value}" for name, value in headers.items()]
    lines += [f"Content-Length: {len(payload)}", "Connection: close", "", ""]
    with socket.create_connection((url.hostname, url.port), timeout=10) as sock:
        started = time.monotonic()
        sock.sendall("\r\n".join(lines).encode() + payload)
        received, first = b"", None
        while True:
            data = sock.recv(65536)
            if not data:
                break
            received += data
            if first is None and b"\r\n\r\n" in received and received.split(b"\r\n\r\n", 1)[1]:
                first = time.monotonic() - started
        return first, time.monotonic() - started, received.split(b"\r\n\r\n", 1)[1]


def test_a_streamed_answer_arrives_chunk_by_chunk_as_upstream_sends_it(
    live_server, app_token, simulator, sim_key
):
    simulator.config.stream_first_token_ms = 400
    simulator.config.stream_token_ms = 40
    conversation = simulator.state.create_conversation("proj_alpha")
    request = {"model": "gpt-sim", "input": "Hi", "conversation": conversation["id"], "stream": True}
    direct_first, direct_total, direct_body = _raw_stream(
        simulator.base_url, "/responses", {"Authorization": f"Bearer {sim_key('proj_alpha')}"}, request
    )
    proxied_first, proxied_total, proxied_body = _raw_stream(
        f"{live_server.url}/proxy/v1", "/responses", {"Authorization": f"Bearer {app_token.secret}"}, request
    )
    # The first events (response.created) leave at once; a buffering proxy would hold them for the whole
    # answer (about 0.4 s + 20 × 0.04 s).
    assert direct_first < 0.2 and direct_total > 1.0
    assert proxied_first < direct_first + 0.2, (proxied_first, direct_first)
    assert proxied_total < direct_total + 0.3
    events = [block for block in _chunked_body(proxied_body).split(b"\n\n") if block]
    assert [e.split(b"\n")[0] for e in events] == [e.split(b"\n")[0] for e in direct_body.split(b"\n\n") if e]


def _chunked_body(body: bytes) -> bytes:
    """The body of an answer sent with chunked transfer encoding, or the body as it is."""
    if not body[:1].isalnum() or b"\r\n" not in body[:10]:
        return body
    out, rest = b"", body
    while rest:
        size, _, rest = rest.partition(b"\r\n")
        length = int(size, 16)
        if length == 0:
            break
        out, rest = out + rest[:length], rest[length + 2 :]
    return out


def test_streams_through_the_official_client_update_activity(proxied, app_token, simulator, make_thread):
    conversation = proxied.conversations.create()
    assert capture.wait_recorded()
    Thread.objects.filter(remote_id=conversation.id).update(last_activity_at=None)
    with proxied.responses.create(
        model="gpt-sim", input="Hi", conversation=conversation.id, stream=True
    ) as stream:
        types = [event.type for event in stream]
    assert types[0] == "response.created" and "response.completed" in types
    assert capture.wait_recorded()
    thread = Thread.objects.get(remote_id=conversation.id)
    assert thread.last_activity_at is not None
    assert thread.activity_source == Thread.ActivitySource.CAPTURED
