"""Endpoints of the Conversations API: conversations and their items (which carry no timestamps).

There is no list of conversations in the API, and deleting a conversation leaves its items stored:
the simulator keeps them (`SimulatorState.stored_items`) so that tests can see what a delete left.
"""

from . import errors, objects
from .paging import envelope, list_params, page
from .routes import route

MAX_ITEMS = 20


def create_conversation(request) -> dict:
    body = request.json()
    objects.check_keys(body, {"items", "metadata"})
    metadata = objects.check_metadata(body.get("metadata"))
    items = _checked_items(request, body.get("items") or [])
    data = request.state.create_conversation(request.project_id, metadata=metadata)
    request.state.conversations[data["id"]].items.extend(items)
    return data


def retrieve_conversation(request) -> dict:
    return _conversation(request).data


def update_conversation(request) -> dict:
    body = request.json()
    objects.check_keys(body, {"metadata"})
    if "metadata" not in body:
        raise errors.missing_parameter("metadata")
    record = _conversation(request)
    record.data["metadata"] = objects.check_metadata(body["metadata"])
    return record.data


def delete_conversation(request) -> dict:
    record = _conversation(request)
    record.deleted = True
    return {"id": record.data["id"], "object": "conversation.deleted", "deleted": True}


def list_items(request) -> dict:
    record = _conversation(request)
    # The items list takes no `before` (the spec lists limit, order, after and include).
    return page(record.items, list_params(request.query, allow_before=False))


def create_items(request) -> dict:
    body = request.json()
    objects.check_keys(body, {"items"})
    if "items" not in body:
        raise errors.missing_parameter("items")
    record = _conversation(request)
    items = _checked_items(request, body["items"])
    record.items.extend(items)
    return envelope(items)


def retrieve_item(request) -> dict:
    return _item(request, _conversation(request))


def delete_item(request) -> dict:
    record = _conversation(request)
    record.items.remove(_item(request, record))
    # The API answers an item's deletion with the conversation it was removed from.
    return record.data


def _conversation(request):
    return request.state.conversation(request.project_id, request.params["conversation_id"])


def _item(request, record) -> dict:
    item_id = request.params["item_id"]
    for item in record.items:
        if item["id"] == item_id:
            return item
    raise errors.not_found(f"Item with id '{item_id}' not found.")


def _checked_items(request, items) -> list[dict]:
    if not isinstance(items, list):
        raise errors.invalid_type("items", "an array", items)
    if len(items) > MAX_ITEMS:
        raise errors.too_long("items", "array", len(items), MAX_ITEMS)
    return [
        objects.conversation_item(item, request.state.long_id, f"items[{index}]")
        for index, item in enumerate(items)
    ]


ROUTES = [
    route("POST", "/conversations", create_conversation),
    route("GET", "/conversations/{conversation_id}", retrieve_conversation),
    route("POST", "/conversations/{conversation_id}", update_conversation),
    route("DELETE", "/conversations/{conversation_id}", delete_conversation),
    route("GET", "/conversations/{conversation_id}/items", list_items),
    route("POST", "/conversations/{conversation_id}/items", create_items),
    route("GET", "/conversations/{conversation_id}/items/{item_id}", retrieve_item),
    route("DELETE", "/conversations/{conversation_id}/items/{item_id}", delete_item),
]
