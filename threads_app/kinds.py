"""What differs between the three kinds of thread: paths, beta headers, paging, which reader in `entries.py`
reads their messages or items, how activity is dated, how deletion erases and which can be listed.

Everything else asks `adapter_for(kind_or_thread)` and calls the same methods on whichever adapter it gets;
nothing outside this module branches on the kind.
"""

import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from urllib.parse import quote, urlsplit

from django.utils import timezone

from . import ids
from .client import APIError, Client, NotFound
from .entries import (
    Entry,
    Page,
    RemoteThread,
    assistants_message,
    assistants_run,
    chatkit_item,
    conversation_item,
    follow_pages,
    parse_page,
    remote_thread,
    string,
)
from .metadata import validate as validate_metadata
from .models import Thread

MAX_PAGE_SIZE = 100
# A project may hold many ChatKit threads: discovery reads up to a million.
DISCOVERY_MAX_PAGES = 10_000


class NotSupported(Exception):
    """The kind's API has no way to do this (list Assistants threads, edit a ChatKit thread's metadata)."""


class Unfinished(Exception):
    """A thread's items could not all be deleted by the caller's deadline: `deleted` of them were, the
    thread itself was not."""

    def __init__(self, deleted: int):
        super().__init__(f"{deleted} items deleted before the deadline")
        self.deleted = deleted


def is_openai(base_url: str) -> bool:
    """Whether a base URL is OpenAI's own API (rather than a compatible server or Azure)."""
    host = urlsplit(base_url).hostname or ""
    # Data-residency regions are subdomains: eu.api.openai.com.
    return host == "api.openai.com" or host.endswith(".api.openai.com")


def page_size(limit: int) -> int:
    return max(1, min(int(limit), MAX_PAGE_SIZE))


def check_order(order: str) -> str:
    if order not in ("asc", "desc"):
        raise ValueError(f"order must be 'asc' or 'desc', not {order!r}")
    return order


# --- Adapters -------------------------------------------------------------------------------------


