"""The simulated world: API keys and their projects, the objects of the three kinds, the fault queue.

Thread-safe through one lock: the WSGI app holds it while it reads or changes objects and while it
serialises the answer, so a page never sees an object half changed. Tests and `seed_demo` call the
seeding helpers directly to build objects with chosen timestamps, which the HTTP API cannot.
"""

import bisect
import random
import threading
from collections import deque
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from operator import itemgetter

from . import errors, objects
from .config import check_fault
from .limiter import RateLimiter

# Assistants threads unused this long were removed by OpenAI; the simulator answers 404 for them.
ASSISTANTS_THREAD_TTL = timedelta(days=60)
REQUEST_LOG_LIMIT = 100_000
# Cursors handed out by `endless_list` pages, kept so that paging on from one stays endless.
ENDLESS_CURSOR_LIMIT = 100_000
BASE62 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
HEX = "0123456789abcdef"


def _wall_clock() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True, slots=True)
class Key:
    project_id: str
    organization_id: str


@dataclass(slots=True)
class AssistantsThread:
    project_id: str
    data: dict
    last_active_at: int
    messages: list[dict] = field(default_factory=list)  # oldest first
    runs: list[dict] = field(default_factory=list)  # oldest first


@dataclass(slots=True)
class Conversation:
    project_id: str
    data: dict
    items: list[dict] = field(default_factory=list)  # in the order they were added
    deleted: bool = False


@dataclass(slots=True)
class ChatKitThread:
    project_id: str
    data: dict
    items: list[dict] = field(default_factory=list)  # oldest first


class LoggedRequest(tuple):
    """One request of `SimulatorState.request_log`: it unpacks as `(method, path, status)`, `status` being
    what the client received (None: the connection was closed without an answer).

    `outcome` is what the server did: the status it sent, or would have sent when it carried the request
    out and then dropped the connection (the `drop_after` fault); None when it dropped the connection
    before handling the request (`drop`). So `status is None and outcome == 200` is a deletion that
    happened but whose answer never reached the client.
    """

    def __new__(cls, method: str, path: str, status: int | None, outcome: int | None = None):
        entry = super().__new__(cls, (method, path, status))
        entry.outcome = outcome
        return entry

    def __reduce__(self):
        # Sent whole through pickle (to a benchmark talking to a simulator in another process).
        return (type(self), (*self, self.outcome))

    def __repr__(self) -> str:
        return f"LoggedRequest({self[0]!r}, {self[1]!r}, {self[2]!r}, outcome={self.outcome!r})"

    method = property(itemgetter(0))
    path = property(itemgetter(1))
    status = property(itemgetter(2))

    @property
    def unanswered_but_done(self) -> bool:
        """The server carried the request out, and the client never got its answer."""
        return self.status is None and self.outcome is not None


def _by_created_at(obj: dict) -> int:
    return obj["created_at"]


