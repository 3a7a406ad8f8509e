"""Endpoints of ChatKit threads: listed per project (optionally per end user), read and deleted.

The API has no endpoint that creates a ChatKit thread (ChatKit sessions do); seed them through
`SimulatorState.create_chatkit_thread`.
"""

from . import errors
from .paging import list_params, page
from .routes import route

BETA = "chatkit_beta=v1"


def list_threads(request) -> dict:
    user = request.query.get("user")
    if user is not None and len(user) > 512:
        raise errors.too_long("user", "string", len(user), 512)
    params = list_params(request.query, min_limit=0)
    return page(request.state.chatkit_threads_of(request.project_id, user), params)


def retrieve_thread(request) -> dict:
    return _thread(request).data


def delete_thread(request) -> dict:
    record = _thread(request)
    request.state.delete_chatkit_thread(record)
    return {"id": record.data["id"], "object": "chatkit.thread.deleted", "deleted": True}


def list_items(request) -> dict:
    return page(_thread(request).items, list_params(request.query, min_limit=0))


def _thread(request):
    return request.state.chatkit_thread(request.project_id, request.params["thread_id"])


ROUTES = [
    route("GET", "/chatkit/threads", list_threads, BETA),
    route("GET", "/chatkit/threads/{thread_id}", retrieve_thread, BETA),
    route("DELETE", "/chatkit/threads/{thread_id}", delete_thread, BETA),
    route("GET", "/chatkit/threads/{thread_id}/items", list_items, BETA),
]
