"""What differs between the three kinds of thread: paths, beta headers, paging, the shapes of their
messages or items, how activity is dated, how deletion erases and which can be listed.

Everything else asks `adapter_for(kind_or_thread)` and calls the same methods on whichever adapter it gets;
nothing outside this module branches on the kind. Responses are read leniently, as the product also runs
against Assistants-compatible servers: missing optional fields, unknown content types (kept as "other"
parts with their raw data), pages without cursors and timestamps in odd formats do not break it.
"""

import json
import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import quote, urlsplit

from django.utils import timezone

from .client import APIError, Client, InvalidResponse, NotFound
from .models import Thread

PART_TYPES = ("text", "refusal", "file", "image", "tool_call", "tool_output", "widget", "other")
MAX_PAGE_SIZE = 100
# Limits that OpenAI documents for metadata on every object that has it.
METADATA_MAX_PAIRS = 16
METADATA_MAX_KEY = 64
METADATA_MAX_VALUE = 512


class NotSupported(Exception):
    """The kind's API has no way to do this (list Assistants threads, edit a ChatKit thread's metadata)."""


class InvalidMetadata(ValueError):
    pass


@dataclass(frozen=True)
class Annotation:
    """A citation or file reference inside a text part; `start`/`end` index the part's text when known."""

    type: str
    text: str = ""
    file_id: str = ""
    filename: str = ""
    url: str = ""
    title: str = ""
    start: int | None = None
    end: int | None = None


@dataclass(frozen=True)
class Part:
    """One piece of an entry's content. `type` is one of PART_TYPES; `data` keeps the raw source where the
    normalised fields cannot say everything (tool calls, widgets, unknown types)."""

    type: str
    text: str = ""
    annotations: tuple[Annotation, ...] = ()
    file_id: str = ""
    url: str = ""
    name: str = ""
    data: Any = None


@dataclass
class Entry:
    """A message (Assistants), an item (Conversations, ChatKit), or a run (Assistants `list_runs`)."""

    id: str
    role: str
    type: str
    created_at: datetime | None
    parts: list[Part] = field(default_factory=list)
    run_id: str = ""
    assistant_id: str = ""
    status: str = ""
    raw: dict = field(default_factory=dict, repr=False)

    @property
    def text(self) -> str:
        """The entry's text parts, joined: for previews and searching."""
        return "\n\n".join(part.text for part in self.parts if part.type in ("text", "refusal") and part.text)


@dataclass
class Page:
    """One page of a list, as the API cut it. `entries` are Entry objects (RemoteThread for discovery)."""

    entries: list
    first_id: str | None
    last_id: str | None
    has_more: bool

    @property
    def next_cursor(self) -> str | None:
        """The `after` that continues the listing in the same order, or None at its end."""
        return self.last_id if self.has_more and self.last_id else None


@dataclass
class RemoteThread:
    id: str
    kind: str
    created_at: datetime | None
    metadata: dict
    title: str = ""
    user: str = ""
    updated_at: datetime | None = None
    raw: dict = field(default_factory=dict, repr=False)


# --- Reading fields leniently ---------------------------------------------------------------------


def timestamp(value) -> datetime | None:
    """An aware datetime from unix seconds (the API's format), milliseconds, or an ISO 8601 string."""
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, str):
        text = value.strip()
        try:
            value = float(text)
        except ValueError:
            try:
                moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
            except ValueError:
                return None
            return moment if moment.tzinfo else moment.replace(tzinfo=UTC)
    if not isinstance(value, int | float) or not math.isfinite(value):
        return None
    # Seconds since 1970 pass 10¹¹ only in the year 5138; larger numbers are milliseconds.
    if abs(value) > 1e11:
        value = value / 1000
    try:
        return datetime.fromtimestamp(value, tz=UTC)
    except (OverflowError, OSError, ValueError):
        return None


def text_of(value) -> str:
    """A string for display: strings as they are, structures as compact JSON, nothing as ""."""
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    return json.dumps(value, ensure_ascii=False, separators=(", ", ": "))


def string(value) -> str:
    return value if isinstance(value, str) else ""


def mapping(value) -> dict:
    return value if isinstance(value, dict) else {}


def items_of(value) -> list:
    return value if isinstance(value, list) else []


def clean_metadata(value) -> dict:
    """Metadata as a dict of strings; null (which the spec allows) becomes {}."""
    return {str(key): text_of(item) for key, item in mapping(value).items()}


