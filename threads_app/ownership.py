"""Who owns threads: giving a selection of them to another owner in one step (the list's bulk action)."""

from . import audit
from .models import Thread


def reassign(threads, owner, *, by=None, summary: str = "") -> int:
    """Give every thread of the queryset `threads` to `owner` (a user, or None for unassigned); returns
    how many changed hands. One UPDATE, whatever the size of the selection: ownership is Threadsite's own
    field, so the API is not asked. The audit log gets one event for the whole selection (`summary` says
    which it was), as a deletion job does, rather than one per thread of a selection that may be huge."""
    ids = threads.order_by().values("pk")
    unchanged = {"owner__isnull": True} if owner is None else {"owner": owner}
    changed = Thread.objects.filter(pk__in=ids).exclude(**unchanged).update(owner=owner)
    if changed:
        audit.record(
            audit.Action.OWNER_CHANGED,
            actor=by,
            after=owner.get_username() if owner is not None else "",
            threads=changed,
            selection=summary,
        )
    return changed
