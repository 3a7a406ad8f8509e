"""The thread list's query: filters, sort orders, keyset pages and a bounded count.

Built to stay fast with a million tracked threads: every sort order is backed by an index, pages are
found by keyset (the last row's sort value and id, carried in the URL) so a deep page costs what the first
one does, and the total is counted only up to a cap, beyond which PostgreSQL's planner estimate is shown.

The keyset machinery (SortKey, cursors, `keyset_page`) takes any model's queryset and its own table of
sorts: the audit log pages its events with it too.
"""

import base64
import binascii
import json
import re
from dataclasses import dataclass
from datetime import datetime, time, timedelta
from urllib.parse import urlencode

from django.db import connection
from django.db.models import (
    BigIntegerField,
    BooleanField,
    CharField,
    F,
    Func,
    Q,
    Value,
    prefetch_related_objects,
)
from django.db.models.functions import Lower, NullIf
from django.db.models.lookups import Contains
from django.utils import timezone
from django.utils.dateparse import parse_datetime

from . import ids, retention
from .models import Thread, idle_at

PAGE_SIZE = 50
# The page sizes a person may choose (`size=`): larger pages cost more per request, not per position.
PAGE_SIZES = (25, 50, 100, 200)
# Up to this many matches are counted exactly; beyond it, a count would have to visit every match.
COUNT_CAP = 1000


@dataclass(frozen=True)
class SortKey:
    field: str
    label: str
    nullable: bool = False
    # A unique field orders rows by itself; the others need the id as a tie-breaker.
    unique: bool = False
    is_datetime: bool = False
    is_integer: bool = False
    # Sorting by an expression rather than a column: annotated onto the rows under the name `field`,
    # and `python` computes the same value from a row that was read without it.
    expression: object = None
    python: object = None


# Each order is served by an index read forwards or backwards: thread_activity_idx, thread_created_idx,
# thread_added_idx, thread_title_key_idx (on the very expression below), thread_owner_sort_idx,
# thread_status_sort_idx, thread_messages_idx and the unique index of remote_id. The owner order groups
# threads by owner (the user's row id, unassigned last): a sort by user name would join every thread to
# its owner before the first row could be shown.
SORTS = {
    "activity": SortKey("last_activity_at", "Last activity", nullable=True, is_datetime=True),
    "created": SortKey("remote_created_at", "Created", nullable=True, is_datetime=True),
    # "See the newest threads" after an import or an add.
    "added": SortKey("added_at", "Added", is_datetime=True),
    # Case-insensitive; an untitled thread has no title to sort by (NULL), so it comes after the titled.
    "title": SortKey(
        "title_key",
        "Title",
        nullable=True,
        expression=NullIf(Lower("title"), Value(""), output_field=CharField()),
        python=lambda thread: thread.title.lower() or None,
    ),
    # When each thread went idle (its last activity, or its creation when that is unknown): stalest first,
    # the order of what goes first, which the "Going" filters are shown in (`default_sort`).
    "idle": SortKey(
        "idle_at",
        "Idle since",
        nullable=True,
        is_datetime=True,
        expression=idle_at(),
        python=lambda thread: thread.last_activity_at or thread.remote_created_at,
    ),
    "id": SortKey("remote_id", "ID", unique=True),
    "owner": SortKey("owner_id", "Owner", nullable=True, is_integer=True),
    "status": SortKey("status", "Status"),
    "messages": SortKey("message_count", "Messages", nullable=True, is_integer=True),
}


def sortable(threads, sort_key: SortKey):
    """`threads` with the sort's expression annotated, if it sorts by one."""
    if sort_key.expression is None:
        return threads
    return threads.annotate(**{sort_key.field: sort_key.expression})


DEFAULT_SORT = "-activity"


def default_sort(data: dict) -> str:
    """The order of a list that names none: the most recently active first, or, for the threads that go
    within some days, those that go first (by when they went idle)."""
    return "idle" if data.get("expiring") or data.get("removal_days") is not None else DEFAULT_SORT


SORT_CHOICES = [
    (f"{prefix}{name}", f"{key.label} {arrow}")
    for name, key in SORTS.items()
    for prefix, arrow in (("-", "↓"), ("", "↑"))
]


# The sorts by an expression: the field that a cursor's value is read as.
EXPRESSION_FIELDS = {
    key.field: key.expression.output_field for key in SORTS.values() if key.expression is not None
}


