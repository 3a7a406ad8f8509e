"""The API's objects as the simulator stores and serves them, and the checks on what clients send.

Shapes follow the OpenAPI description (shared/openai/openapi.yaml): the conformance tests validate every
answer against it, so a field added or renamed here shows up there.
"""

import json
from collections.abc import Callable

from . import errors

NewId = Callable[[str], str]


def check_metadata(value, param: str = "metadata") -> dict[str, str]:
    """At most 16 pairs, keys up to 64 characters, string values up to 512 (the API's documented limits)."""
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise errors.invalid_type(param, "an object", value)
    if len(value) > 16:
        raise errors.too_many_properties(param, len(value), 16)
    for key, item in value.items():
        if len(key) > 64:
            raise errors.too_long(f"{param}.{key[:20]}", "string", len(key), 64)
        if not isinstance(item, str):
            raise errors.invalid_type(f"{param}.{key}", "a string", item)
        if len(item) > 512:
            raise errors.too_long(f"{param}.{key}", "string", len(item), 512)
    return dict(value)


def check_keys(body: dict, allowed: set[str], prefix: str = "") -> None:
    for key in body:
        if key not in allowed:
            raise errors.unknown_parameter(f"{prefix}{key}")


def required_string(body: dict, key: str, prefix: str = "") -> str:
    if key not in body:
        raise errors.missing_parameter(f"{prefix}{key}")
    if not isinstance(body[key], str):
        raise errors.invalid_type(f"{prefix}{key}", "a string", body[key])
    return body[key]


def choice(body: dict, key: str, supported: tuple[str, ...], prefix: str = "") -> str:
    value = required_string(body, key, prefix)
    if value not in supported:
        raise errors.invalid_value(f"{prefix}{key}", value, supported)
    return value


# --- Assistants threads ---------------------------------------------------------------------------

ASSISTANTS_ROLES = ("user", "assistant")


def thread_object(thread_id: str, created_at: int, metadata: dict, tool_resources: dict | None) -> dict:
    return {
        "id": thread_id,
        "object": "thread",
        "created_at": created_at,
        "metadata": metadata,
        "tool_resources": tool_resources if tool_resources is not None else {},
    }


def text_part(text: str, annotations: list[dict] | tuple = ()) -> dict:
    return {"type": "text", "text": {"value": text, "annotations": list(annotations)}}


def message_object(
    message_id: str, thread_id: str, created_at: int, role: str, content: list[dict], **fields
) -> dict:
    message = {
        "id": message_id,
        "object": "thread.message",
        "created_at": created_at,
        "assistant_id": None,
        "thread_id": thread_id,
        "run_id": None,
        "role": role,
        "content": content,
        "attachments": [],
        "metadata": {},
        "status": "completed",
        "incomplete_details": None,
        # The API sets completed_at on the assistant's messages only.
        "completed_at": created_at if role == "assistant" else None,
        "incomplete_at": None,
    }
    message.update(fields)
    return message


def message_request(body, prefix: str = "") -> dict:
    """Check a CreateMessageRequest; return the fields of the message it makes."""
    if not isinstance(body, dict):
        raise errors.invalid_type(prefix.rstrip(".") or "body", "an object", body)
    check_keys(body, {"role", "content", "attachments", "metadata"}, prefix)
    role = choice(body, "role", ASSISTANTS_ROLES, prefix)
    if "content" not in body:
        raise errors.missing_parameter(f"{prefix}content")
    return {
        "role": role,
        "content": _message_content(body["content"], f"{prefix}content"),
        "attachments": _attachments(body.get("attachments"), f"{prefix}attachments"),
        "metadata": check_metadata(body.get("metadata"), f"{prefix}metadata"),
    }


