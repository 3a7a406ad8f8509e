"""Server time of the browsing pages with a million (or ten million) tracked threads on PostgreSQL.

    .venv/bin/python benchmarks/list_pages.py [--rows 1000000] [--runs 30] [--latency-ms 200]
        [--database postgres://postgres@127.0.0.1:5432/threadsite_bench] [--reload] [--import-ids 2000000]

    .venv/bin/python benchmarks/list_pages.py --rows 10000000     # ten million: ~15 min to load, ~8 GB

The database for `--rows` is `--database`'s name with a suffix for sizes other than a million
(`threadsite_bench_10m`); it is created and migrated if needed, then filled by COPY (once: a later run
reuses it unless `--reload`), a million rows per COPY from a generator, so memory stays flat at any size:
four credentials in three projects, fifty owners with a Zipf-like skew and a fifth unassigned, the three
kinds, mostly active, creation and activity spread over a year and a half with recent ones denser, titles,
end users and metadata like real ones. The tallies' triggers are off during the COPY and the tallies are
counted once after it, as the indexes are built once.

When both the 1M and the 10M databases are loaded, every page is measured on both in the same run,
alternating, and printed side by side with their ratio. The searches look for the same end user and
ticket number in both (taken from the first), which the 10M database holds as often as the 1M one (see
`replicate`), so that a search's figure is its cost, not that of showing ten times as many threads; the
number each search finds in each database is printed first. Each page is requested in-process through
Django's test client as a signed-in user, `--runs` times after two warm-ups; the figure is the median time
from request to response (server time, no network) and the number of SQL queries of one request. The
overview is measured as is (nothing is cached). The thread page's fragments ask the offline simulator,
which answers after `--latency-ms`. Then each database's size on disk, and the time of
`manage.py import_threads` of `--import-ids` new IDs into each (the rows are removed again afterwards).
"""

import argparse
import json
import os
import random
import statistics
import string
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import unquote_plus, urlencode

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_DATABASE = "postgres://postgres@127.0.0.1:5432/threadsite_bench"
BENCH_USER = "bench-viewer"
BENCH_IMPORTER = "bench-importer"
ALPHABET = string.ascii_letters + string.digits
NOW = datetime(2026, 11, 1, 12, tzinfo=UTC)


def setup_django(database_url: str) -> None:
    os.environ["DATABASE_URL"] = database_url
    os.environ.setdefault("SECRET_KEY", "benchmark-only-secret")
    os.environ["ALLOWED_HOSTS"] = "testserver,localhost"
    os.environ["DEBUG"] = "false"
    os.environ["LOG_LEVEL"] = "ERROR"
    os.environ["THREADSITE_INPROCESS_WORKERS"] = "0"
    sys.path.insert(0, str(ROOT))
    os.environ["DJANGO_SETTINGS_MODULE"] = "threadsite.settings"
    import django
    from django.conf import settings

    django.setup()
    # Production's manifest storage needs `collectstatic`; the page's cost does not depend on it.
    settings.STORAGES["staticfiles"]["BACKEND"] = "django.contrib.staticfiles.storage.StaticFilesStorage"


def database_for(base_url: str, rows: int) -> str:
    return (
        base_url
        if rows == 1_000_000
        else f"{base_url}_{rows // 1_000_000}m"
        if rows % 1_000_000 == 0
        else f"{base_url}_{rows}"
    )


def create_database(database_url: str) -> None:
    import psycopg

    base, name = database_url.rsplit("/", 1)
    with psycopg.connect(f"{base}/postgres", autocommit=True) as conn:
        if not conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [name]).fetchone():
            conn.execute(f'CREATE DATABASE "{name}"')
            print(f"created database {name}")


# --- Loading ------------------------------------------------------------------------------------------