def parse_sort(value: str, sorts: dict = SORTS) -> tuple[SortKey, bool]:
    """(key, descending) of a sort parameter such as `-activity`, among `sorts`."""
    descending = value.startswith("-")
    return sorts[value.lstrip("-")], descending


# --- Cursors --------------------------------------------------------------------------------------------


class BadCursor(ValueError):
    pass


# Row ids are 64-bit signed integers; a larger one in a cursor would overflow the query.
MAX_ROW_ID = 2**63 - 1


def encode_cursor(sort_key: SortKey, row) -> str:
    if sort_key.python is not None and not hasattr(row, sort_key.field):
        value = sort_key.python(row)
    else:
        value = getattr(row, sort_key.field)
    if isinstance(value, datetime):
        value = value.isoformat()
    raw = json.dumps([value, row.pk], separators=(",", ":"), ensure_ascii=False).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(sort_key: SortKey, token: str) -> tuple:
    """(sort value, id) from a cursor, checked against the sort it must belong to."""
    try:
        raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
        value, pk = json.loads(raw)
    except (binascii.Error, ValueError, TypeError):
        raise BadCursor("not a page cursor") from None
    if not isinstance(pk, int) or isinstance(pk, bool) or not 1 <= pk <= MAX_ROW_ID:
        raise BadCursor("its row id is not a positive number of 64 bits")
    if value is None:
        if not sort_key.nullable:
            raise BadCursor(f"{sort_key.label.lower()} cannot be empty")
    elif sort_key.is_datetime:
        try:
            parsed = parse_datetime(value) if isinstance(value, str) else None
        except ValueError:  # well formed, but no such moment (month 99)
            parsed = None
        if parsed is None:
            raise BadCursor("its position is not a date and time")
        value = parsed if timezone.is_aware(parsed) else timezone.make_aware(parsed, timezone.UTC)
    elif sort_key.is_integer:
        if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value <= MAX_ROW_ID:
            raise BadCursor("its position is not a number")
    elif not isinstance(value, str) or len(value) > 300:
        raise BadCursor("its position is not text")
    return value, pk


# --- Filters --------------------------------------------------------------------------------------------


class SearchText(Func):
    """The lowercased text a search looks in: title, end user and the metadata values (remote IDs are
    searched by prefix, see `search_condition`).

    On PostgreSQL this is the SQL function `threadsite_search_text()` (migration 0002), which a trigram GIN
    index covers, so that `LIKE '%term%'` over a million rows is an index scan; the query must use the very
    expression that is indexed. On SQLite the same text is assembled inline, unindexed.
    """

    function = "threadsite_search_text"
    output_field = CharField()

    def __init__(self):
        super().__init__(F("title"), F("end_user"), F("metadata"))

    def as_sqlite(self, compiler, connection, **extra):
        compiled = [compiler.compile(expression) for expression in self.get_source_expressions()]
        (title, end_user, metadata), params = zip(*compiled, strict=True)
        # Only compiled column references are interpolated; the search term is a parameter of the lookup.
        metadata_values = f"(SELECT group_concat(value, ' ') FROM json_each({metadata}))"  # noqa: S608
        sql = f"LOWER({title} || char(10) || {end_user} || char(10) || "
        sql += f"COALESCE({metadata_values}, ''))"
        return sql, [param for group in params for param in group]


def day_start(day):
    return timezone.make_aware(datetime.combine(day, time.min))


def apply_filters(threads, data: dict, user):
    """Narrow `threads` by the cleaned data of ThreadFilterForm."""
    owner = data.get("owner")
    if owner == "none":
        threads = threads.filter(owner__isnull=True)
    elif owner == "me":
        threads = threads.filter(owner=user)
    elif owner:
        threads = threads.filter(owner_id=int(owner))
    if data.get("credential"):
        threads = threads.filter(credential_id=int(data["credential"]))
    if data.get("project"):
        threads = threads.filter(credential__project_id=data["project"])
    if data.get("kind"):
        threads = threads.filter(kind=data["kind"])
    if data.get("status"):
        threads = threads.filter(status=data["status"])
    if data.get("created_from"):
        threads = threads.filter(remote_created_at__gte=day_start(data["created_from"]))
    if data.get("created_to"):
        threads = threads.filter(remote_created_at__lt=day_start(data["created_to"] + timedelta(days=1)))
    if data.get("active_from"):
        threads = threads.filter(last_activity_at__gte=day_start(data["active_from"]))
    if data.get("active_to"):
        threads = threads.filter(last_activity_at__lt=day_start(data["active_to"] + timedelta(days=1)))
    if data.get("inactive_days") is not None:
        threads = threads.filter(last_activity_at__lt=timezone.now() - timedelta(days=data["inactive_days"]))
    if data.get("removal_days") is not None:
        threads = threads.filter(retention.removed_by(timezone.now() + timedelta(days=data["removal_days"])))
    if data.get("expiring"):
        threads = threads.filter(retention.expiring(data["expiring"], timezone.localdate()))
    if data.get("q"):
        threads = threads.filter(search_condition(data["q"], threads))
    return threads


