"""The overview's figures: threads by status, owner and credential, the age of their last activity,
and how many will go soon; with the geometry of the bars that draw them.

Read from the tallies that the database keeps with every write (`tallies.py`): some hundred rows for the
whole registry, never the thread table, so the page costs the same at ten million threads as at ten and
needs no cache. Figures that depend on the date are sums of per-day rows between day numbers. One part
still reads threads: a retention policy that exempts threads by a metadata pair (a tally cannot know
metadata), through a query on that credential's active threads with the pair.
"""

from collections import Counter, defaultdict
from dataclasses import dataclass
from datetime import timedelta

from django.contrib.auth import get_user_model
from django.db.models import Case, Count, IntegerField, Value, When
from django.db.models.functions import TruncDate
from django.utils import timezone

from . import kinds, listing, retention, tallies
from .models import (
    Credential,
    OverviewDay,
    Thread,
)

# Whole days since last activity, for active threads: (label, more than, at most). A thread last active
# today is idle 0 days; the buckets share no day, so each bar and the list it links to hold the same threads.
AGE_BUCKETS = [
    ("0–7 days", None, 7),
    ("8–30 days", 7, 30),
    ("31–53 days", 30, 53),
    ("54–60 days", 53, 60),
    ("61–90 days", 60, 90),
    ("over 90 days", 90, None),
]


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


class DayRows:
    """Day tallies summed by (owner, credential, kind, pinned, basis) and by which of the `cuts` (day
    numbers) they fall under: group i holds the days after cuts[i-1] up to cuts[i]."""

    def __init__(self, owner_keys, cuts: list[int], hidden=()):
        self.cuts = sorted(set(cuts))
        self.rows = tallies.day_groups(owner_keys, self.cuts, hidden)

    def upto(self, cut: int) -> int:
        """The largest group whose days are all at most `cut` (a cut)."""
        return self.cuts.index(cut)


class Going:
    """Which tallied threads the API's expiry or a retention policy removes by the end of a day: the rule
    of `retention.removed_by`, applied to day tallies instead of rows."""

    HORIZONS = sorted({end for _, _, end in retention.EXPIRING.values()})

    def __init__(self, today, credentials):
        """`credentials`: every credential, by pk, with its retention policy and the policy's exempt owners
        (`every_credential`)."""
        self.today = today
        self.d = tallies.day_number(today)
        policies = (getattr(credential, "retention", None) for credential in credentials.values())
        self.policies = {
            policy.credential_id: policy
            for policy in policies
            if policy is not None and policy.mode != retention.Mode.OFF
        }
        for policy in self.policies.values():
            policy.exempt_ids = {user.pk for user in policy.exempt_owners.all()}
        self.openai = {pk for pk, c in credentials.items() if kinds.is_openai(c.base_url)}
        # The end of each horizon's day, asked for by every tally row.
        self.ends = {
            horizon: retention.end_of_day(today + timedelta(days=horizon)) for horizon in self.HORIZONS
        }

    def cuts(self) -> list[int]:
        windows = {a.expires_after.days for a in kinds.ADAPTERS.values() if a.expires_after is not None}
        windows |= {policy.window_days for policy in self.policies.values()}
        return [self.d + horizon - window for horizon in self.HORIZONS for window in windows]

    def exempt_owners(self) -> set[int]:
        return {pk for policy in self.policies.values() for pk in policy.exempt_ids}

    def gone(self, days: DayRows, row, horizon: int, exempt: bool, modes, expiry: bool) -> bool:
        """Whether the threads of tally `row` are gone by the end of today + `horizon` days; `exempt`: a
        policy spares them (pinned, exempt owner or metadata)."""
        _, credential, kind, pinned, basis, group, _ = row
        adapter = kinds.ADAPTERS[kind]
        moment = self.ends[horizon]
        windows = []
        if expiry:
            if adapter.sunset is not None and moment >= adapter.sunset and credential in self.openai:
                return True
            if adapter.expires_after is not None:
                windows.append(adapter.expires_after.days)
        policy = self.policies.get(credential)
        governs = policy is not None and policy.mode in modes and retention.applies(policy, kind)
        if governs and not (exempt or pinned):
            windows.append(policy.window_days)
        if not windows or basis == OverviewDay.Basis.NONE:
            return False
        return group <= days.upto(self.d + horizon - min(windows))

    def count(self, days: DayRows, scope: int, horizon: int, metadata_rows, *, modes, expiry) -> int:
        """Threads of `scope` (an owner_key) gone by the end of today + `horizon` days. For everyone
        (-1), the rows of exempt owners are counted again as exempt in place of their share of -1."""
        total = 0
        for row in days.rows:
            owner, credential, n = row[0], row[1], row[-1]
            policy = self.policies.get(credential)
            exempt_here = policy is not None and owner in policy.exempt_ids
            if owner == scope:
                total += n * self.gone(days, row, horizon, exempt_here, modes, expiry)
            elif scope == -1 and exempt_here:
                total += n * (
                    self.gone(days, row, horizon, True, modes, expiry)
                    - self.gone(days, row, horizon, False, modes, expiry)
                )
        for row in metadata_rows:
            total += row[-1] * (
                self.gone(days, row, horizon, True, modes, expiry)
                - self.gone(days, row, horizon, False, modes, expiry)
            )
        return total

    def metadata_rows(self, days: DayRows, owner) -> list:
        """Rows like DayRows' of the active threads that a policy spares by a metadata pair only (not
        pinned, no exempt owner): read from the thread table, as no tally knows metadata."""
        rows = []
        for policy in self.policies.values():
            pairs = retention.metadata_exemption(policy)
            if pairs is None or policy.credential_id in self.hidden:
                continue
            threads = Thread.objects.filter(
                pairs,
                status=Thread.Status.ACTIVE,
                credential_id=policy.credential_id,
                kind__in=[kind for kind in kinds.ADAPTERS if retention.applies(policy, kind)],
                pinned=False,
            ).exclude(owner_id__in=policy.exempt_ids)
            if owner is not None:
                threads = threads.filter(owner_id=owner)
            group = Case(
                *(
                    When(
                        retention.idle_since(retention.end_of_day(day_of(cut))),
                        then=Value(i),
                    )
                    for i, cut in enumerate(days.cuts)
                ),
                default=Value(len(days.cuts)),
                output_field=IntegerField(),
            )
            basis = Case(
                When(last_activity_at__isnull=False, then=Value(OverviewDay.Basis.ACTIVITY)),
                When(remote_created_at__isnull=False, then=Value(OverviewDay.Basis.CREATED)),
                default=Value(OverviewDay.Basis.NONE),
                output_field=IntegerField(),
            )
            found = threads.annotate(g=group, b=basis).values_list("kind", "b", "g").annotate(n=Count("id"))
            rows += [(None, policy.credential_id, kind, False, b, g, n) for kind, b, g, n in found.order_by()]
        return rows

    def figures(self, days: DayRows, scope: int, owner) -> dict:
        metadata_rows = self.metadata_rows(days, owner)
        both = (retention.Mode.DELETE, retention.Mode.FLAG)
        by_horizon = {
            horizon: self.count(days, scope, horizon, metadata_rows, modes=both, expiry=True)
            for horizon in self.HORIZONS
        }
        past = by_horizon[0]
        return {
            "going": [
                (choice, label, by_horizon[end] - (by_horizon[start] if start is not None else 0))
                for choice, (label, start, end) in retention.EXPIRING.items()
            ],
            "past_window": past,
            "flagged": self.count(days, scope, 0, metadata_rows, modes=(retention.Mode.FLAG,), expiry=False),
        }