WORDS = [
    "refund",
    "order",
    "invoice",
    "onboarding",
    "billing",
    "password",
    "reset",
    "export",
    "shipping",
    "delay",
    "upgrade",
    "plan",
    "trial",
    "cancellation",
    "integration",
    "webhook",
    "error",
    "timeout",
    "report",
    "dashboard",
    "login",
    "migration",
    "contract",
    "renewal",
    "quota",
    "discount",
    "feedback",
    "bug",
    "crash",
    "sync",
    "calendar",
    "import",
    "translation",
    "summary",
]
TEAMS = ["support", "sales", "success", "engineering", "research"]
REGIONS = ["eu", "us", "apac"]
KINDS = [("assistants_thread", "thread", 45), ("conversation", "conv", 35), ("chatkit_thread", "cthr", 20)]
STATUSES = [("active", 80), ("deleted", 12), ("expired", 5), ("missing", 3)]


def weighted(rng, pairs):
    """One value of (value, weight) pairs."""
    values, weights = zip(*pairs, strict=True)
    return rng.choices(values, weights)[0]


def thread_rows(count: int, owner_ids: list[int], credential_weights: list[tuple[int, int]], seed: int = 42):
    """The rows to COPY, generated lazily: a million tuples would not fit comfortably in memory."""
    rng = random.Random(seed)
    # Zipf-like: owner n gets a share proportional to 1/n; a fifth of threads have no owner.
    owner_weights = [(owner_id, 1 / (rank + 1)) for rank, owner_id in enumerate(owner_ids)]
    owner_total = sum(w for _, w in owner_weights)
    owner_pairs = [(None, owner_total / 4)] + owner_weights
    for n in range(count):
        kind, prefix = weighted(rng, [((k, p), w) for k, p, w in KINDS])
        # The row number makes the ID unique; the random part makes it look like the API's.
        remote_id = f"{prefix}_{''.join(rng.choices(ALPHABET, k=18))}{n:06x}"
        age_days = min(rng.expovariate(1 / 90), 540)
        created = NOW - timedelta(days=age_days, seconds=rng.randrange(86400))
        if rng.random() < 0.03:
            activity, source = None, ""
        else:
            idle = min(rng.expovariate(1 / 25), age_days)
            activity, source = NOW - timedelta(days=idle, seconds=rng.randrange(3600)), "message"
            activity = max(activity, created)
        title = " ".join(rng.sample(WORDS, rng.randint(2, 5))).capitalize() if rng.random() < 0.7 else ""
        if kind == "chatkit_thread":
            end_user = f"user_{rng.randrange(200_000):06d}"
        else:
            end_user = f"customer-{rng.randrange(100_000)}" if rng.random() < 0.4 else ""
        metadata = (
            {
                "ticket": f"ZD-{rng.randrange(1_000_000):06d}",
                "team": rng.choice(TEAMS),
                "region": rng.choice(REGIONS),
            }
            if kind != "chatkit_thread" and rng.random() < 0.6
            else {}
        )
        status = weighted(rng, STATUSES)
        yield (
            remote_id,
            kind,
            weighted(rng, credential_weights),
            weighted(rng, owner_pairs),
            end_user,
            title,
            json.dumps(metadata),
            rng.randint(1, 300) if rng.random() < 0.5 else None,
            created,
            activity,
            source,
            NOW - timedelta(days=rng.random() * 3),
            "ok",
            "",
            status,
            None if status == "active" else activity or created,
            "import",
            created + timedelta(hours=1),
            "",
            False,
        )


COLUMNS = (
    "remote_id, kind, credential_id, owner_id, end_user, title, metadata, message_count, remote_created_at, "
    "last_activity_at, activity_source, last_synced_at, last_check, last_check_message, status, "
    "status_changed_at, source, added_at, newest_entry_id, pinned"
)
# Rows per COPY, each committed: the generator streams, so memory stays flat at any --rows.
CHUNK = 1_000_000