class Adapter:
    kind: str
    prefix: str
    label: str
    beta: str | None = None
    collection: str  # the path of the kind's objects, under the base URL
    entries_name: str  # the sub-path of a thread's messages or items
    supports_metadata = True
    supports_discovery = False
    supports_timestamps = True
    supports_before = True
    # Threads that the API removes after this long without activity.
    expires_after: timedelta | None = None
    # When OpenAI itself stopped serving the kind (other hosts may go on serving it).
    sunset: datetime | None = None

    def __repr__(self) -> str:
        return f"<{type(self).__name__}>"

    def thread_path(self, remote_id: str) -> str:
        # Whatever put an ID in the registry, a malformed one never reaches the API: an empty ID would
        # address the list endpoint, a "../x" another one. Quoting is the second line of defence.
        try:
            valid = ids.kind_of(remote_id) == self.kind and remote_id == remote_id.strip()
        except ids.InvalidId:
            valid = False
        if not valid:
            raise APIError(
                f"{remote_id[:80]!r} is not a valid {self.label} ID; nothing was sent", code="invalid_id"
            )
        return f"/{self.collection}/{quote(remote_id, safe='')}"

    def entries_path(self, remote_id: str) -> str:
        return f"{self.thread_path(remote_id)}/{self.entries_name}"

    def retrieve(self, client: Client, remote_id: str) -> RemoteThread:
        return self.remote_thread(client.get(self.thread_path(remote_id), beta=self.beta), remote_id)

    def update_metadata(self, client: Client, remote_id: str, metadata: dict) -> RemoteThread:
        if not self.supports_metadata:
            raise NotSupported(f"The API offers no way to change the metadata of a {self.label}.")
        payload = {"metadata": validate_metadata(metadata)}
        return self.remote_thread(
            client.post(self.thread_path(remote_id), json=payload, beta=self.beta), remote_id
        )

    def delete(
        self,
        client: Client,
        remote_id: str,
        *,
        delete_items: bool = False,
        until: float | None = None,
        confirm: bool = False,
    ) -> None:
        """Delete the thread. `until`: a `time.monotonic()` moment by which a caller that cannot wait long
        (a page) needs the answer; only the kinds whose deletion takes several calls heed it. `confirm`:
        such a kind looks again before its last call that the others did what the API answered."""
        answer = client.delete(self.thread_path(remote_id), beta=self.beta)
        if answer.get("deleted") is False:
            raise APIError(f"The API answered that {remote_id} was not deleted", status=200)

    def page(
        self,
        client: Client,
        remote_id: str,
        *,
        limit: int = 20,
        after: str | None = None,
        before: str | None = None,
        order: str = "desc",
    ) -> Page:
        """One page of the thread's entries, newest first unless `order="asc"`."""
        if before and not self.supports_before:
            raise NotSupported(f"The API cannot page a {self.label} backwards with `before`.")
        size = page_size(limit)
        params = {
            "limit": size,
            "order": check_order(order),
            "after": after or None,
            "before": before or None,
        }
        payload = client.get(self.entries_path(remote_id), params=params, beta=self.beta)
        return parse_page(payload, self.entry, size)

    def iter_entries(
        self, client: Client, remote_id: str, order: str = "asc", *, max_seconds: float | None = None
    ) -> Iterator[Entry]:
        """Every entry of the thread, oldest first by default (for exports), within follow_pages' caps."""
        for page in follow_pages(
            lambda after: self.page(client, remote_id, limit=MAX_PAGE_SIZE, after=after, order=order),
            max_seconds=max_seconds,
        ):
            yield from page.entries

    def last_activity(self, remote: RemoteThread, newest: Page | None) -> tuple[datetime | None, str]:
        """The latest moment the API shows activity in the thread, and which kind of evidence dated it.

        Conversation items carry no time, so a conversation's is its creation; a caller that saw it change
        records that itself (ActivitySource.SEEN).
        """
        # In order of preference when two evidences name the same moment.
        evidence = []
        if newest is not None and self.supports_timestamps:
            dated = [entry.created_at for entry in newest.entries if entry.created_at]
            if dated:
                evidence.append((max(dated), Thread.ActivitySource.MESSAGE))
        if remote.updated_at:
            evidence.append((remote.updated_at, Thread.ActivitySource.UPDATED))
        if remote.created_at:
            evidence.append((remote.created_at, Thread.ActivitySource.CREATED))
        if not evidence:
            return None, Thread.ActivitySource.UNKNOWN
        latest = max(moment for moment, _ in evidence)
        return next((moment, source) for moment, source in evidence if moment == latest)

    def expiry(self, thread) -> datetime | None:
        """When the API removes (or removed) the thread on its own: None for kinds that never expire.

        On OpenAI's own API a kind past its sunset is gone since the sunset; elsewhere an expiring kind
        goes `expires_after` past its last activity (or its creation, when no activity is known).
        """
        last = thread.last_activity_at or thread.remote_created_at
        moments = [last + self.expires_after] if self.expires_after is not None and last is not None else []
        if self.sunset is not None and is_openai(thread.credential.base_url):
            moments.append(self.sunset)
        return min(moments, default=None)

    def status_when_not_found(self, thread) -> str:
        """The status of a tracked thread that the API no longer finds: expired if its kind expires and the
        moment has come, else missing (deleted elsewhere, or a key of another project)."""
        moment = self.expiry(thread)
        if moment is not None and moment <= timezone.now():
            return Thread.Status.EXPIRED
        return Thread.Status.MISSING

    def discover(self, client: Client, *, user: str | None = None) -> Iterator[RemoteThread]:
        raise NotSupported(f"The API cannot list {self.label}s; add them by ID.")

    def list_runs(self, client: Client, remote_id: str, **params) -> Page:
        raise NotSupported(f"A {self.label} has no runs.")

    def remote_thread(self, raw: dict, remote_id: str) -> RemoteThread:
        return remote_thread(raw, remote_id, self.kind)

    def entry(self, raw: dict) -> Entry:
        """One of the kind's messages or items, read by its function in `entries.py`."""
        raise NotImplementedError


class AssistantsThreads(Adapter):
    kind = Thread.Kind.ASSISTANTS
    prefix = "thread"
    label = "Assistants thread"
    beta = "assistants=v2"
    collection = "threads"
    entries_name = "messages"
    expires_after = timedelta(days=60)
    sunset = datetime(2026, 8, 26, tzinfo=UTC)
    entry = staticmethod(assistants_message)

    def list_runs(self, client: Client, remote_id: str, **params) -> Page:
        """One page of the thread's runs, as entries of type "run" (`limit`, `order`, `after`, `before`)."""
        size = page_size(params.pop("limit", 20))
        params = {"limit": size, "order": check_order(params.pop("order", "desc")), **params}
        payload = client.get(f"{self.thread_path(remote_id)}/runs", params=params, beta=self.beta)
        return parse_page(payload, assistants_run, size)


