"""Cursor paging as the API does it: `limit`, `order`, `after`/`before` object IDs, and a list envelope."""

from dataclasses import dataclass

from . import errors

ORDERS = ("asc", "desc")


@dataclass(frozen=True, slots=True)
class ListParams:
    limit: int = 20
    order: str = "desc"
    after: str | None = None
    before: str | None = None


def list_params(query: dict[str, str], *, min_limit: int = 1, allow_before: bool = True) -> ListParams:
    """Read and check the paging parameters of a query string; bad values get the API's 400.

    ChatKit's lists accept `limit=0` (its spec says minimum 0) where the older APIs start at 1, and the
    Conversations items list has no `before`, so those two differ by argument.
    """
    limit = 20
    if "limit" in query:
        raw = query["limit"]
        try:
            limit = int(raw)
        except ValueError:
            raise errors.ErrorResponse(
                400,
                f"Invalid 'limit': expected an integer, but got '{raw}' instead.",
                param="limit",
                code="invalid_type",
            ) from None
        if not min_limit <= limit <= 100:
            raise errors.out_of_range("limit", limit, min_limit, 100)
    order = query.get("order", "desc")
    if order not in ORDERS:
        raise errors.invalid_value("order", order, ORDERS)
    after = query.get("after") or None
    before = (query.get("before") or None) if allow_before else None
    return ListParams(limit=limit, order=order, after=after, before=before)


def page(objects: list[dict], params: ListParams) -> dict:
    """One page of `objects` (oldest first) in the shape of the API's lists.

    `after` pages onward in the chosen order, `before` pages back: the `limit` objects just before the
    cursor, still in the chosen order. `has_more` says whether more lie beyond the page in the direction
    of travel. An empty page has null `first_id`/`last_id`, as the real API sends.
    """
    ordered = objects if params.order == "asc" else objects[::-1]
    start, stop = 0, len(ordered)
    if params.after:
        start = _position(ordered, params.after, "after") + 1
    if params.before:
        stop = _position(ordered, params.before, "before")
    window = ordered[start:stop] if start < stop else []
    limit = params.limit
    if params.before and not params.after:
        data = window[max(0, len(window) - limit) :] if limit else []
    else:
        data = window[:limit]
    return envelope(data, has_more=len(window) > len(data))


def envelope(data: list[dict], *, has_more: bool = False) -> dict:
    return {
        "object": "list",
        "data": data,
        "first_id": data[0]["id"] if data else None,
        "last_id": data[-1]["id"] if data else None,
        "has_more": has_more,
    }


def _position(ordered: list[dict], object_id: str, param: str) -> int:
    for index, obj in enumerate(ordered):
        if obj["id"] == object_id:
            return index
    # The real API's answer to a cursor it does not know is not documented; a 400 naming the parameter
    # tells a client plainly that its cursor is stale rather than handing it a silently empty page.
    raise errors.ErrorResponse(
        400, f"Invalid '{param}': no object with id '{object_id}' in this list.", param=param
    )
