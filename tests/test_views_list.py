import re
from datetime import timedelta
from html import unescape

import pytest
from django.db import connection
from django.urls import reverse
from django.utils import timezone

from threads_app import listing, retention
from threads_app.models import Credential, Thread
from threads_app.templatetags.threads_browse import age, removal_words

LIST = reverse("thread_list")
HTMX = {"HX-Request": "true"}


@pytest.fixture
def signed_in(client, alice):
    client.force_login(alice)
    return client


def row_ids(response) -> list[str]:
    """The remote IDs of the table's rows, in order."""
    return re.findall(
        r'<tr id="thread-row-\d+">\s*(?:<td class="col-select">.*?</td>)?\s*'
        r'<td class="col-id"><a href="[^"]+" title="([^"]+)">',
        response.content.decode(),
    )


def link(response, rel: str) -> str:
    match = re.search(rf'<a href="([^"]+)"[^>]* rel="{rel}"', response.content.decode())
    return unescape(match.group(1)) if match else ""


# --- Access and the two entry points ------------------------------------------------------------------


@pytest.mark.parametrize("headers", [{}, HTMX])
def test_anonymous_visitors_are_sent_to_sign_in(client, db, headers):
    response = client.get(LIST, {"status": "active"}, headers=headers)
    assert response.status_code == 302
    assert response["Location"].startswith(reverse("login"))


def test_the_list_shows_each_thread_with_owner_credential_and_a_masked_key(signed_in, alice, make_thread):
    make_thread(
        remote_id="thread_abcdef123",
        title="Refund for order 7",
        owner=alice,
        end_user="acme",
        message_count=12,
        remote_created_at=timezone.now() - timedelta(days=3),
        last_activity_at=timezone.now() - timedelta(hours=5),
    )
    response = signed_in.get(LIST)
    body = response.content.decode()
    assert response.status_code == 200
    assert row_ids(response) == ["thread_abcdef123"]
    for shown in (
        "Refund for order 7",
        "for acme",
        ">alice<",
        "alpha",
        "sk-…1234",
        "proj_alpha",
        "5 h ago",
        ">12<",
        'data-copy="thread_abcdef123"',
    ):
        assert shown in body
    assert "sk-test-alpha-key-1234" not in body
    assert '<form id="filters"' in body


def test_an_htmx_request_gets_only_the_table_and_the_canonical_url_to_push(signed_in, make_thread):
    make_thread(status=Thread.Status.ACTIVE)
    query = {"q": "", "owner": "", "status": "active", "kind": "", "sort": "-activity"}
    response = signed_in.get(LIST, query, headers=HTMX)
    body = response.content.decode()
    assert response.status_code == 200
    assert body.lstrip().startswith('<div id="thread-table"')
    assert '<form id="filters"' not in body and "<html" not in body
    # Empty fields and the default sort are left out of the URL put in the address bar.
    assert response["HX-Push-Url"] == "/?status=active"
    assert "HX-Request" in response["Vary"]


def test_without_javascript_the_same_url_renders_the_whole_page(signed_in, make_thread):
    make_thread(title="Plain")
    response = signed_in.get(LIST, {"status": "active"})
    body = response.content.decode()
    assert "<html" in body and '<form id="filters"' in body and 'id="thread-table"' in body
    assert "HX-Push-Url" not in response


def test_a_history_restore_gets_the_whole_page(signed_in, make_thread):
    make_thread()
    response = signed_in.get(LIST, headers={**HTMX, "HX-History-Restore-Request": "true"})
    assert "<html" in response.content.decode()


# --- Filters ------------------------------------------------------------------------------------------