def _message_content(value, param: str) -> list[dict]:
    if isinstance(value, str):
        return [text_part(value)]
    if not isinstance(value, list):
        raise errors.invalid_type(param, "a string or an array", value)
    if not value:
        raise errors.ErrorResponse(
            400,
            f"Invalid '{param}': empty array. Expected an array with minimum length 1, but got an empty "
            "array instead.",
            param=param,
            code="empty_array",
        )
    parts = []
    for index, part in enumerate(value):
        where = f"{param}[{index}]"
        if not isinstance(part, dict):
            raise errors.invalid_type(where, "an object", part)
        kind = choice(part, "type", ("text", "image_file", "image_url"), f"{where}.")
        if kind == "text":
            parts.append(text_part(required_string(part, "text", f"{where}.")))
        elif not isinstance(part.get(kind), dict):
            raise errors.missing_parameter(f"{where}.{kind}")
        else:
            parts.append({"type": kind, kind: {"detail": "auto", **part[kind]}})
    return parts


def _attachments(value, param: str) -> list[dict]:
    if value is None:
        return []
    if not isinstance(value, list):
        raise errors.invalid_type(param, "an array", value)
    attachments = []
    for index, attachment in enumerate(value):
        where = f"{param}[{index}]."
        if not isinstance(attachment, dict):
            raise errors.invalid_type(where.rstrip("."), "an object", attachment)
        file_id = required_string(attachment, "file_id", where)
        tools = attachment.get("tools", [])
        if not isinstance(tools, list):
            raise errors.invalid_type(f"{where}tools", "an array", tools)
        for number, tool in enumerate(tools):
            if not isinstance(tool, dict):
                raise errors.invalid_type(f"{where}tools[{number}]", "an object", tool)
            choice(tool, "type", ("code_interpreter", "file_search"), f"{where}tools[{number}].")
        attachments.append({"file_id": file_id, "tools": [{"type": t["type"]} for t in tools]})
    return attachments


def run_object(run_id: str, thread_id: str, assistant_id: str, created_at: int, **fields) -> dict:
    run = {
        "id": run_id,
        "object": "thread.run",
        "created_at": created_at,
        "assistant_id": assistant_id,
        "thread_id": thread_id,
        "status": "completed",
        "started_at": created_at,
        "expires_at": None,
        "cancelled_at": None,
        "failed_at": None,
        "completed_at": created_at + 3,
        "required_action": None,
        "last_error": None,
        "model": "gpt-4o",
        "instructions": "You are a helpful support assistant.",
        "tools": [{"type": "code_interpreter"}],
        "metadata": {},
        "incomplete_details": None,
        "usage": {"prompt_tokens": 420, "completion_tokens": 96, "total_tokens": 516},
        "temperature": 1.0,
        "top_p": 1.0,
        "max_prompt_tokens": None,
        "max_completion_tokens": None,
        "truncation_strategy": {"type": "auto", "last_messages": None},
        "response_format": "auto",
        "tool_choice": "auto",
        "parallel_tool_calls": True,
    }
    run.update(fields)
    return run


# --- Conversations --------------------------------------------------------------------------------

CONVERSATION_ROLES = ("user", "assistant", "system", "developer")
ITEM_TYPES = ("message", "function_call", "function_call_output")
_PART_TYPES = ("input_text", "output_text", "refusal", "input_image", "input_file")


def conversation_object(conversation_id: str, created_at: int, metadata: dict) -> dict:
    return {"id": conversation_id, "object": "conversation", "created_at": created_at, "metadata": metadata}


