"""The thread list's rules for what a page link may carry and what each filter keeps, on the plain functions
of `listing` (the page itself: test_views_list.py). What only PostgreSQL shows (case in searches, the count
of a text search) is in its own section, in the integration layer, which runs on PostgreSQL."""

import base64
import json
from datetime import UTC, date, datetime, time, timedelta

import pytest
from django.contrib.auth.models import AnonymousUser
from django.db import connection
from django.utils import timezone

from threads_app import listing
from threads_app.listing import SORTS, BadCursor, decode_cursor, encode_cursor
from threads_app.models import Credential, Thread


def cursor(value, pk) -> str:
    """A cursor as someone could write it by hand, padding and all."""
    return base64.urlsafe_b64encode(json.dumps([value, pk]).encode()).decode()


def refusal(sort: str, token: str) -> str:
    with pytest.raises(BadCursor) as refused:
        decode_cursor(SORTS[sort], token)
    return str(refused.value)


# --- Cursors ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("title", ["", "a", "ab", "abc", "Résumé ✓", "t" * 300])
def test_a_title_cursor_gives_back_the_title_and_row_it_was_made_from(title):
    token = encode_cursor(SORTS["title"], Thread(pk=42, title=title))
    # The title as it sorts: lowercased, and none for an untitled thread (those come after the titled).
    assert decode_cursor(SORTS["title"], token) == (title.lower() or None, 42)
    assert "=" not in token  # no padding to escape in a URL


def test_a_cursor_stays_short_for_titles_in_any_script():
    """A page link carries the title as UTF-8, not as \\u escapes (which would make it three times longer)."""
    title = "é" * 300
    token = encode_cursor(SORTS["title"], Thread(pk=2**63 - 1, title=title))
    assert len(token) <= (len(title.encode()) + 30) * 4 / 3


def test_a_date_cursor_gives_back_the_same_moment():
    moment = datetime(2026, 5, 1, 12, 30, 15, 123456, tzinfo=UTC)
    token = encode_cursor(SORTS["activity"], Thread(pk=7, last_activity_at=moment))
    assert decode_cursor(SORTS["activity"], token) == (moment, 7)


@pytest.mark.parametrize("sort", ["activity", "created"])
def test_a_cursor_in_the_threads_of_unknown_date_carries_no_date(sort):
    token = encode_cursor(SORTS[sort], Thread(pk=9))
    assert decode_cursor(SORTS[sort], token) == (None, 9)


@pytest.mark.parametrize("sort", ["id"])
def test_a_title_or_id_cursor_without_a_position_is_refused(sort):
    assert refusal(sort, cursor(None, 9)) == f"{SORTS[sort].label.lower()} cannot be empty"


@pytest.mark.parametrize("pk", [1, 2**63 - 1])
def test_row_ids_from_one_to_the_largest_64_bit_number_are_accepted(pk):
    assert decode_cursor(SORTS["title"], cursor("x", pk)) == ("x", pk)


@pytest.mark.parametrize("sort", ["owner", "messages"])
def test_a_number_position_is_a_whole_number_from_zero_to_the_largest_of_64_bits(sort):
    for position in (0, 7, 2**63 - 1):
        assert decode_cursor(SORTS[sort], cursor(position, 5)) == (position, 5)
    for position in (-1, 2**63, True, False, "5", 5.0, [5]):
        assert refusal(sort, cursor(position, 5)) == "its position is not a number", position


@pytest.mark.parametrize("pk", [0, -1, 2**63, True, False, "5", 5.0, None, [5]])
def test_a_row_id_that_is_not_a_positive_64_bit_number_is_refused(pk):
    assert refusal("title", cursor("x", pk)) == "its row id is not a positive number of 64 bits"


@pytest.mark.parametrize(
    "token",
    [
        "not-a-cursor!",
        "a",
        base64.urlsafe_b64encode(b"\xff\xfe").decode(),  # not UTF-8
        base64.urlsafe_b64encode(b"[1, 2").decode(),  # not JSON
        base64.urlsafe_b64encode(b"5").decode(),  # not a pair
        base64.urlsafe_b64encode(b"[1, 2, 3]").decode(),
        base64.urlsafe_b64encode(b"[1]").decode(),
    ],
)
def test_anything_but_a_pair_in_base64_json_is_not_a_page_cursor(token):
    assert refusal("title", token) == "not a page cursor"


