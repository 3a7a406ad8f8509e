"""Who owns which threads: the ownership review's figures and its CSV export.

Built for a million threads: each figure is one GROUP BY over indexed columns (owner_id and credential_id
lead thread_owner_idx and thread_cred_idx), so only the groups reach Python, never the rows; the users
and credentials named in the groups are then read by primary key. The export streams its rows.
"""

import csv
from dataclasses import dataclass, field

from django.contrib.auth import get_user_model
from django.db.models import Count, Q

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


def _counts(threads, column: str) -> dict:
    """{value of `column`: (total, live, refused)} in one GROUP BY."""
    rows = (
        threads.order_by()
        .values_list(column)
        .annotate(
            total=Count("pk"),
            live=Count("pk", filter=Q(status__in=LIVE)),
            refused=Count("pk", filter=Q(last_check__in=FAILING_CHECKS)),
        )
    )
    return {key: (total, live, refused) for key, total, live, refused in rows}


def review(threads) -> Review:
    """The figures of the ownership review over the queryset `threads` (what the user may see)."""
    from .permissions import role_of

    result = Review()
    by_owner = _counts(threads, "owner_id")
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

    by_credential = _counts(threads, "credential_id")
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