def conversation_item(item, new_id: NewId, param: str) -> dict:
    """Turn one InputItem a client sent into the stored item; the API stores no timestamp on items."""
    if not isinstance(item, dict):
        raise errors.invalid_type(param, "an object", item)
    prefix = f"{param}."
    kind = item.get("type", "message")
    if kind not in ITEM_TYPES:
        # The real API takes many more item types (reasoning, tool calls of every tool…); these three are
        # what conversations kept by Threadsite hold.
        raise errors.invalid_value(f"{prefix}type", kind, ITEM_TYPES)
    if kind == "function_call":
        check_keys(item, {"type", "id", "call_id", "name", "arguments", "status"}, prefix)
        return {
            "type": kind,
            "id": new_id("fc"),
            "call_id": required_string(item, "call_id", prefix),
            "name": required_string(item, "name", prefix),
            "arguments": required_string(item, "arguments", prefix),
            "status": "completed",
        }
    if kind == "function_call_output":
        check_keys(item, {"type", "id", "call_id", "output", "status"}, prefix)
        return {
            "type": kind,
            "id": new_id("fco"),
            "call_id": required_string(item, "call_id", prefix),
            "output": required_string(item, "output", prefix),
            "status": "completed",
        }
    check_keys(item, {"type", "id", "role", "content", "status", "phase"}, prefix)
    role = choice(item, "role", CONVERSATION_ROLES, prefix)
    if "content" not in item:
        raise errors.missing_parameter(f"{prefix}content")
    return message_item(new_id("msg"), role, _item_content(item["content"], role, f"{prefix}content"))


def message_item(item_id: str, role: str, content: list[dict]) -> dict:
    return {"type": "message", "id": item_id, "status": "completed", "role": role, "content": content}


def item_text_part(role: str, text: str, annotations: list[dict] | tuple = ()) -> dict:
    if role == "assistant":
        return {"type": "output_text", "text": text, "annotations": list(annotations), "logprobs": []}
    return {"type": "input_text", "text": text}


def _item_content(value, role: str, param: str) -> list[dict]:
    if isinstance(value, str):
        return [item_text_part(role, value)]
    if not isinstance(value, list):
        raise errors.invalid_type(param, "a string or an array", value)
    parts = []
    for index, part in enumerate(value):
        where = f"{param}[{index}]."
        if not isinstance(part, dict):
            raise errors.invalid_type(where.rstrip("."), "an object", part)
        kind = choice(part, "type", _PART_TYPES, where)
        if kind in ("input_text", "output_text"):
            required_string(part, "text", where)
        if kind == "refusal":
            required_string(part, "refusal", where)
        defaults = {
            "output_text": {"annotations": [], "logprobs": []},
            "input_image": {"detail": "auto"},
        }.get(kind, {})
        parts.append({**defaults, **part})
    return parts


# --- ChatKit threads ------------------------------------------------------------------------------

CHATKIT_KINDS = ("user", "assistant", "widget", "client_tool_call", "task", "task_group")


def chatkit_thread_object(
    thread_id: str, created_at: int, user: str, title: str | None, status: dict | None = None
) -> dict:
    return {
        "id": thread_id,
        "object": "chatkit.thread",
        "created_at": created_at,
        "title": title,
        "status": status or {"type": "active"},
        "user": user,
    }


def chatkit_item(item_id: str, thread_id: str, created_at: int, kind: str, text: str, **fields) -> dict:
    """A thread item; `text` is the message for user/assistant, the widget's JSON, the tool's name, or a
    task's heading."""
    if kind not in CHATKIT_KINDS:
        raise ValueError(f"Unknown ChatKit item kind {kind!r}: use one of {', '.join(CHATKIT_KINDS)}")
    item = {"id": item_id, "object": "chatkit.thread_item", "created_at": created_at, "thread_id": thread_id}
    if kind == "user":
        item.update(
            type="chatkit.user_message",
            content=[{"type": "input_text", "text": text}],
            attachments=[],
            inference_options=None,
        )
    elif kind == "assistant":
        item.update(
            type="chatkit.assistant_message",
            content=[{"type": "output_text", "text": text, "annotations": []}],
        )
    elif kind == "widget":
        item.update(
            type="chatkit.widget", widget=text if text.startswith("{") else json.dumps({"text": text})
        )
    elif kind == "client_tool_call":
        item.update(
            type="chatkit.client_tool_call",
            status="completed",
            call_id=f"call_{item_id[-12:]}",
            name=text,
            arguments="{}",
            output=None,
        )
    elif kind == "task":
        item.update(type="chatkit.task", task_type="thought", heading=text, summary=None)
    else:
        item.update(type="chatkit.task_group", tasks=[{"type": "thought", "heading": text, "summary": None}])
    item.update(fields)
    return item
