"""A thread's messages as people read them: message text as safe HTML, and transcripts to download.

Message text comes from whoever talked to the assistant, so it is escaped before anything is added; the
only markup produced is for fenced code blocks (```), inline code and line breaks.
"""

import json
import re
from dataclasses import asdict, dataclass
from datetime import datetime
from urllib.parse import urlsplit

from django.utils.html import escape
from django.utils.safestring import SafeString, mark_safe

from .entries import Entry

# A fence opens with ``` (and an optional language) on its own line and closes with ``` on its own line;
# an unclosed fence runs to the end of the text, as Markdown renderers do.
FENCE = re.compile(r"^```[ \t]*([\w+#.-]*)[^\n]*\n(.*?)(?:^```[ \t]*$|\Z)", re.MULTILINE | re.DOTALL)
INLINE_CODE = re.compile(r"`([^`\n]+)`")
LANGUAGE = re.compile(r"^[\w+#.-]{1,30}$")


def _prose(text: str) -> str:
    html = escape(text)
    html = INLINE_CODE.sub(r"<code>\1</code>", html)
    return html.replace("\n", "<br>\n")


# A page shows this much of one message; the exports hold all of it.
SHOWN_CHARACTERS = 20_000


def message_html(text: str) -> SafeString:
    """Text with its fenced code blocks as <pre><code>, everything escaped; a message longer than
    SHOWN_CHARACTERS is folded there, with a note saying how much the export holds besides."""
    folded = len(text) - SHOWN_CHARACTERS
    if folded > 0:
        text = text[:SHOWN_CHARACTERS]
    pieces, position = [], 0
    for match in FENCE.finditer(text):
        pieces.append(_prose(text[position : match.start()].strip("\n")))
        language, code = match.group(1), match.group(2).rstrip("\n")
        css = f' class="language-{escape(language)}"' if LANGUAGE.match(language or "") else ""
        pieces.append(f"<pre><code{css}>{escape(code)}</code></pre>")
        position = match.end()
    pieces.append(_prose(text[position:].strip("\n")))
    if folded > 0:
        pieces.append(
            f'<p class="folded">… {folded:,} more characters are not shown here: export the transcript to '
            "read all of it.</p>"
        )
    return mark_safe("\n".join(piece for piece in pieces if piece))  # noqa: S308 — every piece is escaped


# Assistants mark where a file was cited in the text itself: 【message index:source index†file name】. The
# file's ID, when known, comes with the annotation whose text is that very marker.
CITATION = re.compile(r"【\d+(?::\d+)?†([^【】\n]{1,200})】")
# Stands for a footnote's number while the text is escaped and formatted; NULs are taken out of the text
# first, so nothing in a message can forge one.
NOTE_MARK = re.compile(r"\x00(\d+)\x00")


@dataclass(frozen=True)
class Footnote:
    number: int
    name: str  # the cited file's name, as the marker or the annotation gives it
    file_id: str = ""


def cited_html(text: str, annotations=()) -> tuple[SafeString, list[Footnote], list]:
    """The text as message_html shows it, each citation marker turned into a numbered reference (the same
    marker, the same number); the footnotes that name the cited files; and the annotations the footnotes
    did not already tell."""
    by_marker = {note.text: note for note in annotations if note.text}
    numbers: dict[str, int] = {}
    footnotes: list[Footnote] = []

    def number(match: re.Match) -> str:
        marker = match.group(0)
        if marker not in numbers:
            numbers[marker] = len(numbers) + 1
            cited = by_marker.get(marker)
            name = (cited.filename if cited else "") or match.group(1)
            footnotes.append(Footnote(numbers[marker], name, cited.file_id if cited else ""))
        return f"\x00{numbers[marker]}\x00"

    marked = CITATION.sub(number, text.replace("\x00", ""))
    html = NOTE_MARK.sub(r'<sup class="cite">[\1]</sup>', message_html(marked)).replace("\x00", "")
    rest = [note for note in annotations if note.text not in numbers]
    return mark_safe(html), footnotes, rest  # noqa: S308 — message_html escaped it; only <sup> was added


def link_url(url: str) -> str:
    """`url` if it is safe to put in an href (http or https), else "": API data may hold javascript: URLs."""
    try:
        scheme = urlsplit(url).scheme.lower()
    except ValueError:
        return ""
    return url if scheme in ("http", "https") else ""


# --- Downloads ------------------------------------------------------------------------------------------


def _json_default(value):
    if isinstance(value, datetime):
        return value.isoformat()
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")


def thread_header(thread) -> dict:
    return {
        "id": thread.remote_id,
        "kind": thread.kind,
        "title": thread.title,
        "end_user": thread.end_user,
        "owner": thread.owner.get_username() if thread.owner else None,
        "credential": thread.credential.name,
        "project": thread.credential.project_id,
        "status": thread.status,
        "metadata": thread.metadata,
        "created_at": thread.remote_created_at,
        "last_activity_at": thread.last_activity_at,
    }


def as_json(thread, entries: list[Entry]) -> str:
    """The transcript as JSON: the thread, then every entry oldest first, normalised and as sent."""
    return json.dumps(_document(thread, entries), default=_json_default, ensure_ascii=False, indent=2)


def as_json_line(thread, entries: list[Entry]) -> str:
    """The same document as `as_json`, on one line: a line of a JSON Lines archive."""
    return json.dumps(
        _document(thread, entries), default=_json_default, ensure_ascii=False, separators=(",", ":")
    )


def _document(thread, entries: list[Entry]) -> dict:
    return {"thread": thread_header(thread), "entries": [asdict(entry) for entry in entries]}


def _part_markdown(part) -> str:
    if part.type == "text":
        lines = [part.text]
        for note in part.annotations:
            target = note.file_id or note.url or note.filename
            lines.append(f"> [{note.type}] {note.text} {target}".rstrip())
        return "\n".join(lines)
    if part.type == "refusal":
        return f"*Refused:* {part.text}"
    if part.type in ("file", "image"):
        target = part.url if link_url(part.url) else part.file_id
        return f"*{part.type.capitalize()}:* {part.name + ' ' if part.name else ''}{target}".rstrip()
    label = {"tool_call": "Tool call", "tool_output": "Tool output", "widget": "Widget"}.get(
        part.type, "Other"
    )
    body = part.text or (json.dumps(part.data, ensure_ascii=False, indent=2) if part.data is not None else "")
    heading = f"*{label}{': ' + part.name if part.name else ''}*"
    return f"{heading}\n\n```\n{body}\n```" if body else heading


def as_markdown(thread, entries: list[Entry]) -> str:
    header = thread_header(thread)
    lines = [f"# {header['title'] or header['id']}", ""]
    lines.append(f"- ID: `{header['id']}` ({thread.get_kind_display()})")
    for key in ("end_user", "owner", "credential", "project", "status", "created_at", "last_activity_at"):
        value = header[key]
        if value:
            shown = value.isoformat() if isinstance(value, datetime) else value
            lines.append(f"- {key.replace('_', ' ').capitalize()}: {shown}")
    for key, value in header["metadata"].items():
        lines.append(f"- Metadata `{key}`: {value}")
    for entry in entries:
        when = entry.created_at.isoformat() if entry.created_at else ""
        details = ", ".join(
            filter(
                None, [entry.type if entry.type != "message" else "", when, entry.run_id, entry.assistant_id]
            )
        )
        lines += ["", f"## {entry.role or 'unknown'}{' · ' + details if details else ''}", ""]
        lines += [_part_markdown(part) for part in entry.parts] or ["*(no content)*"]
    return "\n".join(lines) + "\n"
