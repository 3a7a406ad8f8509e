"""The overview's tallies against direct counts after a mixed workload: imports, status changes,
deletions, reassignments, moves to another credential, syncs that move the last activity, pins, a rolled
back write. On SQLite the row triggers keep them; run with DATABASE_URL on PostgreSQL, the statement
triggers (the fast layer runs both in CI). The figures must also equal the lists they link to."""

from collections import Counter
from datetime import timedelta
from types import SimpleNamespace
from urllib.parse import parse_qsl

import pytest
from django.db import transaction
from django.utils import timezone

from threads_app import importing, listing, locating, overview, ownership, retention, tallies
from threads_app.forms import ThreadFilterForm
from threads_app.models import (
    Credential,
    OverviewCount,
    OverviewCountChange,
    OverviewDay,
    OverviewDayChange,
    Thread,
    set_statuses,
)


def direct_counts() -> Counter:
    counts = Counter()
    for thread in Thread.objects.all():
        for owner in (thread.owner_id or 0, -1):
            counts[owner, thread.credential_id, thread.kind, thread.status] += 1
    return counts


def direct_days() -> Counter:
    counts = Counter()
    for thread in Thread.objects.filter(status=Thread.Status.ACTIVE):
        moment = thread.last_activity_at or thread.remote_created_at
        basis = 2 if thread.last_activity_at else 1 if thread.remote_created_at else 0
        day = tallies.day_number(timezone.localdate(moment)) if moment else 0
        for owner in (thread.owner_id or 0, -1):
            counts[owner, thread.credential_id, thread.kind, thread.pinned, basis, day] += 1
    return counts


COUNTS = (
    (OverviewCount.objects, OverviewCountChange.objects),
    ["owner_key", "credential_id", "kind", "status"],
)
DAY_GROUP = ["owner_key", "credential_id", "kind", "pinned", "basis"]
DAYS = (
    (OverviewDay.objects.exclude(day=tallies.EVERY_DAY), OverviewDayChange.objects),
    [*DAY_GROUP, "day"],
)


def tallied(tables, fields) -> Counter:
    """The tallies with the changes not folded into them yet: what the overview reads."""
    total = Counter()
    for rows in tables:
        for *key, n in rows.values_list(*fields, "n"):
            total[tuple(key)] += n
    return Counter({key: n for key, n in total.items() if n})


def assert_every_day_rows_sum_the_days():
    """Each day tally's row of every day (tallies.EVERY_DAY) holds the sum of its days (of the rows folded
    into the tallies: the changes not folded yet are in neither)."""
    every_day = tallied([OverviewDay.objects.filter(day=tallies.EVERY_DAY)], DAY_GROUP)
    assert every_day == tallied([OverviewDay.objects.exclude(day=tallies.EVERY_DAY)], DAY_GROUP)


def listed(query: str, user) -> int:
    """How many threads the thread list shows for an overview link's query string."""
    form = ThreadFilterForm(dict(parse_qsl(query.lstrip("?"))), user=user)
    assert form.is_valid(), form.errors
    return listing.apply_filters(Thread.objects.all(), form.cleaned_data, user).count()


