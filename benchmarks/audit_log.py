"""Server time of the audit log's page with a million events on PostgreSQL, against the thread list's first
page measured in the same run; print the figures.

    .venv/bin/python benchmarks/audit_log.py [--events 1000000] [--threads 1000000] [--runs 30]
        [--database postgres://postgres@127.0.0.1:5432/threadsite_bench_audit_PID]

A database of its own is created, filled by COPY (`list_pages.load` for the threads, the same COPY for the
events), measured and dropped (`delete_jobs.benchmark_django`). The events are spread over a year, newest
densest: fifty owners and the system as actors, a mix of actions like a busy team's (message views and
sign-ins most), a third about threads, some about deletion jobs. Pages are requested in-process through
Django's test client as a signed-in superuser (`list_pages.measure`): median and 95th percentile of the
time from request to response, the median of the process's CPU time (less sensitive to other loads on the
machine), and the time and number of the SQL queries of one request. The target: under 50 ms median.
"""

import argparse
import json
import os
import random
import time
from datetime import timedelta
from urllib.parse import urlencode

from delete_jobs import benchmark_django
from list_pages import NOW, copy_rows, load, measure

DEFAULT_DATABASE = f"postgres://postgres@127.0.0.1:5432/threadsite_bench_audit_{os.getpid()}"
TARGET_MS = 50

# (action, weight, about a thread)
ACTIONS = [
    ("messages_viewed", 40, True),
    ("sign_in", 15, False),
    ("sign_in_failed", 2, False),
    ("thread_exported", 5, True),
    ("thread_edited", 5, True),
    ("owner_changed", 4, True),
    ("metadata_edited", 3, True),
    ("thread_pinned", 2, True),
    ("thread_deleted", 6, True),
    ("threads_imported", 2, False),
    ("threads_discovered", 3, False),
    ("sweep_run", 8, False),
    ("job_created", 1, False),
    ("job_started", 1, False),
    ("job_finished", 1, False),
    ("policy_changed", 1, False),
    ("credential_changed", 1, False),
]
COLUMNS = "at, actor_id, actor_name, action, object_type, object_pk, remote_id, address, details"