@pytest.fixture
def varied(make_thread, alice, bob, credential):
    now = timezone.now()
    beta = Credential(name="beta", base_url="http://127.0.0.1:9/v1", project_id="proj_beta")
    beta.api_key = "sk-test-beta-key-5678"
    beta.save()
    return {
        "mine": make_thread(
            remote_id="thread_mine000001",
            owner=alice,
            title="Billing question",
            last_activity_at=now - timedelta(days=2),
            remote_created_at=now - timedelta(days=40),
        ),
        "bobs": make_thread(
            remote_id="conv_bobs00000001",
            kind=Thread.Kind.CONVERSATION,
            owner=bob,
            metadata={"ticket": "ZD-4411", "region": "eu"},
            last_activity_at=now - timedelta(days=10),
            remote_created_at=now - timedelta(days=10),
        ),
        "nobody": make_thread(
            remote_id="cthr_nobody000001",
            kind=Thread.Kind.CHATKIT,
            end_user="customer-42",
            credential=beta,
            status=Thread.Status.DELETED,
            last_activity_at=now - timedelta(days=70),
            remote_created_at=now - timedelta(days=90),
        ),
        "unknown": make_thread(remote_id="thread_unknown0001", title="Never checked"),
    }


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ({"owner": "none"}, {"nobody", "unknown"}),
        ({"owner": "me"}, {"mine"}),
        ({"kind": "conversation"}, {"bobs"}),
        ({"status": "deleted"}, {"nobody"}),
        ({"project": "proj_beta"}, {"nobody"}),
        ({"inactive_days": "30"}, {"nobody"}),
        ({"inactive_days": "5"}, {"bobs", "nobody"}),
        ({"q": "thread_mine"}, {"mine"}),  # the start of an ID
        ({"q": "thread_mine000001"}, {"mine"}),
        ({"q": "billing"}, {"mine"}),
        ({"q": "customer-42"}, {"nobody"}),
        ({"q": "zd-4411"}, {"bobs"}),
        ({"q": "ticket"}, set()),  # metadata keys are not searched, only values
        ({"q": "nothing like it"}, set()),
    ],
)
def test_each_filter_narrows_the_list(signed_in, varied, query, expected):
    response = signed_in.get(LIST, query, headers=HTMX)
    assert response.status_code == 200
    assert set(row_ids(response)) == {varied[name].remote_id for name in expected}


def test_filters_by_owner_and_credential_id(signed_in, varied, bob, credential):
    response = signed_in.get(LIST, {"owner": bob.pk, "credential": credential.pk}, headers=HTMX)
    assert row_ids(response) == [varied["bobs"].remote_id]


def test_filters_by_date_ranges(signed_in, varied):
    today = timezone.now().date()
    created = signed_in.get(
        LIST,
        {
            "created_from": (today - timedelta(days=50)).isoformat(),
            "created_to": (today - timedelta(days=20)).isoformat(),
        },
        headers=HTMX,
    )
    assert row_ids(created) == [varied["mine"].remote_id]
    active = signed_in.get(
        LIST,
        {"active_from": (today - timedelta(days=11)).isoformat(), "active_to": today.isoformat()},
        headers=HTMX,
    )
    assert set(row_ids(active)) == {varied["mine"].remote_id, varied["bobs"].remote_id}


def test_the_full_page_offers_owners_credentials_and_projects_to_filter_by(signed_in, varied):
    body = signed_in.get(LIST).content.decode()
    assert ">Unassigned<" in body and ">bob<" in body
    assert "beta · proj_beta" in body
    assert '<option value="proj_beta">' in body


# --- Sorting and keyset pages -------------------------------------------------------------------------


def test_sorting_by_title_and_back(signed_in, make_thread):
    for title in ("b", "c", "a"):
        make_thread(title=title, remote_id=f"thread_title00{title}")
    ascending = signed_in.get(LIST, {"sort": "title"}, headers=HTMX)
    assert row_ids(ascending) == ["thread_title00a", "thread_title00b", "thread_title00c"]
    assert 'aria-sort="ascending"' in ascending.content.decode()
    descending = signed_in.get(LIST, {"sort": "-title"}, headers=HTMX)
    assert row_ids(descending) == ["thread_title00c", "thread_title00b", "thread_title00a"]