def assert_figures_match_lists(owner, user):
    figures = overview.summary(owner.pk if owner else None, timezone.now())
    threads = Thread.objects.filter(owner=owner) if owner else Thread.objects.all()
    active = threads.filter(status=Thread.Status.ACTIVE)
    assert figures["total"] == threads.count()
    assert {s: n for s, _, n in figures["by_status"]} == {
        s: threads.filter(status=s).count() for s in Thread.Status.values
    }
    assert sum(n for _, _, n in figures["by_owner"]) == threads.count()
    scope = {"owner": owner.pk} if owner else {}
    # Each age bar holds the threads of the list it links to; together, every active thread.
    for label, n, newer, older in figures["ages"]:
        query = overview.age_link(newer, older, figures["today"])
        assert n == listed(listing.querystring(dict(parse_qsl(query[1:])), **scope), user), label
    assert sum(n for _, n, _, _ in figures["ages"]) + figures["age_unknown"] == active.count()
    for choice, label, n in figures["going"]:
        assert n == listed(listing.querystring({"status": "active", "expiring": choice}, **scope), user), (
            label
        )
    # The ownership review reads the same tallies: each owner's and each credential's threads, and how
    # many of them are not deleted.
    review = ownership.review(threads, owner.pk if owner else None)
    live = threads.exclude(status=Thread.Status.DELETED)
    assert review.total == threads.count()
    assert {row.pk: (row.total, row.live) for row in review.owners} == {
        pk: (threads.filter(owner_id=pk).count(), live.filter(owner_id=pk).count())
        for pk in threads.exclude(owner=None).values_list("owner_id", flat=True).distinct()
    }
    assert (review.unassigned, review.unassigned_live) == (
        threads.filter(owner=None).count(),
        live.filter(owner=None).count(),
    )
    assert {row.pk: (row.total, row.live) for row in review.credentials} == {
        pk: (threads.filter(credential_id=pk).count(), live.filter(credential_id=pk).count())
        for pk in threads.values_list("credential_id", flat=True).distinct()
    }
    return figures


@pytest.fixture
def beta(db):
    cred = Credential(name="beta", base_url="http://127.0.0.1:9/v1", project_id="proj_beta")
    cred.api_key = "sk-test-beta-key-5678"
    cred.save()
    return cred


def test_the_tallies_and_figures_agree_with_direct_counts_after_a_mixed_workload(
    credential, beta, alice, bob, make_thread
):
    now = timezone.now()
    ids = [f"{p}_mixed{n:04d}" for n in range(30) for p in ("thread", "conv", "cthr")][:60]
    importing.import_threads("\n".join(ids), credential=credential, owner=alice)
    for days in (0, 1, 7, 8, 30, 31, 53, 54, 59, 60, 61, 90, 91, 300):
        make_thread(owner=bob, last_activity_at=now - timedelta(days=days, hours=1))
        make_thread(
            kind=Thread.Kind.CONVERSATION, credential=beta, last_activity_at=now - timedelta(days=days)
        )
    make_thread(remote_created_at=now - timedelta(days=65))  # activity unknown, created long ago
    make_thread(last_activity_at=now + timedelta(days=2))  # a clock ahead of ours
    assert tallied(*COUNTS) == direct_counts()

    threads = list(Thread.objects.order_by("id"))
    # Status changes, as a deletion job records them: several old statuses in one call.
    set_statuses({Thread.Status.ACTIVE: threads[:10]}, Thread.Status.MISSING)
    set_statuses(
        {Thread.Status.MISSING: threads[:5], Thread.Status.ACTIVE: threads[10:20]}, Thread.Status.DELETED
    )
    # Reassigning owners, a move to another credential, a sync that saw activity, pins, edits.
    Thread.objects.filter(pk__in=[t.pk for t in threads[20:40]]).update(owner=bob)
    Thread.objects.filter(pk__in=[t.pk for t in threads[40:45]]).update(owner=None)
    locating.move(threads[50], SimpleNamespace(found=beta, remote=None))
    Thread.objects.filter(pk=threads[51].pk).update(last_activity_at=now - timedelta(days=3))
    retention.set_pinned(threads[52], True)
    Thread.objects.filter(pk=threads[53].pk).update(title="Renamed", last_synced_at=now)
    # Forgotten records, and a write that is rolled back.
    Thread.objects.filter(pk__in=[t.pk for t in threads[55:58]]).delete()
    with pytest.raises(RuntimeError), transaction.atomic():
        Thread.objects.filter(pk__in=[t.pk for t in threads[60:70]]).update(status=Thread.Status.EXPIRED)
        raise RuntimeError
    # A policy with an exempt owner and an exempt metadata pair.
    Thread.objects.filter(pk__in=[t.pk for t in threads[70:74]]).update(metadata={"legal_hold": "true"})
    retention.set_policy(
        beta,
        mode=retention.Mode.FLAG,
        window_days=30,
        exempt_owners=[bob],
        exempt_metadata=[("legal_hold", "true")],
    )
    retention.set_policy(credential, mode=retention.Mode.DELETE, window_days=45, include_assistants=True)

    assert tallied(*COUNTS) == direct_counts()
    assert tallied(*DAYS) == direct_days()
    assert_every_day_rows_sum_the_days()
    figures = assert_figures_match_lists(None, alice)
    assert figures["flagged"] > 0 and all(n >= 0 for _, _, n in figures["going"])
    assert_figures_match_lists(bob, bob)

    # Folding the appended changes into the tallies changes no figure; nor does a rebuild from the rows.
    before = tallied(*DAYS), tallied(*COUNTS)
    assert tallies.fold()
    assert not OverviewCountChange.objects.exists() and not OverviewDayChange.objects.exists()
    assert (tallied(*DAYS), tallied(*COUNTS)) == before
    assert_every_day_rows_sum_the_days()
    tallies.rebuild()
    assert (tallied(*DAYS), tallied(*COUNTS)) == before
    assert_every_day_rows_sum_the_days()
    assert_figures_match_lists(None, alice)


