"""What the capture proxy records from an exchange, called directly (no server): created threads from
`POST /threads/runs` too, the end user from the request, the owner stamped, activity and deletions only
within the token's reach; and the proxy's refusals of paths and methods it does not forward."""

import pytest

from threads_app import capture, tokens
from threads_app.models import StatusChange, Thread

THREAD = "thread_abc123DEF456"
CONV = "conv_" + "b2" * 24


@pytest.fixture
def token(credential, alice):
    return tokens.create("app", scopes=["register", "delete"], credential=credential, owner=alice).token


def exchange(token, method, path, request=None, answer=None, status=200, end_user=""):
    return capture.Exchange(token.pk, method, path, status, request, answer, end_user)


def test_a_thread_created_with_a_run_is_recorded_from_the_run(token, alice):
    capture.record_exchange(
        exchange(token, "POST", "threads/runs", {}, {"id": "run_abc123", "thread_id": THREAD})
    )
    thread = Thread.objects.get(remote_id=THREAD)
    assert thread.kind == Thread.Kind.ASSISTANTS and thread.owner == alice and thread.source == "capture"
    assert thread.activity_source == Thread.ActivitySource.CAPTURED


def test_failed_answers_and_malformed_ids_record_nothing(token):
    capture.record_exchange(exchange(token, "POST", "conversations", {}, {"id": CONV}, status=400))
    capture.record_exchange(exchange(token, "POST", "conversations", {}, {"id": "conv_<script>"}))
    capture.record_exchange(
        exchange(token, "POST", "conversations", {}, {"id": THREAD})
    )  # not a conversation
    capture.record_exchange(exchange(token, "POST", "conversations", {}, None))
    assert not Thread.objects.exists()


@pytest.mark.parametrize(
    ("header", "body", "expected"),
    [
        ("cust-1", {"user": "u-2"}, "cust-1"),
        ("", {"safety_identifier": "hash-3", "user": "u-2"}, "hash-3"),
        ("", {"user": "u-2"}, "u-2"),
        ("", {"metadata": {"end_user": "m-4"}}, "m-4"),
        ("", {"thread": {"metadata": {"user_id": "t-5"}}}, "t-5"),
        ("", {}, ""),
    ],
)
def test_the_end_user_comes_from_the_header_then_the_request(header, body, expected):
    assert capture.end_user_of(header, body) == expected


def test_the_owner_is_stamped_where_the_create_keeps_metadata(credential, alice):
    stamping = tokens.create(
        "s", scopes=["register"], credential=credential, owner=alice, stamp_owner=True
    ).token
    body = {"thread": {"metadata": {"a": "b"}}}
    assert capture.stamp_owner(stamping, "threads/runs", body)
    assert body["thread"]["metadata"] == {"a": "b", "threadsite_owner": "alice"}
    full = {"metadata": {f"k{n}": "v" for n in range(16)}}
    assert not capture.stamp_owner(stamping, "conversations", full)  # no room: left as it is
    assert not capture.stamp_owner(stamping, "responses", {"metadata": {}})  # not a create


def test_activity_and_deletion_only_touch_threads_within_reach(token, make_thread):
    from threads_app.models import Credential

    elsewhere = Credential(name="beta", base_url="http://127.0.0.1:9/v1")
    elsewhere.api_key = "sk-beta-0000"
    elsewhere.save()
    mine = make_thread(remote_id=THREAD)
    other = tokens.create("other", scopes=["register", "delete"], credential=elsewhere).token
    capture.record_exchange(exchange(token, "POST", f"threads/{THREAD}/messages", {}, {"id": "msg_1"}))
    capture.record_exchange(exchange(other, "DELETE", f"threads/{THREAD}", None, {"deleted": True}))
    capture.record_exchange(exchange(other, "POST", "responses", {"conversation": CONV}, {"id": "resp_1"}))
    mine.refresh_from_db()
    assert mine.activity_source == Thread.ActivitySource.CAPTURED and mine.status == "active"
    capture.record_exchange(exchange(token, "DELETE", f"threads/{THREAD}", None, {"deleted": True}))
    capture.record_exchange(exchange(token, "DELETE", f"threads/{THREAD}", None, {"deleted": True}))
    mine.refresh_from_db()
    assert mine.status == "deleted"
    assert StatusChange.objects.get(remote_id=THREAD).reason.endswith("(token app)")  # once


def test_the_proxy_refuses_paths_that_climb_and_methods_it_does_not_forward(client, credential):
    made = tokens.create("p", scopes=["register"], credential=credential)
    auth = {"HTTP_AUTHORIZATION": f"Bearer {made.secret}"}
    assert client.get("/proxy/v1/threads/../../admin", **auth).status_code == 404
    assert client.get("/proxy/v1/conversations//x", **auth).status_code == 404
    response = client.put("/proxy/v1/conversations", **auth)
    assert response.status_code == 405 and response.json()["error"]["type"] == "invalid_request_error"


def test_a_reach_decision_is_kept_briefly_then_asked_again(token, make_thread, settings, monkeypatch):
    from threads_app.models import Credential

    elsewhere = Credential(name="gamma", base_url="http://127.0.0.1:9/v1")
    elsewhere.api_key = "sk-gamma-0000"
    elsewhere.save()
    assert capture.outside_reach(token, "thread_later0001") is False  # not tracked (yet)
    make_thread(remote_id="thread_later0001", credential=elsewhere)
    assert capture.outside_reach(token, "thread_later0001") is False  # the kept answer
    later = capture._clock() + settings.THREADSITE_TOKEN_CACHE_SECONDS + 1
    monkeypatch.setattr(capture, "_clock", lambda: later)
    assert capture.outside_reach(token, "thread_later0001") is True


def test_a_thread_created_by_a_streamed_run_is_recorded_from_its_first_event(token):
    from threads_app.api.proxy import _Stream

    events = [
        b'event: thread.created\ndata: {"id": "' + THREAD.encode() + b'", "object": "thread"',
        b', "created_at": 1, "metadata": {}}\n\nevent: thread.run.created\ndata: {"id": "run_1"}\n\n',
        b"event: done\ndata: [DONE]\n\n",
    ]

    class Upstream:
        class raw:  # noqa: N801 - shaped like requests' response.raw
            @staticmethod
            def read1(size, decode_content=True):
                return events.pop(0) if events else b""

        def close(self):
            pass

    sent = exchange(token, "POST", "threads/runs", {"stream": True})
    passed_on = b"".join(_Stream(Upstream(), None, sent))
    assert passed_on.count(b"event: ") == 3  # unchanged
    capture.record_exchange(sent)
    assert Thread.objects.get(remote_id=THREAD).source == "capture"
    assert capture.first_event(b"data: [DONE]\n") is None and capture.first_event(b'data: {"a"') is None
