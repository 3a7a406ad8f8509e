"""`POST /responses`: a canned model answer, with `conversation` (its input and the answer added to that
conversation's items) and `stream: true` (server-sent events, paced like a model: a first token after
`stream_first_token_ms`, then a word every `stream_token_ms`).

The answer is made, and the conversation changed, when the request arrives; a stream only delays telling
it. Enough of the Responses API for the capture proxy to be tested honestly, not a model.
"""

import json
from dataclasses import dataclass

from . import errors, objects
from .routes import route

CANNED = "Thanks for your message. Here is a short answer, streamed a word at a time as a model would."
KEYS = {
    "model",
    "input",
    "conversation",
    "stream",
    "metadata",
    "instructions",
    "user",
    "safety_identifier",
    "prompt_cache_key",
    "store",
    "temperature",
    "top_p",
    "max_output_tokens",
}


@dataclass
class EventStream:
    """What a streaming endpoint returns instead of a dict: SSE events, sent by the app at a model's pace."""

    events: list[dict]
    first_delay: float
    delay: float  # before each `response.output_text.delta` after the first

    def chunks(self, stopping):
        """Each event as its own `event:`/`data:` block, slept for as configured; ends if the server stops."""
        waited_first = False
        for event in self.events:
            if event["type"] == "response.output_text.delta":
                wait = self.delay if waited_first else self.first_delay
                waited_first = True
                if wait and stopping.wait(wait):
                    return
            yield f"event: {event['type']}\ndata: {json.dumps(event)}\n\n".encode()


def create_response(request):
    body = request.json()
    objects.check_keys(body, KEYS)
    model = body.get("model")
    if not isinstance(model, str) or not model:
        raise errors.missing_parameter("model")
    metadata = objects.check_metadata(body.get("metadata"))
    conversation = body.get("conversation")
    if isinstance(conversation, dict):
        conversation = conversation.get("id")
    record = None
    if conversation is not None:
        if not isinstance(conversation, str):
            raise errors.invalid_type("conversation", "a string or an object with an id", conversation)
        record = request.state.conversation(request.project_id, conversation)
    inputs = _input_items(request, body.get("input"))
    state = request.state
    now = state.now()
    message_id = state.long_id("msg")
    output = objects.message_item(message_id, "assistant", [objects.item_text_part("assistant", CANNED)])
    if record is not None:
        record.items.extend([*inputs, output])
    response = {
        "id": state.long_id("resp"),
        "object": "response",
        "created_at": now,
        "status": "completed",
        "completed_at": now,
        "error": None,
        "incomplete_details": None,
        "instructions": body.get("instructions") if isinstance(body.get("instructions"), str) else None,
        "model": model,
        "tools": [],
        "tool_choice": "auto",
        "output": [output],
        "parallel_tool_calls": True,
        "metadata": metadata,
        "temperature": 1.0,
        "top_p": 1.0,
        "conversation": {"id": conversation} if conversation else None,
        "usage": {
            "input_tokens": 12,
            "input_tokens_details": {"cached_tokens": 0, "cache_write_tokens": 0},
            "output_tokens": len(CANNED.split()),
            "output_tokens_details": {"reasoning_tokens": 0},
            "total_tokens": 12 + len(CANNED.split()),
        },
    }
    if body.get("stream") is not True:
        return response
    config = request.config
    return EventStream(_events(response), config.stream_first_token_ms / 1000, config.stream_token_ms / 1000)


def _input_items(request, value) -> list[dict]:
    if value is None:
        return []
    if isinstance(value, str):
        value = [{"role": "user", "content": value}]
    if not isinstance(value, list):
        raise errors.invalid_type("input", "a string or an array", value)
    return [
        objects.conversation_item(item, request.state.long_id, f"input[{n}]") for n, item in enumerate(value)
    ]


def _events(response: dict) -> list[dict]:
    output = response["output"][0]
    text = output["content"][0]["text"]
    started = {**response, "status": "in_progress", "completed_at": None, "output": []}
    del started["usage"]  # not known yet; the schema has no null for it
    item_started = {**output, "status": "in_progress", "content": []}
    empty_part = {"type": "output_text", "text": "", "annotations": [], "logprobs": []}
    where = {"item_id": output["id"], "output_index": 0, "content_index": 0}
    words = text.split(" ")
    events = [
        {"type": "response.created", "response": started},
        {"type": "response.in_progress", "response": started},
        {"type": "response.output_item.added", "output_index": 0, "item": item_started},
        {"type": "response.content_part.added", **where, "part": empty_part},
        *(
            {
                "type": "response.output_text.delta",
                **where,
                "delta": word if n == 0 else " " + word,
                "logprobs": [],
            }
            for n, word in enumerate(words)
        ),
        {"type": "response.output_text.done", **where, "text": text, "logprobs": []},
        {"type": "response.content_part.done", **where, "part": output["content"][0]},
        {"type": "response.output_item.done", "output_index": 0, "item": output},
        {"type": "response.completed", "response": response},
    ]
    for number, event in enumerate(events):
        event["sequence_number"] = number
    return events


ROUTES = [route("POST", "/responses", create_response)]
