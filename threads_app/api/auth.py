"""Errors in one JSON shape, and the decorator that turns a bearer token into `request.api_token`.

The shape is the OpenAI API's own (`{"error": {"message", "type", "code", "param"}}`), so that the
official client shows Threadsite's refusals at the proxy as it shows the API's; the REST API answers in
the same shape, with `details` listing every reason when there are several.
"""

import math
from functools import wraps

from django.contrib.auth.decorators import login_not_required
from django.http import JsonResponse
from django.views.decorators.csrf import csrf_exempt

from .. import tokens

TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    405: "invalid_request_error",
    409: "conflict_error",
    429: "rate_limit_error",
    502: "upstream_error",
    503: "unavailable_error",
}


def error(status: int, message: str, *, code: str | None = None, details: list | None = None, headers=None):
    body = {
        "error": {"message": message, "type": TYPES.get(status, "api_error"), "code": code, "param": None}
    }
    if details:
        body["error"]["details"] = details
    response = JsonResponse(body, status=status)
    for name, value in (headers or {}).items():
        response[name] = value
    return response


def bad_token():
    return error(
        401,
        "Invalid or revoked Threadsite token. Send `Authorization: Bearer tsk_…` with a token an admin "
        "made on the API tokens page.",
        code="invalid_api_key",
    )


def authorize(view):
    """Resolve the bearer token (401 if none is valid), count the request against the token's rate
    (429 with Retry-After past it), then call the view with `request.api_token`; the view checks the
    scope its method needs (`missing_scope`). The REST API's views and the capture proxy alike."""

    @login_not_required
    @csrf_exempt
    @wraps(view)
    def wrapper(request, *args, **kwargs):
        token = tokens.authenticate(request.headers.get("Authorization", ""))
        if token is None:
            return bad_token()
        wait = tokens.rate_wait(token)
        if wait > 0:
            # Both headers the official OpenAI clients honour, so that they wait just long enough.
            return error(
                429,
                f"This token may make {token.requests_per_minute} requests a minute; try again in "
                f"{math.ceil(wait)} s.",
                code="rate_limit_exceeded",
                headers={"Retry-After": str(math.ceil(wait)), "retry-after-ms": str(math.ceil(wait * 1000))},
            )
        request.api_token = token
        return view(request, *args, **kwargs)

    return wrapper


def missing_scope(token, scope: str):
    """A 403 if `token` lacks `scope`, else None."""
    if token.has_scope(scope):
        return None
    return error(403, f"This token lacks the `{scope}` scope.", code="missing_scope")
