"""What issue 10 added to the pages (fast layer): the list's page size, position and CSV export, the bulk
reassignment of owners, discovery that reports what it found, the Import page's default, the thread page's
reading order, metadata rows and panels that refresh themselves after an action."""

import csv
import io
import json
import re
from datetime import UTC, datetime, timedelta
from html import unescape

import pytest
from django.contrib.auth.models import User
from django.core.exceptions import PermissionDenied
from django.urls import reverse
from django.utils import timezone

from tests.conftest import make_user
from threads_app import list_export, ownership, sync, tasks
from threads_app.models import AuditEvent, Credential, DiscoveryRun, Thread

pytestmark = pytest.mark.usefixtures("no_retries")

HTMX = {"HX-Request": "true"}
LIST = reverse("thread_list")


@pytest.fixture
def admin(db):
    return make_user("root", "admin")


@pytest.fixture
def admin_client(client, admin):
    client.force_login(admin)
    return client


@pytest.fixture
def member_client(client, alice):
    """Signed in as someone who sees every thread (alice is an admin; `mia_client` is a member)."""
    client.force_login(alice)
    return client


@pytest.fixture
def mia_client(client, db):
    client.force_login(make_user("mia", "member"))
    return client


@pytest.fixture
def rows(make_thread, bob):
    now = timezone.now()
    return [
        make_thread(
            remote_id=f"thread_row{n:04d}",
            title=f"Row {n}",
            owner=bob if n % 2 else None,
            last_activity_at=now - timedelta(minutes=n),
            message_count=n,
        )
        for n in range(130)
    ]


def ids_in(response) -> list[str]:
    return re.findall(r'<td class="col-id"><a href="[^"]+" title="([^"]+)">', response.content.decode())


# --- The list -------------------------------------------------------------------------------------------


def test_a_page_size_is_chosen_and_the_position_follows_the_pages(member_client, rows):
    first = member_client.get(LIST, {"size": "25"}, headers=HTMX)
    body = unescape(first.content.decode())
    assert len(ids_in(first)) == 25
    assert re.search(r"<strong>1–25</strong> of 130\s+threads", body)
    next_url = unescape(re.search(r'<a href="([^"]+)"[^>]*rel="next"', first.content.decode())[1])
    assert "size=25" in next_url and "start=26" in next_url
    second = member_client.get(next_url, headers=HTMX)
    assert re.search(r"<strong>26–50</strong> of 130", unescape(second.content.decode()))
    previous_url = unescape(re.search(r'<a href="([^"]+)"[^>]*rel="prev"', second.content.decode())[1])
    assert re.search(r"<strong>1–25</strong>", unescape(member_client.get(previous_url).content.decode()))
    # The size select shows the size the page has, even when the URL does not name it.
    page = member_client.get(LIST).content.decode()
    assert '<option value="50" selected>50</option>' in page
    assert len(ids_in(member_client.get(LIST, {"size": "200"}))) == 130


def test_rows_show_ages_with_the_exact_time_and_the_credential_without_its_key(member_client, rows):
    body = member_client.get(LIST).content.decode()
    row = re.search(rf'<tr id="thread-row-{rows[3].pk}">.*?</tr>', body, re.S)[0]
    assert "3 min ago" in row and 'datetime="' in row and 'title="Last activity ' in row
    assert f'title="{rows[3].remote_id}"' in row
    credential = rows[3].credential
    assert f"key {credential.masked_key}" in row and credential.api_key not in body


def test_the_owner_and_message_count_sorts_page_through_every_thread(member_client, rows, bob):
    seen, url = [], f"{LIST}?sort=-messages"
    while url:
        response = member_client.get(url, headers=HTMX)
        seen += ids_in(response)
        found = re.search(r'<a href="([^"]+)"[^>]*rel="next"', response.content.decode())
        url = unescape(found[1]) if found else ""
    assert seen == [f"thread_row{n:04d}" for n in reversed(range(130))]
    by_owner = ids_in(member_client.get(LIST, {"sort": "owner", "size": "100"}))
    assert [Thread.objects.get(remote_id=i).owner for i in by_owner[:65]] == [bob] * 65