# An ID or the start of one: found through the unique index of remote_id (its LIKE 'prefix%' companion
# on PostgreSQL) instead of the trigram index, which is slower for long terms.
ID_PREFIX = re.compile(rf"({'|'.join(ids.ACCEPTED_PREFIXES)})_[A-Za-z0-9]*")


# Exact matches of a search up to this many are fetched by id (`search_condition`).
EXACT_CAP = 1000


class SearchKeysContain(Func):
    """Whether `term` (lowercased) is exactly the end user or one of the metadata values of a thread.

    On PostgreSQL, `threadsite_search_keys(end_user, metadata) @> ARRAY[term]` (migration 0010), which a GIN
    index answers with the posting list of that one value: as fast with ten million threads as with one.
    """

    output_field = BooleanField()

    def __init__(self, term: str):
        super().__init__(F("end_user"), F("metadata"), Value(term.lower()))

    def as_postgresql(self, compiler, connection, **extra):
        compiled = [compiler.compile(expression) for expression in self.get_source_expressions()]
        (end_user, metadata, term), params = zip(*compiled, strict=True)
        sql = f"threadsite_search_keys({end_user}, {metadata}) @> ARRAY[{term}]::text[]"
        return sql, [param for group in params for param in group]

    def as_sql(self, compiler, connection, **extra):
        compiled = [compiler.compile(expression) for expression in self.get_source_expressions()]
        (end_user, metadata, term), params = zip(*compiled, strict=True)
        # Only compiled column references are interpolated; the term is a parameter.
        sql = f"(LOWER({end_user}) = {term} OR EXISTS(SELECT 1 FROM json_each({metadata}) "  # noqa: S608
        sql += f"WHERE LOWER(value) = {term}))"
        end_user_params, metadata_params, term_params = params
        return sql, [*end_user_params, *term_params, *metadata_params, *term_params]


def search_condition(term: str, threads=None):
    """What the search box finds, in stages: an ID or its start through the unique index; else, if some of
    `threads` has the term as its end user or a metadata value, exactly those (one GIN entry, fast at any
    size: a customer's label or a ticket number is looked up this way); else the term anywhere in the
    title, end user or metadata values (the trigram index), as people search for words."""
    if ID_PREFIX.fullmatch(term):
        return Q(remote_id__startswith=term)
    exact = SearchKeysContain(term)
    if threads is not None:
        # The exact matches' ids, up to a cap, from the GIN index. A few become `id IN (…)`: the planner
        # cannot misjudge them (it guesses 0.5% of the table for any `@>`, and at ten million rows would walk
        # the activity index past every newer thread looking for 50 rare ones). Many stay the condition.
        found = list(threads.filter(exact).order_by().values_list("pk", flat=True)[: EXACT_CAP + 1])
        if found:
            return Q(pk__in=found) if len(found) <= EXACT_CAP else exact
    return Contains(SearchText(), term.lower())


def is_text_search(data: dict) -> bool:
    """Whether the filters include a search of the trigram index, whose matches are costly to count."""
    return bool(data.get("q")) and not ID_PREFIX.fullmatch(data["q"])


# --- Pages ----------------------------------------------------------------------------------------------


def ordering(sort_key: SortKey, descending: bool) -> list:
    """The ORDER BY within the threads whose sort value is known. The NULLS clause changes nothing there
    but lets PostgreSQL see that a DESC index (NULLS FIRST by default) serves both directions as it is."""
    if descending:
        order = [F(sort_key.field).desc(nulls_first=True) if sort_key.nullable else F(sort_key.field).desc()]
    else:
        order = [F(sort_key.field).asc(nulls_last=True) if sort_key.nullable else F(sort_key.field).asc()]
    if not sort_key.unique:
        order.append(F("id").desc() if descending else F("id").asc())
    return order


