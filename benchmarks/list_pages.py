"""Server time of the browsing pages with a million tracked threads on PostgreSQL; print the figures.

    .venv/bin/python benchmarks/list_pages.py [--rows 1000000] [--runs 30] [--latency-ms 200]
        [--database postgres://postgres@127.0.0.1:5432/threadsite_bench] [--reload]

The database is created and migrated if needed, then filled by COPY with `--rows` threads (once: a later
run reuses them unless `--reload`): four credentials in three projects, fifty owners with a Zipf-like
skew and a fifth unassigned, the three kinds, mostly active, creation and activity spread over a year and
a half with recent ones denser, titles, end users and metadata like real ones.

Each page is requested in-process through Django's test client as a signed-in user, `--runs` times after
two warm-ups; the figure is the time from request to response (server time, no network), median and
95th percentile, with the number of SQL queries of one request. The thread page's fragments ask the
offline simulator, which answers after `--latency-ms`; their API requests are counted too.
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
from urllib.parse import urlencode

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_DATABASE = "postgres://postgres@127.0.0.1:5432/threadsite_bench"
BENCH_USER = "bench-viewer"
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


def load(rows: int) -> None:
    from django.contrib.auth.models import User
    from django.db import connection

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

    copied = copy_rows("threads_app_thread", COLUMNS, thread_rows(rows, [o.pk for o in owners], credentials))
    print(
        f"loaded {Thread.objects.count():,} threads: COPY {copied - started:.1f} s, "
        f"indexes and VACUUM ANALYZE {time.perf_counter() - copied:.1f} s"
    )


def copy_rows(table: str, columns: str, rows) -> float:
    """COPY `rows` into `table` with its indexes dropped, then build them again and VACUUM ANALYZE it;
    returns the moment the COPY ended (perf_counter)."""
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
    raw = connection.connection  # the psycopg connection under Django's, open now
    with raw.cursor() as cursor, cursor.copy(f"COPY {table} ({columns}) FROM STDIN") as copy:
        for row in rows:
            copy.write_row(row)
    raw.commit()
    copied = time.perf_counter()
    with connection.cursor() as cursor:
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


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--database", default=DEFAULT_DATABASE)
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--runs", type=int, default=30)
    parser.add_argument("--latency-ms", type=int, default=200)
    parser.add_argument("--reload", action="store_true", help="load the threads again even if present")
    args = parser.parse_args()

    create_database(args.database)
    setup_django(args.database)
    from django.contrib.auth.models import User
    from django.core.cache import cache
    from django.core.management import call_command
    from django.test import Client

    from threads_app import listing, team
    from threads_app.models import Credential, Thread
    from threads_app.simulator import SimulatorConfig, running_simulator

    call_command("migrate", verbosity=0)
    present = Thread.objects.exclude(credential__name="bench-sim").count()
    if args.reload or present != args.rows:
        load(args.rows)
    else:
        print(f"reusing {present:,} threads already loaded (--reload to load again)")

    # An admin sees every thread; owner07, a member, sees only theirs (the gate's owner filter).
    viewer, _ = User.objects.get_or_create(username=BENCH_USER)
    team.set_role(viewer, "admin")
    client = Client()
    client.force_login(viewer)
    htmx = {"HX-Request": "true"}
    owner = User.objects.get(username="owner07")
    team.set_role(owner, "member")
    member = Client()
    member.force_login(owner)
    sample = Thread.objects.order_by("id")[args.rows // 2]
    user_label = Thread.objects.exclude(end_user="").order_by("id").values_list("end_user", flat=True)[777]
    pages = [
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
        ("list, deep page (halfway down)", "/?" + urlencode({"after": deep_cursor(args.rows // 2)}), htmx),
        (
            "list, deep page sorted by title",
            "/?"
            + urlencode({"sort": "title", "after": listing.encode_cursor(listing.SORTS["title"], sample)}),
            htmx,
        ),
        ("list, search: exact ID", "/?" + urlencode({"q": sample.remote_id}), htmx),
        ("list, search: ID prefix", "/?" + urlencode({"q": sample.remote_id[:12]}), htmx),
        ("list, search: end user", "/?" + urlencode({"q": user_label}), htmx),
        ("list, search: metadata value", "/?" + urlencode({"q": "ZD-004217"}), htmx),
        ("list, search: common word", "/?" + urlencode({"q": "refund"}), htmx),
    ]
    print(f"\n{Thread.objects.count():,} threads; {args.runs} runs per page; times in ms (server time)\n")
    print(f"{'page':<52} {'median':>8} {'p95':>8} {'queries':>8} {'API':>5}")
    for label, url, headers in pages:
        report(label, measure(client, url, args.runs, headers))
    report("ownership review (GROUP BY owner, credential)", measure(client, "/ownership/", args.runs, {}))
    report("list as a member (their own threads)", measure(member, "/", args.runs, htmx))
    report("list as a member, search: common word", measure(member, "/?q=refund", args.runs, htmx))

    cold = []
    for _ in range(5):
        cache.clear()
        started = time.perf_counter()
        client.get("/overview/")
        cold.append((time.perf_counter() - started) * 1000)
    label = "overview, figures computed (cache emptied), 5 runs"
    print(f"{label:<52} {statistics.median(cold):8.1f} {max(cold):8.1f}")
    report("overview, cached figures", measure(client, "/overview/", args.runs, {}))

    # The thread page, against the simulator answering after --latency-ms.
    config = SimulatorConfig(latency_ms=args.latency_ms, seed=1)
    with running_simulator(config) as sim:
        sim.state.add_key("sk-bench-sim-key-0001", "proj_sim")
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
        thread = Thread.objects.create(
            remote_id=remote["id"], kind="assistants_thread", credential=credential
        )
        first = client.get(f"/threads/{thread.pk}/messages/", headers=htmx).content.decode()
        older = first.split('hx-get="')[-1].split('"')[0].replace("&amp;", "&")
        assert "/messages/?after=" in older, older
        print(f"\nthread page with the simulator at {args.latency_ms} ms latency\n")
        print(f"{'page':<52} {'median':>8} {'p95':>8} {'queries':>8} {'API':>5}")
        runs = max(5, args.runs // 3)
        for label, url, headers in [
            ("thread page shell (no API call)", f"/threads/{thread.pk}/", {}),
            ("messages, first page (HTMX, on load)", f"/threads/{thread.pk}/messages/", htmx),
            ("messages, older page (HTMX, load older)", older, htmx),
            ("refresh of the facts (HTMX, on load)", f"/threads/{thread.pk}/refresh/", htmx),
            ("thread page with messages inline (no JS)", f"/threads/{thread.pk}/?show=messages", {}),
        ]:
            report(label, measure(client, url, runs, headers, simulator=sim))
        thread.delete()


if __name__ == "__main__":
    main()