@pytest.mark.parametrize("value", [5, True, ["x"], {"x": 1}, "t" * 301])
def test_a_title_position_must_be_text_of_at_most_300_characters(value):
    assert refusal("title", cursor(value, 1)) == "its position is not text"


def test_a_title_position_of_300_characters_is_accepted():
    assert decode_cursor(SORTS["id"], cursor("t" * 300, 1)) == ("t" * 300, 1)


@pytest.mark.parametrize(
    "value", [5, True, ["2026-05-01"], "yesterday", "2026-99-01T00:00:00", "2026-02-30T00:00"]
)
def test_a_date_position_must_be_a_real_date_and_time_in_text(value):
    assert refusal("activity", cursor(value, 1)) == "its position is not a date and time"


def test_a_date_position_without_a_zone_is_read_as_utc_and_one_with_a_zone_keeps_it():
    with timezone.override("Europe/Paris"):  # whatever the site's zone
        assert decode_cursor(SORTS["created"], cursor("2026-05-01T12:00:00", 1)) == (
            datetime(2026, 5, 1, 12, tzinfo=UTC),
            1,
        )
    value, _ = decode_cursor(SORTS["created"], cursor("2026-05-01T12:00:00+02:00", 1))
    assert value == datetime(2026, 5, 1, 10, tzinfo=UTC)
    assert value.utcoffset() == timedelta(hours=2)


# --- Filters ------------------------------------------------------------------------------------------


def kept(data: dict, user=None) -> set[str]:
    return set(
        listing.apply_filters(Thread.objects.all(), data, user or AnonymousUser()).values_list(
            "remote_id", flat=True
        )
    )


def at(day: date, clock: time):
    return timezone.make_aware(datetime.combine(day, clock))


@pytest.fixture
def beta(db):
    other = Credential(name="beta", base_url="http://127.0.0.1:9/v1", project_id="proj_beta")
    other.api_key = "sk-test-beta-key-5678"
    other.save()
    return other


def test_the_credential_filter_keeps_the_threads_of_that_credential_alone(
    make_thread, credential, beta, alice
):
    make_thread(remote_id="thread_alpha00001", owner=alice)
    make_thread(remote_id="thread_beta000001", owner=alice, credential=beta)
    make_thread(remote_id="thread_beta000002", credential=beta)
    assert kept({"credential": str(beta.pk)}) == {"thread_beta000001", "thread_beta000002"}
    assert kept({"credential": str(credential.pk)}) == {"thread_alpha00001"}
    assert kept({"credential": ""}) == {"thread_alpha00001", "thread_beta000001", "thread_beta000002"}


def test_the_project_kind_and_status_filters_keep_their_threads_alone(make_thread, credential, beta):
    make_thread(remote_id="thread_alpha00001")
    make_thread(remote_id="conv_beta00000001", credential=beta, kind=Thread.Kind.CONVERSATION)
    make_thread(remote_id="cthr_beta00000001", credential=beta, kind=Thread.Kind.CHATKIT, status="missing")
    assert kept({"project": "proj_beta"}) == {"conv_beta00000001", "cthr_beta00000001"}
    assert kept({"project": "proj_alpha"}) == {"thread_alpha00001"}
    assert kept({"kind": "conversation"}) == {"conv_beta00000001"}
    assert kept({"kind": "chatkit_thread"}) == {"cthr_beta00000001"}
    assert kept({"status": "missing"}) == {"cthr_beta00000001"}
    assert kept({"status": "active"}) == {"thread_alpha00001", "conv_beta00000001"}
    assert kept({"project": "proj_beta", "status": "active"}) == {"conv_beta00000001"}


