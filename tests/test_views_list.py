import re
from datetime import timedelta
from html import unescape

import pytest
from django.db import connection
from django.urls import reverse
from django.utils import timezone

from threads_app import listing
from threads_app.models import Credential, Thread
from threads_app.templatetags.threads_browse import age

LIST = reverse("thread_list")
HTMX = {"HX-Request": "true"}


@pytest.fixture
def signed_in(client, alice):
    client.force_login(alice)
    return client


def row_ids(response) -> list[str]:
    """The remote IDs of the table's rows, in order."""
    return re.findall(
        r'<tr id="thread-row-\d+">\s*<td class="col-id">\s*<a [^>]+><code>([^<]+)</code>',
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


@pytest.fixture
def many(make_thread):
    """125 threads with ties and unknown values in every sort column."""
    now = timezone.now()
    threads = []
    for index in range(125):
        threads.append(
            make_thread(
                remote_id=f"thread_many{index:05d}",
                title=f"title {index % 7}",
                # Ten share each moment, and every ninth is unknown.
                last_activity_at=None if index % 9 == 0 else now - timedelta(hours=index // 10),
                remote_created_at=None if index % 4 == 0 else now - timedelta(days=index % 13),
            )
        )
    return threads


def expected_order(threads, sort) -> list[str]:
    """The order listing promises: known values in the sort's direction, ties by id, then the threads
    whose value is unknown, newest id first when descending."""
    key, descending = listing.parse_sort(sort)
    known = [t for t in threads if getattr(t, key.field) is not None]
    unknown = sorted(
        (t for t in threads if getattr(t, key.field) is None), key=lambda t: t.pk, reverse=descending
    )
    known.sort(key=lambda t: (getattr(t, key.field), 0 if key.unique else t.pk), reverse=descending)
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
        ({"after": listing.encode_cursor(listing.SORTS["title"], Thread(pk=3))}, "not a date and time"),
        ({"after": "WyJ4IiwgLTFd"}, "not a positive number"),
        ({"after": "abc", "before": "abc"}, "either `after` or `before`"),
        ({"sort": "owner"}, "Select a valid choice"),
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
    # Session and user; then the rows, threads with owner and credential joined: one index range, and a
    # second (threads whose activity is unknown) only on the page where the first runs out; the bounded
    # count unless a first page holds every match.
    with django_assert_num_queries(2 + 1 + 1):
        first = signed_in.get(LIST, headers=HTMX)
    with django_assert_num_queries(2 + 2 + 1):
        signed_in.get(link(first, "next"), headers=HTMX)
    with django_assert_num_queries(2 + 2):
        signed_in.get(LIST, {"owner": "none", "q": "test"}, headers=HTMX)
    with django_assert_num_queries(2 + 1 + 1):
        signed_in.get(LIST, {"sort": "title"}, headers=HTMX)
    # The full page adds the filter form's options: owners, credentials, projects.
    with django_assert_num_queries(2 + 1 + 1 + 3):
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
        r"More than 5\s+threads" if connection.vendor == "sqlite" else r"About \d+\s+threads", body
    )


@pytest.mark.integration
def test_a_text_search_is_estimated_rather_than_counted(signed_in, make_thread, monkeypatch):
    assert connection.vendor == "postgresql", "the trigram index, and so this estimate, is PostgreSQL's"
    for index in range(7):
        make_thread(title=f"refund {index}")
    monkeypatch.setattr(listing, "PAGE_SIZE", 3)
    body = signed_in.get(LIST, {"q": "refund"}, headers=HTMX).content.decode()
    assert re.search(r"About \d+\s+threads match", body)


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