def validate_metadata(metadata) -> dict:
    """The metadata if the API would accept it, else InvalidMetadata with a message a person can act on."""
    if not isinstance(metadata, dict):
        raise InvalidMetadata("Metadata must be a set of key-value pairs.")
    if len(metadata) > METADATA_MAX_PAIRS:
        raise InvalidMetadata(f"Metadata holds at most {METADATA_MAX_PAIRS} pairs; this has {len(metadata)}.")
    for key, value in metadata.items():
        if not isinstance(key, str) or not key:
            raise InvalidMetadata("Metadata keys must be non-empty text.")
        if len(key) > METADATA_MAX_KEY:
            raise InvalidMetadata(
                f"The metadata key “{key[:20]}…” is longer than {METADATA_MAX_KEY} characters."
            )
        if not isinstance(value, str):
            raise InvalidMetadata(f"The value of “{key}” must be text.")
        if len(value) > METADATA_MAX_VALUE:
            raise InvalidMetadata(f"The value of “{key}” is longer than {METADATA_MAX_VALUE} characters.")
    return metadata


def parse_page(payload: dict, parse: Callable[[dict], Any], limit: int) -> Page:
    """A list response as a Page. The cursors and `has_more` are derived from the items when absent."""
    data = payload.get("data")
    if not isinstance(data, list):
        raise InvalidResponse("The API answered a list request without a list of data", status=200)
    entries = [parse(item) for item in data if isinstance(item, dict)]
    ids = [entry.id for entry in entries if entry.id]
    first_id = string(payload.get("first_id")) or (ids[0] if ids else None)
    last_id = string(payload.get("last_id")) or (ids[-1] if ids else None)
    has_more = payload.get("has_more")
    if not isinstance(has_more, bool):
        # Unknown: a full page may have a successor; asking costs one request, assuming not may lose data.
        has_more = bool(data) and len(data) >= limit
    return Page(entries=entries, first_id=first_id, last_id=last_id, has_more=has_more)


def follow_pages(fetch: Callable[[str | None], Page]) -> Iterator[Page]:
    """Every page from the first on. Stops if a server hands back a cursor it already gave (a loop)."""
    cursor, seen = None, set()
    while True:
        page = fetch(cursor)
        yield page
        cursor = page.next_cursor
        if cursor is None or cursor in seen or not page.entries:
            return
        seen.add(cursor)


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


# --- Content parts shared by the Responses-style shapes (Conversations, ChatKit, tool outputs) -------


def annotation(raw: dict) -> Annotation:
    kind = string(raw.get("type")) or "other"
    source = mapping(raw.get("source"))  # ChatKit's {"type": "file"|"url", "source": {...}}
    cited = mapping(raw.get(kind))  # Assistants' {"type": "file_citation", "file_citation": {...}}
    start = raw.get("start_index", raw.get("index"))
    end = raw.get("end_index")
    return Annotation(
        type=kind,
        text=string(raw.get("text")),
        file_id=string(raw.get("file_id")) or string(cited.get("file_id")),
        filename=string(raw.get("filename")) or string(source.get("filename")),
        url=string(raw.get("url")) or string(source.get("url")),
        title=string(raw.get("title")),
        start=start if isinstance(start, int) else None,
        end=end if isinstance(end, int) else None,
    )


def annotations_of(raw: dict) -> tuple[Annotation, ...]:
    return tuple(annotation(item) for item in items_of(raw.get("annotations")) if isinstance(item, dict))


TEXT_CONTENT = {"input_text", "output_text", "text", "summary_text", "reasoning_text", "quoted_text"}
IMAGE_CONTENT = {"input_image", "computer_screenshot", "image"}


def content_part(raw) -> Part:
    """A part of Responses-style content: Conversation messages, tool outputs, ChatKit messages."""
    if isinstance(raw, str):
        return Part("text", text=raw)
    if not isinstance(raw, dict):
        return Part("other", data=raw)
    kind = string(raw.get("type"))
    if kind in TEXT_CONTENT and isinstance(raw.get("text"), str):
        name = "" if kind in ("input_text", "output_text", "text") else kind
        return Part("text", text=raw["text"], annotations=annotations_of(raw), name=name)
    if kind == "refusal":
        return Part("refusal", text=string(raw.get("refusal")))
    if kind in IMAGE_CONTENT:
        return Part(
            "image", file_id=string(raw.get("file_id")), url=string(raw.get("image_url") or raw.get("url"))
        )
    if kind == "input_file":
        return Part(
            "file",
            file_id=string(raw.get("file_id")),
            name=string(raw.get("filename")),
            url=string(raw.get("file_url")),
        )
    return Part("other", name=kind, data=raw)