def test_sorting_by_title_ignores_case_and_puts_untitled_threads_last(make_thread):
    for title in ["banana", "", "Apple", "cherry", ""]:
        make_thread(title=title)
    ascending = listing.keyset_page(Thread.objects.all(), "title").threads
    descending = listing.keyset_page(Thread.objects.all(), "-title").threads
    assert [t.title for t in ascending] == ["Apple", "banana", "cherry", "", ""]
    assert [t.title for t in descending] == ["cherry", "banana", "Apple", "", ""]
    # Keyset pages of two walk the same order.
    page = listing.keyset_page(Thread.objects.all(), "title", size=2)
    sort_key = listing.SORTS["title"]
    rest = listing.keyset_page(
        Thread.objects.all(), "title", after=listing.decode_cursor(sort_key, page.next_cursor), size=10
    )
    assert [t.title for t in page.threads + rest.threads] == ["Apple", "banana", "cherry", "", ""]


def test_search_finds_an_exact_end_user_or_metadata_value_before_words(make_thread):
    exact = make_thread(end_user="Customer-42", title="Refund")
    ticket = make_thread(metadata={"ticket": "ZD-004217"})
    make_thread(end_user="customer-421", title="customer-42 asked again")
    found = lambda term: set(Thread.objects.filter(listing.search_condition(term, Thread.objects.all())))  # noqa: E731
    assert found("customer-42") == {exact}
    assert found("zd-004217") == {ticket}
    assert len(found("customer-4")) == 2  # no exact match: the words
    assert found("refund") == {exact}


def test_the_rebuild_command_counts_every_thread_again(make_thread, capsys):
    from django.core.management import call_command

    make_thread()
    make_thread(status=Thread.Status.DELETED)
    OverviewCount.objects.all().delete()
    call_command("rebuild_tallies")
    assert "2 threads counted" in capsys.readouterr().out
    assert tallied(*COUNTS) == direct_counts()


def test_the_tallies_are_read_only_by_their_own_fields_and_owner_lookups(make_thread):
    # The reader writes the field names into its SQL: anything but a tally's own is refused, not run.
    make_thread()
    assert sum(tallies.counts("status", owner_key=-1).values()) == 1
    for fields, filters in (
        (("status; DROP TABLE threads_app_thread",), {"owner_key": -1}),
        (("title",), {"owner_key": -1}),
        ((), {"owner_key": -1}),
        (("status",), {"owner_key__lt": 0}),
    ):
        with pytest.raises(ValueError, match="not a tally's fields"):
            tallies.counts(*fields, **filters)
    assert Thread.objects.count() == 1