class Conversations(Adapter):
    kind = Thread.Kind.CONVERSATION
    prefix = "conv"
    label = "conversation"
    collection = "conversations"
    entries_name = "items"
    supports_timestamps = False
    supports_before = False
    entry = staticmethod(conversation_item)

    def delete(self, client: Client, remote_id: str, *, delete_items: bool = False, **options) -> None:
        """Delete the conversation; with `delete_items`, its items first (`until` and `confirm` are theirs),
        as the API keeps them otherwise."""
        if delete_items:
            self.delete_items(client, remote_id, **options)
        super().delete(client, remote_id)

    def delete_items(
        self, client: Client, remote_id: str, *, until: float | None = None, confirm: bool = False
    ) -> int:
        """Delete every item of the conversation; return how many were deleted.

        Re-reads the first page after each round instead of following a cursor, which would point at
        deleted items; a first page that said it was the whole list needs no second look, unless
        `confirm`: then the list must come back empty (an item still listed after the API answered its
        DELETE is an APIError, and the conversation is not deleted).

        With `until`, Unfinished as soon as the work cannot end by then: at once when the items fill more
        than one page (a call each: more than a person should wait for), else when the moment passes
        between two calls. A page's items go several at once when background work lends the client the
        threads it has idle (`Client.each`).
        """
        attempted, deleted = set(), 0

        def delete(item_id: str) -> bool | None:
            """True if deleted, False if it was gone already; None when the time was up (not sent)."""
            if until is not None and time.monotonic() >= until:
                return None
            try:
                client.delete(f"{self.entries_path(remote_id)}/{quote(item_id, safe='')}", beta=self.beta)
            except NotFound:
                return False  # Deleted meanwhile: the goal is reached.
            return True

        while True:
            page = self.page(client, remote_id, limit=MAX_PAGE_SIZE, order="asc")
            ids = [e.id for e in page.entries if e.id]
            fresh = [item_id for item_id in ids if item_id not in attempted]
            if not ids:
                return deleted
            if not fresh:
                raise APIError(f"Items of {remote_id} were still listed after being deleted", status=200)
            if until is not None and page.has_more:
                raise Unfinished(deleted)
            # Several at once when background work lends the client idle threads (Client.each).
            results = client.each(delete, fresh)
            attempted.update(
                item_id for item_id, result in zip(fresh, results, strict=True) if result is not None
            )
            deleted += results.count(True)
            if None in results:
                raise Unfinished(deleted)
            if not page.has_more and not confirm:
                return deleted


class ChatKitThreads(Adapter):
    kind = Thread.Kind.CHATKIT
    prefix = "cthr"
    label = "ChatKit thread"
    beta = "chatkit_beta=v1"
    collection = "chatkit/threads"
    entries_name = "items"
    supports_metadata = False
    supports_discovery = True
    entry = staticmethod(chatkit_item)

    def discover(self, client: Client, *, user: str | None = None) -> Iterator[RemoteThread]:
        """Every ChatKit thread the credential's project holds, newest first, optionally of one end user."""
        params = {"limit": MAX_PAGE_SIZE, "order": "desc", "user": user or None}

        def fetch(after):
            payload = client.get(f"/{self.collection}", params={**params, "after": after}, beta=self.beta)
            return parse_page(
                payload, lambda raw: self.remote_thread(raw, string(raw.get("id"))), MAX_PAGE_SIZE
            )

        # A generator of its own, so that the NotSupported of other kinds is raised on the call, not later.
        pages = follow_pages(
            fetch, max_pages=DISCOVERY_MAX_PAGES, max_entries=DISCOVERY_MAX_PAGES * MAX_PAGE_SIZE
        )
        return (thread for page in pages for thread in page.entries)


ADAPTERS: dict[str, Adapter] = {
    adapter.kind: adapter for adapter in (AssistantsThreads(), Conversations(), ChatKitThreads())
}


def adapter_for(kind_or_thread) -> Adapter:
    """The adapter of a Thread.Kind value, or of anything with a `.kind` (a Thread, a RemoteThread)."""
    kind = getattr(kind_or_thread, "kind", kind_or_thread)
    try:
        return ADAPTERS[kind]
    except KeyError:
        raise ValueError(f"Unknown kind of thread: {kind!r}") from None
