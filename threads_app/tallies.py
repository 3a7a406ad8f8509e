"""The overview's tallies (OverviewCount, OverviewDay), kept by the database in the transaction of every
write to the thread table, and read by `overview.py` without touching that table.

Why triggers rather than Python at each write: threads change in many places (imports, status changes,
syncs that move the last activity, re-homing to another credential, reassigning owners, pinning, edits
made by hand in `manage.py dbshell`), and a counter kept in Python is wrong as soon as one of them, or a
later one, forgets it. A trigger is the one place, and it is in the writing transaction, so a rolled-back
write leaves the tallies as they were.

On PostgreSQL the triggers run once per statement, over its transition tables (the rows before and after):
an import of 100,000 IDs adds one aggregate of the inserted rows, not 100,000 upserts, and an UPDATE that
changes nothing the tallies count (a sync's timestamps, an edited title) writes nothing. They APPEND their
changes (OverviewCountChange, OverviewDayChange) rather than update the tally rows: updating shared rows
made concurrent writers wait for each other's commits and deadlock when their transactions touched tally
rows in different orders (tests/test_tallies.py shows both). `fold()` moves the appended changes into the
tallies in one statement, every minute by beat; readers add the tallies and the changes not folded yet,
so the figures are exact at every moment and the changes to add stay a minute's worth. On SQLite (one
writer at a time) row triggers update the tallies directly.

Days are counted in TIME_ZONE on PostgreSQL (the function `threadsite_day`, created with the zone that
was set when the migration or `rebuild_tallies` ran: run `manage.py rebuild_tallies` after changing it)
and in UTC on SQLite.
"""

# Every SQL text here is built from this module's constant table and column names; no value is ever
# interpolated (the zone name is quoted as a literal by day_function_sql).
# ruff: noqa: S608

from datetime import date

from django.conf import settings
from django.db import connection, transaction

EPOCH = date(1970, 1, 1)

THREAD = "threads_app_thread"
COUNT = "threads_app_overviewcount"
DAY = "threads_app_overviewday"
COUNT_CHANGE = "threads_app_overviewcountchange"
DAY_CHANGE = "threads_app_overviewdaychange"
COUNT_KEY = "owner_key, credential_id, kind, status"
DAY_KEY = "owner_key, credential_id, kind, pinned, basis, day"
DAY_GROUP = "owner_key, credential_id, kind, pinned, basis"  # a day tally's key but its day

# The `day` of the rows that sum every day of their key (no real day is that far back: PostgreSQL's dates
# start in 4713 BC, day -2,440,588). They let the overview read only the days its cuts divide: the days
# before the first cut are that sum less the days after it (`day_groups`), so its cost stays that of the
# last few months however long the history grows. Kept with the day rows: by the fold on PostgreSQL, by
# the triggers on SQLite, by `rebuild` on both.
EVERY_DAY = -2_147_483_648


def day_number(day: date) -> int:
    return (day - EPOCH).days


# --- PostgreSQL ----------------------------------------------------------------------------------------

PG_DAY_FUNCTION = """
CREATE OR REPLACE FUNCTION threadsite_day(moment timestamptz) RETURNS integer
LANGUAGE sql IMMUTABLE PARALLEL SAFE
AS $$ SELECT (moment AT TIME ZONE {zone})::date - DATE '1970-01-01' $$
"""

# `{changes}`: rows of (owner_id, credential_id, kind, status, pinned, last_activity_at, remote_created_at,
# d) where d is +1 for a row that now exists, -1 for one that no longer does. Each row counts twice: for
# its owner and for everyone (owner_key -1).
PG_APPLY = f"""
INSERT INTO {{count}} ({COUNT_KEY}, n)
SELECT {COUNT_KEY}, sum(d) FROM (
    SELECT CASE WHEN e.everyone THEN -1 ELSE COALESCE(c.owner_id, 0) END AS owner_key,
           c.credential_id, c.kind, c.status, c.d
    FROM ({{changes}}) AS c CROSS JOIN (VALUES (false), (true)) AS e(everyone)
) AS x
GROUP BY {COUNT_KEY} HAVING sum(d) <> 0;

INSERT INTO {{day}} ({DAY_KEY}, n)
SELECT {DAY_KEY}, sum(d) FROM (
    SELECT CASE WHEN e.everyone THEN -1 ELSE COALESCE(c.owner_id, 0) END AS owner_key,
           c.credential_id, c.kind, c.pinned,
           CASE WHEN c.last_activity_at IS NOT NULL THEN 2 WHEN c.remote_created_at IS NOT NULL THEN 1
                ELSE 0 END AS basis,
           COALESCE(threadsite_day(COALESCE(c.last_activity_at, c.remote_created_at)), 0) AS day, c.d
    FROM ({{changes}}) AS c CROSS JOIN (VALUES (false), (true)) AS e(everyone)
    WHERE c.status = 'active'
) AS x
GROUP BY {DAY_KEY} HAVING sum(d) <> 0;
"""

