"""Recognising remote IDs: which kind an ID is, and a helpful refusal for IDs of other objects."""

import re

from .models import Thread

ACCEPTED_PREFIXES = {
    "thread": Thread.Kind.ASSISTANTS,
    "conv": Thread.Kind.CONVERSATION,
    "cthr": Thread.Kind.CHATKIT,
}

# IDs people paste by mistake, and what they are.
REFUSED_PREFIXES = {
    "run": "a run of an Assistants thread",
    "step": "a run step of an Assistants thread",
    "asst": "an assistant",
    "msg": "a message (or a conversation item)",
    "resp": "a Responses API response",
    "file": "an uploaded file",
    "vs": "a vector store",
    "cti": "a ChatKit thread item",
    "cksess": "a ChatKit session",
}

ACCEPTED_HELP = (
    "Threadsite tracks Assistants threads (thread_…), conversations (conv_…) and ChatKit threads (cthr_…)."
)

# An ID is a known prefix, an underscore and at least six characters of [A-Za-z0-9]; in free text it
# must stand alone (not inside a longer word or a URL path segment of letters).
_PREFIXES = "|".join(sorted({*ACCEPTED_PREFIXES, *REFUSED_PREFIXES}, key=len, reverse=True))
ID_IN_TEXT = re.compile(rf"(?<![A-Za-z0-9_])({_PREFIXES})_([A-Za-z0-9]{{6,80}})(?![A-Za-z0-9_])")


class InvalidId(ValueError):
    pass


def kind_of(remote_id: str) -> str:
    """The Thread.Kind of an ID, or InvalidId with a message a person can act on."""
    value = remote_id.strip()
    match = ID_IN_TEXT.fullmatch(value)
    if not match:
        # Echoed as typed, shortened when long: a CSV's ID field can hold anything.
        shown = value if len(value) <= 80 else value[:77] + "…"
        prefix = value.split("_", 1)[0] if "_" in value else ""
        if prefix in REFUSED_PREFIXES:
            raise InvalidId(refusal(prefix, shown))
        raise InvalidId(f"“{shown}” is not a thread ID. {ACCEPTED_HELP}")
    prefix = match.group(1)
    if prefix in REFUSED_PREFIXES:
        raise InvalidId(refusal(prefix, value))
    return ACCEPTED_PREFIXES[prefix]


def refusal(prefix: str, value: str) -> str:
    what = REFUSED_PREFIXES[prefix]
    hint = ""
    if prefix in {"run", "step", "msg"}:
        hint = " Its thread's ID starts with thread_ (or conv_ for a conversation)."
    return f"{value} is {what}, not a thread.{hint} {ACCEPTED_HELP}"


def find_ids(text: str):
    """Yield (remote_id, kind or None, refusal message or None) for each ID-shaped token in text."""
    for match in ID_IN_TEXT.finditer(text):
        prefix, value = match.group(1), match.group(0)
        if prefix in ACCEPTED_PREFIXES:
            yield value, ACCEPTED_PREFIXES[prefix], None
        else:
            yield value, None, refusal(prefix, value)
