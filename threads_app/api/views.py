"""The registration REST API under /api/v1/, described by `openapi.yaml` (served at /api/v1/openapi.yaml).

    POST   /api/v1/threads          register one thread, or a batch ({"threads": [...]})   scope register
    GET    /api/v1/threads          the thread list's filters, `limit` and `after` cursors   scope read
    GET    /api/v1/threads/{id}     one thread                                              scope read
    DELETE /api/v1/threads/{id}     delete it through the API, as the thread page does      scope delete

Every thread comes from `permissions.token_threads`: one outside the token's reach is a 404, as one
that does not exist.
"""

import json
from pathlib import Path

from django.contrib.auth import get_user_model
from django.contrib.auth.decorators import login_not_required
from django.http import HttpResponse
from django.urls import reverse
from django.views.decorators.http import require_GET

from .. import capture, deletion, listing, permissions
from ..forms import ThreadFilterForm
from ..models import Credential, Thread
from .auth import authorize, error, missing_scope

DEFAULT_LIMIT = 20
MAX_LIMIT = 100
OPENAPI = Path(__file__).with_name("openapi.yaml")


def as_json(thread: Thread, request=None) -> dict:
    def moment(value):
        return value.isoformat() if value else None

    url = reverse("thread_detail", args=[thread.pk])
    return {
        "object": "threadsite.thread",
        "id": thread.remote_id,
        "kind": thread.kind,
        "credential": thread.credential.name,
        "owner": thread.owner.get_username() if thread.owner else None,
        "end_user": thread.end_user,
        "title": thread.title,
        "metadata": thread.metadata,
        "status": thread.status,
        "source": thread.source,
        "created_at": moment(thread.remote_created_at),
        "last_activity_at": moment(thread.last_activity_at),
        "added_at": moment(thread.added_at),
        "url": request.build_absolute_uri(url) if request else url,
    }


def _body(request):
    if request.content_type != "application/json":
        return None, error(400, "Send a JSON body with `Content-Type: application/json`.")
    try:
        return json.loads(request.body), None
    except (ValueError, RecursionError):
        return None, error(400, "The body is not valid JSON.", code="invalid_json")


@authorize
def threads(request):
    token = request.api_token
    if request.method == "POST":
        return missing_scope(token, "register") or _register(request, token)
    if request.method == "GET":
        return missing_scope(token, "read") or _list(request, token)
    return error(
        405, f"{request.method} is not allowed here; use GET or POST.", headers={"Allow": "GET, POST"}
    )


def _register(request, token):
    body, problem = _body(request)
    if problem:
        return problem
    batch = isinstance(body, dict) and set(body) == {"threads"}
    entries = body["threads"] if batch else [body]
    try:
        results = capture.register(token, entries)
    except capture.Refused as refused:
        return error(refused.status, str(refused), code="refused", details=refused.errors)
    created = any(result.created for result in results)
    status = 201 if created else 200
    if not batch:
        response = _json(as_json(results[0].thread, request), status=status)
        return response
    return _json(
        {
            "object": "list",
            "data": [as_json(result.thread, request) for result in results],
            "created": sum(result.created for result in results),
            "updated": sum(not result.created for result in results),
        },
        status=status,
    )


def _list(request, token):
    params = request.GET.copy()
    limit = params.pop("limit", [str(DEFAULT_LIMIT)])[-1]
    if not limit.isdigit() or not 1 <= int(limit) <= MAX_LIMIT:
        return error(400, f"`limit` must be a whole number from 1 to {MAX_LIMIT}.", code="invalid_limit")
    # The list page's form takes owners and credentials by their row id; the API names them.
    if params.get("credential") and not params["credential"].isdigit():
        found = Credential.objects.filter(name=params["credential"]).values_list("pk", flat=True).first()
        params["credential"] = str(found or 0)
    if params.get("owner") and params["owner"] not in ("me", "none") and not params["owner"].isdigit():
        found = get_user_model().objects.filter(username=params["owner"]).values_list("pk", flat=True).first()
        params["owner"] = str(found or 0)
    params.pop("before", None)  # the API pages forward only
    form = ThreadFilterForm(params, user=token.owner)
    if not form.is_valid():
        details = [f"{name}: {' '.join(messages)}" for name, messages in form.errors.items()]
        return error(
            400, "The filters are not valid: " + " ".join(details), code="invalid_filters", details=details
        )
    data = form.cleaned_data
    if data.get("owner") == "me" and token.owner is None:
        return error(400, "`owner=me` needs a token with an owner.", code="invalid_filters")
    found = listing.apply_filters(permissions.token_threads(token), data, token.owner)
    page = listing.keyset_page(
        found.select_related("credential", "owner"),
        data["sort"],
        after=data["after_position"],
        size=int(limit),
    )
    return _json(
        {
            "object": "list",
            "data": [as_json(thread, request) for thread in page.threads],
            "has_more": bool(page.next_cursor),
            "next_after": page.next_cursor or None,
        }
    )


@authorize
def thread(request, remote_id):
    token = request.api_token
    if request.method not in ("GET", "DELETE"):
        return error(
            405, f"{request.method} is not allowed here; use GET or DELETE.", headers={"Allow": "GET, DELETE"}
        )
    problem = missing_scope(token, "read" if request.method == "GET" else "delete")
    if problem:
        return problem
    found = permissions.token_threads(token).select_related("credential", "owner").filter(remote_id=remote_id)
    found = found.first()
    if found is None:
        return error(404, f"No thread {remote_id[:100]} within this token's reach.", code="not_found")
    if request.method == "GET":
        return _json(as_json(found, request))
    outcome = deletion.delete_thread(found, by=token.owner, actor=f"API token {token.name}")
    found.refresh_from_db()
    if outcome.state == "not_sent":
        return error(409, outcome.message, code="not_active")
    if outcome.state == "failed":
        return error(502, outcome.message, code="delete_failed")
    return _json(
        {
            "object": "threadsite.deletion",
            "id": found.remote_id,
            # Queued: a job of this thread finishes it (a conversation with more items than a call waits for).
            "deleted": outcome.state != "queued",
            "outcome": outcome.state,
            "message": outcome.message,
            "job": outcome.job.pk if outcome.job else None,
            "thread": as_json(found, request),
        },
        status=202 if outcome.state == "queued" else 200,
    )


@login_not_required
@require_GET
def openapi(request):
    return HttpResponse(OPENAPI.read_bytes(), content_type="application/yaml")


def _json(payload, status=200):
    return HttpResponse(json.dumps(payload), status=status, content_type="application/json")