def ensure_indexes() -> None:
    """Create any index of the thread table that is missing (a load interrupted after dropping them):
    the model's, and the search indexes that migrations 0002 and 0010 create in SQL."""
    import importlib

    from django.db import connection

    from threads_app.models import Thread

    with connection.cursor() as cursor:
        cursor.execute("SELECT indexname FROM pg_indexes WHERE tablename = 'threads_app_thread'")
        present = {name for (name,) in cursor.fetchall()}
        cursor.execute("SET maintenance_work_mem = '1GB'")
    with connection.schema_editor() as editor:
        for index in Thread._meta.indexes:
            if index.name not in present:
                print(f"  creating the missing index {index.name}", flush=True)
                editor.add_index(Thread, index)
    browse = importlib.import_module("threads_app.migrations.0002_browse_indexes")
    summary = importlib.import_module("threads_app.migrations.0010_overview_summary")
    with connection.cursor() as cursor:
        cursor.execute(browse.SEARCH_INDEX)
        cursor.execute(summary.SEARCH_KEYS_INDEX)
        # The LIKE 'prefix%' companion of the unique remote_id, which Django names with a hash.
        cursor.execute(
            "SELECT 1 FROM pg_indexes WHERE tablename = 'threads_app_thread' "
            "AND indexdef LIKE '%%(remote_id varchar_pattern_ops)%%'"
        )
        if cursor.fetchone() is None:
            print("  creating the missing LIKE index of remote_id", flush=True)
            cursor.execute(
                "CREATE INDEX threads_app_thread_remote_id_like ON threads_app_thread "
                "(remote_id varchar_pattern_ops)"
            )


def replicate(raw, source_url: str, copies: int) -> None:
    """Fill the thread table with `copies` copies of the million threads of the database at `source_url`:
    the same distribution as the 1M database, loaded by the server itself, where generating ten million
    rows in Python would take an hour on a busy machine. The rows go through COPY (binary) into a
    temporary table, by credential and owner name, then one INSERT … SELECT per copy.

    The first copy is the 1M database as it is. The others are other threads of other people, as at ten
    times the size: the random part of each ID is translated through a rotation of its alphabet (so an ID
    prefix is as rare as at 1M, not shared by ten copies), and end users and ticket numbers get the copy's
    suffix (so a customer or a ticket has as many threads as at 1M, not ten times as many). Titles, words
    and everything else are copied as they are."""
    import psycopg

    columns = [c.strip() for c in COLUMNS.split(",")]
    named = [
        "c.name::text" if c == "credential_id" else "u.username::text" if c == "owner_id" else f"t.{c}"
        for c in columns
    ]
    seed_columns = [
        "credential_name" if c == "credential_id" else "owner_name" if c == "owner_id" else c for c in columns
    ]
    with raw.cursor() as cursor:
        cursor.execute(
            "CREATE TEMPORARY TABLE seed AS SELECT t.*, ''::text AS credential_name, ''::text AS owner_name "
            "FROM threads_app_thread t WITH NO DATA"
        )
    select = (
        f"SELECT {', '.join(named)} FROM threads_app_thread t "
        "JOIN threads_app_credential c ON c.id = t.credential_id LEFT JOIN auth_user u ON u.id = t.owner_id "
        "WHERE c.name <> 'bench-sim'"
    )
    with (
        psycopg.connect(source_url) as source,
        source.cursor() as out,
        raw.cursor() as into,
        out.copy(f"COPY ({select}) TO STDOUT (FORMAT BINARY)") as reading,
        into.copy(f"COPY seed ({', '.join(seed_columns)}) FROM STDIN (FORMAT BINARY)") as writing,
    ):
        for data in reading:
            writing.write(data)
    raw.commit()
    values = [
        "c.id"
        if c == "credential_id"
        else "u.id"
        if c == "owner_id"
        else "split_part(s.remote_id, '_', 1) || '_' || translate(split_part(s.remote_id, '_', 2), "
        "%(alphabet)s, %(rotated)s) || %(suffix)s"
        if c == "remote_id"
        else "CASE WHEN s.end_user = '' THEN '' ELSE s.end_user || %(suffix)s END"
        if c == "end_user"
        else "CASE WHEN s.metadata ? 'ticket' THEN jsonb_set(s.metadata, '{ticket}', "
        "to_jsonb((s.metadata ->> 'ticket') || %(suffix)s)) ELSE s.metadata END"
        if c == "metadata"
        else f"s.{c}"
        for c in columns
    ]
    for copy in range(copies):
        with raw.cursor() as cursor:
            cursor.execute(
                f"INSERT INTO threads_app_thread ({COLUMNS}) SELECT {', '.join(values)} FROM seed s "
                "JOIN threads_app_credential c ON c.name = s.credential_name "
                "LEFT JOIN auth_user u ON u.username = s.owner_name",
                {
                    "suffix": f"r{copy}" if copy else "",
                    "alphabet": ALPHABET,
                    "rotated": ALPHABET[copy:] + ALPHABET[:copy],
                },
            )
        raw.commit()
        print(f"  copied {copy + 1} × the 1M rows", flush=True)