# Moving the appended changes into the tallies: one statement per table, so a reader sees each change
# either still appended or already folded, never both or neither. Changes of transactions still open are
# not visible to the DELETE and wait for the next fold.
PG_FOLD = [
    f"""
WITH moved AS (DELETE FROM {COUNT_CHANGE} RETURNING {COUNT_KEY}, n)
INSERT INTO {COUNT} AS t ({COUNT_KEY}, n)
SELECT {COUNT_KEY}, sum(n) FROM moved GROUP BY {COUNT_KEY}
ON CONFLICT ({COUNT_KEY}) DO UPDATE SET n = t.n + EXCLUDED.n
""",
    # Each day's change goes to its day and to its key's sum of every day (EVERY_DAY), in one statement.
    f"""
WITH moved AS (DELETE FROM {DAY_CHANGE} RETURNING {DAY_KEY}, n)
INSERT INTO {DAY} AS t ({DAY_KEY}, n)
SELECT {DAY_KEY}, sum(n) FROM moved GROUP BY {DAY_KEY}
UNION ALL
SELECT {DAY_GROUP}, {EVERY_DAY}, sum(n) FROM moved GROUP BY {DAY_GROUP}
ON CONFLICT ({DAY_KEY}) DO UPDATE SET n = t.n + EXCLUDED.n
""",
]

# The sums of every day, from the day rows (the changes not folded yet are in neither).
EVERY_DAY_SQL = (
    f"INSERT INTO {DAY} ({DAY_KEY}, n) SELECT {DAY_GROUP}, {EVERY_DAY}, sum(n) FROM {DAY} "
    f"WHERE day <> {EVERY_DAY} GROUP BY {DAY_GROUP}"
)

COLUMNS = "owner_id, credential_id, kind, status, pinned, last_activity_at, remote_created_at"
PG_CHANGES = {
    "INSERT": f"SELECT {COLUMNS}, 1 AS d FROM new_rows",
    "DELETE": f"SELECT {COLUMNS}, -1 AS d FROM old_rows",
    "UPDATE": f"SELECT {COLUMNS}, -1 AS d FROM old_rows UNION ALL SELECT {COLUMNS}, 1 AS d FROM new_rows",
}
PG_TRANSITIONS = {
    "INSERT": "NEW TABLE AS new_rows",
    "DELETE": "OLD TABLE AS old_rows",
    "UPDATE": "OLD TABLE AS old_rows NEW TABLE AS new_rows",
}


def day_function_sql() -> str:
    # A zone name is not a parameter in DDL: quoted as an SQL literal.
    return PG_DAY_FUNCTION.format(zone="'" + settings.TIME_ZONE.replace("'", "''") + "'")


def pg_trigger_sql() -> list[str]:
    statements = []
    for event, changes in PG_CHANGES.items():
        name = f"threadsite_tally_{event.lower()}"
        statements += [
            f"CREATE OR REPLACE FUNCTION {name}() RETURNS trigger LANGUAGE plpgsql AS $$\n"
            f"BEGIN\n{PG_APPLY.format(changes=changes, count=COUNT_CHANGE, day=DAY_CHANGE)}\n"
            "RETURN NULL;\nEND\n$$",
            f"DROP TRIGGER IF EXISTS {name} ON {THREAD}",
            f"CREATE TRIGGER {name} AFTER {event} ON {THREAD} REFERENCING {PG_TRANSITIONS[event]} "
            f"FOR EACH STATEMENT EXECUTE FUNCTION {name}()",
        ]
    return statements


# --- SQLite ----------------------------------------------------------------------------------------------


def sqlite_basis_day(row: str) -> tuple[str, str]:
    basis = (
        f"CASE WHEN {row}.last_activity_at IS NOT NULL THEN 2 "
        f"WHEN {row}.remote_created_at IS NOT NULL THEN 1 ELSE 0 END"
    )
    moment = f"COALESCE({row}.last_activity_at, {row}.remote_created_at)"
    return basis, f"COALESCE(CAST(julianday({moment}) - 2440587.5 AS INTEGER), 0)"


