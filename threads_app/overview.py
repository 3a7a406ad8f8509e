"""The overview page's figures: threads by status, owner and credential, the age of their last activity,
and how many will expire soon; with the geometry of the bars that draw them.

Each figure is one GROUP BY or one conditional aggregate over indexed columns (thread_kind_idx,
thread_owner_idx, thread_cred_idx, thread_sweep_idx), so PostgreSQL answers from index-only scans; the
view still caches the result for a minute, as a million rows take tens of milliseconds per figure.
"""

from dataclasses import dataclass
from datetime import timedelta

from django.contrib.auth import get_user_model
from django.db.models import Count, Q

from . import kinds, listing
from .models import Credential, Thread

# Days since last activity, for active threads: (label, newer bound, older bound).
AGE_BUCKETS = [
    ("0–7 days", 0, 7),
    ("8–30 days", 7, 30),
    ("31–53 days", 30, 53),
    ("54–60 days", 53, 60),
    ("61–90 days", 60, 90),
    ("over 90 days", 90, None),
]
EXPIRY_WINDOWS = (7, 30)


@dataclass
class Bar:
    label: str
    value: int
    share: float  # of the largest bar, 0–100: its length
    url: str = ""

    @property
    def rest(self) -> float:
        """What is left of the track: where a vertical bar, drawn upwards, starts."""
        return round(100 - self.share, 1)


def bars(rows) -> list[Bar]:
    """Bars for (label, value, url) rows, scaled so that the largest fills the width."""
    rows = list(rows)
    largest = max((value for _, value, _ in rows), default=0) or 1
    return [Bar(label, value, round(100 * value / largest, 1), url) for label, value, url in rows]


def expiring_kinds() -> dict[str, timedelta]:
    return {kind: adapter.expires_after for kind, adapter in kinds.ADAPTERS.items() if adapter.expires_after}


def summary(threads, now) -> dict:
    """The overview's figures for the `threads` a user may see, as plain data (cacheable)."""
    threads = threads.order_by()
    by_status = dict(threads.values_list("status").annotate(n=Count("id")))
    by_kind = dict(threads.values_list("kind").annotate(n=Count("id")))
    owner_counts = dict(threads.values_list("owner_id").annotate(n=Count("id")))
    names = dict(
        get_user_model()
        .objects.filter(pk__in=[pk for pk in owner_counts if pk])
        .values_list("pk", "username")
    )
    credential_counts = dict(threads.values_list("credential_id").annotate(n=Count("id")))
    credentials = {c.pk: c for c in Credential.objects.filter(pk__in=list(credential_counts))}

    active = Q(status=Thread.Status.ACTIVE)
    aggregates = {"unknown": Count("id", filter=active & Q(last_activity_at__isnull=True))}
    for index, (_, newer, older) in enumerate(AGE_BUCKETS):
        bucket = Q(last_activity_at__lte=now - timedelta(days=newer))
        if older is not None:
            bucket &= Q(last_activity_at__gt=now - timedelta(days=older))
        aggregates[f"age_{index}"] = Count("id", filter=active & bucket)
    for days in EXPIRY_WINDOWS if expiring_kinds() else ():
        soon = Q()
        for kind, window in expiring_kinds().items():
            soon |= Q(
                kind=kind,
                last_activity_at__gt=now - window,
                last_activity_at__lte=now - window + timedelta(days=days),
            )
        aggregates[f"expiring_{days}"] = Count("id", filter=active & soon)
    figures = {f"expiring_{days}": 0 for days in EXPIRY_WINDOWS} | threads.aggregate(**aggregates)

    return {
        "total": sum(by_status.values()),
        "by_status": [(status, label, by_status.get(status, 0)) for status, label in Thread.Status.choices],
        "by_kind": [(kind, label, by_kind.get(kind, 0)) for kind, label in Thread.Kind.choices],
        "by_owner": sorted(
            ((pk, names.get(pk, "unassigned") if pk else "unassigned", n) for pk, n in owner_counts.items()),
            key=lambda row: (-row[2], row[1]),
        ),
        "by_credential": sorted(
            (
                (pk, f"{credentials[pk].name} · {credentials[pk].scope_label}", n)
                for pk, n in credential_counts.items()
                if pk in credentials
            ),
            key=lambda row: (-row[2], row[1]),
        ),
        "ages": [
            (label, figures[f"age_{i}"], newer, older) for i, (label, newer, older) in enumerate(AGE_BUCKETS)
        ],
        "age_unknown": figures["unknown"],
        "expiring": [(days, figures[f"expiring_{days}"]) for days in EXPIRY_WINDOWS],
        "expiring_kinds": [kinds.ADAPTERS[kind].label for kind in expiring_kinds()],
    }


def age_link(newer: int, older: int | None, now) -> str:
    """The thread list's query for active threads last active between `newer` and `older` days ago."""
    params = {"status": Thread.Status.ACTIVE}
    if older is None:
        params["inactive_days"] = newer
    else:
        params["active_from"] = (now - timedelta(days=older)).date().isoformat()
        params["active_to"] = (now - timedelta(days=newer)).date().isoformat()
    return listing.querystring(params)
