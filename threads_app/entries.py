"""What a thread's history holds, as every kind's API payloads are read into it: entries (messages, items,
runs) made of parts, pages of entries, and the thread objects themselves.

Each kind's shapes have a reader here (`assistants_message`, `conversation_item`, `chatkit_item`, …), which
the kind's adapter in `kinds.py` names. Payloads are read leniently, as the product also runs against
Assistants-compatible servers: missing optional fields, unknown content types (kept as "other" parts with
their raw data), pages without cursors and timestamps in odd formats do not break it.
"""

import json
import math
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from . import metadata as metadata_rules
from .client import APIError, InvalidResponse

PART_TYPES = ("text", "refusal", "file", "image", "tool_call", "tool_output", "widget", "other")


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
    """Metadata as a dict of strings within the API's own limits (16 pairs, keys of 64 characters, values
    of 512), whatever a server sends; null (which the spec allows) becomes {}."""
    cleaned = {}
    for key, item in mapping(value).items():
        key = str(key)[: metadata_rules.MAX_KEY]
        if key and key not in cleaned:
            cleaned[key] = text_of(item)[: metadata_rules.MAX_VALUE]
        if len(cleaned) == metadata_rules.MAX_PAIRS:
            break
    return cleaned


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


# A loop over pages stops at these, whatever the API keeps answering (`has_more` for ever, a new cursor
# each time): 1,000 pages of 100 entries is far past any real thread.
MAX_PAGES = 1000
MAX_ENTRIES = 100_000


class PagingLimit(APIError):
    """A list went on past the caps of `follow_pages`; what was read so far is all there is."""


def follow_pages(
    fetch: Callable[[str | None], Page],
    *,
    max_pages: int = MAX_PAGES,
    max_entries: int = MAX_ENTRIES,
    max_seconds: float | None = None,
) -> Iterator[Page]:
    """Every page from the first on. Stops if a server hands back a cursor it already gave (a loop), and
    raises PagingLimit past `max_pages` pages, `max_entries` entries or `max_seconds` seconds."""
    cursor, seen, pages, entries = None, set(), 0, 0
    started = time.monotonic()
    while True:
        page = fetch(cursor)
        pages, entries = pages + 1, entries + len(page.entries)
        yield page
        cursor = page.next_cursor
        if cursor is None or cursor in seen or not page.entries:
            return
        seen.add(cursor)
        if pages >= max_pages or entries >= max_entries:
            raise PagingLimit(
                f"The API was still listing after {pages:,} pages ({entries:,} entries); stopped there",
                status=200,
            )
        if max_seconds is not None and time.monotonic() - started >= max_seconds:
            raise PagingLimit(
                f"The API was still listing after {max_seconds:g} s ({pages:,} pages); stopped there",
                status=200,
            )


# --- Thread objects -------------------------------------------------------------------------------


def remote_thread(raw: dict, remote_id: str, kind: str) -> RemoteThread:
    """A thread object of `kind`; `remote_id` stands in when the payload has no `id`."""
    metadata = clean_metadata(raw.get("metadata"))
    return RemoteThread(
        id=string(raw.get("id")) or remote_id,
        kind=kind,
        created_at=timestamp(raw.get("created_at")),
        metadata=metadata,
        # Neither API gives these objects a title; a "title" in metadata is the common convention.
        title=string(raw.get("title")) or metadata.get("title", ""),
        user=string(raw.get("user")),
        updated_at=timestamp(raw.get("updated_at")),
        raw=raw,
    )


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


def _call(name: str, arguments, **data) -> list[Part]:
    return [Part("tool_call", name=name, text=text_of(arguments), data=data or None)]


# --- Assistants messages and runs -----------------------------------------------------------------


def assistants_message(raw: dict) -> Entry:
    """A message of an Assistants thread; its attachments follow its content as "file" parts."""
    parts = [assistants_content_part(item) for item in items_of(raw.get("content"))]
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


def assistants_content_part(raw) -> Part:
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


def assistants_run(raw: dict) -> Entry:
    """A run of an Assistants thread as an entry of type "run"; its last error, if any, is its one part."""
    error = mapping(raw.get("last_error"))
    parts = [Part("other", name="last_error", text=string(error.get("message")), data=error)] if error else []
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


# --- Conversation items ---------------------------------------------------------------------------


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


def conversation_item(raw: dict) -> Entry:
    """Any item of a conversation: a message, a type of CONVERSATION_ITEMS, or else one "other" part."""
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


# --- ChatKit items --------------------------------------------------------------------------------


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


def chatkit_item(raw: dict) -> Entry:
    """Any item of a ChatKit thread: a type of CHATKIT_ITEMS, or else one "other" part."""
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
