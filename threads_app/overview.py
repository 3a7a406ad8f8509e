"""The overview page's figures: threads by status, owner and credential, the age of their last activity,
and how many will expire soon; with the geometry of the bars that draw them.

Each figure is one GROUP BY or one conditional aggregate over indexed columns (thread_kind_idx,
thread_owner_idx, thread_cred_idx, thread_sweep_idx), so PostgreSQL answers from index-only scans; the
view still caches the result for a minute, as a million rows take tens of milliseconds per figure.
"""

from collections import Counter
from dataclasses import dataclass
from datetime import timedelta

from django.contrib.auth import get_user_model
from django.db.models import Case, Count, IntegerField, Value, When
from django.db.models.functions import TruncDate

from . import listing, retention
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
REMOVAL_WINDOWS = (7, 30)


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


def idle_edges() -> list[int]:
    """Days of inactivity at which an age bucket changes. Threads are grouped by the edges they fall
    between, so every bucket can be summed from the groups."""
    return sorted({days for _, newer, older in AGE_BUCKETS for days in (newer, older) if days})


def removals(threads, now) -> dict:
    """How many active threads go soon, and how many are already past their window (flagged by a policy,
    or expired and not yet looked up): counts of `retention.removed_by`, the rule the list and the thread
    page use too."""
    past = threads.filter(retention.removed_by(now)).count()
    return {
        "removed_within": [
            (days, threads.filter(retention.removed_by(now + timedelta(days=days))).count() - past)
            for days in REMOVAL_WINDOWS
        ],
        "past_window": past,
        "flagged": threads.filter(
            retention.removed_by(now, modes=(retention.Mode.FLAG,), expiry=False)
        ).count(),
    }


def summary(threads, now) -> dict:
    """The overview's figures for the `threads` a user may see, as plain data (cacheable).

    One GROUP BY over the whole table, by status, kind, owner, credential and how long the thread has
    been idle (between which edges): a single pass at a million rows, where a query per figure would
    read the table five times. The figures are summed here, in one pass over some thousands of groups.
    """
    edges = idle_edges()
    # Group i holds threads idle for more than edges[i-1] and at most edges[i] days; len(edges): longer.
    idle_group = Case(
        When(last_activity_at__isnull=True, then=Value(-1)),
        *(
            When(last_activity_at__gte=now - timedelta(days=days), then=Value(i))
            for i, days in enumerate(edges)
        ),
        default=Value(len(edges)),
        output_field=IntegerField(),
    )
    by_status, by_kind, by_owner, by_credential = Counter(), Counter(), Counter(), Counter()
    active_idle = Counter()  # (kind, idle group) → active threads
    rows = (
        threads.order_by()
        .annotate(idle=idle_group)
        .values_list("status", "kind", "owner_id", "credential_id", "idle")
        .annotate(n=Count("id"))
    )
    for status, kind, owner, credential, idle, n in rows:
        by_status[status] += n
        by_kind[kind] += n
        by_owner[owner] += n
        by_credential[credential] += n
        if status == Thread.Status.ACTIVE:
            active_idle[kind, idle] += n

    def idle_between(newer, older, of_kinds=None) -> int:
        """Active threads idle for more than `newer` and at most `older` days (None: no bound)."""
        low = edges.index(newer) + 1 if newer else 0
        high = edges.index(older) if older is not None else len(edges)
        return sum(
            n
            for (kind, idle), n in active_idle.items()
            if low <= idle <= high and (of_kinds is None or kind in of_kinds)
        )

    names = dict(
        get_user_model().objects.filter(pk__in=[pk for pk in by_owner if pk]).values_list("pk", "username")
    )
    credentials = {c.pk: c for c in Credential.objects.filter(pk__in=list(by_credential))}
    return {
        "total": sum(by_status.values()),
        "by_status": [(status, label, by_status[status]) for status, label in Thread.Status.choices],
        "by_kind": [(kind, label, by_kind[kind]) for kind, label in Thread.Kind.choices],
        "by_owner": sorted(
            ((pk, names.get(pk, "unassigned") if pk else "unassigned", n) for pk, n in by_owner.items()),
            key=lambda row: (-row[2], row[1]),
        ),
        "by_credential": sorted(
            (
                (pk, f"{credentials[pk].name} · {credentials[pk].scope_label}", n)
                for pk, n in by_credential.items()
                if pk in credentials
            ),
            key=lambda row: (-row[2], row[1]),
        ),
        "ages": [(label, idle_between(newer, older), newer, older) for label, newer, older in AGE_BUCKETS],
        "age_unknown": sum(n for (_, idle), n in active_idle.items() if idle == -1),
        **removals(threads, now),
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


CAPTURE_DAYS = 14


def captured_per_day(threads, now, days: int = CAPTURE_DAYS) -> list[tuple]:
    """Threads that entered through API tokens (captured by the proxy, or registered through the REST API)
    on each of the last `days` days, oldest first: (date, captured, registered). One GROUP BY over the
    partial index thread_token_added_idx, which holds only such threads."""
    start = (now - timedelta(days=days - 1)).date()
    counts = Counter()
    rows = (
        threads.order_by()
        .filter(source__in=[Thread.Source.CAPTURE, Thread.Source.API], added_at__date__gte=start)
        .annotate(day=TruncDate("added_at"))
        .values_list("day", "source")
        .annotate(n=Count("id"))
    )
    for day, source, n in rows:
        counts[day, source] = n
    return [
        (day, counts[day, Thread.Source.CAPTURE], counts[day, Thread.Source.API])
        for day in (start + timedelta(days=offset) for offset in range(days))
    ]
