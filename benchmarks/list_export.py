"""Time of the thread list's CSV export (`list_export`) with a million tracked threads on PostgreSQL,
against the floor of PostgreSQL writing the same rows as CSV itself; print the figures.

    .venv/bin/python benchmarks/list_export.py [--rows 1000000] [--database postgres://…/threadsite_bench]
        [--reload]

The threads are loaded as benchmarks/list_pages.py loads them (the same database is reused). The export is
requested in-process through Django's test client as a signed-in user and its streamed body read to the
end: the whole list, then one owner's threads. The baseline, in the same run, is `COPY (SELECT …) TO
STDOUT WITH CSV` of the same columns and joins, which no Python code can beat. Peak memory of the Python
process is printed too: streaming by keyset holds one chunk at a time, whatever the number of rows.
"""

import argparse
import resource
import time

from list_pages import DEFAULT_DATABASE, create_database, load, setup_django

BASELINE_SQL = """
COPY (
    SELECT t.remote_id, t.kind, t.title, t.end_user, u.username, c.name, c.project_id, t.status,
           t.message_count, t.remote_created_at, t.last_activity_at, t.added_at, t.pinned
    FROM threads_app_thread t
    JOIN threads_app_credential c ON c.id = t.credential_id
    LEFT JOIN auth_user u ON u.id = t.owner_id
    {where}
    ORDER BY t.id
) TO STDOUT WITH CSV HEADER
"""


def peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--database", default=DEFAULT_DATABASE)
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--reload", action="store_true", help="load the threads again even if present")
    args = parser.parse_args()

    create_database(args.database)
    setup_django(args.database)
    from django.contrib.auth.models import User
    from django.core.management import call_command
    from django.db import connection
    from django.test import Client
    from django.urls import reverse

    from threads_app.models import Thread

    call_command("migrate", verbosity=0)
    present = Thread.objects.exclude(credential__name="bench-sim").count()
    if args.reload or present != args.rows:
        load(args.rows)
    else:
        print(f"reusing {present:,} threads already loaded (--reload to load again)")
    viewer, _ = User.objects.get_or_create(username="bench-viewer")
    client = Client()
    client.force_login(viewer)
    owner = User.objects.filter(username="owner01").first()

    for label, query, where in (
        ("every thread", {}, ""),
        ("one owner's threads", {"owner": str(owner.pk)}, f"WHERE t.owner_id = {owner.pk}"),
    ):
        raw = connection.connection
        started = time.perf_counter()
        size = 0
        with raw.cursor() as cursor, cursor.copy(BASELINE_SQL.format(where=where)) as copy:
            for block in copy:
                size += len(block)
        floor = time.perf_counter() - started

        started = time.perf_counter()
        response = client.get(reverse("thread_list_csv"), query)
        first_byte = None
        lines = exported = 0
        for chunk in response.streaming_content:
            if first_byte is None:
                first_byte = time.perf_counter() - started
            lines += chunk.count(b"\n")
            exported += len(chunk)
        took = time.perf_counter() - started
        print(
            f"{label}: {lines - 1:,} rows, {exported / 1e6:.1f} MB in {took:.2f} s "
            f"({(lines - 1) / took:,.0f} rows/s, first byte after {first_byte * 1000:.0f} ms); "
            f"baseline COPY … TO STDOUT {size / 1e6:.1f} MB in {floor:.2f} s; "
            f"export/baseline {took / floor:.1f}x; peak memory {peak_mb():.0f} MB"
        )


if __name__ == "__main__":
    main()