def test_the_removed_within_filter_keeps_the_threads_a_policy_or_expiry_removes_by_then(
    make_thread, credential
):
    from threads_app.models import RetentionPolicy

    RetentionPolicy.objects.create(credential=credential, mode="delete", window_days=30)
    now = timezone.now()
    make_thread(remote_id="conv_in0005days01", kind="conversation", last_activity_at=now - timedelta(days=25))
    make_thread(remote_id="conv_in0025days01", kind="conversation", last_activity_at=now - timedelta(days=5))
    make_thread(remote_id="thread_in10days01", last_activity_at=now - timedelta(days=50))  # the API's 60 days
    assert kept({"removal_days": 0}) == set()
    assert kept({"removal_days": 10}) == {"conv_in0005days01", "thread_in10days01"}
    assert kept({"removal_days": 26}) == {"conv_in0005days01", "conv_in0025days01", "thread_in10days01"}


def test_the_owner_filter_takes_an_owners_id(make_thread, alice, bob):
    make_thread(remote_id="thread_alice00001", owner=alice)
    make_thread(remote_id="thread_bob0000001", owner=bob)
    make_thread(remote_id="thread_nobody0001")
    assert kept({"owner": str(bob.pk)}) == {"thread_bob0000001"}
    assert kept({"owner": "me"}, alice) == {"thread_alice00001"}
    assert kept({"owner": "none"}) == {"thread_nobody0001"}


@pytest.mark.parametrize(
    ("field", "start", "end"),
    [("remote_created_at", "created_from", "created_to"), ("last_activity_at", "active_from", "active_to")],
)
def test_a_date_range_holds_both_of_its_days_whole(make_thread, field, start, end):
    first, last = date(2026, 5, 10), date(2026, 5, 12)
    for remote_id, moment in [
        ("thread_before0001", at(first, time.min) - timedelta(microseconds=1)),
        ("thread_first00001", at(first, time.min)),
        ("thread_last000001", at(last, time(23, 59, 59, 999999))),
        ("thread_after00001", at(last + timedelta(days=1), time.min)),
        ("thread_unknown001", None),
    ]:
        make_thread(remote_id=remote_id, **{field: moment})
    assert kept({start: first, end: last}) == {"thread_first00001", "thread_last000001"}
    assert kept({end: last}) == {"thread_before0001", "thread_first00001", "thread_last000001"}
    assert kept({start: first}) == {"thread_first00001", "thread_last000001", "thread_after00001"}


def test_inactive_for_more_than_n_days_keeps_threads_quiet_for_longer(make_thread):
    now = timezone.now()
    make_thread(remote_id="thread_quiet00001", last_activity_at=now - timedelta(days=30, minutes=1))
    make_thread(remote_id="thread_recent0001", last_activity_at=now - timedelta(days=29, hours=23))
    make_thread(remote_id="thread_unknown001")
    assert kept({"inactive_days": 30}) == {"thread_quiet00001"}
    assert kept({"inactive_days": 0}) == {"thread_quiet00001", "thread_recent0001"}


def test_going_within_7_days_counts_from_the_last_activity_or_else_the_creation(make_thread):
    now = timezone.now()
    make_thread(remote_id="thread_going00001", last_activity_at=now - timedelta(days=57))
    make_thread(remote_id="thread_going00002", remote_created_at=now - timedelta(days=56))
    make_thread(
        remote_id="thread_later00001",
        remote_created_at=now - timedelta(days=57),
        last_activity_at=now - timedelta(days=40),
    )
    make_thread(remote_id="thread_past000001", last_activity_at=now - timedelta(days=61))
    make_thread(remote_id="thread_unknown001")
    make_thread(
        remote_id="conv_kept00000001",
        kind=Thread.Kind.CONVERSATION,
        last_activity_at=now - timedelta(days=57),
    )
    assert kept({"expiring": "7"}) == {"thread_going00001", "thread_going00002"}
    assert kept({"expiring": "past"}) == {"thread_past000001"}


