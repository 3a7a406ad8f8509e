"""Who owns which threads: the ownership review's figures, its CSV export, and `reassign`, the one way
threads change hands in bulk (the list's selection, the ownership page, a deactivation).

Built for ten million threads: the figures are read from the overview's tallies (`tallies.counts`, by
owner, credential and status), which never touch the thread table; only the threads whose last check the
key failed are counted there, through an index that holds those alone. The users and credentials named
in the figures are then read by primary key. The export streams its rows.
"""

import csv
from dataclasses import dataclass, field

from django.contrib.auth import get_user_model
from django.db import transaction
from django.db.models import Count

from . import audit, tallies
from .models import Credential, Thread

LIVE = [Thread.Status.ACTIVE, Thread.Status.MISSING, Thread.Status.EXPIRED]
FAILING_CHECKS = [Thread.Check.BAD_KEY, Thread.Check.FORBIDDEN]


@dataclass
class OwnerRow:
    pk: int | None
    name: str
    active: bool
    total: int
    live: int  # not deleted: still exist, or may (missing, expired)
    role: str = ""


@dataclass
class CredentialRow:
    pk: int
    name: str
    project: str
    total: int
    live: int
    refused: int  # threads whose last check the key failed
    failing: bool  # the last verification of its key failed


@dataclass
class Review:
    owners: list[OwnerRow] = field(default_factory=list)
    credentials: list[CredentialRow] = field(default_factory=list)
    projects: list[tuple[str, int, int]] = field(default_factory=list)
    unassigned: int = 0
    unassigned_live: int = 0
    departed: list[OwnerRow] = field(default_factory=list)
    failing_credentials: list[CredentialRow] = field(default_factory=list)
    total: int = 0


class ReassignError(ValueError):
    """A reassignment that is refused, with the reason people read."""


@transaction.atomic
def reassign(threads, owner, *, by=None, summary: str = "") -> int:
    """Give every thread of the queryset `threads` to `owner` (a user, or None for unassigned); returns
    how many changed hands. `by` must be allowed to by the roles gate (admins only; None is Threadsite
    itself: a command, a test). One UPDATE, whatever the size of the selection: ownership is Threadsite's
    own field, so the API is not asked. The audit log gets one event for the whole selection — who had
    the threads, who has them now, how many, and which selection it was (`summary`) — as a deletion job
    does, rather than one per thread of a selection that may be huge."""
    from .permissions import check_may_reassign

    if by is not None:
        check_may_reassign(by)
    if owner is not None and not owner.is_active:
        raise ReassignError(f"{owner.get_username()} is deactivated: choose an active user.")
    unchanged = {"owner__isnull": True} if owner is None else {"owner": owner}
    # The selection may carry joins and annotations (a search, a sort): the UPDATE takes only its keys.
    moving = Thread.objects.filter(pk__in=threads.order_by().values("pk")).exclude(**unchanged)
    # Who had them, counted before they move: the event names each previous owner and how many.
    before = dict(moving.order_by().values_list("owner__username").annotate(n=Count("pk")))
    changed = moving.update(owner=owner)
    if changed:
        details = {
            "before": {name or "": n for name, n in before.items()},
            "after": owner.get_username() if owner is not None else "",
            "threads": changed,
        }
        if summary:
            details["selection"] = summary
        audit.record(audit.Action.OWNER_CHANGED, actor=by, **details)
    return changed


def review(threads, owner=None, hidden=()) -> Review:
    """The figures of the ownership review of what a user may see: `threads` (their visible threads),
    which are everyone's (`owner` None) or one owner's, under the credentials not in `hidden`
    (`permissions.overview_owner` and `overview_hidden_credentials` say which)."""
    from .permissions import role_of

    result = Review()
    scope = {"owner_key__gte": 0} if owner is None else {"owner_key": owner}
    by_owner, by_credential = {}, {}
    for (owner_key, credential_id, status), n in tallies.counts(
        "owner_key", "credential_id", "status", hidden=hidden, **scope
    ).items():
        live = n if status in LIVE else 0
        for table, key in ((by_owner, owner_key or None), (by_credential, credential_id)):
            total, live_sum, refused = table.get(key, (0, 0, 0))
            table[key] = (total + n, live_sum + live, refused)
    refused = threads.filter(last_check__in=FAILING_CHECKS).order_by().values_list("credential_id")
    for credential_id, n in refused.annotate(n=Count("pk")):
        total, live, _ = by_credential.get(credential_id, (0, 0, 0))
        by_credential[credential_id] = (total, live, n)

    users = get_user_model().objects.filter(pk__in=[pk for pk in by_owner if pk]).prefetch_related("groups")
    users = {user.pk: user for user in users}
    for pk, (total, live, _) in by_owner.items():
        result.total += total
        if pk is None:
            result.unassigned, result.unassigned_live = total, live
            continue
        user = users[pk]
        row = OwnerRow(pk, user.get_username(), user.is_active, total, live, role_of(user))
        result.owners.append(row)
        if not user.is_active and live:
            result.departed.append(row)
    result.owners.sort(key=lambda row: (-row.total, row.name))
    result.departed.sort(key=lambda row: (-row.live, row.name))

    credentials = Credential.objects.in_bulk(list(by_credential))
    projects = {}
    for pk, (total, live, refused) in by_credential.items():
        credential = credentials[pk]
        row = CredentialRow(
            pk,
            credential.name,
            credential.scope_label,
            total,
            live,
            refused,
            credential.last_verification_ok is False,
        )
        result.credentials.append(row)
        if row.failing or refused:
            result.failing_credentials.append(row)
        project_total, project_live = projects.get(row.project, (0, 0))
        projects[row.project] = (project_total + total, project_live + live)
    result.credentials.sort(key=lambda row: (-row.total, row.name))
    result.projects = sorted(((p, t, live) for p, (t, live) in projects.items()), key=lambda r: (-r[1], r[0]))
    return result


class _Echo:
    def write(self, value):
        return value


EXPORT_COLUMNS = ["remote_id", "kind", "status", "owner", "owner_active", "credential", "project", "title"]


def export_rows(threads):
    """CSV lines, one per thread, streamed in batches (a million rows never sit in memory at once)."""
    writer = csv.writer(_Echo())
    yield writer.writerow(EXPORT_COLUMNS)
    rows = (
        threads.order_by("pk")
        .values_list(
            "remote_id",
            "kind",
            "status",
            "owner__username",
            "owner__is_active",
            "credential__name",
            "credential__project_id",
            "title",
        )
        .iterator(chunk_size=2000)
    )
    for remote_id, kind, status, owner, owner_active, credential, project, title in rows:
        yield writer.writerow(
            [
                remote_id,
                kind,
                status,
                owner or "",
                "" if owner is None else ("yes" if owner_active else "no"),
                credential,
                project,
                _safe_cell(title),
            ]
        )


def _safe_cell(text: str) -> str:
    """A cell a spreadsheet will not run as a formula."""
    return "'" + text if text[:1] in ("=", "+", "-", "@", "\t", "\r") else text