class RowComparison(Func):
    """`(field, id) < (value, pk)`: a row comparison, which a btree index on (field, id) takes as the
    start of its scan, in either direction. Written out as `field < v OR (field = v AND id < pk)` it would
    be a filter, and a deep page would walk the index from its beginning."""

    output_field = BooleanField()

    def __init__(self, field, value, pk, operator, *, model=Thread):
        model_field = EXPRESSION_FIELDS.get(field) or model._meta.get_field(field)
        super().__init__(
            F(field),
            F("id"),
            Value(value, output_field=model_field),
            Value(pk, output_field=BigIntegerField()),
        )
        self.operator = operator

    def as_sql(self, compiler, connection, **extra):
        compiled = [compiler.compile(expression) for expression in self.get_source_expressions()]
        (field, pk, value, value_pk), params = zip(*compiled, strict=True)
        sql = f"({field}, {pk}) {self.operator} ({value}, {value_pk})"
        return sql, [param for group in params for param in group]


def groups(sort_key: SortKey, backward: bool) -> list[bool | None]:
    """The groups of rows of a sort, as values of `field IS NULL`, in the order they are read.

    Threads whose sort value is unknown (activity or creation not seen yet) come after the others in
    either direction, newest id first: the list is about what is known. Read backward, the order flips.
    """
    if not sort_key.nullable:
        return [None]
    return [True, False] if backward else [False, True]


def rows_after(threads, sort_key: SortKey, descending: bool, position, limit: int, *, backward=False) -> list:
    """Up to `limit` rows after `position` ((value, id), or None for the start), reading the sort forward
    or, for "newer" links, backward (`descending` is then already flipped).

    One query per group of rows (known values, unknown values) that the page reaches, each a single index
    range: a condition spanning both groups would need an OR, from which no index can start a scan.
    """
    rows = []
    for is_null in groups(sort_key, backward):
        group = threads if is_null is None else threads.filter(**{f"{sort_key.field}__isnull": is_null})
        if position is not None:
            value, pk = position
            if (value is None) != bool(is_null):
                continue  # the position lies in a later group
            if is_null:
                group = group.filter(id__lt=pk) if descending else group.filter(id__gt=pk)
            elif sort_key.unique:
                group = group.filter(**{f"{sort_key.field}__{'lt' if descending else 'gt'}": value})
            else:
                group = group.filter(
                    RowComparison(sort_key.field, value, pk, "<" if descending else ">", model=threads.model)
                )
            position = None  # the groups after the position's are read from their start
        order = (
            [F("id").desc() if descending else F("id").asc()] if is_null else ordering(sort_key, descending)
        )
        rows += group.order_by(*order)[: limit - len(rows)]
        if len(rows) >= limit:
            break
    return rows


@dataclass
class Page:
    threads: list
    sort: str
    next_cursor: str = ""
    previous_cursor: str = ""
    is_first: bool = True

    @property
    def rows(self) -> list:
        """The page's rows, whatever the model (`threads` for the thread list's templates)."""
        return self.threads


def keyset_page(
    threads, sort: str, *, after=None, before=None, size: int | None = None, sorts: dict = SORTS
) -> Page:
    """One page of `threads` (a queryset of any model) in `sort` order (among `sorts`, the thread list's
    by default), after or before a decoded cursor position (value, id)."""
    sort_key, descending = parse_sort(sort, sorts)
    threads = sortable(threads, sort_key)
    size = size or PAGE_SIZE
    if before is not None:
        rows = rows_after(threads, sort_key, not descending, before, size + 1, backward=True)
        has_previous = len(rows) > size
        if not has_previous:
            # Back at the start: show a full first page rather than the few rows before the cursor.
            return keyset_page(threads, sort, size=size, sorts=sorts)
        rows = rows[:size][::-1]
        has_next = True
    else:
        rows = rows_after(threads, sort_key, descending, after, size + 1)
        has_next = len(rows) > size
        rows = rows[:size]
        has_previous = after is not None
    return Page(
        threads=rows,
        sort=sort,
        next_cursor=encode_cursor(sort_key, rows[-1]) if has_next and rows else "",
        previous_cursor=encode_cursor(sort_key, rows[0]) if has_previous and rows else "",
        is_first=not has_previous,
    )


# Joined to the rows of a page: what a row shows, and the credential's policy that `with_removals` needs.
ROW_RELATIONS = ("credential__retention", "owner")


