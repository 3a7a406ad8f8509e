"""The client against servers that misbehave on purpose: a body dripped a byte at a time, no headers at
all, an endless body, a key echoed in a 2xx answer. Every call ends within its deadline, reads at most
its limit, and never lets the key out."""

import threading
import time

import pytest

from tests.hostile import silent
from threads_app import client as client_module
from threads_app.client import APIError, Client, DeadlineExceeded, InvalidResponse, ResponseTooLarge

KEY = "sk-hostile-test-key-1234567890"


def drip(connection, stopped, request):
    connection.sendall(
        b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 1000000\r\n\r\n"
    )
    while not stopped.wait(0.2):
        connection.sendall(b" ")


def endless(connection, stopped, request):
    connection.sendall(b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\n\r\n[")
    chunk = b"0," * 32768
    while not stopped.is_set():
        connection.sendall(chunk)


def echo_key(connection, stopped, request):
    body = f"debug: Authorization: Bearer {KEY}".encode()
    connection.sendall(
        b"HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\ncontent-length: %d\r\n\r\n%s" % (len(body), body)
    )


def client(server, **options):
    return Client(base_url=server.base_url, api_key=KEY, max_retries=2, **options)


@pytest.mark.parametrize("behaviour", [drip, silent], ids=["dripped body", "no headers"])
def test_a_call_ends_at_its_deadline_whatever_the_server_does(hostile, behaviour):
    server = hostile(behaviour)
    started = time.monotonic()
    with pytest.raises(DeadlineExceeded, match=r"did not answer within 1 s"):
        client(server, deadline=1, timeout=(1, 30)).get("/threads/thread_abc")
    assert time.monotonic() - started < 1.5


def test_a_sooner_deadline_is_kept_while_a_later_one_is_being_waited_for(hostile):
    """The one watchdog thread sleeps until the soonest deadline; a call that arrives with a sooner one
    than every call in flight must wake it, or that call would run on to the other's deadline."""
    from concurrent.futures import ThreadPoolExecutor

    server = hostile(drip)
    with ThreadPoolExecutor(1) as pool:
        slow = pool.submit(client(server, deadline=4).get, "/threads/thread_a")
        assert server.wait_for_requests(1)
        started = time.monotonic()
        with pytest.raises(DeadlineExceeded, match=r"did not answer within 1 s"):
            client(server, deadline=1).get("/threads/thread_b")
        assert time.monotonic() - started < 1.5
        with pytest.raises(DeadlineExceeded, match=r"did not answer within 4 s"):
            slow.result(timeout=10)


class Answer:
    """Stands for a response being read: the watchdog closes it at its deadline."""

    raw = None

    def __init__(self):
        self.closed = threading.Event()

    def close(self):
        self.closed.set()


def test_the_watchdog_shuts_an_answer_at_its_deadline_and_then_sleeps_until_the_next():
    watchdog = client_module._Watchdog()
    due, later, released = Answer(), Answer(), Answer()
    watchdog.release(watchdog.watch(time.monotonic() + 0.1, released))
    watchdog.watch(time.monotonic() + 0.1, due)
    kept = watchdog.watch(time.monotonic() + 30, later)
    assert due.closed.wait(1)
    assert not released.closed.is_set() and not later.closed.is_set()
    watchdog.release(kept)
    deadline = time.monotonic() + 1
    while watchdog._busy.is_set() and time.monotonic() < deadline:
        time.sleep(0.01)
    assert not watchdog._busy.is_set(), "nothing to watch: the thread waits for the next answer"
    again = Answer()
    watchdog.watch(time.monotonic() + 0.1, again)
    assert again.closed.wait(1), "and wakes for it"


def test_a_forked_child_forgets_the_answers_its_parent_was_reading():
    watchdog = client_module._Watchdog()
    parents = Answer()
    watchdog.watch(time.monotonic() + 0.2, parents)
    watchdog._after_fork()  # as os.register_at_fork runs it in the child
    childs = Answer()
    watchdog.watch(time.monotonic() + 0.2, childs)
    assert childs.closed.wait(1)
    assert watchdog._thread is not None and watchdog._thread.is_alive()
    assert not parents.closed.wait(0.3), "its socket is the parent's too: shutting it would cut the parent"


def test_an_answer_larger_than_the_limit_is_not_read(hostile):
    server = hostile(endless)
    with pytest.raises(ResponseTooLarge, match="larger than 1,048,576 bytes"):
        client(server, deadline=10, max_response_bytes=1024 * 1024).get("/threads/thread_abc")


def test_a_declared_length_over_the_limit_is_refused_before_reading(hostile):
    server = hostile(drip)
    started = time.monotonic()
    with pytest.raises(ResponseTooLarge):
        client(server, deadline=10, max_response_bytes=1024).get("/threads/thread_abc")
    assert time.monotonic() - started < 1


def test_a_key_echoed_in_a_2xx_answer_is_masked(hostile, caplog):
    server = hostile(echo_key)
    with pytest.raises(InvalidResponse) as raised:
        client(server, deadline=5).get("/threads/thread_abc")
    assert KEY not in str(raised.value) and KEY not in raised.value.message
    assert "sk-" in str(raised.value) and "7890" in str(raised.value)
    assert KEY not in caplog.text


def test_a_deadline_error_is_an_api_error_that_pages_show(hostile):
    from threads_app import outcomes

    server = hostile(silent)
    with pytest.raises(APIError) as raised:
        client(server, deadline=1).get("/threads/thread_abc")
    outcome = outcomes.classify(raised.value)
    assert outcome.kind == "unavailable" and "did not answer within 1 s" in outcome.message