def load(rows: int, replica_of: str = "") -> None:
    from django.contrib.auth.models import User
    from django.db import connection

    from threads_app import tallies
    from threads_app.models import Credential, StatusChange, Thread

    started = time.perf_counter()
    StatusChange.objects.all().delete()
    with connection.cursor() as cursor:
        cursor.execute("TRUNCATE threads_app_thread CASCADE")
    Credential.objects.all().delete()
    User.objects.filter(username__startswith="owner").delete()
    owners = User.objects.bulk_create(
        [User(username=f"owner{n:02d}", email=f"owner{n:02d}@example.com") for n in range(1, 51)]
    )
    credentials = []
    for name, project, weight in (
        ("main-prod", "proj_main", 55),
        ("main-batch", "proj_main", 25),
        ("support", "proj_support", 15),
        ("labs", "proj_labs", 5),
    ):
        credential = Credential(name=name, base_url="http://127.0.0.1:9/v1", project_id=project)
        credential.api_key = f"sk-bench-{name}-0000"
        credential.save()
        credentials.append((credential.pk, weight))

    def fill(raw) -> None:
        if replica_of:
            replicate(raw, replica_of, rows // 1_000_000)
            return
        generated = thread_rows(rows, [o.pk for o in owners], credentials)
        for start in range(0, rows, CHUNK):
            copy_sql = f"COPY threads_app_thread ({COLUMNS}) FROM STDIN"
            with raw.cursor() as cursor, cursor.copy(copy_sql) as copy:
                for _ in range(min(CHUNK, rows - start)):
                    copy.write_row(next(generated))
            raw.commit()
            print(f"  copied {start + min(CHUNK, rows - start):,} rows", flush=True)

    copied = copy_rows("threads_app_thread", COLUMNS, fill)
    ensure_indexes()
    tallies.rebuild()
    with connection.cursor() as cursor:
        cursor.execute("VACUUM (ANALYZE) threads_app_overviewcount, threads_app_overviewday")
    print(
        f"loaded {Thread.objects.count():,} threads: COPY {copied - started:.1f} s, "
        f"indexes, VACUUM ANALYZE and tallies {time.perf_counter() - copied:.1f} s"
    )


def copy_rows(table: str, columns: str, rows) -> float:
    """COPY `rows` into `table` with its indexes dropped and its triggers off (the thread table's tallies
    are counted once afterwards), then build the indexes again and VACUUM ANALYZE it; returns the moment
    the COPY ended (perf_counter). `rows`: an iterable of rows, or a function of the raw connection that
    COPYs them itself."""
    from django.db import connection

    with connection.cursor() as cursor:
        # Indexes are built once after the COPY, far faster than maintained row by row.
        cursor.execute(
            "SELECT indexname, indexdef FROM pg_indexes WHERE tablename = %s "
            "AND indexname NOT IN (SELECT conname FROM pg_constraint)",
            [table],
        )
        indexes = cursor.fetchall()
        for name, _ in indexes:
            cursor.execute(f'DROP INDEX "{name}"')
        cursor.execute(f"ALTER TABLE {table} DISABLE TRIGGER USER")
    raw = connection.connection  # the psycopg connection under Django's, open now
    if callable(rows):
        rows(raw)
    else:
        with raw.cursor() as cursor, cursor.copy(f"COPY {table} ({columns}) FROM STDIN") as copy:
            for row in rows:
                copy.write_row(row)
    raw.commit()
    copied = time.perf_counter()
    with connection.cursor() as cursor:
        cursor.execute(f"ALTER TABLE {table} ENABLE TRIGGER USER")
        cursor.execute("SET maintenance_work_mem = '1GB'")
        for _, definition in indexes:
            cursor.execute(definition)
        cursor.execute(f"VACUUM (ANALYZE) {table}")
    return copied


# --- Measuring ----------------------------------------------------------------------------------------


def measure(client, url: str, runs: int, headers: dict, simulator=None) -> dict:
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    for _ in range(2):
        response = client.get(url, headers=headers)
        assert response.status_code == 200, (url, response.status_code, response.content[:500])
    times, cpu = [], []
    for _ in range(runs):
        started, started_cpu = time.perf_counter(), time.process_time()
        client.get(url, headers=headers)
        times.append((time.perf_counter() - started) * 1000)
        cpu.append((time.process_time() - started_cpu) * 1000)
    if simulator is not None:
        simulator.state.request_log.clear()
    with CaptureQueriesContext(connection) as queries:
        client.get(url, headers=headers)
    times.sort()
    return {
        "median": statistics.median(times),
        "p95": times[min(len(times) - 1, round(0.95 * len(times)) - 1)],
        "queries": len(queries),
        "api": len(simulator.state.request_log) if simulator is not None else None,
        # The Python process's own CPU time (template, ORM), which other loads on the machine inflate
        # far less than the wall clock; and the SQL's wall time in the captured request.
        "cpu": statistics.median(cpu),
        "sql": sum(float(query["time"]) for query in queries.captured_queries) * 1000,
    }


def report(label: str, figures: dict) -> None:
    api = "" if figures["api"] is None else f"{figures['api']:>5}"
    print(f"{label:<52} {figures['median']:8.1f} {figures['p95']:8.1f} {figures['queries']:>8} {api}")


def deep_cursor(offset: int) -> str:
    from threads_app import listing
    from threads_app.models import Thread

    thread = Thread.objects.order_by(*listing.ordering(listing.SORTS["activity"], True))[offset]
    return listing.encode_cursor(listing.SORTS["activity"], thread)


def is_loaded(url: str, rows: int) -> bool:
    """Whether the database at `url` holds the `rows` benchmark threads."""
    import psycopg

    try:
        with psycopg.connect(url) as conn:
            query = (
                "SELECT count(*) FROM threads_app_thread t JOIN threads_app_credential c "
                "ON c.id = t.credential_id WHERE c.name <> 'bench-sim'"
            )
            return conn.execute(query).fetchone()[0] == rows
    except psycopg.Error:
        return False


def use_database(url: str) -> None:
    """Point Django's default connection at another database (same server, same schema)."""
    from django.db import connection

    connection.close()
    connection.settings_dict["NAME"] = url.rsplit("/", 1)[1]


def search_terms() -> tuple[str, str]:
    """An end user and a ticket number of the database in use, searched for in every database: each has
    as many threads at 10M as at 1M (see `replicate`), so that their searches compare like with like."""
    from threads_app.models import Thread

    user_label = Thread.objects.exclude(end_user="").order_by("id").values_list("end_user", flat=True)[777]
    with_ticket = Thread.objects.filter(metadata__has_key="ticket").order_by("id")
    return user_label, with_ticket.values_list("metadata", flat=True)[777]["ticket"]


def matches(pages: list) -> str:
    """How many threads each search of `pages` finds in the database in use (the exact ones, counted)."""
    from threads_app import listing
    from threads_app.models import Thread

    found = []
    for label, url, _ in pages:
        if "search:" in label and "common word" not in label:
            term = url.split("q=", 1)[1]
            threads = Thread.objects.filter(
                listing.search_condition(unquote_plus(term), Thread.objects.all())
            )
            found.append(f"{label.split(': ', 1)[1]} {threads[:1001].count()}")
    return ", ".join(found)


def list_pages(rows: int, terms: tuple[str, str]) -> list:
    """(label, url, headers) of the list pages, with IDs and cursors from the database in use."""
    from django.contrib.auth.models import User

    from threads_app import listing
    from threads_app.models import Thread

    htmx = {"HX-Request": "true"}
    owner = User.objects.get(username="owner07")
    sample = listing.sortable(Thread.objects.order_by("id"), listing.SORTS["title"])[rows // 2]
    user_label, ticket = terms
    return [
        ("list, first page (full page)", "/", {}),
        ("list, first page (HTMX table)", "/", htmx),
        ("list, owner + status filter", "/?" + urlencode({"owner": owner.pk, "status": "active"}), htmx),
        (
            "list, project + status + inactive > 53 days",
            "/?" + urlencode({"project": "proj_support", "status": "active", "inactive_days": 53}),
            htmx,
        ),
        (
            "list, kind + created range, sorted by title",
            "/?"
            + urlencode(
                {
                    "kind": "conversation",
                    "created_from": "2026-09-01",
                    "created_to": "2026-09-30",
                    "sort": "title",
                }
            ),
            htmx,
        ),
        ("list, going within 7 days", "/?" + urlencode({"expiring": "7"}), htmx),
        ("list, past their window", "/?" + urlencode({"expiring": "past"}), htmx),
        ("list, sorted by title", "/?" + urlencode({"sort": "title"}), htmx),
        ("list, deep page (halfway down)", "/?" + urlencode({"after": deep_cursor(rows // 2)}), htmx),
        (
            "list, deep page sorted by title",
            "/?"
            + urlencode({"sort": "title", "after": listing.encode_cursor(listing.SORTS["title"], sample)}),
            htmx,
        ),
        ("list, search: exact ID", "/?" + urlencode({"q": sample.remote_id}), htmx),
        ("list, search: ID prefix", "/?" + urlencode({"q": sample.remote_id[:12]}), htmx),
        ("list, search: end user", "/?" + urlencode({"q": user_label}), htmx),
        ("list, search: metadata value", "/?" + urlencode({"q": ticket}), htmx),
        # A value nobody has: the exact stage finds nothing and the trigram stage reads its long lists.
        ("list, search: value found nowhere", "/?" + urlencode({"q": "ZD-004217x"}), htmx),
        ("list, search: common word", "/?" + urlencode({"q": "refund"}), htmx),
        ("overview (nothing cached)", "/overview/", {}),
        ("ownership review", "/ownership/", {}),
    ]


def thread_pages(client, sim, latency_ms: int) -> list:
    """(label, url, headers) of a thread page against the simulator, in the database in use."""
    from threads_app.models import Credential, Thread

    htmx = {"HX-Request": "true"}
    start = NOW - timedelta(days=2)
    remote = sim.state.create_thread(
        "proj_sim",
        created_at=start,
        metadata={"ticket": "ZD-1"},
        messages=[
            (
                "user" if i % 2 == 0 else "assistant",
                f"message {i}\n```python\nprint({i})\n```",
                {"created_at": start + timedelta(minutes=i)},
            )
            for i in range(120)
        ],
    )
    credential, _ = Credential.objects.get_or_create(
        name="bench-sim", defaults={"base_url": sim.base_url, "project_id": "proj_sim"}
    )
    credential.base_url = sim.base_url
    credential.api_key = "sk-bench-sim-key-0001"
    credential.save()
    Thread.objects.filter(credential=credential).delete()
    thread = Thread.objects.create(remote_id=remote["id"], kind="assistants_thread", credential=credential)
    first = client.get(f"/threads/{thread.pk}/messages/", headers=htmx).content.decode()
    older = first.split('hx-get="')[-1].split('"')[0].replace("&amp;", "&")
    assert "/messages/?after=" in older, older
    return [
        ("thread page shell (no API call)", f"/threads/{thread.pk}/", {}),
        ("history panel (HTMX, on load)", f"/threads/{thread.pk}/history/", htmx),
        ("messages, first page (HTMX, on load)", f"/threads/{thread.pk}/messages/", htmx),
        ("messages, older page (HTMX, load older)", older, htmx),
        ("thread page with messages inline (no JS)", f"/threads/{thread.pk}/?show=messages", {}),
    ]


def side_by_side(client, switch, pages: dict, runs: int, simulator=None) -> None:
    """Measure each page on each database in turn (alternating, so both meet the same machine load) and
    print one line per page: median wall time, the SQL's time in one captured request (which other loads
    on the machine blur less) and queries per database, and the ratios of the last to the first."""
    labels = list(pages)
    head = "".join(f" {label + ' ms':>10} {'SQL':>6} {'q':>3}" for label in labels)
    ratio = f" {labels[-1] + '/' + labels[0]:>9} {'SQL':>6}" if len(labels) > 1 else ""
    print(f"{'page':<46}{head}{ratio}" + ("   API" if simulator else ""))
    for index in range(len(next(iter(pages.values())))):
        results = {}
        for label in labels:
            switch(label)
            page_label, page_url, headers = pages[label][index]
            results[label] = measure(client, page_url, runs, headers, simulator=simulator)
        cells = "".join(
            f" {results[label]['median']:10.1f} {results[label]['sql']:6.1f} {results[label]['queries']:>3}"
            for label in labels
        )
        if len(labels) > 1:
            first, last = results[labels[0]], results[labels[-1]]
            cells += f" {last['median'] / first['median']:8.2f}× {last['sql'] / max(first['sql'], 0.1):5.2f}×"
        api = f" {results[labels[0]]['api']:>5}" if simulator else ""
        print(f"{page_label:<46}{cells}{api}", flush=True)


def time_import(url: str, count: int) -> float:
    """Seconds of `manage.py import_threads` of `count` new IDs into the database at `url`; the rows are
    removed again afterwards, so that a later run finds the database as loaded."""
    import subprocess
    import tempfile

    rng = random.Random(count)
    prefixes = ["thread", "conv", "cthr"]
    with tempfile.NamedTemporaryFile("w", suffix=".txt", delete=False) as out:
        for n in range(count):
            out.write(f"{prefixes[n % 3]}_imp{''.join(rng.choices(ALPHABET, k=21))}\n")
        path = out.name
    env = dict(os.environ, DATABASE_URL=url, THREADSITE_INPROCESS_WORKERS="0")
    command = [sys.executable, "manage.py", "import_threads", path, "--credential", "main-prod"]
    command += ["--no-check", "--owner", BENCH_IMPORTER]
    started = time.perf_counter()
    subprocess.run(command, cwd=ROOT, env=env, check=True, capture_output=True)
    elapsed = time.perf_counter() - started
    os.unlink(path)
    from django.db import connection

    from threads_app.models import Thread

    use_database(url)
    # One DELETE statement (the ORM's delete() would load two million rows to cascade them one by one).
    imported = Thread.objects.filter(owner__username=BENCH_IMPORTER)
    imported._raw_delete(imported.db)
    # Without it the indexes keep two million dead entries (and the search index's pending list its new
    # ones) until autovacuum comes: the next run's pages were slower, and autovacuum ran during them.
    with connection.cursor() as cursor:
        cursor.execute("VACUUM (ANALYZE) threads_app_thread")
    return elapsed


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--database", default=DEFAULT_DATABASE, help="the 1M database; others get a suffix")
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--runs", type=int, default=30)
    parser.add_argument("--latency-ms", type=int, default=200)
    parser.add_argument("--reload", action="store_true", help="load the threads again even if present")
    parser.add_argument("--import-ids", type=int, default=2_000_000, help="IDs imported into each; 0: none")
    args = parser.parse_args()

    target = database_for(args.database, args.rows)
    create_database(target)
    setup_django(target)
    from django.contrib.auth.models import User
    from django.core.management import call_command
    from django.db import connection
    from django.test import Client

    from threads_app import tallies, team
    from threads_app.models import Thread
    from threads_app.simulator import SimulatorConfig, running_simulator

    call_command("migrate", verbosity=0)
    present = Thread.objects.exclude(credential__name="bench-sim").count()
    if args.reload or present != args.rows:
        source = args.database if args.rows > 1_000_000 and args.rows % 1_000_000 == 0 else ""
        if source and not is_loaded(source, 1_000_000):
            source = ""
        load(args.rows, replica_of=source)
    else:
        print(f"reusing {present:,} threads already loaded (--reload to load again)")
        ensure_indexes()

    # Every loaded database of the two sizes, smallest first: measured side by side.
    databases = {}
    for rows in (1_000_000, 10_000_000):
        url = database_for(args.database, rows)
        try:
            use_database(url)
            loaded = Thread.objects.exclude(credential__name="bench-sim").count() == rows
        except Exception:  # noqa: BLE001 (no such database: not measured)
            loaded = False
        if loaded or url == target:
            call_command("migrate", verbosity=0)
            databases[f"{rows // 1_000_000}M"] = url
            viewer, _ = User.objects.get_or_create(username=BENCH_USER)
            team.set_role(viewer, "admin")  # an admin sees every thread
            User.objects.get_or_create(username=BENCH_IMPORTER)

    client = Client()
    pages, terms = {}, None
    for label, url in databases.items():
        use_database(url)
        terms = terms or search_terms()
        pages[label] = list_pages(int(label[:-1]) * 1_000_000, terms)
        print(f"{label}: threads found by each search: {matches(pages[label])}")
    print(
        f"\n{' and '.join(databases)} threads; {args.runs} runs per page; median server time in ms, queries\n"
    )
    # Each database holds its own session of the viewer: the cookie follows the database in use.
    sessions = {}
    for label, url in databases.items():
        use_database(url)
        client.force_login(User.objects.get(username=BENCH_USER))
        sessions[label] = client.cookies["sessionid"].value

    def switch(label):
        use_database(databases[label])
        client.cookies["sessionid"] = sessions[label]

    side_by_side(client, switch, pages, args.runs)

    config = SimulatorConfig(latency_ms=args.latency_ms, seed=1)
    with running_simulator(config) as sim:
        sim.state.add_key("sk-bench-sim-key-0001", "proj_sim")
        thread_sets = {}
        for label in databases:
            switch(label)
            thread_sets[label] = thread_pages(client, sim, args.latency_ms)
        print(f"\nthread page with the simulator at {args.latency_ms} ms latency\n")
        side_by_side(client, switch, thread_sets, max(5, args.runs // 3), simulator=sim)

    print("\nsize on disk")
    for label in databases:
        switch(label)
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_size_pretty(pg_database_size(current_database()))")
            size = cursor.fetchone()[0]
            cursor.execute(
                "SELECT count(*) FILTER (WHERE day <> %s), count(*) FILTER (WHERE day = %s) "
                "FROM threads_app_overviewday WHERE n <> 0",
                [tallies.EVERY_DAY] * 2,
            )
            day_rows, every_day_rows = cursor.fetchone()
        print(f"  {label}: {size} (tallies: {day_rows:,} day rows, {every_day_rows:,} of every day)")
    if args.import_ids:
        print(f"\nimport of {args.import_ids:,} new IDs (manage.py import_threads --no-check)")
        for label, url in reversed(databases.items()):  # the largest first: the figure that matters most
            connection.close()
            print(f"  into {label}: {time_import(url, args.import_ids):.1f} s", flush=True)


if __name__ == "__main__":
    main()