def test_the_csv_export_streams_every_matching_thread_without_key_material(member_client, rows, bob):
    response = member_client.get(reverse("thread_list_csv"), {"owner": str(bob.pk)})
    assert response.status_code == 200 and response.streaming
    assert response["Content-Type"].startswith("text/csv")
    assert response["Content-Disposition"].startswith('attachment; filename="threads-')
    text = b"".join(response.streaming_content).decode()
    table = list(csv.DictReader(io.StringIO(text)))
    assert len(table) == 65 and {row["owner"] for row in table} == {"bob"}
    assert table[0]["credential"] == rows[0].credential.name
    assert rows[0].credential.api_key not in text and "api_key" not in text


def test_the_csv_export_reads_in_chunks_and_defuses_formulas(make_thread, rows):
    make_thread(title='=HYPERLINK("http://evil")')
    pieces = list(list_export.rows(Thread.objects.all(), chunk=7))
    assert len(pieces) == 1 + 19  # the header, then 131 rows in chunks of 7 (the last one short)
    lines = "".join(pieces).splitlines()
    assert len(lines) == 1 + 131
    assert "'=HYPERLINK" in lines[-1]


def test_the_csv_export_refuses_bad_filters(member_client, rows):
    response = member_client.get(reverse("thread_list_csv"), {"inactive_days": "-1"})
    assert response.status_code == 400 and "These filters cannot be used" in response.content.decode()


# --- Reassigning owners ---------------------------------------------------------------------------------


def test_reassign_gives_a_selection_to_another_owner(rows, alice, bob):
    assert ownership.reassign(Thread.objects.filter(owner=bob), alice) == 65
    assert Thread.objects.filter(owner=alice).count() == 65
    assert ownership.reassign(Thread.objects.filter(owner=alice), alice) == 0
    assert ownership.reassign(Thread.objects.all(), None) == 65
    assert not Thread.objects.filter(owner__isnull=False).exists()


def test_ticked_rows_are_reassigned_from_the_list(admin_client, rows, alice):
    url = reverse("reassign_new") + f"?ids={rows[0].pk}&ids={rows[1].pk}&next=/"
    page = admin_client.get(url)
    assert page.status_code == 200 and "<strong>2</strong> threads" in page.content.decode()
    response = admin_client.post(url, {"owner": str(alice.pk)})
    assert response.status_code == 302
    assert set(Thread.objects.filter(owner=alice)) == {rows[0], rows[1]}
    event = AuditEvent.objects.get(action=AuditEvent.Action.OWNER_CHANGED)
    assert event.actor_name == "root" and event.details["threads"] == 2 and event.details["after"] == "alice"


def test_every_thread_matching_a_filter_is_reassigned(admin_client, rows, alice, bob):
    url = reverse("reassign_new") + f"?owner={bob.pk}&all=1"
    assert "<strong>65</strong> threads" in admin_client.get(url).content.decode()
    admin_client.post(url, {"owner": ""})
    assert Thread.objects.filter(owner__isnull=True).count() == 130


def test_reassigning_is_for_admins_only(mia_client, rows, alice):
    url = reverse("reassign_new") + f"?ids={rows[0].pk}"
    assert mia_client.get(url).status_code == 403
    assert mia_client.post(url, {"owner": str(alice.pk)}).status_code == 403
    assert "Reassign owner" not in mia_client.get(LIST).content.decode()
    # The one reassignment function asks the gate too, whoever calls it.
    with pytest.raises(PermissionDenied):
        ownership.reassign(Thread.objects.all(), alice, by=User.objects.get(username="mia"))
    assert not AuditEvent.objects.filter(action=AuditEvent.Action.OWNER_CHANGED).exists()


def test_a_bad_selection_or_owner_changes_nothing(admin_client, rows):
    assert admin_client.get(reverse("reassign_new")).status_code == 400
    response = admin_client.post(reverse("reassign_new") + f"?ids={rows[0].pk}", {"owner": "999999"})
    assert response.status_code == 400 and "Select a valid choice" in response.content.decode()
    assert Thread.objects.get(pk=rows[0].pk).owner is None