def event_rows(count: int, owners: list[tuple[int, str]], threads: list[tuple[int, str]], seed: int = 7):
    rng = random.Random(seed)
    actions, weights = [a[:1] + a[2:] for a in ACTIONS], [a[1] for a in ACTIONS]
    for _ in range(count):
        (action, about_thread) = rng.choices(actions, weights)[0]
        if action == "sweep_run" or rng.random() < 0.05:
            actor_id, actor_name = None, "(system)"
        else:
            actor_id, actor_name = owners[min(int(rng.expovariate(1 / 8)), len(owners) - 1)]
        object_type, object_pk, remote_id, details = "", None, "", {}
        if about_thread:
            object_pk, remote_id = rng.choice(threads)
            object_type = "thread"
            details = {"page": "newest", "messages": rng.randint(1, 40)}
        elif action.startswith("job_"):
            object_type, object_pk = "job", rng.randint(1, 5000)
            details = {"threads": rng.randint(1, 100_000)}
        elif action == "sweep_run":
            details = {"sweep": rng.choice(["expiry", "retention", "sync"]), "dry_run": False}
        # Newest densest: most of a year's events in its last months.
        at = NOW - timedelta(days=min(rng.expovariate(1 / 60), 365), seconds=rng.randrange(86400))
        address = f"10.{rng.randrange(256)}.{rng.randrange(256)}.{rng.randrange(1, 255)}"
        yield (
            at,
            actor_id,
            actor_name,
            action,
            object_type,
            object_pk,
            remote_id,
            address,
            json.dumps(details),
        )


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--database", default=DEFAULT_DATABASE)
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--threads", type=int, default=1_000_000)
    parser.add_argument("--runs", type=int, default=30)
    args = parser.parse_args()

    os.environ["ALLOWED_HOSTS"] = "testserver,localhost"
    os.environ["LOG_LEVEL"] = "ERROR"
    with benchmark_django(args.database):
        from django.conf import settings
        from django.contrib.auth.models import User
        from django.test import Client

        from threads_app import audit, deletion, listing
        from threads_app.models import AuditEvent, Thread

        settings.STORAGES["staticfiles"]["BACKEND"] = "django.contrib.staticfiles.storage.StaticFilesStorage"
        load(args.threads)
        owners = list(User.objects.filter(username__startswith="owner").values_list("pk", "username"))
        threads = list(Thread.objects.order_by("?").values_list("pk", "remote_id")[:50_000])
        # One thread of the searches sits in a deletion job with 2,000 others, as a deleted one would.
        searched = threads[0][1]
        deletion.create_job(
            Thread.objects.filter(pk__in=[pk for pk, _ in threads[:2000]]), summary="bench", start=False
        )
        started = time.perf_counter()
        copied = copy_rows("threads_app_auditevent", COLUMNS, event_rows(args.events, owners, threads))
        print(
            f"loaded {AuditEvent.objects.count():,} events: COPY {copied - started:.1f} s, "
            f"indexes and VACUUM ANALYZE {time.perf_counter() - copied:.1f} s"
        )

        viewer = User.objects.create_superuser("bench-auditor", password="x")
        client = Client()
        client.force_login(viewer)
        htmx = {"HX-Request": "true"}
        deep = AuditEvent.objects.order_by("-at", "-id")[args.events // 2]
        cursor = listing.encode_cursor(audit.SORTS["time"], deep)
        busy = owners[0][1]
        quiet = owners[-1][1]
        pages = [
            ("thread list, first page (full page)", "/", {}),
            ("thread list, first page (HTMX table)", "/", htmx),
            ("audit log, first page (full page)", "/audit/", {}),
            ("audit log, first page (HTMX table)", "/audit/", htmx),
            ("audit log, by a busy actor", "/audit/?" + urlencode({"actor": busy}), htmx),
            ("audit log, by a quiet actor", "/audit/?" + urlencode({"actor": quiet}), htmx),
            ("audit log, by action (rare: policy changes)", "/audit/?action=policy_changed", htmx),
            (
                "audit log, actor + action + month",
                "/audit/?"
                + urlencode(
                    {"actor": busy, "action": "thread_deleted", "since": "2026-09-01", "until": "2026-09-30"}
                ),
                htmx,
            ),
            ("audit log, deep keyset page (halfway)", "/audit/?" + urlencode({"after": cursor}), htmx),
            ("audit log, search by remote ID (in a job)", "/audit/?" + urlencode({"object": searched}), htmx),
            ("audit log, search by remote ID (full page)", "/audit/?" + urlencode({"object": searched}), {}),
            ("audit log, unknown remote ID", "/audit/?object=thread_nosuchthing000000", htmx),
        ]
        print(
            f"\n{AuditEvent.objects.count():,} audit events, {Thread.objects.count():,} threads; "
            f"{args.runs} runs per page; times in ms (server time)\n"
        )
        print(f"{'page':<52} {'median':>8} {'p95':>8} {'CPU':>8} {'SQL':>8} {'queries':>8}")
        worst = baseline = 0.0
        for label, url, headers in pages:
            figures = measure(client, url, args.runs, headers)
            print(
                f"{label:<52} {figures['median']:8.1f} {figures['p95']:8.1f} {figures['cpu']:8.1f} "
                f"{figures['sql']:8.1f} {figures['queries']:>8}"
            )
            if label.startswith("audit"):
                worst = max(worst, figures["median"])
            elif "HTMX" in label:
                baseline = figures["median"]
        verdict = "within" if worst < TARGET_MS else "OVER"
        print(
            f"\nslowest audit page's median: {worst:.1f} ms ({worst / baseline:.2f} × the thread list's "
            f"first page, {baseline:.1f} ms), {verdict} the {TARGET_MS} ms target. CPU: the process's own "
            "time; SQL: the queries' time in one request."
        )


if __name__ == "__main__":
    main()
