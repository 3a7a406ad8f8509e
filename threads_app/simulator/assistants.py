"""Endpoints of Assistants threads: threads, their messages and (read-only) their runs."""

from . import errors, objects
from .paging import list_params, page
from .routes import route

BETA = "assistants=v2"


def create_thread(request) -> dict:
    body = request.json()
    objects.check_keys(body, {"messages", "metadata", "tool_resources"})
    metadata = objects.check_metadata(body.get("metadata"))
    messages = body.get("messages") or []
    if not isinstance(messages, list):
        raise errors.invalid_type("messages", "an array", messages)
    # Check every message before creating anything: a bad request changes nothing.
    fields = [objects.message_request(message, f"messages[{i}].") for i, message in enumerate(messages)]
    state = request.state
    thread = state.create_thread(
        request.project_id, metadata=metadata, tool_resources=_tool_resources(body.get("tool_resources"))
    )
    for message in fields:
        state.add_message(thread["id"], message.pop("role"), **message)
    return thread


def retrieve_thread(request) -> dict:
    return request.state.thread(request.project_id, request.params["thread_id"]).data


def modify_thread(request) -> dict:
    body = request.json()
    objects.check_keys(body, {"metadata", "tool_resources"})
    record = request.state.thread(request.project_id, request.params["thread_id"])
    if "metadata" in body:
        record.data["metadata"] = objects.check_metadata(body["metadata"])
    if "tool_resources" in body:
        record.data["tool_resources"] = _tool_resources(body["tool_resources"])
    request.state.touch_thread(record)
    return record.data


def delete_thread(request) -> dict:
    thread_id = request.params["thread_id"]
    request.state.thread(request.project_id, thread_id)
    del request.state.threads[thread_id]
    return {"id": thread_id, "object": "thread.deleted", "deleted": True}


def list_messages(request) -> dict:
    record = request.state.thread(request.project_id, request.params["thread_id"])
    params = list_params(request.query)
    messages = record.messages
    if run_id := request.query.get("run_id"):
        messages = [m for m in messages if m["run_id"] == run_id]
    return page(messages, params)


def create_message(request) -> dict:
    fields = objects.message_request(request.json())
    state = request.state
    record = state.thread(request.project_id, request.params["thread_id"])
    return state.add_message(record.data["id"], fields.pop("role"), **fields)


def retrieve_message(request) -> dict:
    return _message(request)


def modify_message(request) -> dict:
    body = request.json()
    objects.check_keys(body, {"metadata"})
    message = _message(request)
    if "metadata" in body:
        message["metadata"] = objects.check_metadata(body["metadata"])
    return message


def delete_message(request) -> dict:
    message = _message(request)
    request.state.threads[message["thread_id"]].messages.remove(message)
    return {"id": message["id"], "object": "thread.message.deleted", "deleted": True}


def list_runs(request) -> dict:
    record = request.state.thread(request.project_id, request.params["thread_id"])
    return page(record.runs, list_params(request.query))


def retrieve_run(request) -> dict:
    record = request.state.thread(request.project_id, request.params["thread_id"])
    run_id = request.params["run_id"]
    for run in record.runs:
        if run["id"] == run_id:
            return run
    raise errors.not_found(f"No run found with id '{run_id}'.")


def _message(request) -> dict:
    record = request.state.thread(request.project_id, request.params["thread_id"])
    message_id = request.params["message_id"]
    for message in record.messages:
        if message["id"] == message_id:
            return message
    raise errors.not_found(f"No message found with id '{message_id}'.")


def _tool_resources(value) -> dict | None:
    if value is not None and not isinstance(value, dict):
        raise errors.invalid_type("tool_resources", "an object", value)
    return value


ROUTES = [
    route("POST", "/threads", create_thread, BETA),
    route("GET", "/threads/{thread_id}", retrieve_thread, BETA),
    route("POST", "/threads/{thread_id}", modify_thread, BETA),
    route("DELETE", "/threads/{thread_id}", delete_thread, BETA),
    route("GET", "/threads/{thread_id}/messages", list_messages, BETA),
    route("POST", "/threads/{thread_id}/messages", create_message, BETA),
    route("GET", "/threads/{thread_id}/messages/{message_id}", retrieve_message, BETA),
    route("POST", "/threads/{thread_id}/messages/{message_id}", modify_message, BETA),
    route("DELETE", "/threads/{thread_id}/messages/{message_id}", delete_message, BETA),
    route("GET", "/threads/{thread_id}/runs", list_runs, BETA),
    route("GET", "/threads/{thread_id}/runs/{run_id}", retrieve_run, BETA),
]