def sqlite_apply(row: str, d: int) -> str:
    """Statements adding `d` for the thread `row` (NEW or OLD) to its tallies, for its owner and for
    everyone: plain one-row upserts, which SQLite runs several times faster than an INSERT … SELECT."""
    basis, day = sqlite_basis_day(row)
    statements = ""
    for owner in (f"COALESCE({row}.owner_id, 0)", "-1"):
        statements += (
            f"INSERT INTO {COUNT} ({COUNT_KEY}, n) "
            f"VALUES ({owner}, {row}.credential_id, {row}.kind, {row}.status, {d}) "
            f"ON CONFLICT ({COUNT_KEY}) DO UPDATE SET n = n + excluded.n;\n"
        )
    for owner in (f"COALESCE({row}.owner_id, 0)", "-1"):
        for row_day in (day, EVERY_DAY):
            statements += (
                f"INSERT INTO {DAY} ({DAY_KEY}, n) "
                f"SELECT {owner}, {row}.credential_id, {row}.kind, {row}.pinned, {basis}, {row_day}, {d} "
                f"WHERE {row}.status = 'active' "
                f"ON CONFLICT ({DAY_KEY}) DO UPDATE SET n = n + excluded.n;\n"
            )
    return statements


def sqlite_rebuild_sql() -> list[str]:
    basis, day = sqlite_basis_day("t")
    statements = []
    for owner in ("COALESCE(t.owner_id, 0)", "-1"):
        statements += [
            f"INSERT INTO {COUNT} ({COUNT_KEY}, n) "
            f"SELECT {owner}, t.credential_id, t.kind, t.status, count(*) "
            f"FROM {THREAD} AS t GROUP BY 1, 2, 3, 4",
            f"INSERT INTO {DAY} ({DAY_KEY}, n) SELECT {owner}, t.credential_id, t.kind, t.pinned, {basis}, "
            f"{day}, count(*) FROM {THREAD} AS t WHERE t.status = 'active' GROUP BY 1, 2, 3, 4, 5, 6",
        ]
    return statements


def sqlite_trigger_sql() -> list[str]:
    watched = "owner_id, credential_id, kind, status, pinned, last_activity_at, remote_created_at"
    insert, delete = sqlite_apply("NEW", 1), sqlite_apply("OLD", -1)
    return [
        "DROP TRIGGER IF EXISTS threadsite_tally_insert",
        "DROP TRIGGER IF EXISTS threadsite_tally_delete",
        "DROP TRIGGER IF EXISTS threadsite_tally_update",
        f"CREATE TRIGGER threadsite_tally_insert AFTER INSERT ON {THREAD} BEGIN\n{insert}END",
        f"CREATE TRIGGER threadsite_tally_delete AFTER DELETE ON {THREAD} BEGIN\n{delete}END",
        f"CREATE TRIGGER threadsite_tally_update AFTER UPDATE OF {watched} ON {THREAD} BEGIN\n"
        f"{delete}{insert}END",
    ]


# --- Installing and rebuilding ---------------------------------------------------------------------------


def install(conn=None) -> None:
    """Create (or replace) the day function and the triggers."""
    conn = conn or connection
    with conn.cursor() as cursor:
        if conn.vendor == "postgresql":
            cursor.execute(day_function_sql())
            statements = pg_trigger_sql()
        else:
            statements = sqlite_trigger_sql()
        for statement in statements:
            cursor.execute(statement)


def uninstall(conn=None) -> None:
    conn = conn or connection
    postgresql = conn.vendor == "postgresql"
    with conn.cursor() as cursor:
        for event in PG_CHANGES:
            name = f"threadsite_tally_{event.lower()}"
            cursor.execute(f"DROP TRIGGER IF EXISTS {name}" + (f" ON {THREAD}" if postgresql else ""))
            if postgresql:
                cursor.execute(f"DROP FUNCTION IF EXISTS {name}()")
        if postgresql:
            cursor.execute("DROP FUNCTION IF EXISTS threadsite_day(timestamptz)")


def rebuild(conn=None) -> None:
    """Count every thread again, with writes to the thread table held off meanwhile: the migration's first
    build, after a bulk load that bypassed the triggers, or after a change of TIME_ZONE."""
    conn = conn or connection
    with transaction.atomic(using=conn.alias), conn.cursor() as cursor:
        if conn.vendor == "postgresql":
            cursor.execute(day_function_sql())
            cursor.execute(f"LOCK TABLE {THREAD} IN SHARE MODE")
        for table in (COUNT, DAY, COUNT_CHANGE, DAY_CHANGE):
            cursor.execute(f"DELETE FROM {table}")
        if conn.vendor == "postgresql":
            every_thread = f"SELECT {COLUMNS}, 1 AS d FROM {THREAD}"
            cursor.execute(PG_APPLY.format(changes=every_thread, count=COUNT, day=DAY))
        else:
            for statement in sqlite_rebuild_sql():
                cursor.execute(statement)
        cursor.execute(EVERY_DAY_SQL)


FOLD_LOCK = 7_283_310  # pg_advisory_xact_lock key: one fold at a time