def test_column_links_keep_the_filters_and_flip_the_direction(signed_in, make_thread):
    make_thread()
    body = signed_in.get(LIST, {"status": "active", "sort": "title"}, headers=HTMX).content.decode()
    assert 'href="/?status=active&amp;sort=-title"' in body
    assert 'href="/?status=active"' in body  # Last activity: back to the default order


def test_threads_going_soon_are_listed_stalest_first_unless_sorted_otherwise(signed_in, make_thread, alice):
    now = timezone.now()
    for days in (54, 58, 56):
        make_thread(
            remote_id=f"thread_going000{days}", owner=alice, last_activity_at=now - timedelta(days=days)
        )
    going = signed_in.get(LIST, {"expiring": "7"}, headers=HTMX)
    assert row_ids(going) == ["thread_going00058", "thread_going00056", "thread_going00054"]
    body = going.content.decode()
    # The order that goes with the filter is not written into its links; another one is.
    assert '<input type="hidden" name="sort" value=""' in body
    assert 'href="/?expiring=7&amp;sort=-activity"' in body
    by_activity = signed_in.get(LIST, {"expiring": "7", "sort": "-activity"}, headers=HTMX)
    assert row_ids(by_activity) == ["thread_going00054", "thread_going00056", "thread_going00058"]


@pytest.fixture
def many(make_thread, alice, bob):
    """125 threads with ties and unknown values in every sort column."""
    now = timezone.now()
    owners = [alice, bob, None]
    statuses = list(Thread.Status)
    threads = []
    for index in range(125):
        threads.append(
            make_thread(
                remote_id=f"thread_many{index:05d}",
                # Upper and lower case, and untitled ones, which sort after the titled either way.
                title="" if index % 11 == 0 else f"{'Title' if index % 2 else 'title'} {index % 7}",
                # Ten share each moment, and every ninth is unknown.
                last_activity_at=None if index % 9 == 0 else now - timedelta(hours=index // 10),
                remote_created_at=None if index % 4 == 0 else now - timedelta(days=index % 13),
                owner=owners[index % 3],
                status=statuses[index % len(statuses)],
                message_count=None if index % 5 == 0 else index % 11,
            )
        )
    return threads


def expected_order(threads, sort) -> list[str]:
    """The order listing promises: known values in the sort's direction, ties by id, then the threads
    whose value is unknown, newest id first when descending."""
    key, descending = listing.parse_sort(sort)

    def value(t):
        # The title sorts case-insensitively, an empty title as unknown; idle time is the last activity, or
        # the creation when no activity is known.
        if key.field == "title_key":
            return t.title.lower() or None
        if key.field == "idle_at":
            return t.last_activity_at or t.remote_created_at
        return getattr(t, key.field)

    known = [t for t in threads if value(t) is not None]
    unknown = sorted((t for t in threads if value(t) is None), key=lambda t: t.pk, reverse=descending)
    known.sort(key=lambda t: (value(t), 0 if key.unique else t.pk), reverse=descending)
    return [t.remote_id for t in known + unknown]


@pytest.mark.parametrize("sort", [choice for choice, _ in listing.SORT_CHOICES])
def test_following_older_and_newer_links_visits_every_thread_once_in_order(signed_in, many, sort):
    seen, url, pages = [], f"{LIST}?sort={sort}", []
    while url:
        response = signed_in.get(url, headers=HTMX)
        assert response.status_code == 200
        pages.append(row_ids(response))
        seen += pages[-1]
        url = link(response, "next")
    assert len(pages) == 3
    assert seen == expected_order(many, sort)
    # And back: "Newer" from the last page gives the pages again.
    assert row_ids(signed_in.get(link(response, "prev"), headers=HTMX)) == pages[1]


def test_a_newer_link_near_the_start_shows_a_full_first_page(signed_in, many):
    first = signed_in.get(LIST, headers=HTMX)
    second = signed_in.get(link(first, "next"), headers=HTMX)
    third = signed_in.get(link(second, "next"), headers=HTMX)
    cursor = listing.encode_cursor(listing.SORTS["activity"], Thread.objects.get(remote_id=row_ids(first)[3]))
    response = signed_in.get(LIST, {"before": cursor}, headers=HTMX)
    assert row_ids(response) == row_ids(first)
    assert len(row_ids(third)) == 25


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ({"after": "not-a-cursor!"}, "This page link is broken"),
        (
            {"after": listing.encode_cursor(listing.SORTS["id"], Thread(pk=3, remote_id="x"))},
            "not a date and time",
        ),
        ({"after": "WyJ4IiwgLTFd"}, "not a positive number"),
        ({"after": "abc", "before": "abc"}, "either `after` or `before`"),
        ({"sort": "colour"}, "Select a valid choice"),
        ({"size": "1000"}, "Select a valid choice"),
        ({"start": "0"}, "greater than or equal to 1"),
        ({"owner": "'; drop table"}, "Choose an owner"),
        ({"credential": "alpha"}, "Choose a credential"),
        ({"inactive_days": "-4"}, "greater than or equal to 0"),
        ({"created_from": "yesterday"}, "Enter a valid date"),
        ({"active_from": "2026-05-02", "active_to": "2026-05-01"}, "is before"),
    ],
)
@pytest.mark.parametrize("headers", [{}, HTMX])
def test_bad_parameters_answer_400_with_a_clear_message(signed_in, make_thread, query, message, headers):
    make_thread()
    response = signed_in.get(LIST, query, headers=headers)
    assert response.status_code == 400
    body = unescape(response.content.decode())
    assert "These filters cannot be used" in body
    assert message in body