def with_removals(rows: list) -> list:
    """Give each row of a page `.removal`: when the API's window or its credential's policy removes it, or
    why the policy spares it (`retention.removal`, the thread page's rule). The rows come with their policy
    joined (ROW_RELATIONS), so the page reads no policy per row; the exempt owners of the policies that
    govern some row are read in one query, only on pages that have such a row."""
    # One policy instance per credential: the joined rows each hold a copy, whose owners would be read again.
    policies = {}
    for thread in rows:
        policies.setdefault(thread.credential_id, retention.policy_of(thread.credential))
    governing = {
        thread.credential_id
        for thread in rows
        if thread.status == Thread.Status.ACTIVE
        and not thread.pinned
        and retention.applies(policies[thread.credential_id], thread.kind)
    }
    prefetch_related_objects([policies[pk] for pk in governing], "exempt_owners")
    for thread in rows:
        thread.removal = retention.removal(thread, policies[thread.credential_id])
    return rows


def count_matches(threads, page: Page, *, text_search: bool) -> tuple[int, str]:
    """How many threads the list holds, as (number, "exact" | "about" | "more_than").

    A full COUNT(*) reads every match, which at a million threads is what would make each page slow.
    A first page that holds every match counts itself. Otherwise matches are counted up to COUNT_CAP,
    beyond which PostgreSQL's planner estimates. A text search goes to the estimate at once: its matches
    come from a bitmap of the trigram index, built whole even to count the first thousand.
    """
    if page.is_first and not page.next_cursor:
        return len(page.threads), "exact"
    threads = threads.order_by().values("id")
    postgresql = connection.vendor == "postgresql"
    if not (text_search and postgresql):
        count = threads[: COUNT_CAP + 1].count()
        if count <= COUNT_CAP:
            return count, "exact"
        if not postgresql:
            return COUNT_CAP, "more_than"
    sql, params = threads.query.sql_with_params()
    with connection.cursor() as cursor:
        cursor.execute(f"EXPLAIN (FORMAT JSON) {sql}", params)
        plan = cursor.fetchone()[0]
    if isinstance(plan, str):
        plan = json.loads(plan)
    estimate = int(plan[0]["Plan"]["Plan Rows"])
    return max(estimate, len(page.threads) + 1), "about"


def querystring(params: dict, **overrides) -> str:
    """`?a=1&b=2` of the non-empty params with overrides applied (None removes a param); "" if none."""
    merged = {**params, **overrides}
    pairs = [(key, value) for key, value in merged.items() if value not in (None, "")]
    return "?" + urlencode(pairs) if pairs else ""


def describe(data: dict, user=None) -> str:
    """The filters of ThreadFilterForm's cleaned data as people read them: "Kind: Conversation · Inactive
    for more than 60 days". What a deletion job records of the selection it was made from."""
    from django.contrib.auth import get_user_model

    from .models import Credential

    parts = []
    owner = data.get("owner")
    if owner == "me":
        parts.append(f"Owner: {user.get_username() if user else 'me'}")
    elif owner == "none":
        parts.append("Owner: unassigned")
    elif owner:
        found = get_user_model().objects.filter(pk=int(owner)).first()
        parts.append(f"Owner: {found.get_username() if found else '#' + owner}")
    if data.get("credential"):
        found = Credential.objects.filter(pk=int(data["credential"])).first()
        parts.append(f"Credential: {found.name if found else '#' + data['credential']}")
    if data.get("project"):
        parts.append(f"Project: {data['project']}")
    if data.get("kind"):
        parts.append(f"Kind: {Thread.Kind(data['kind']).label}")
    if data.get("status"):
        parts.append(f"Status: {Thread.Status(data['status']).label}")
    for start, end, label in (
        ("created_from", "created_to", "Created"),
        ("active_from", "active_to", "Active"),
    ):
        if data.get(start) or data.get(end):
            parts.append(f"{label}: {data.get(start) or '…'} to {data.get(end) or '…'}")
    if data.get("inactive_days") is not None:
        parts.append(f"Inactive for more than {data['inactive_days']} days")
    if data.get("removal_days") is not None:
        parts.append(f"Removed within {data['removal_days']} days")
    if data.get("expiring"):
        parts.append(f"Going: {retention.EXPIRING[data['expiring']][0].lower()}")
    if data.get("q"):
        parts.append(f"Search: “{data['q']}”")
    return " · ".join(parts) or "Every thread"