@pytest.mark.parametrize(("cap", "by_id"), [(3, True), (2, False)])
def test_exact_matches_up_to_the_cap_are_read_by_id_and_more_by_the_condition(
    make_thread, monkeypatch, cap, by_id
):
    """A customer's label matched exactly by up to EXACT_CAP threads becomes `id IN (…)`, which the planner
    cannot misjudge; more stay the condition. The same threads are found either way, and never those that
    only contain the label in a longer word."""
    for n in range(3):
        make_thread(remote_id=f"thread_acme00000{n}", end_user="acme-corp")
    make_thread(remote_id="thread_other00001", end_user="acme-corp-eu")
    monkeypatch.setattr(listing, "EXACT_CAP", cap)
    condition = listing.search_condition("ACME-corp", Thread.objects.all())
    assert ("pk__in" in str(condition)) == by_id
    found = set(Thread.objects.filter(condition).values_list("remote_id", flat=True))
    assert found == {"thread_acme000000", "thread_acme000001", "thread_acme000002"}


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        ({}, False),
        ({"q": ""}, False),
        ({"q": None}, False),
        ({"q": "refund"}, True),
        ({"q": "thread"}, True),  # a word, not the start of an ID
        ({"q": "thread_"}, False),
        ({"q": "conv_abc123"}, False),
        ({"q": "cthr_A1"}, False),
        ({"q": "conv_abc 123"}, True),
        ({"q": "run_abc123"}, True),  # not an ID the list holds: searched as text
    ],
)
def test_only_a_search_that_is_not_the_start_of_an_id_searches_the_text(data, expected):
    assert listing.is_text_search(data) is expected


# --- What only PostgreSQL shows -----------------------------------------------------------------------


@pytest.fixture
def on_postgresql(db):
    assert connection.vendor == "postgresql", "this behaviour is PostgreSQL's: run with DATABASE_URL set"


@pytest.mark.integration
def test_a_search_finds_text_in_any_case_on_postgresql(on_postgresql, make_thread):
    """PostgreSQL's LIKE minds case (SQLite's does not): the term is lowercased to meet the text, which is."""
    make_thread(remote_id="thread_billing001", title="Billing Question", metadata={"ticket": "ZD-4411"})
    make_thread(remote_id="thread_other00001", title="Other")
    assert kept({"q": "BILLING"}) == {"thread_billing001"}
    assert kept({"q": "billing q"}) == {"thread_billing001"}
    assert kept({"q": "Zd-4411"}) == {"thread_billing001"}


@pytest.mark.integration
def test_an_id_search_is_counted_exactly_and_a_text_search_estimated_on_postgresql(
    on_postgresql, make_thread
):
    for index in range(7):
        make_thread(remote_id=f"thread_refund{index:05d}", title=f"refund {index}")
    for data, exactness in [({"q": "thread_refund"}, "exact"), ({"q": "refund"}, "about")]:
        threads = listing.apply_filters(Thread.objects.all(), data, AnonymousUser())
        page = listing.keyset_page(threads, "title", size=3)
        number, how = listing.count_matches(threads, page, text_search=listing.is_text_search(data))
        assert how == exactness, data
        if how == "exact":
            assert number == 7


def test_a_word_inside_a_metadata_value_is_found(make_thread):
    make_thread(remote_id="thread_note0000001", metadata={"note": "Customer asked for a Refund twice"})
    make_thread(remote_id="thread_other000001", title="Other", metadata={"note": "billing"})
    assert kept({"q": "refund"}) == {"thread_note0000001"}


def test_an_exact_end_user_or_metadata_value_is_found_alone_before_values_that_contain_it(make_thread):
    make_thread(remote_id="thread_ticket00001", metadata={"ticket": "ZD-1"})
    make_thread(remote_id="thread_ticket00010", metadata={"ticket": "ZD-10"})
    make_thread(remote_id="thread_customer007", end_user="cust-7")
    make_thread(remote_id="thread_customer077", end_user="cust-77")
    assert kept({"q": "ZD-1"}) == kept({"q": "zd-1"}) == {"thread_ticket00001"}
    assert kept({"q": "cust-7"}) == {"thread_customer007"}
    # No thread has the term as a whole value: every one that contains it.
    assert kept({"q": "zd-"}) == {"thread_ticket00001", "thread_ticket00010"}
    assert kept({"q": "cust"}) == {"thread_customer007", "thread_customer077"}