def every_credential() -> dict:
    """Every credential by pk, with its retention policy and the policy's exempt owners, in one query (and
    one more when any has a policy): few, and the expiry rule (OpenAI's or not), the policies and the
    labels all need them."""
    return (
        Credential.objects.select_related("retention").prefetch_related("retention__exempt_owners").in_bulk()
    )


def day_of(number: int):
    return tallies.EPOCH + timedelta(days=number)


def summary(owner, now, hidden=()) -> dict:
    """The overview's figures for the threads of `owner` (a user's pk), or of everyone (None), as plain
    data. Figures that depend on the date are counted in whole days of the current time zone."""
    today = timezone.localdate(now)
    d = tallies.day_number(today)
    scope = -1 if owner is None else owner
    by_status, by_kind, by_credential = defaultdict(int), defaultdict(int), defaultdict(int)
    for (credential, kind, status), n in tallies.counts(
        "credential_id", "kind", "status", owner_key=scope, hidden=hidden
    ).items():
        by_status[status] += n
        by_kind[kind] += n
        by_credential[credential] += n
    total = sum(by_status.values())
    if owner is None:
        by_owner = {pk: n for (pk,), n in tallies.counts("owner_key", owner_key__gte=0).items()}
    else:
        by_owner = {owner: total} if total else {}

    credentials = every_credential()
    going = Going(today, credentials)
    going.hidden = set(hidden)
    # The day numbers a figure is cut at: each age bucket's edges, each window before each horizon.
    cuts = [d - days - 1 for _, newer, older in AGE_BUCKETS for days in (newer, older) if days is not None]
    keys = [scope, *going.exempt_owners()] if owner is None else [scope]
    days = DayRows(keys, cuts + going.cuts(), hidden)

    activity = [row for row in days.rows if row[0] == scope and row[4] == OverviewDay.Basis.ACTIVITY]

    def idle_more_than(idle: int | None) -> int:
        """Active threads last active more than `idle` whole days ago (None: all of them)."""
        if idle is None:
            return sum(row[-1] for row in activity)
        return sum(row[-1] for row in activity if row[5] <= days.upto(d - idle - 1))

    return {
        "total": total,
        "by_status": [(status, label, by_status[status]) for status, label in Thread.Status.choices],
        "by_kind": [(kind, label, by_kind[kind]) for kind, label in Thread.Kind.choices],
        "by_owner": owner_rows(by_owner),
        "by_credential": sorted(
            (
                (pk, f"{credentials[pk].name} · {credentials[pk].scope_label}", n)
                for pk, n in by_credential.items()
                if pk in credentials
            ),
            key=lambda row: (-row[2], row[1]),
        ),
        "ages": [
            (label, idle_more_than(newer) - (idle_more_than(older) if older is not None else 0), newer, older)
            for label, newer, older in AGE_BUCKETS
        ],
        "age_unknown": sum(
            row[-1] for row in days.rows if row[0] == scope and row[4] != OverviewDay.Basis.ACTIVITY
        ),
        **going.figures(days, scope, owner),
        "today": today,
    }


def owner_rows(by_owner: dict) -> list:
    names = dict(
        get_user_model().objects.filter(pk__in=[pk for pk in by_owner if pk]).values_list("pk", "username")
    )
    return sorted(
        ((pk, names.get(pk, "unassigned") if pk else "unassigned", n) for pk, n in by_owner.items()),
        key=lambda row: (-row[2], row[1]),
    )


def age_link(newer: int | None, older: int | None, today) -> str:
    """The thread list's query for the active threads of an age bucket: last active on the days that
    make them idle more than `newer` and at most `older` whole days."""
    params = {"status": Thread.Status.ACTIVE}
    if older is not None:
        params["active_from"] = (today - timedelta(days=older)).isoformat()
    if newer is not None:
        params["active_to"] = (today - timedelta(days=newer + 1)).isoformat()
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