def fold(conn=None) -> bool:
    """Move the appended changes into the tallies (PostgreSQL; SQLite has none). False if another fold
    was running, which then does the work."""
    conn = conn or connection
    if conn.vendor != "postgresql":
        return True
    with transaction.atomic(using=conn.alias), conn.cursor() as cursor:
        cursor.execute("SELECT pg_try_advisory_xact_lock(%s)", [FOLD_LOCK])
        if not cursor.fetchone()[0]:
            return False
        for statement in PG_FOLD:
            cursor.execute(statement)
    return True


# --- Reading -------------------------------------------------------------------------------------------


# Reading costs a query per figure set, not one per table: the tallies and the changes not folded yet are
# read together (UNION ALL) in SQL written here, which PostgreSQL answers from the tallies' indexes alone
# and which costs a fraction of the ORM's building of the same grouped query.

COUNT_FIELDS = ("owner_key", "credential_id", "kind", "status")
OWNER_LOOKUPS = {"owner_key": "owner_key = %s", "owner_key__gte": "owner_key >= %s"}


def owner_condition(owner_filters: dict, hidden) -> tuple[str, list]:
    """SQL condition (and its parameters) on a tally's rows: the owner keys `owner_filters` select
    (OWNER_LOOKUPS, or `owner_key__in`), without the `hidden` credentials."""
    where, params = [], []
    for lookup, value in owner_filters.items():
        if lookup == "owner_key__in":
            where.append(f"owner_key IN ({', '.join(['%s'] * len(value))})")
            params += list(value)
        else:
            where.append(OWNER_LOOKUPS[lookup])
            params.append(value)
    hidden = list(hidden)
    if hidden:
        where.append(f"credential_id NOT IN ({', '.join(['%s'] * len(hidden))})")
        params += hidden
    return " AND ".join(where) or "1 = 1", params


def counts(*fields, hidden=(), **filters) -> dict:
    """Threads counted by the tallies plus the changes not folded yet, summed by `fields` of OverviewCount
    (a tuple of their values → n), over the owner keys `filters` select (`owner_key=-1`: everyone;
    `owner_key__gte=0`: each owner, 0 for none), leaving out the credentials in `hidden`. Never reads the
    thread table."""
    if not fields or not set(fields) <= set(COUNT_FIELDS) or not set(filters) <= set(OWNER_LOOKUPS):
        raise ValueError(f"counts by {fields} where {sorted(filters)}: not a tally's fields and lookups")
    columns = ", ".join(fields)
    condition, params = owner_condition(filters, hidden)
    rows = " UNION ALL ".join(
        f"SELECT {columns}, n FROM {table} WHERE {condition}" for table in (COUNT, COUNT_CHANGE)
    )
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT {columns}, sum(n) FROM ({rows}) AS x GROUP BY {columns}", params * 2)
        return {tuple(key): n for *key, n in cursor.fetchall() if n}


def day_groups(owner_keys, cuts: list[int], hidden=()) -> list[tuple]:
    """Active threads by (owner_key, credential_id, kind, pinned, basis, group, n) of the tallies plus the
    changes not folded yet, where group i holds the days after cuts[i-1] up to cuts[i] (`cuts` ascending,
    at least one) and the last group the days after every cut; for the owner keys `owner_keys`, without
    the credentials in `hidden`.

    Of the tallies, only the days after the first cut are read: group 0 is the sum of every day
    (EVERY_DAY) less them."""
    condition, params = owner_condition({"owner_key__in": owner_keys}, hidden)
    whens = " ".join(f"WHEN day <= %s THEN {i}" for i in range(len(cuts)))
    group = f"CASE {whens} ELSE {len(cuts)} END"
    recent = f"{condition} AND day > %s"
    parts = [
        (f"SELECT {DAY_GROUP}, 0 AS g, n FROM {DAY} WHERE {condition} AND day = {EVERY_DAY}", params),
        (f"SELECT {DAY_GROUP}, 0 AS g, -n FROM {DAY} WHERE {recent}", [*params, cuts[0]]),
        (f"SELECT {DAY_GROUP}, {group} AS g, n FROM {DAY} WHERE {recent}", [*cuts, *params, cuts[0]]),
        (f"SELECT {DAY_GROUP}, {group} AS g, n FROM {DAY_CHANGE} WHERE {condition}", [*cuts, *params]),
    ]
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT {DAY_GROUP}, g, sum(n) FROM ({' UNION ALL '.join(sql for sql, _ in parts)}) AS x "
            f"GROUP BY {DAY_GROUP}, g",
            [param for _, part_params in parts for param in part_params],
        )
        # SQLite answers a boolean as 0 or 1.
        return [(*key[:3], bool(key[3]), *key[4:]) for key in cursor.fetchall() if key[-1]]