def walk(sort: str, size: int) -> list[str]:
    """The remote IDs of every page of the whole registry in `sort` order, following next cursors."""
    seen, after = [], None
    for _ in range(Thread.objects.count() // size + 2):
        page = listing.keyset_page(Thread.objects.all(), sort, after=after, size=size)
        seen += [thread.remote_id for thread in page.threads]
        if not page.next_cursor:
            return seen
        after = decode_cursor(SORTS[sort.lstrip("-")], page.next_cursor)
    pytest.fail(f"the pages never end: {len(seen)} rows seen, the last ones {seen[-3:]}")


@pytest.mark.parametrize("sort", ["title", "-title"])
def test_paging_by_title_visits_every_thread_once_whatever_its_script(make_thread, sort):
    # A page's cursor holds the title as the database lowercased it: SQLite lowercases ASCII only, so a
    # cursor lowercased by Python ("émile" for "Émile") would sort elsewhere and pages would skip threads.
    for title in ("Émile", "Zoë", "Åsa", "apple", "ÉCOLE", "Ünal", "", "Ωmega", "banana", "ÄRGER"):
        make_thread(title=title)
    ids = walk(sort, size=1)
    assert sorted(ids) == sorted(Thread.objects.values_list("remote_id", flat=True))
    assert len(ids) == len(set(ids)) == 10


@pytest.mark.parametrize("sort", ["status", "-status", "activity", "-activity", "owner", "-owner", "created"])
def test_threads_that_share_a_sort_value_are_each_on_one_page(make_thread, alice, sort):
    # Ties are split by id: a page may end in the middle of them, and the next starts right after.
    moment = timezone.now() - timedelta(days=3)
    for n in range(7):
        make_thread(status="active" if n % 3 else "missing", last_activity_at=moment, owner=alice)
    make_thread(last_activity_at=moment + timedelta(hours=1))  # and one that sorts apart, unowned
    ids = walk(sort, size=2)
    assert len(ids) == len(set(ids)) == 8


def pages(sort: str, size: int) -> tuple[list, list]:
    """Every page in `sort` order read forward, then the same pages read back from the last by their
    "newer" links: the two lists must be the same."""
    key, forward = SORTS[sort.lstrip("-")], []
    page = listing.keyset_page(Thread.objects.all(), sort, size=size)
    while True:
        forward.append([thread.remote_id for thread in page.threads])
        if not page.next_cursor or len(forward) > Thread.objects.count():
            break
        page = listing.keyset_page(
            Thread.objects.all(), sort, after=decode_cursor(key, page.next_cursor), size=size
        )
    backward = [forward[-1]]
    while page.previous_cursor and len(backward) <= len(forward):
        before = decode_cursor(key, page.previous_cursor)
        page = listing.keyset_page(Thread.objects.all(), sort, before=before, size=size)
        backward.insert(0, [thread.remote_id for thread in page.threads])
        assert page.next_cursor and page.sort == sort  # a page reached backward always has one after it
    assert page.is_first is True and not page.previous_cursor
    return forward, backward


@pytest.mark.parametrize("sort", ["activity", "-activity", "id", "-id", "title", "-messages"])
def test_pages_read_back_by_their_newer_links_are_the_pages_read_forward(make_thread, sort):
    # Threads with a known and an unknown activity, title and count: the pages cross from one group to the
    # other, forward and back; the "id" order is unique and needs no tie-breaker.
    now = timezone.now()
    for n in range(9):
        make_thread(
            remote_id=f"thread_page{n:07d}",
            title=f"Title {n % 4}" if n % 3 else "",
            message_count=n % 2 or None,
            last_activity_at=now - timedelta(days=n % 4) if n % 3 else None,
        )
    forward, backward = pages(sort, size=2)
    assert sorted(sum(forward, [])) == sorted(Thread.objects.values_list("remote_id", flat=True))
    assert len(forward) == 5 and backward == forward


def test_a_page_that_ends_with_the_last_thread_offers_no_next_page(make_thread):
    for _ in range(4):
        make_thread()
    first = listing.keyset_page(Thread.objects.all(), "-activity", size=4)
    assert len(first.threads) == 4 and not first.next_cursor and first.is_first is True
    assert first.sort == "-activity"
    half = listing.keyset_page(Thread.objects.all(), "-activity", size=2)
    second = listing.keyset_page(
        Thread.objects.all(), "-activity", size=2, after=decode_cursor(SORTS["activity"], half.next_cursor)
    )
    assert len(second.threads) == 2 and not second.next_cursor and second.is_first is False


def test_the_audit_log_pages_by_its_own_sorts_through_events_at_the_same_moment(db):
    # keyset_page serves any model with its own sorts: the log's "time", ties split by id, both ways.
    from threads_app import audit
    from threads_app.models import AuditEvent

    moment = timezone.now()
    events = [
        AuditEvent.objects.create(at=moment, action=audit.Action.SIGN_IN, actor_name=f"u{n}")
        for n in range(5)
    ]
    seen, after, read = [], None, []
    for _ in range(5):
        page = listing.keyset_page(AuditEvent.objects.all(), "-time", after=after, size=2, sorts=audit.SORTS)
        read.append(page)
        seen += [event.pk for event in page.rows]
        if not page.next_cursor:
            break
        after = decode_cursor(audit.SORTS["time"], page.next_cursor)
    assert seen == sorted((event.pk for event in events), reverse=True)
    for number in (2, 1):  # back from the third page, then from the second: the first page again
        before = decode_cursor(audit.SORTS["time"], read[number].previous_cursor)
        back = listing.keyset_page(
            AuditEvent.objects.all(), "-time", before=before, size=2, sorts=audit.SORTS
        )
        assert [event.pk for event in back.rows] == [event.pk for event in read[number - 1].rows]
    assert back.is_first


def test_an_id_prefix_finds_the_threads_whose_id_starts_with_it(make_thread):
    make_thread(remote_id="thread_abc0000001")
    make_thread(remote_id="thread_abc0000002")
    make_thread(remote_id="thread_abd0000001", title="thread_abc in its title is not its ID")
    assert kept({"q": "thread_abc"}) == {"thread_abc0000001", "thread_abc0000002"}


def test_every_cursor_gives_back_the_row_it_was_made_from(make_thread):
    # Cursors are base64 without padding: whatever characters a token ends with, it decodes whole.
    threads = [make_thread(title=f"Thread {n}") for n in range(150)]
    for sort in ("title", "activity", "id"):
        key = SORTS[sort]
        for thread in listing.sortable(Thread.objects.all(), key).filter(pk__in=[t.pk for t in threads]):
            assert decode_cursor(key, encode_cursor(key, thread))[1] == thread.pk


# --- What a deletion job records of its selection ----------------------------------------------------


@pytest.mark.parametrize(
    ("data", "words"),
    [
        ({}, "Every thread"),
        ({"owner": "none"}, "Owner: unassigned"),
        ({"owner": "999999"}, "Owner: #999999"),  # someone since removed: their number
        ({"credential": "999999"}, "Credential: #999999"),
        ({"project": "proj_billing"}, "Project: proj_billing"),
        ({"kind": "conversation"}, "Kind: Conversation"),
        ({"status": "missing"}, "Status: Missing"),
        ({"created_from": date(2026, 1, 2)}, "Created: 2026-01-02 to …"),
        ({"created_to": date(2026, 2, 3)}, "Created: … to 2026-02-03"),
        (
            {"active_from": date(2026, 3, 4), "active_to": date(2026, 4, 5)},
            "Active: 2026-03-04 to 2026-04-05",
        ),
        ({"active_to": date(2026, 4, 5)}, "Active: … to 2026-04-05"),
        ({"inactive_days": 0}, "Inactive for more than 0 days"),  # zero is a filter, not its absence
        ({"inactive_days": 60}, "Inactive for more than 60 days"),
        ({"removal_days": 0}, "Removed within 0 days"),
        ({"expiring": "past"}, "Going: past their window"),
        ({"expiring": "7"}, "Going: within 7 days"),
        ({"q": "refund"}, "Search: “refund”"),
        ({"owner": "", "credential": "", "q": "", "inactive_days": None}, "Every thread"),
    ],
)
def test_a_selection_is_described_in_the_words_of_its_filters(db, data, words):
    assert listing.describe(data) == words


def test_a_selection_names_its_owner_and_credential_and_lists_every_filter_in_order(alice, credential):
    assert listing.describe({"owner": "me"}, alice) == "Owner: alice"
    assert listing.describe({"owner": "me"}) == "Owner: me"
    assert listing.describe({"owner": str(alice.pk)}) == "Owner: alice"
    assert listing.describe({"credential": str(credential.pk)}) == "Credential: alpha"
    everything = {
        "q": "refund",
        "expiring": "30",
        "removal_days": 5,
        "inactive_days": 61,
        "active_from": date(2026, 1, 1),
        "created_to": date(2026, 2, 1),
        "status": "active",
        "kind": "chatkit_thread",
        "project": "proj_alpha",
        "credential": str(credential.pk),
        "owner": "none",
    }
    assert listing.describe(everything) == (
        "Owner: unassigned · Credential: alpha · Project: proj_alpha · Kind: ChatKit thread · "
        "Status: Active · Created: … to 2026-02-01 · Active: 2026-01-01 to … · "
        "Inactive for more than 61 days · Removed within 5 days · Going: within 30 days · Search: “refund”"
    )


# --- The pieces of a list page ------------------------------------------------------------------------


def test_a_list_that_names_no_order_shows_the_threads_that_go_first_when_it_asks_what_goes():
    assert listing.default_sort({}) == listing.DEFAULT_SORT == "-activity"
    assert listing.default_sort({"expiring": "", "removal_days": None}) == "-activity"
    assert listing.default_sort({"expiring": "7"}) == "idle"
    assert listing.default_sort({"removal_days": 0}) == "idle"  # zero days is a filter too
    assert listing.default_sort({"removal_days": 30, "expiring": "past"}) == "idle"


def test_a_sort_parameter_names_its_order_and_direction():
    assert listing.parse_sort("-activity") == (SORTS["activity"], True)
    assert listing.parse_sort("title") == (SORTS["title"], False)


@pytest.mark.parametrize(
    ("sort", "first"), [("-activity", "thread_newest0001"), ("activity", "thread_oldest0001")]
)
def test_the_direction_of_a_sort_decides_which_thread_comes_first(make_thread, sort, first):
    now = timezone.now()
    make_thread(remote_id="thread_oldest0001", last_activity_at=now - timedelta(days=9))
    make_thread(remote_id="thread_middle0001", last_activity_at=now - timedelta(days=5))
    make_thread(remote_id="thread_newest0001", last_activity_at=now - timedelta(days=1))
    page = listing.keyset_page(Thread.objects.all(), sort, size=2)
    assert page.threads[0].remote_id == first
    assert [t.remote_id for t in page.threads] + walk(sort, 1)[2:] == walk(sort, 1)


def test_a_query_string_keeps_the_filters_that_have_a_value_and_applies_overrides():
    assert listing.querystring({}) == ""
    assert listing.querystring({"q": "", "owner": None}) == ""
    assert listing.querystring({"q": "refund later", "owner": "", "kind": "conversation"}) == (
        "?q=refund+later&kind=conversation"
    )
    assert (
        listing.querystring({"q": "refund", "after": "abc"}, after=None, sort="title")
        == "?q=refund&sort=title"
    )
    assert listing.querystring({"inactive_days": 0}) == "?inactive_days=0"  # zero is a value


def test_a_list_counts_its_matches_exactly_up_to_its_cap_and_says_more_than_beyond(make_thread, monkeypatch):
    for n in range(5):
        make_thread(title=f"refund {n}")
    threads = Thread.objects.all()
    whole = listing.keyset_page(threads, "title", size=10)
    assert listing.count_matches(threads, whole, text_search=False) == (5, "exact")  # the page holds all
    first = listing.keyset_page(threads, "title", size=2)
    assert listing.count_matches(threads, first, text_search=False) == (5, "exact")
    last = listing.keyset_page(
        threads, "title", size=2, after=decode_cursor(SORTS["title"], first.next_cursor)
    )
    last = listing.keyset_page(
        threads, "title", size=2, after=decode_cursor(SORTS["title"], last.next_cursor)
    )
    assert len(last.threads) == 1 and not last.next_cursor
    assert listing.count_matches(threads, last, text_search=False) == (5, "exact")  # not its one row
    monkeypatch.setattr(listing, "COUNT_CAP", 5)
    assert listing.count_matches(threads, first, text_search=False) == (5, "exact")
    monkeypatch.setattr(listing, "COUNT_CAP", 4)
    number, how = listing.count_matches(threads, first, text_search=False)
    if connection.vendor == "postgresql":  # beyond the cap, the planner's estimate, never below what is seen
        assert how == "about" and number >= len(first.threads) + 1
    else:
        assert (number, how) == (4, "more_than")
    # A text search is counted like any other on SQLite; PostgreSQL estimates it at once (its own test).
    if connection.vendor != "postgresql":
        assert listing.count_matches(threads, first, text_search=True) == (4, "more_than")


def test_each_row_of_a_page_says_when_it_goes_and_what_spares_it(
    make_thread, credential, beta, alice, bob, django_assert_num_queries
):
    from threads_app.models import RetentionPolicy

    policy = RetentionPolicy.objects.create(credential=credential, mode="delete", window_days=30)
    policy.exempt_owners.add(alice)
    flagging = RetentionPolicy.objects.create(credential=beta, mode="flag", window_days=20)
    flagging.exempt_owners.add(bob)
    last = timezone.now() - timedelta(days=10)
    make_thread(remote_id="conv_flagged00001", kind="conversation", credential=beta, last_activity_at=last)
    make_thread(
        remote_id="conv_bobs00000001", kind="conversation", credential=beta, owner=bob, last_activity_at=last
    )
    make_thread(remote_id="conv_goes00000001", kind="conversation", owner=bob, last_activity_at=last)
    make_thread(remote_id="conv_spared000001", kind="conversation", owner=alice, last_activity_at=last)
    make_thread(remote_id="conv_pinned000001", kind="conversation", pinned=True, last_activity_at=last)
    make_thread(remote_id="conv_deleted00001", kind="conversation", status="deleted", last_activity_at=last)
    make_thread(remote_id="thread_expires001", last_activity_at=last)  # the API's 60 days; policy not for it
    page = listing.keyset_page(Thread.objects.select_related(*listing.ROW_RELATIONS), "id", size=10)
    with django_assert_num_queries(1):  # the exempt owners of both policies, once for the page
        rows = {thread.remote_id: thread.removal for thread in listing.with_removals(page.threads)}
    assert (rows["conv_goes00000001"].how, rows["conv_goes00000001"].at) == (
        "deleted",
        last + timedelta(days=30),
    )
    assert (rows["conv_spared000001"].exempt, rows["conv_spared000001"].how) == ("owner alice", "deleted")
    assert rows["conv_pinned000001"].exempt == "pinned"
    assert rows["conv_deleted00001"] is None
    # A page whose rows no policy governs (pinned, or no longer active) reads no exempt owners at all.
    spared = list(
        Thread.objects.select_related(*listing.ROW_RELATIONS).filter(
            remote_id__in=["conv_pinned000001", "conv_deleted00001"]
        )
    )
    with django_assert_num_queries(0):
        listing.with_removals(spared)
    assert (rows["conv_flagged00001"].how, rows["conv_flagged00001"].at) == (
        "flagged",
        last + timedelta(days=20),
    )
    assert rows["conv_bobs00000001"].exempt == "owner bob"
    assert (rows["thread_expires001"].how, rows["thread_expires001"].at) == (
        "expires",
        last + timedelta(days=60),
    )