def test_the_selection_bar_offers_reassigning_the_ticks_or_everything_matching(admin_client, rows, bob):
    body = admin_client.get(LIST, {"owner": str(bob.pk), "size": "25"}).content.decode()
    assert f'formaction="{reverse("reassign_new")}"' in body
    assert f'<input type="hidden" name="owner" value="{bob.pk}">' in body
    assert 'name="size"' not in re.search(r'<form id="selection".*?</form>', body, re.S)[0]
    assert f'href="{reverse("reassign_new")}?owner={bob.pk}&amp;all=1"' in body


# --- Discovery and the Import page ----------------------------------------------------------------------


@pytest.fixture
def chatkit_credential(simulator, sim_credential):
    for n in range(3):
        simulator.state.create_chatkit_thread("proj_alpha", user=f"user-{n}", items=[("user", "hi")])
    return sim_credential


def test_discovery_says_what_it_found_once_it_ends(admin_client, chatkit_credential, monkeypatch):
    started = []
    monkeypatch.setattr(tasks, "dispatch", lambda task, *args: started.append((task, args)))
    response = admin_client.post(reverse("credential_discover", args=[chatkit_credential.pk]), headers=HTMX)
    run = DiscoveryRun.objects.get()
    assert started == [(tasks.run_discovery, (run.pk,))]
    assert "Listing…" in response.content.decode() and 'hx-trigger="every 2s"' in response.content.decode()
    # Pressed again while it runs: the same run, listed once.
    admin_client.post(reverse("credential_discover", args=[chatkit_credential.pk]), headers=HTMX)
    assert DiscoveryRun.objects.count() == 1

    tasks.run_discovery(run.pk)  # the worker
    poll = admin_client.get(reverse("credential_discovery", args=[chatkit_credential.pk]), headers=HTMX)
    assert poll.status_code == 286  # polling stops
    body = poll.content.decode()
    assert "3 listed" in body and "<strong>3 new</strong>" in body and "hx-trigger" not in body
    assert "3 new" in admin_client.get(reverse("credential_list")).content.decode()
    assert Thread.objects.filter(source=Thread.Source.DISCOVERY).count() == 3


def test_a_failed_discovery_says_why(admin_client, chatkit_credential):
    chatkit_credential.api_key = "sk-revoked-0000-0000"
    chatkit_credential.save()
    run = sync.start_discovery(chatkit_credential)
    sync.run_discovery(run.pk)
    run.refresh_from_db()
    assert run.state == DiscoveryRun.State.FAILED and run.message
    assert sync.run_discovery(run.pk).state == DiscoveryRun.State.FAILED  # a second delivery does nothing
    body = admin_client.get(reverse("credential_list")).content.decode()
    assert "Failed" in body and run.message in unescape(body)


def test_discovery_pages_are_for_admins(mia_client, chatkit_credential):
    assert mia_client.post(reverse("credential_discover", args=[chatkit_credential.pk])).status_code == 403
    assert mia_client.get(reverse("credential_discovery", args=[chatkit_credential.pk])).status_code == 403


def test_the_import_page_lets_threadsite_find_each_credential_by_default(admin_client, db):
    for name in ("aardvark-failing", "zebra"):
        credential = Credential(name=name, base_url="http://127.0.0.1:9/v1")
        credential.api_key = "sk-test-0000-0000"
        credential.last_verification_ok = name == "zebra"
        credential.save()
    body = admin_client.get(reverse("thread_import")).content.decode()
    select = re.search(r'<select name="credential".*?</select>', body, re.S)[0]
    assert re.search(r'<option value="" selected>Let Threadsite find it', select)
    assert "aardvark-failing · key refused" in select


# --- The thread page ------------------------------------------------------------------------------------

BASE = datetime(2026, 6, 1, 9, 0, tzinfo=UTC)