def content_parts(value) -> list[Part]:
    """Content that may be a plain string (the spec allows it for inputs) or a list of parts."""
    if isinstance(value, str):
        return [Part("text", text=value)] if value else []
    return [content_part(item) for item in items_of(value)]


def output_parts(value, *, name: str = "") -> list[Part]:
    """A tool's output: a string, a list of content parts (text, images, files) or any JSON."""
    if isinstance(value, list):
        parts = content_parts(value)
        return [
            Part("tool_output", text=p.text, file_id=p.file_id, url=p.url, name=name, data=p.data)
            if p.type == "text"
            else p
            for p in parts
        ]
    if isinstance(value, dict) and value.get("type") in IMAGE_CONTENT:
        return [
            Part(
                "tool_output",
                name=name,
                file_id=string(value.get("file_id")),
                url=string(value.get("image_url")),
            )
        ]
    return [Part("tool_output", text=text_of(value), name=name)]


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
        # IDs reach here validated, but quoting keeps a stray "/" or ".." from addressing another endpoint.
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

    def delete(self, client: Client, remote_id: str, *, delete_items: bool = False) -> None:
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

    def iter_entries(self, client: Client, remote_id: str, order: str = "asc") -> Iterator[Entry]:
        """Every entry of the thread, oldest first by default (for exports)."""
        for page in follow_pages(
            lambda after: self.page(client, remote_id, limit=MAX_PAGE_SIZE, after=after, order=order)
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

    def status_when_not_found(self, thread) -> str:
        """The status of a tracked thread that the API no longer finds: expired if its kind expires and it
        was idle long enough, else missing (deleted elsewhere, or a key of another project)."""
        now = timezone.now()
        if self.sunset is not None and now >= self.sunset and is_openai(thread.credential.base_url):
            return Thread.Status.EXPIRED
        if self.expires_after is not None:
            last = thread.last_activity_at or thread.remote_created_at
            if last is not None and last <= now - self.expires_after:
                return Thread.Status.EXPIRED
        return Thread.Status.MISSING

    def discover(self, client: Client, *, user: str | None = None) -> Iterator[RemoteThread]:
        raise NotSupported(f"The API cannot list {self.label}s; add them by ID.")

    def list_runs(self, client: Client, remote_id: str, **params) -> Page:
        raise NotSupported(f"A {self.label} has no runs.")

    def remote_thread(self, raw: dict, remote_id: str) -> RemoteThread:
        metadata = clean_metadata(raw.get("metadata"))
        return RemoteThread(
            id=string(raw.get("id")) or remote_id,
            kind=self.kind,
            created_at=timestamp(raw.get("created_at")),
            metadata=metadata,
            # Neither API gives these objects a title; a "title" in metadata is the common convention.
            title=string(raw.get("title")) or metadata.get("title", ""),
            user=string(raw.get("user")),
            updated_at=timestamp(raw.get("updated_at")),
            raw=raw,
        )

    def entry(self, raw: dict) -> Entry:
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

    def entry(self, raw: dict) -> Entry:
        parts = [self.content_part(item) for item in items_of(raw.get("content"))]
        for attachment in items_of(raw.get("attachments")):
            if isinstance(attachment, dict):
                tools = [string(mapping(tool).get("type")) for tool in items_of(attachment.get("tools"))]
                parts.append(
                    Part(
                        "file",
                        file_id=string(attachment.get("file_id")),
                        name="attachment",
                        data={"tools": tools},
                    )
                )
        return Entry(
            id=string(raw.get("id")),
            role=string(raw.get("role")),
            type="message",
            created_at=timestamp(raw.get("created_at")),
            parts=parts,
            run_id=string(raw.get("run_id")),
            assistant_id=string(raw.get("assistant_id")),
            status=string(raw.get("status")),
            raw=raw,
        )

    @staticmethod
    def content_part(raw) -> Part:
        if not isinstance(raw, dict):
            return Part("other", data=raw)
        kind = string(raw.get("type"))
        if kind == "text":
            text = raw.get("text")
            if isinstance(text, str):  # Some compatible servers flatten {"value": …} to a string.
                return Part("text", text=text)
            text = mapping(text)
            return Part("text", text=string(text.get("value")), annotations=annotations_of(text))
        if kind == "image_file":
            image = mapping(raw.get("image_file"))
            return Part("image", file_id=string(image.get("file_id")), data=raw)
        if kind == "image_url":
            image = mapping(raw.get("image_url"))
            return Part("image", url=string(image.get("url")), data=raw)
        if kind == "refusal":
            return Part("refusal", text=string(raw.get("refusal")))
        return Part("other", name=kind, data=raw)

    def list_runs(self, client: Client, remote_id: str, **params) -> Page:
        """One page of the thread's runs, as entries of type "run" (`limit`, `order`, `after`, `before`)."""
        size = page_size(params.pop("limit", 20))
        params = {"limit": size, "order": check_order(params.pop("order", "desc")), **params}
        payload = client.get(f"{self.thread_path(remote_id)}/runs", params=params, beta=self.beta)
        return parse_page(payload, self.run, size)

    @staticmethod
    def run(raw: dict) -> Entry:
        error = mapping(raw.get("last_error"))
        parts = (
            [Part("other", name="last_error", text=string(error.get("message")), data=error)] if error else []
        )
        return Entry(
            id=string(raw.get("id")),
            role="assistant",
            type="run",
            created_at=timestamp(raw.get("created_at")),
            parts=parts,
            run_id=string(raw.get("id")),
            assistant_id=string(raw.get("assistant_id")),
            status=string(raw.get("status")),
            raw=raw,
        )


def _call(name: str, arguments, **data) -> list[Part]:
    return [Part("tool_call", name=name, text=text_of(arguments), data=data or None)]


def _joined(values) -> str:
    return "\n".join(text_of(value) for value in items_of(values))


def _web_search(item: dict) -> list[Part]:
    action = mapping(item.get("action"))
    text = _joined(action.get("queries")) or string(action.get("query")) or string(action.get("url"))
    return [
        Part("tool_call", name="web_search", text=text, url=string(action.get("url")), data=action or None)
    ]


def _file_search(item: dict) -> list[Part]:
    parts = [Part("tool_call", name="file_search", text=_joined(item.get("queries")))]
    for result in items_of(item.get("results")):
        result = mapping(result)
        parts.append(
            Part(
                "tool_output",
                name="file_search",
                text=string(result.get("text")),
                file_id=string(result.get("file_id")),
                data={"filename": result.get("filename"), "score": result.get("score")},
            )
        )
    return parts


def _image_generation(item: dict) -> list[Part]:
    result = string(item.get("result"))
    # The result is the image itself, base64-encoded.
    return [Part("image", name="image_generation", url=f"data:image/png;base64,{result}" if result else "")]


def _computer_call(item: dict) -> list[Part]:
    actions = item.get("actions") or item.get("action")
    return _call("computer", actions, pending_safety_checks=item.get("pending_safety_checks"))


def _code_interpreter(item: dict) -> list[Part]:
    parts = [Part("tool_call", name="code_interpreter", text=string(item.get("code")))]
    for output in items_of(item.get("outputs")):
        output = mapping(output)
        if output.get("type") == "image":
            parts.append(Part("tool_output", name="code_interpreter", url=string(output.get("url"))))
        else:
            parts.append(
                Part("tool_output", name="code_interpreter", text=text_of(output.get("logs", output)))
            )
    return parts


def _shell_output(item: dict) -> list[Part]:
    parts = []
    for chunk in items_of(item.get("output")):
        chunk = mapping(chunk)
        text = "\n".join(filter(None, [string(chunk.get("stdout")), string(chunk.get("stderr"))]))
        parts.append(Part("tool_output", name="shell", text=text, data=chunk.get("outcome")))
    return parts or [Part("tool_output", name="shell", text=text_of(item.get("output")))]


def _apply_patch(item: dict) -> list[Part]:
    operation = mapping(item.get("operation"))
    header = f"{string(operation.get('type'))} {string(operation.get('path'))}".strip()
    return [
        Part(
            "tool_call",
            name="apply_patch",
            text="\n".join(filter(None, [header, string(operation.get("diff"))])),
        )
    ]


def _mcp_call(item: dict) -> list[Part]:
    parts = _call(
        string(item.get("name")) or "mcp", item.get("arguments"), server_label=item.get("server_label")
    )
    if item.get("output") is not None:
        parts.append(Part("tool_output", name=string(item.get("name")), text=text_of(item.get("output"))))
    if item.get("error"):
        parts.append(Part("tool_output", name="error", text=text_of(item.get("error"))))
    return parts


def _mcp_approval_response(item: dict) -> list[Part]:
    verdict = "approved" if item.get("approve") else "denied"
    reason = string(item.get("reason"))
    return [Part("tool_output", name="mcp_approval", text=f"{verdict}: {reason}" if reason else verdict)]


def _tool_names(tools) -> str:
    return ", ".join(
        string(mapping(tool).get("name")) or string(mapping(tool).get("type")) for tool in items_of(tools)
    )


def _reasoning(item: dict) -> list[Part]:
    parts = [
        Part("text", name="reasoning", text=string(mapping(s).get("text")))
        for s in items_of(item.get("summary"))
    ]
    parts += [
        Part("text", name="reasoning", text=string(mapping(c).get("text")))
        for c in items_of(item.get("content"))
    ]
    return parts


# The Part shapes of every Conversation item type the spec lists, with the role each speaks in.
CONVERSATION_ITEMS: dict[str, tuple[str, Callable[[dict], list[Part]]]] = {
    "function_call": ("assistant", lambda i: _call(string(i.get("name")), i.get("arguments"))),
    "function_call_output": ("tool", lambda i: output_parts(i.get("output"), name=string(i.get("name")))),
    "file_search_call": ("assistant", _file_search),
    "web_search_call": ("assistant", _web_search),
    "image_generation_call": ("assistant", _image_generation),
    "computer_call": ("assistant", _computer_call),
    "computer_call_output": ("tool", lambda i: output_parts(i.get("output"), name="computer")),
    "tool_search_call": ("assistant", lambda i: _call("tool_search", i.get("arguments"))),
    "tool_search_output": (
        "tool",
        lambda i: [Part("tool_output", name="tool_search", text=_tool_names(i.get("tools")))],
    ),
    "additional_tools": (
        "system",
        lambda i: [Part("other", name="additional_tools", text=_tool_names(i.get("tools")))],
    ),
    "reasoning": ("assistant", _reasoning),
    "program": ("assistant", lambda i: [Part("tool_call", name="program", text=string(i.get("code")))]),
    "program_output": ("tool", lambda i: output_parts(i.get("result"), name="program")),
    "compaction": ("system", lambda i: [Part("other", name="compaction")]),
    "code_interpreter_call": ("assistant", _code_interpreter),
    "local_shell_call": (
        "assistant",
        lambda i: _call("local_shell", " ".join(map(str, items_of(mapping(i.get("action")).get("command"))))),
    ),
    "local_shell_call_output": ("tool", lambda i: output_parts(i.get("output"), name="local_shell")),
    "shell_call": (
        "assistant",
        lambda i: _call("shell", "\n".join(map(str, items_of(mapping(i.get("action")).get("commands"))))),
    ),
    "shell_call_output": ("tool", _shell_output),
    "apply_patch_call": ("assistant", _apply_patch),
    "apply_patch_call_output": ("tool", lambda i: output_parts(i.get("output"), name="apply_patch")),
    "mcp_list_tools": (
        "tool",
        lambda i: [Part("tool_output", name="mcp_list_tools", text=_tool_names(i.get("tools")))],
    ),
    "mcp_approval_request": (
        "assistant",
        lambda i: _call(string(i.get("name")) or "mcp", i.get("arguments"), approval=True),
    ),
    "mcp_approval_response": ("user", _mcp_approval_response),
    "mcp_call": ("assistant", _mcp_call),
    "custom_tool_call": ("assistant", lambda i: _call(string(i.get("name")), i.get("input"))),
    "custom_tool_call_output": ("tool", lambda i: output_parts(i.get("output"))),
}


class Conversations(Adapter):
    kind = Thread.Kind.CONVERSATION
    prefix = "conv"
    label = "conversation"
    collection = "conversations"
    entries_name = "items"
    supports_timestamps = False
    supports_before = False

    def delete(self, client: Client, remote_id: str, *, delete_items: bool = False) -> None:
        """Delete the conversation; with `delete_items`, its items first, as the API keeps them otherwise."""
        if delete_items:
            self.delete_items(client, remote_id)
        super().delete(client, remote_id)

    def delete_items(self, client: Client, remote_id: str) -> int:
        """Delete every item of the conversation; return how many were deleted.

        Always re-reads the first page instead of following a cursor, which would point at deleted items.
        """
        attempted, deleted = set(), 0
        while True:
            ids = [
                e.id for e in self.page(client, remote_id, limit=MAX_PAGE_SIZE, order="asc").entries if e.id
            ]
            fresh = [item_id for item_id in ids if item_id not in attempted]
            if not ids:
                return deleted
            if not fresh:
                raise APIError(f"Items of {remote_id} were still listed after being deleted", status=200)
            for item_id in fresh:
                attempted.add(item_id)
                try:
                    client.delete(f"{self.entries_path(remote_id)}/{quote(item_id, safe='')}", beta=self.beta)
                except NotFound:
                    continue  # Deleted meanwhile: the goal is reached.
                deleted += 1

    def entry(self, raw: dict) -> Entry:
        kind = string(raw.get("type")) or "message"
        if kind == "message":
            role, parts = string(raw.get("role")), content_parts(raw.get("content"))
        elif kind in CONVERSATION_ITEMS:
            role, shape = CONVERSATION_ITEMS[kind]
            parts = shape(raw)
        else:
            role, parts = string(raw.get("role")), [Part("other", name=kind, data=raw)]
        return Entry(
            id=string(raw.get("id")),
            role=role,
            type=kind,
            created_at=timestamp(raw.get("created_at")),  # Absent per the spec; kept if a server sends it.
            parts=parts,
            status=string(raw.get("status")),
            raw=raw,
        )


def _chatkit_message(item: dict) -> list[Part]:
    parts = content_parts(item.get("content"))
    for attachment in items_of(item.get("attachments")):
        attachment = mapping(attachment)
        parts.append(
            Part(
                "image" if attachment.get("type") == "image" else "file",
                file_id=string(attachment.get("id")),
                name=string(attachment.get("name")),
                url=string(attachment.get("preview_url")),
                data={"mime_type": attachment.get("mime_type")},
            )
        )
    return parts


def _widget(item: dict) -> list[Part]:
    widget = item.get("widget")
    # The spec types the widget as a string (its JSON); some servers send the object itself.
    if isinstance(widget, str):
        try:
            widget = json.loads(widget)
        except ValueError:
            return [Part("widget", text=item["widget"])]
    return [Part("widget", text=string(mapping(widget).get("type")), data=widget)]


def _client_tool_call(item: dict) -> list[Part]:
    parts = _call(string(item.get("name")), item.get("arguments"), call_id=item.get("call_id"))
    if item.get("output") is not None:
        parts.append(Part("tool_output", name=string(item.get("name")), text=text_of(item.get("output"))))
    return parts


def _task(task: dict) -> Part:
    text = "\n".join(filter(None, [string(task.get("heading")), string(task.get("summary"))]))
    return Part("other", name="task", text=text, data={"task_type": task.get("task_type", task.get("type"))})


CHATKIT_ITEMS: dict[str, tuple[str, str, Callable[[dict], list[Part]]]] = {
    "chatkit.user_message": ("message", "user", _chatkit_message),
    "chatkit.assistant_message": ("message", "assistant", _chatkit_message),
    "chatkit.widget": ("widget", "assistant", _widget),
    "chatkit.client_tool_call": ("client_tool_call", "assistant", _client_tool_call),
    "chatkit.task": ("task", "assistant", lambda i: [_task(i)]),
    "chatkit.task_group": (
        "task_group",
        "assistant",
        lambda i: [_task(mapping(t)) for t in items_of(i.get("tasks"))],
    ),
}


class ChatKitThreads(Adapter):
    kind = Thread.Kind.CHATKIT
    prefix = "cthr"
    label = "ChatKit thread"
    beta = "chatkit_beta=v1"
    collection = "chatkit/threads"
    entries_name = "items"
    supports_metadata = False
    supports_discovery = True

    def discover(self, client: Client, *, user: str | None = None) -> Iterator[RemoteThread]:
        """Every ChatKit thread the credential's project holds, newest first, optionally of one end user."""
        params = {"limit": MAX_PAGE_SIZE, "order": "desc", "user": user or None}

        def fetch(after):
            payload = client.get(f"/{self.collection}", params={**params, "after": after}, beta=self.beta)
            return parse_page(
                payload, lambda raw: self.remote_thread(raw, string(raw.get("id"))), MAX_PAGE_SIZE
            )

        # A generator of its own, so that the NotSupported of other kinds is raised on the call, not later.
        return (thread for page in follow_pages(fetch) for thread in page.entries)

    def entry(self, raw: dict) -> Entry:
        kind = string(raw.get("type"))
        entry_type, role, shape = CHATKIT_ITEMS.get(
            kind, (kind.removeprefix("chatkit.") or "other", "", lambda i: [Part("other", name=kind, data=i)])
        )
        return Entry(
            id=string(raw.get("id")),
            role=role,
            type=entry_type,
            created_at=timestamp(raw.get("created_at")),
            parts=shape(raw),
            status=string(raw.get("status")),
            raw=raw,
        )


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
