"""The capture proxy driven by the official `openai` client, pointed at /proxy/v1/ of a live server with a
Threadsite token as its key, forwarding to the simulator: what it creates lands in the registry once,
with the token's credential and owner and the request's end user; what it deletes is marked deleted;
streams pass through chunk by chunk; bad tokens forward nothing."""

import json
import socket
import time
from dataclasses import dataclass
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
def official(live_server):
    """The official client as an application would configure it (base_url at the proxy, a token as key),
    for a token's secret; closed after the test. An open client keeps its connection to the live server,
    and with it the server's request thread and that thread's database session, which then outlived the
    test database ("being accessed by other users" when the fast layer dropped it on PostgreSQL)."""
    made = []

    def make(secret):
        made.append(openai.OpenAI(api_key=secret, base_url=f"{live_server.url}/proxy/v1", max_retries=0))
        return made[-1]

    yield make
    for client in made:
        client.close()


@pytest.fixture
def proxied(official, app_token):
    return official(app_token.secret)


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


def test_the_owner_is_stamped_in_metadata_when_the_token_asks(official, sim_credential, alice, simulator):
    stamping = tokens.create(
        "stamper", scopes=["register"], credential=sim_credential, owner=alice, stamp_owner=True
    )
    client = official(stamping.secret)
    conversation = client.conversations.create(metadata={"topic": "billing"})
    assert conversation.metadata == {"topic": "billing", "threadsite_owner": "alice"}
    assert capture.wait_recorded()
    assert Thread.objects.get(remote_id=conversation.id).metadata["threadsite_owner"] == "alice"


@pytest.mark.parametrize("how", ["wrong", "revoked", "none"])
def test_a_bad_token_gets_401_and_nothing_is_forwarded(official, app_token, simulator, how):
    key = {"wrong": "tsk_" + "x" * 43, "revoked": app_token.secret, "none": "sk-not-a-threadsite-token"}[how]
    if how == "revoked":
        tokens.revoke(app_token.token)
    client = official(key)
    with pytest.raises(openai.AuthenticationError, match="Invalid or revoked Threadsite token"):
        client.conversations.create()
    with pytest.raises(openai.AuthenticationError):
        client.beta.threads.delete("thread_abcdefgh")
    assert simulator.state.request_log == []
    assert not Thread.objects.exists()


def test_a_token_cannot_reach_a_thread_of_another_credential(
    official, app_token, simulator, sim_key, make_thread
):
    other = Credential(name="beta", base_url=simulator.base_url, project_id="proj_beta")
    other.api_key = sim_key("proj_beta")
    other.save()
    theirs = simulator.state.create_conversation("proj_beta")
    make_thread(remote_id=theirs["id"], kind=Thread.Kind.CONVERSATION, credential=other)
    client = official(app_token.secret)
    with pytest.raises(openai.NotFoundError):
        client.conversations.delete(theirs["id"])
    assert simulator.state.request_log == []  # refused before forwarding
    assert Thread.objects.get(remote_id=theirs["id"]).status == Thread.Status.ACTIVE


def test_a_token_without_the_scope_or_credential_is_refused(official, sim_credential, simulator):
    reader = tokens.create("reader", scopes=["read"], credential=sim_credential)
    unbound = tokens.create("unbound", scopes=["register"])
    for made, message in ((reader, "scopes"), (unbound, "bound to no credential")):
        client = official(made.secret)
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


@dataclass
class Arrival:
    """When a streamed answer's parts arrived, in seconds from the request: its first body byte, its first
    token (the first `response.output_text.delta`), its end; and the body."""

    first: float
    first_token: float
    end: float
    body: bytes


def _raw_stream(base: str, path: str, headers: dict, body: dict) -> Arrival:
    """POST `body` on a raw socket and note when each part of the answer arrives."""
    url = urlsplit(base)
    payload = json.dumps(body).encode()
    lines = [f"POST {url.path}{path} HTTP/1.1", f"Host: {url.netloc}", "Content-Type: application/json"]
    lines += [f"{name}: {value}" for name, value in headers.items()]
    lines += [f"Content-Length: {len(payload)}", "Connection: close", "", ""]
    with socket.create_connection((url.hostname, url.port), timeout=10) as sock:
        started = time.monotonic()
        sock.sendall("\r\n".join(lines).encode() + payload)
        received, first, first_token = b"", None, None
        while True:
            data = sock.recv(65536)
            if not data:
                break
            received += data
            if first is None and received.partition(b"\r\n\r\n")[2]:
                first = time.monotonic() - started
            if first_token is None and b"response.output_text.delta" in received:
                first_token = time.monotonic() - started
        return Arrival(first, first_token, time.monotonic() - started, received.partition(b"\r\n\r\n")[2])


def assert_passed_on_as_sent(direct: Arrival, proxied: Arrival) -> None:
    """The upstream sends its first events at once, its first token 0.4 s later and the rest over another
    0.8 s. Through the proxy, the same pauses between the same events: a proxy that buffered would send
    everything at the end, with no pause at all. The proxy's own cost shows in its first byte: a token
    lookup and, under the test server on PostgreSQL, a new database connection per request (0.5 s on a
    loaded machine), hence the loose bound; the pauses are the measure of passing chunks on as sent."""
    assert direct.first < 0.2 and direct.first_token > 0.35 and direct.end > 1.0, direct
    assert proxied.first - direct.first < 1.0, ("time to the first chunk", proxied.first, direct.first)
    assert proxied.first < proxied.first_token - 0.25, ("events before the first token held back", proxied)
    wait_for_token = (proxied.first_token - proxied.first, direct.first_token - direct.first)
    assert abs(wait_for_token[0] - wait_for_token[1]) < 0.15, ("pause before the first token", wait_for_token)
    tokens_took = (proxied.end - proxied.first_token, direct.end - direct.first_token)
    assert abs(tokens_took[0] - tokens_took[1]) < 0.3, ("the tokens' time", tokens_took)


def test_a_streamed_answer_arrives_chunk_by_chunk_as_upstream_sends_it(
    live_server, app_token, simulator, sim_key
):
    simulator.config.stream_first_token_ms = 400
    simulator.config.stream_token_ms = 40
    conversation = simulator.state.create_conversation("proj_alpha")
    request = {"model": "gpt-sim", "input": "Hi", "conversation": conversation["id"], "stream": True}
    direct = _raw_stream(
        simulator.base_url, "/responses", {"Authorization": f"Bearer {sim_key('proj_alpha')}"}, request
    )
    proxied = _raw_stream(
        f"{live_server.url}/proxy/v1", "/responses", {"Authorization": f"Bearer {app_token.secret}"}, request
    )
    assert_passed_on_as_sent(direct, proxied)
    events = [block for block in _chunked_body(proxied.body).split(b"\n\n") if block]
    assert [e.split(b"\n")[0] for e in events] == [e.split(b"\n")[0] for e in direct.body.split(b"\n\n") if e]


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