@pytest.fixture
def talk(simulator, sim_clock, sim_credential, make_thread):
    remote = simulator.state.create_thread(
        "proj_alpha",
        created_at=BASE,
        messages=[
            ("user", f"message number {i}", {"created_at": BASE + timedelta(minutes=i)}) for i in range(25)
        ],
    )
    return make_thread(remote_id=remote["id"], credential=sim_credential)


def shown(response) -> list[str]:
    return re.findall(r"message number (\d+)", response.content.decode())


def test_the_reading_order_is_chosen_and_remembered(member_client, talk):
    url = reverse("thread_messages", args=[talk.pk])
    assert shown(member_client.get(url, headers=HTMX))[:2] == ["24", "23"]
    oldest = member_client.get(url, {"order": "asc"}, headers=HTMX)
    body = oldest.content.decode()
    assert shown(oldest)[:2] == ["0", "1"] and "Load newer messages" in body
    assert 'aria-current="true">Oldest first' in body
    # Remembered: the next thread page (and its first page of messages) is oldest first too.
    assert shown(member_client.get(url, headers=HTMX))[:2] == ["0", "1"]
    page = member_client.get(reverse("thread_detail", args=[talk.pk]), {"show": "messages"})
    assert shown(page)[:2] == ["0", "1"]
    newer = unescape(re.search(r'hx-get="([^"]+)" hx-target="this"', body)[1])
    assert shown(member_client.get(newer, headers=HTMX))[:2] == ["20", "21"]
    talk.refresh_from_db()
    assert talk.message_count == 25  # read oldest first to the end: counted as newest first would be
    assert member_client.get(url, {"order": "sideways"}, headers=HTMX).status_code == 400


def test_the_metadata_editor_adds_rows_up_to_sixteen_and_counts_them(member_client, talk):
    url = reverse("thread_metadata", args=[talk.pk])
    body = member_client.get(url, headers=HTMX).content.decode()
    assert body.count('name="key_') == 1 and "<strong>0</strong> of 16 pairs" in body
    data = {"key_0": "ticket", "value_0": "ZD-9", "rows": "1", "add_row": "1"}
    response = member_client.post(url, data, headers=HTMX)
    body = response.content.decode()
    assert response.status_code == 200 and body.count('name="key_') == 2
    assert 'value="ticket"' in body and "<strong>1</strong> of 16 pairs" in body
    assert "errorbox" not in body and Thread.objects.get(pk=talk.pk).metadata == {}
    for rows in range(2, 16):
        body = member_client.post(url, {"rows": str(rows), "add_row": "1"}, headers=HTMX).content.decode()
    assert body.count('name="key_') == 16 and "Add a row" not in body and "No room for more" in body


def test_an_action_tells_the_other_panels_to_refresh_themselves(member_client, talk):
    response = member_client.post(reverse("thread_pin", args=[talk.pk]), {"pinned": "1"}, headers=HTMX)
    assert json.loads(response.headers["HX-Trigger"]) == {"threadChanged": {}}
    page = member_client.get(reverse("thread_detail", args=[talk.pk])).content.decode()
    for name, trigger in (
        ("thread_header", "threadChanged from:body"),
        ("thread_history", "load, threadChanged from:body"),
    ):
        url = reverse(name, args=[talk.pk])
        assert f'hx-get="{url}" hx-trigger="{trigger}"' in page
        fragment = member_client.get(url, headers=HTMX)
        assert fragment.status_code == 200 and "<html" not in fragment.content.decode()
    assert member_client.get(reverse("thread_history", args=[999999]), headers=HTMX).status_code == 404
    assert member_client.get(reverse("thread_history", args=[talk.pk])).status_code == 302


def test_the_refreshed_history_keeps_the_audit_trail_for_those_who_may_read_it(client, talk):
    client.force_login(User.objects.create_superuser("auditor", password="auditor-password"))
    client.post(reverse("thread_pin", args=[talk.pk]), {"pinned": "1"}, headers=HTMX)
    body = client.get(reverse("thread_history", args=[talk.pk]), headers=HTMX).content.decode()
    assert "Pinned or unpinned" in body