@pytest.mark.integration
@pytest.mark.django_db(transaction=True)
def test_concurrent_writers_keep_the_tallies_exact_and_never_deadlock(credential, beta, alice, bob):
    """Four connections change statuses, owners and credentials at once, in transactions of several
    statements, as deletion workers and people do: each its own threads, all of them the same tally keys
    (owners, credentials, kinds, days). Updating shared tally rows deadlocked here; appended changes
    cannot, and every tally is then what a direct count says."""
    import random
    import threading

    from django.db import connection, connections

    if connection.vendor != "postgresql":
        pytest.fail("the integration layer runs on PostgreSQL (DATABASE_URL)")
    now = timezone.now()
    Thread.objects.bulk_create(
        Thread(
            remote_id=f"thread_conc{n:05d}",
            kind=Thread.Kind.ASSISTANTS,
            credential=(credential, beta)[n % 2],
            owner=(alice, bob, None)[n % 3],
            last_activity_at=now - timedelta(days=n % 90),
        )
        for n in range(400)
    )
    pks = list(Thread.objects.values_list("pk", flat=True))
    errors = []

    def work(seed):
        rng = random.Random(seed)
        try:
            for _ in range(25):
                batch = list(Thread.objects.filter(pk__in=rng.sample(pks[seed::4], 20)))
                by_status = {}
                for thread in batch:
                    by_status.setdefault(thread.status, []).append(thread)
                with transaction.atomic():
                    set_statuses(by_status, rng.choice(Thread.Status.values))
                    Thread.objects.filter(pk__in=[t.pk for t in batch[:5]]).update(
                        owner=rng.choice([alice, bob, None]), credential=rng.choice([credential, beta])
                    )
        except Exception as error:  # noqa: BLE001 (reported by the assertion below)
            errors.append(error)
        finally:
            connections.close_all()

    workers = [threading.Thread(target=work, args=(seed,)) for seed in range(4)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    assert errors == []
    assert OverviewCountChange.objects.exists()  # appended, not folded yet
    assert tallies.fold()
    assert tallied(*COUNTS) == direct_counts()
    assert tallied(*DAYS) == direct_days()
    assert_every_day_rows_sum_the_days()


@pytest.mark.django_db(transaction=True)
def test_the_migration_to_sums_of_every_day_counts_the_days_already_tallied(credential, alice, make_thread):
    """0016 on a registry with history: the sums of every day are counted from the day rows already there
    (and counted again, not doubled, if the triggers wrote some after a way back)."""
    from django.db import connection
    from django.db.migrations.executor import MigrationExecutor

    def migrate(target):
        executor = MigrationExecutor(connection)
        executor.loader.build_graph()
        executor.migrate([("threads_app", target)])

    latest = MigrationExecutor(connection).loader.graph.leaf_nodes("threads_app")[0][1]
    now = timezone.now()
    migrate("0015_overview_day_covering")
    try:
        assert not OverviewDay.objects.filter(day=tallies.EVERY_DAY).exists()
        for days in (0, 3, 40, 95, 400):
            make_thread(owner=alice, last_activity_at=now - timedelta(days=days))
            make_thread(kind=Thread.Kind.CONVERSATION, remote_created_at=now - timedelta(days=days))
        tallies.fold()
        # The tallies of a release before 0016 have no sums of every day; this code's triggers (and fold)
        # wrote some: one is left, which the migration must count again rather than add to.
        every_day = OverviewDay.objects.filter(day=tallies.EVERY_DAY)
        every_day.exclude(pk=every_day.order_by("pk").values("pk")[:1]).delete()
        assert every_day.count() == 1
    finally:
        migrate(latest)
    assert tallied(*DAYS) == direct_days()
    assert_every_day_rows_sum_the_days()
    assert OverviewDay.objects.filter(day=tallies.EVERY_DAY).exists()
    assert_figures_match_lists(None, alice)