class SimulatorState:
    def __init__(self, *, seed: int | None = None, clock=None):
        self.lock = threading.RLock()
        self.clock = clock or _wall_clock  # returns an aware datetime; tests replace it to move time
        self.request_log: list[LoggedRequest] = []
        self.limiter = RateLimiter()
        self.threads: dict[str, AssistantsThread] = {}
        # Deleted conversations stay here (marked deleted): the API leaves their items stored.
        self.conversations: dict[str, Conversation] = {}
        self.chatkit_threads: dict[str, ChatKitThread] = {}
        self._chatkit_by_project: dict[str, list[dict]] = {}  # oldest first, for the list endpoint
        self._keys: dict[str, Key] = {}
        self._faults: deque[str] = deque()
        self._rng = random.Random(seed)
        self._requests_seen = 0  # never cut back, unlike request_log
        self._logged = threading.Condition(self.lock)
        self._endless_cursors: set[str] = set()
        self._endless_served = 0

    # --- keys, faults, time, IDs ------------------------------------------------------------------

    def add_key(self, api_key: str, project_id: str, organization_id: str = "org-sim") -> None:
        with self.lock:
            self._keys[api_key] = Key(project_id, organization_id)

    def key_for(self, api_key: str) -> Key | None:
        return self._keys.get(api_key)

    def enqueue_faults(self, *faults: str) -> None:
        """Answer the next requests with these faults, one per request, in order."""
        checked = [check_fault(fault) for fault in faults]
        with self.lock:
            self._faults.extend(checked)

    def next_fault(self) -> str | None:
        with self.lock:
            return self._faults.popleft() if self._faults else None

    def log_request(self, method: str, path: str, status: int | None, *, outcome: int | None = None) -> None:
        """Log a request: `status` as the client received it, `outcome` as the server carried it out
        (by default the status sent; see LoggedRequest)."""
        with self.lock:
            self.request_log.append(
                LoggedRequest(method, path, status, status if outcome is None else outcome)
            )
            # A simulator left running for days must not grow without bound; tests read far fewer.
            if len(self.request_log) > REQUEST_LOG_LIMIT:
                del self.request_log[: REQUEST_LOG_LIMIT // 2]
            self._requests_seen += 1
            self._logged.notify_all()

    def wait_for_requests(self, count: int, timeout: float = 10.0) -> bool:
        """Block until `count` requests in all have been logged (or the timeout): a hanging fault logs its
        request when it starts to hang, so this tells when a client is stuck on it."""
        with self._logged:
            return self._logged.wait_for(lambda: self._requests_seen >= count, timeout)

    # --- The endless_list fault (see hostile.py) --------------------------------------------------

    def mark_endless_cursor(self, cursor: str) -> None:
        with self.lock:
            if len(self._endless_cursors) >= ENDLESS_CURSOR_LIMIT:
                self._endless_cursors.clear()
            self._endless_cursors.add(cursor)

    def is_endless_cursor(self, cursor: str | None) -> bool:
        return cursor is not None and cursor in self._endless_cursors

    def endless_served(self, count: int) -> int:
        """How many endless entries were made before these `count`, which it counts in."""
        with self.lock:
            served, self._endless_served = self._endless_served, self._endless_served + count
            return served

    def now(self) -> int:
        return int(self.clock().timestamp())

    def new_id(self, prefix: str, length: int = 24, alphabet: str = BASE62) -> str:
        with self.lock:
            return f"{prefix}_{''.join(self._rng.choices(alphabet, k=length))}"

    @contextmanager
    def ids_from(self, rng: random.Random) -> Iterator[None]:
        """Draw IDs from `rng` for a while, so that a seeded world gets the same IDs every run."""
        with self.lock:
            saved, self._rng = self._rng, rng
            try:
                yield
            finally:
                self._rng = saved

    def _timestamp(self, value) -> int:
        if value is None:
            return self.now()
        if isinstance(value, datetime):
            return int(value.timestamp())
        return int(value)

    # --- Assistants threads -----------------------------------------------------------------------

    def create_thread(
        self,
        project_id: str,
        *,
        created_at=None,
        metadata: dict | None = None,
        messages: Iterable = (),
        tool_resources: dict | None = None,
    ) -> dict:
        """A thread with messages given as `(role, text)` or `(role, text, {field: value…})`; a
        `created_at` among the fields dates that message (datetime or UNIX seconds)."""
        with self.lock:
            created = self._timestamp(created_at)
            thread_id = self.new_id("thread")
            data = objects.thread_object(thread_id, created, dict(metadata or {}), tool_resources)
            self.threads[thread_id] = AssistantsThread(project_id, data, last_active_at=created)
            for entry in messages:
                role, text, extra = _entry(entry)
                extra.setdefault("created_at", created)
                self.add_message(thread_id, role, text, **extra)
            return data

    def add_message(
        self, thread_id: str, role: str, text: str = "", *, created_at=None, content=None, **fields
    ) -> dict:
        with self.lock:
            record = self.threads[thread_id]
            created = self._timestamp(created_at)
            message = objects.message_object(
                self.new_id("msg"),
                thread_id,
                created,
                role,
                content if content is not None else [objects.text_part(text)],
                **fields,
            )
            bisect.insort(record.messages, message, key=_by_created_at)
            record.last_active_at = max(record.last_active_at, created)
            return message

    def add_run(self, thread_id: str, *, created_at=None, assistant_id: str | None = None, **fields) -> dict:
        with self.lock:
            record = self.threads[thread_id]
            created = self._timestamp(created_at)
            run = objects.run_object(
                self.new_id("run"), thread_id, assistant_id or self.new_id("asst"), created, **fields
            )
            bisect.insort(record.runs, run, key=_by_created_at)
            record.last_active_at = max(record.last_active_at, created)
            return run

    def thread(self, project_id: str, thread_id: str) -> AssistantsThread:
        """The thread if this project may see it and it has not expired; else the API's 404."""
        record = self.threads.get(thread_id)
        if record is not None and self.now() - record.last_active_at >= ASSISTANTS_THREAD_TTL.total_seconds():
            del self.threads[thread_id]
            record = None
        if record is None or record.project_id != project_id:
            raise errors.not_found(f"No thread found with id '{thread_id}'.")
        return record

    def touch_thread(self, record: AssistantsThread) -> None:
        record.last_active_at = max(record.last_active_at, self.now())

    # --- Conversations ----------------------------------------------------------------------------

    def create_conversation(
        self, project_id: str, *, created_at=None, metadata: dict | None = None, items: Iterable = ()
    ) -> dict:
        """A conversation with items given as `(role, text)`, `(role, text, {field: value…})`, or an
        InputItem dict as a client would send it (e.g. a `function_call`)."""
        with self.lock:
            conversation_id = self.long_id("conv")
            data = objects.conversation_object(
                conversation_id, self._timestamp(created_at), dict(metadata or {})
            )
            self.conversations[conversation_id] = Conversation(project_id, data)
            self.add_items(conversation_id, items)
            return data

    def add_items(self, conversation_id: str, items: Iterable) -> list[dict]:
        with self.lock:
            record = self.conversations[conversation_id]
            added = []
            for index, entry in enumerate(items):
                if isinstance(entry, dict):
                    item = objects.conversation_item(entry, self.long_id, f"items[{index}]")
                else:
                    role, text, extra = _entry(entry)
                    item = objects.message_item(
                        self.long_id("msg"), role, [objects.item_text_part(role, text)]
                    )
                    item.update(extra)
                added.append(item)
            record.items.extend(added)
            return added

    def conversation(self, project_id: str, conversation_id: str) -> Conversation:
        record = self.conversations.get(conversation_id)
        if record is None or record.deleted or record.project_id != project_id:
            raise errors.not_found(f"Conversation with id '{conversation_id}' not found.")
        return record

    def stored_items(self, conversation_id: str) -> list[dict]:
        """Items still stored for a conversation, deleted or not: what deleting it left behind."""
        with self.lock:
            record = self.conversations.get(conversation_id)
            return list(record.items) if record else []

    def long_id(self, prefix: str) -> str:
        """An ID in the style of the newer APIs (conversations and their items): 48 hex digits."""
        return self.new_id(prefix, 48, HEX)

    # --- ChatKit threads --------------------------------------------------------------------------

    def create_chatkit_thread(
        self,
        project_id: str,
        *,
        user: str,
        title: str | None = None,
        created_at=None,
        items: Iterable = (),
        status: dict | None = None,
    ) -> dict:
        """A ChatKit thread with items given as `(kind, text)` or `(kind, text, {field: value…})`, kind
        being one of user, assistant, widget, client_tool_call, task, task_group."""
        with self.lock:
            created = self._timestamp(created_at)
            thread_id = self.new_id("cthr", 32, HEX)
            data = objects.chatkit_thread_object(thread_id, created, user, title, status)
            self.chatkit_threads[thread_id] = record = ChatKitThread(project_id, data)
            bisect.insort(self._chatkit_by_project.setdefault(project_id, []), data, key=_by_created_at)
            for entry in items:
                kind, text, extra = _entry(entry)
                item_created = self._timestamp(extra.pop("created_at", created))
                item = objects.chatkit_item(
                    self.new_id("cthi", 32, HEX), thread_id, item_created, kind, text, **extra
                )
                bisect.insort(record.items, item, key=_by_created_at)
            return data

    def chatkit_thread(self, project_id: str, thread_id: str) -> ChatKitThread:
        record = self.chatkit_threads.get(thread_id)
        if record is None or record.project_id != project_id:
            raise errors.not_found(f"Thread with id '{thread_id}' not found.")
        return record

    def chatkit_threads_of(self, project_id: str, user: str | None = None) -> list[dict]:
        threads = self._chatkit_by_project.get(project_id, [])
        return [t for t in threads if t["user"] == user] if user is not None else threads

    def delete_chatkit_thread(self, record: ChatKitThread) -> None:
        del self.chatkit_threads[record.data["id"]]
        self._chatkit_by_project[record.project_id].remove(record.data)

    # --- What is left -----------------------------------------------------------------------------

    def live_ids(self, project_id: str) -> dict[str, list[str]]:
        """The IDs a project still holds, by kind, and those of the conversation items still stored
        (deleted conversations included): what a benchmark or test checks after deleting."""
        with self.lock:
            conversations = [r for r in self.conversations.values() if r.project_id == project_id]
            return {
                "assistants_thread": [k for k, r in self.threads.items() if r.project_id == project_id],
                "conversation": [r.data["id"] for r in conversations if not r.deleted],
                "chatkit_thread": [data["id"] for data in self.chatkit_threads_of(project_id)],
                "conversation_item": [item["id"] for r in conversations for item in r.items],
            }


def _entry(entry) -> tuple[str, str, dict]:
    if len(entry) == 2:
        return entry[0], entry[1], {}
    return entry[0], entry[1], dict(entry[2])