def test_a_page_costs_the_same_few_queries_however_many_rows_and_relations(
    signed_in, django_assert_num_queries, make_thread, alice, bob
):
    for index in range(60):
        make_thread(owner=(alice, bob, None)[index % 3], last_activity_at=timezone.now())
    # Session, user and the user's permissions (one query: `permissions.access`); then the rows, threads
    # with owner, credential and policy joined: one index range, and a second (threads whose activity is
    # unknown) only on the page where the first runs out; the bounded count unless a first page holds
    # every match.
    with django_assert_num_queries(3 + 1 + 1):
        first = signed_in.get(LIST, headers=HTMX)
    with django_assert_num_queries(3 + 2 + 1):
        signed_in.get(link(first, "next"), headers=HTMX)
    # A search first asks whether the term is exactly some end user or metadata value (one index entry).
    with django_assert_num_queries(3 + 1 + 2):
        signed_in.get(LIST, {"owner": "none", "q": "test"}, headers=HTMX)
    # Untitled threads (all of these) come after the titled: the second index range.
    with django_assert_num_queries(3 + 2 + 1):
        signed_in.get(LIST, {"sort": "title"}, headers=HTMX)
    # The full page adds the filter form's options: owners, credentials, projects.
    with django_assert_num_queries(3 + 1 + 1 + 3):
        signed_in.get(LIST)


def test_the_total_is_exact_when_cheap_and_estimated_beyond_a_cap(signed_in, make_thread, monkeypatch):
    for _ in range(7):
        make_thread()
    body = signed_in.get(LIST, headers=HTMX).content.decode()
    assert re.search(r"\b7\s+threads\b", body)  # one page holds them all: counted as shown

    monkeypatch.setattr(listing, "PAGE_SIZE", 3)
    monkeypatch.setattr(listing, "COUNT_CAP", 10)
    body = signed_in.get(LIST, headers=HTMX).content.decode()
    assert re.search(r"\b7\s+threads\b", body)  # under the cap: counted exactly

    monkeypatch.setattr(listing, "COUNT_CAP", 5)
    body = signed_in.get(LIST, headers=HTMX).content.decode()
    # Beyond the cap, PostgreSQL's planner gives an estimate; SQLite says only that there are more.
    assert re.search(
        r"1–3</strong> of more than 5\s+threads"
        if connection.vendor == "sqlite"
        else r"1–3</strong> of about \d+\s+threads",
        body,
    )


