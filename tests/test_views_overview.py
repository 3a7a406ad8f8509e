import re
from datetime import timedelta

import pytest
from django.core.cache import cache
from django.urls import reverse
from django.utils import timezone

from threads_app import overview, retention
from threads_app.models import Thread

URL = reverse("overview")


@pytest.fixture(autouse=True)
def empty_cache():
    cache.clear()
    yield
    cache.clear()


@pytest.fixture
def signed_in(client, alice):
    client.force_login(alice)
    return client


def test_anonymous_visitors_are_sent_to_sign_in(client, db):
    response = client.get(URL)
    assert response.status_code == 302 and response["Location"].startswith(reverse("login"))


@pytest.fixture
def world(make_thread, alice, bob):
    now = timezone.now()
    ages = [1, 3, 20, 40, 55, 58, 75, 200]
    for index, days in enumerate(ages):
        make_thread(owner=(alice, bob, None)[index % 3], last_activity_at=now - timedelta(days=days))
    make_thread(kind=Thread.Kind.CONVERSATION, last_activity_at=now - timedelta(days=57))  # never expires
    make_thread(status=Thread.Status.DELETED, last_activity_at=now - timedelta(days=56))
    make_thread(status=Thread.Status.MISSING)
    make_thread()  # activity unknown


def test_the_figures_count_by_status_owner_credential_and_age(world, alice, credential):
    figures = overview.summary(None, timezone.now())
    assert figures["total"] == 12
    assert dict((s, n) for s, _, n in figures["by_status"]) == {
        "active": 10,
        "deleted": 1,
        "expired": 0,
        "missing": 1,
    }
    assert dict((name, n) for _, name, n in figures["by_owner"]) == {"alice": 3, "bob": 3, "unassigned": 6}
    assert figures["by_credential"] == [(credential.pk, "alpha · proj_alpha", 12)]
    assert [n for _, n, _, _ in figures["ages"]] == [2, 1, 1, 3, 1, 1]
    assert figures["age_unknown"] == 1
    # Only active Assistants threads expire: 55 and 58 days idle are within 7 days of 60; 40 within 30;
    # 75 and 200 are past the window (not yet looked up by the expiry sweep).
    assert [(choice, n) for choice, _, n in figures["going"]] == [("past", 2), ("7", 2), ("30", 3)]
    assert (figures["past_window"], figures["flagged"]) == (2, 0)


def test_a_retention_policy_counts_in_the_same_figures(world, credential):
    retention.set_policy(credential, mode=retention.Mode.FLAG, window_days=30)
    figures = overview.summary(None, timezone.now())
    # The conversation idle for 57 days is past a 30-day window, flagged.
    assert (figures["past_window"], figures["flagged"]) == (3, 1)


def test_the_page_draws_bars_that_link_to_the_filtered_list(signed_in, world):
    body = signed_in.get(URL).content.decode()
    assert body.count('<svg class="bar"') == 4 + 3 + 3 + 1  # statuses, kinds, owners, credentials
    assert '<a href="/?status=missing" class="bar-label" title="Missing">Missing</a>' in body
    assert '<a href="/?owner=none" class="bar-label" title="unassigned">unassigned</a>' in body
    # A label cut short by the card's width can be read whole in its title.
    assert 'class="bar-label" title="alpha · proj_alpha">alpha · proj_alpha</a>' in body
    over_90 = (timezone.localdate() - timedelta(days=91)).isoformat()
    assert f'<a href="/?status=active&amp;active_to={over_90}">over 90 days</a>' in body
    assert re.search(r'<a href="/\?status=active&amp;expiring=7"><strong>2</strong> within 7 days', body)
    # The largest bar fills its track.
    assert 'width="100.0"' in body


def test_the_figures_are_current_and_read_no_thread(
    signed_in, world, make_thread, django_assert_max_num_queries
):
    signed_in.get(URL)
    make_thread(status=Thread.Status.EXPIRED)
    # Session, user, permissions, the tallies, the captures of the last days: never the thread table's rows.
    with django_assert_max_num_queries(15) as queries:
        body = signed_in.get(URL).content.decode()
    assert "13 tracked threads" in body and "nothing cached" in body
    # Tallies, credentials, policies and user names: never the thread table.
    reads = [q["sql"] for q in queries.captured_queries if '"threads_app_thread"' in q["sql"]]
    assert all("capture" in sql for sql in reads)  # only the last days' captures, a bounded range


def test_bars_scale_to_the_largest_value():
    bars = overview.bars([("a", 5, ""), ("b", 10, ""), ("c", 0, "")])
    assert [bar.share for bar in bars] == [50.0, 100.0, 0.0]
    assert [bar.rest for bar in bars] == [50.0, 0.0, 100.0]
    assert overview.bars([("empty", 0, "")])[0].share == 0.0
