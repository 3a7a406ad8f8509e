"""Hostile answers: what a broken proxy, a debugging server or a malicious endpoint sends back where the
API's answer should be. Each is a fault mode (see config.HOSTILE_FAULTS), queued or drawn at
`hostile_rate`, so that tests, CI and the demo meet them through the simulator rather than a raw socket.

Below HTTP's semantics, served by the app while the request's thread holds no lock (other connections go
on being answered):
- `slow_body`: a 200 that declares DRIP_LENGTH bytes and sends one every `drip_interval` seconds;
- `no_headers`: the request is read and never answered;
- `huge_body`: a 200 JSON list of `huge_body_bytes`, streamed with no Content-Length (read to the close).
Both waits end when the client goes away or the server closes.

Within HTTP, answered by the app like any other answer:
- `echo_key`: a 200 `text/plain` quoting the request's Authorization and api-key headers;
- `endless_list`: a list endpoint says `has_more: true` with fresh entries and a new cursor; every later
  request that pages on from such a cursor gets the same, so one queued fault makes a whole listing endless;
- `bad_ids`: the ChatKit threads list carries, besides its real entries, entries with malformed IDs, and
  every entry 200 metadata pairs.
The two list faults leave a request to an endpoint that lists nothing answered as usual.
"""

import json
import select
import socket
import threading
from collections.abc import Iterator

from . import assistants, chatkit, conversations, objects
from .paging import envelope, list_params
from .state import HEX

# Keys the server puts in a request's environ: its socket (to notice a client that gave up), and a flag the
# app sets when the connection must close after the answer (a body cut short, or delimited by the close).
SOCKET = "simulator.socket"
CLOSE_CONNECTION = "simulator.close_connection"

# Far more than a drip ever sends, yet under the client's size limit: the client reads it, it never ends.
DRIP_LENGTH = 1_000_000
BAD_IDS = (
    "",
    "cthr_abc\r\nX-Evil: 1",
    'cthr_"<img src=x onerror=alert(1)>',
    "../../threads/x",
    "cthr_" + "a" * 300,
)
BAD_METADATA_PAIRS = 200
# How often a wait checks whether its client is still there.
POLL_SECONDS = 0.2


def echo_key(environ) -> bytes:
    lines = ["debug: the request's credentials"]
    if authorization := environ.get("HTTP_AUTHORIZATION"):
        lines.append(f"Authorization: {authorization}")
    if api_key := environ.get("HTTP_API_KEY"):
        lines.append(f"api-key: {api_key}")
    # WSGI hands header values over as latin-1 strings.
    return "\n".join(lines).encode("latin-1", "replace")


def wait_unanswered(environ, stopping: threading.Event) -> None:
    """Hold the request unanswered until its client closes the connection or the server stops."""
    connection = environ.get(SOCKET)
    while not stopping.wait(POLL_SECONDS):
        if connection is not None and _peer_closed(connection):
            return


def drip(stopping: threading.Event, interval: float) -> Iterator[bytes]:
    """A body that never ends: a byte now (with the headers), then one every `interval` seconds. A client
    that goes away makes the next write fail, which ends the answer."""
    yield b"{"
    while not stopping.wait(interval):
        yield b" "


def huge_body(size: int, stopping: threading.Event, state) -> Iterator[bytes]:
    """A JSON list of messages `size` bytes long, in chunks of about 64 KB, never whole in memory."""
    entry = json.dumps(
        objects.message_object(
            state.new_id("msg"), state.new_id("thread"), state.now(), "user", [objects.text_part("x" * 400)]
        )
    ).encode()
    head = b'{"object": "list", "data": ['
    tail = b'], "first_id": null, "last_id": null, "has_more": false}'
    chunk = b", ".join([entry] * max(1, 65536 // (len(entry) + 2)))
    remaining = size - len(head) - len(tail)
    yield head
    separator = b""
    while remaining >= len(separator) + len(chunk) and not stopping.is_set():
        yield separator + chunk
        remaining -= len(separator) + len(chunk)
        separator = b", "
    if not stopping.is_set():
        yield b" " * max(0, remaining) + tail


# --- Lists ------------------------------------------------------------------------------------------------


def _message(request, n: int) -> dict:
    text = objects.text_part(f"Endless message {n}")
    return objects.message_object(
        request.state.new_id("msg"), request.params["thread_id"], request.state.now(), "user", [text]
    )


def _item(request, n: int) -> dict:
    return objects.message_item(
        request.state.long_id("msg"), "user", [objects.item_text_part("user", f"Endless item {n}")]
    )


def _chatkit_thread(request, n: int) -> dict:
    thread_id = request.state.new_id("cthr", 32, HEX)
    return objects.chatkit_thread_object(thread_id, request.state.now(), "endless", f"Endless thread {n}")


def _chatkit_item(request, n: int) -> dict:
    item_id = request.state.new_id("cthi", 32, HEX)
    return objects.chatkit_item(
        item_id, request.params["thread_id"], request.state.now(), "user", f"Endless item {n}"
    )


# The list endpoints, and how to make a fresh entry of each (with the entry's number in the listing).
LISTS = {
    assistants.list_messages: _message,
    conversations.list_items: _item,
    chatkit.list_threads: _chatkit_thread,
    chatkit.list_items: _chatkit_item,
}


def list_answer(fault: str | None, handler, request) -> dict | None:
    """The hostile page of a list endpoint, or None to answer as usual. Called under the state's lock."""
    make_entry = LISTS.get(handler)
    if make_entry is None:
        return None
    if fault == "endless_list" or request.state.is_endless_cursor(request.query.get("after")):
        # The limit is checked as the endpoint checks it; a page of 0 would give no cursor to go on with.
        limit = max(1, list_params(request.query, min_limit=0).limit)
        served = request.state.endless_served(limit)
        data = [make_entry(request, served + n) for n in range(1, limit + 1)]
        request.state.mark_endless_cursor(data[-1]["id"])
        return envelope(data, has_more=True)
    if fault == "bad_ids" and handler is chatkit.list_threads:
        page = handler(request)
        now = request.state.now()
        metadata = {f"key_{n:03d}": "v" * 600 for n in range(BAD_METADATA_PAIRS)}
        bad = [objects.chatkit_thread_object(bad_id, now, "hostile", "Malformed") for bad_id in BAD_IDS]
        data = [{**entry, "metadata": metadata} for entry in [*page["data"], *bad]]
        return {**page, "data": data}
    return None


def _peer_closed(connection: socket.socket) -> bool:
    try:
        readable, _, _ = select.select([connection], [], [], 0)
        # Readable with nothing to read: the client closed its end.
        return bool(readable) and connection.recv(1, socket.MSG_PEEK) == b""
    except (OSError, ValueError):  # reset, or already closed by the server
        return True