@pytest.mark.integration
def test_a_text_search_is_estimated_rather_than_counted(signed_in, make_thread, monkeypatch):
    assert connection.vendor == "postgresql", "the trigram index, and so this estimate, is PostgreSQL's"
    for index in range(7):
        make_thread(title=f"refund {index}")
    monkeypatch.setattr(listing, "PAGE_SIZE", 3)
    body = signed_in.get(LIST, {"q": "refund"}, headers=HTMX).content.decode()
    assert re.search(r"of about \d+\s+threads match", body)


def test_row_delete_links_carry_the_way_back(signed_in, make_thread):
    thread = make_thread()
    body = signed_in.get(LIST, {"status": "active"}, headers=HTMX).content.decode()
    assert f'href="/threads/{thread.pk}/delete/?origin=list&amp;next=/%3Fstatus%3Dactive"' in body


def test_ages_read_as_plain_english():
    now = timezone.now()
    assert age(now - timedelta(seconds=5), now) == "just now"
    assert age(now - timedelta(minutes=12), now) == "12 min ago"
    assert age(now - timedelta(days=3, hours=2), now) == "3 d ago"
    assert age(None, now) == ""


# --- When each row goes -----------------------------------------------------------------------------------


def removal_line(response, thread) -> str:
    """The words the row of `thread` says of its removal, with the sentence of its tooltip, or ""."""
    row = re.search(rf'<tr id="thread-row-{thread.pk}".*?</tr>', response.content.decode(), re.S).group(0)
    found = re.search(r'<span class="(\w+) removal removal-compact" title="([^"]*)">([^<]*)</span>', row)
    if not found:
        return ""
    return f"{found.group(1)}: {unescape(found.group(3))} | {unescape(found.group(2))}".replace("\xa0", " ")


@pytest.fixture
def policies(credential, bob, db):
    """`credential` deletes conversations after 30 idle days (bob's and legal holds exempt); `other`
    only flags them after 60; `plain` has no policy."""
    retention.set_policy(
        credential,
        mode="delete",
        window_days=30,
        exempt_owners=[bob],
        exempt_metadata=[("legal_hold", "true")],
    )
    other = Credential(name="beta", base_url="http://127.0.0.1:9/v1", project_id="proj_beta")
    other.api_key = "sk-test-beta-key-5678"
    other.save()
    retention.set_policy(other, mode="flag", window_days=60)
    plain = Credential(name="gamma", base_url="http://127.0.0.1:9/v1", project_id="proj_gamma")
    plain.api_key = "sk-test-gamma-key-9012"
    plain.save()
    return credential, other, plain


def idle(days: float):
    return timezone.now() - timedelta(days=days, hours=1)


def test_each_row_says_when_its_window_or_policy_removes_it_or_why_it_is_kept(
    signed_in, make_thread, policies, bob
):
    deleting, flagging, plain = policies
    conversation = {"kind": Thread.Kind.CONVERSATION}
    rows = {
        "soon": make_thread(**conversation, last_activity_at=idle(25)),
        "later": make_thread(**conversation, last_activity_at=idle(10)),
        "past": make_thread(**conversation, last_activity_at=idle(40)),
        "held": make_thread(**conversation, last_activity_at=idle(40), metadata={"legal_hold": "true"}),
        "bobs": make_thread(**conversation, last_activity_at=idle(40), owner=bob),
        "pinned": make_thread(**conversation, last_activity_at=idle(40), pinned=True),
        "unknown": make_thread(**conversation),
        "flagged": make_thread(**conversation, credential=flagging, last_activity_at=idle(70)),
        "flag_later": make_thread(**conversation, credential=flagging, last_activity_at=idle(20)),
        "expiring": make_thread(credential=plain, last_activity_at=idle(55)),
        "kept": make_thread(**conversation, credential=plain, last_activity_at=idle(90)),
        "deleted": make_thread(**conversation, last_activity_at=idle(40), status=Thread.Status.DELETED),
    }
    response = signed_in.get(LIST, headers=HTMX)
    lines = {name: removal_line(response, thread) for name, thread in rows.items()}
    assert lines == {
        "soon": "warn: Deleted in ~4 d | Deleted by the retention policy in about 4 days without activity",
        "later": "muted: Deleted in ~19 d | Deleted by the retention policy in about 19 days "
        "without activity",
        "past": "warn: Deleted by the next sweep | Past the 30-day retention window: the next sweep "
        "deletes it",
        "held": "muted: Kept: metadata legal_hold=true | Kept: exempt from the 30-day retention policy "
        "(metadata legal_hold=true)",
        "bobs": "muted: Kept: owner bob | Kept: exempt from the 30-day retention policy (owner bob)",
        "pinned": "muted: Kept: pinned | Kept: exempt from the 30-day retention policy (pinned)",
        "unknown": "muted: Activity unknown | Activity unknown: the 30-day retention window counts from its "
        "last activity",
        "flagged": "warn: Flagged: past the window | Past the 60-day retention window (flagged)",
        "flag_later": "muted: Flagged in ~39 d | Reaches the 60-day retention window in about 39 days",
        "expiring": "warn: Expires in ~4 d | Expires in about 4 days without activity",
        "kept": "",  # no policy, and conversations never expire
        "deleted": "",
    }


def test_a_rows_words_agree_with_the_thread_page(signed_in, make_thread, policies):
    thread = make_thread(kind=Thread.Kind.CONVERSATION, last_activity_at=idle(25))
    row = removal_line(signed_in.get(LIST, headers=HTMX), thread)
    page = signed_in.get(reverse("thread_detail", args=[thread.pk])).content.decode()
    sentence = row.split(" | ")[1]
    assert f'<span class="warn removal">{sentence}</span>' in page


def test_policies_cost_one_query_a_page_however_many_rows_and_policies(
    signed_in, django_assert_num_queries, make_thread, policies, alice, bob
):
    deleting, flagging, plain = policies
    for index in range(60):
        make_thread(
            kind=Thread.Kind.CONVERSATION,
            credential=policies[index % 3],
            owner=(alice, bob, None)[index % 3],
            last_activity_at=idle(index),
        )
    # As without policies (the policy is joined to each row), plus the exempt owners of the page's
    # policies: one query for all of them.
    with django_assert_num_queries(3 + 1 + 1 + 1):
        first = signed_in.get(LIST, headers=HTMX)
    with django_assert_num_queries(3 + 2 + 1 + 1):
        signed_in.get(link(first, "next"), headers=HTMX)
    # A page of threads no policy governs reads no owners (its 20 rows run out: both groups are read).
    with django_assert_num_queries(3 + 2):
        signed_in.get(LIST, {"credential": plain.pk}, headers=HTMX)


def test_a_row_sent_back_after_a_failed_deletion_still_says_when_it_goes(signed_in, make_thread, policies):
    thread = make_thread(kind=Thread.Kind.CONVERSATION, last_activity_at=idle(25))
    # The credential's API is unreachable (port 9): the thread stays active.
    response = signed_in.post(reverse("thread_delete", args=[thread.pk]), {"origin": "list"}, headers=HTMX)
    assert response.status_code != 200
    assert removal_line(response, thread).startswith("warn: Deleted in ~4 d |")


def test_the_short_words_of_a_sunset_and_of_a_past_expiry():
    now = timezone.now()
    sunset = retention.Removal(now + timedelta(days=30, hours=1), "sunset")
    assert removal_words(sunset, now)["short"] == f"Goes at the API’s sunset, {sunset.at:%Y-%m-%d}"
    gone = retention.Removal(now - timedelta(days=3), "sunset")
    assert removal_words(gone, now) == {
        "tone": "warn",
        "text": f"Removed with the Assistants API’s sunset on {gone.at:%Y-%m-%d}",
        "short": f"Gone at the API’s sunset, {gone.at:%Y-%m-%d}",
    }
    expired = retention.Removal(now - timedelta(days=3), "expires", window_days=60)
    assert removal_words(expired, now)["short"] == "Past its expiry"
    assert removal_words(retention.Removal(None, "expires", window_days=60), now)["text"] == (
        "Activity unknown: expires 60 days after its last activity"
    )
