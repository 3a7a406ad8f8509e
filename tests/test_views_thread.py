import json
import re
from datetime import UTC, datetime, timedelta
from html import unescape

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from threads_app import transcripts
from threads_app.forms import MetadataForm
from threads_app.models import AuditEvent, DeletionJob, StatusChange, Thread
from threads_app.simulator import objects

HTMX = {"HX-Request": "true"}
BASE = datetime(2026, 6, 1, 9, 0, tzinfo=UTC)


@pytest.fixture(autouse=True)
def no_retries(settings):
    # Faults surface at once instead of after the client's backoff sleeps.
    settings.OPENAI_MAX_RETRIES = 0


@pytest.fixture
def signed_in(client, alice):
    client.force_login(alice)
    return client


@pytest.fixture
def assistants_thread(simulator, sim_clock, sim_credential, make_thread):
    """An Assistants thread of 45 messages, a minute apart, tracked with nothing known of it yet."""
    remote = simulator.state.create_thread(
        "proj_alpha",
        created_at=BASE,
        metadata={"ticket": "ZD-1"},
        messages=[
            (
                "user" if i % 2 == 0 else "assistant",
                f"message number {i}",
                {"created_at": BASE + timedelta(minutes=i)},
            )
            for i in range(45)
        ],
    )
    simulator.state.request_log.clear()
    return make_thread(remote_id=remote["id"], credential=sim_credential)


def api_requests(simulator) -> list:
    return list(simulator.state.request_log)


def entries_shown(response) -> list[str]:
    return re.findall(r"message number (\d+)", response.content.decode())


def older_link(response) -> tuple[str, str]:
    """(href, hx-get) of the "Load older messages" link."""
    match = re.search(
        r'<a class="button load-older" href="([^"]+)"\s+hx-get="([^"]+)"', response.content.decode()
    )
    return (unescape(match.group(1)), unescape(match.group(2))) if match else ("", "")


# --- Access: every endpoint needs a signed-in user and a thread that exists ---------------------------

ENDPOINTS = [
    ("get", "thread_detail"),
    ("get", "thread_messages"),
    ("get", "thread_facts"),
    ("post", "thread_refresh"),
    ("get", "thread_edit"),
    ("post", "thread_edit"),
    ("get", "thread_metadata"),
    ("post", "thread_metadata"),
    ("get", "thread_delete"),
    ("post", "thread_delete"),
    ("post", "thread_mark_missing"),
]


@pytest.mark.parametrize(("method", "name"), ENDPOINTS)
@pytest.mark.parametrize("headers", [{}, HTMX])
def test_anonymous_visitors_are_sent_to_sign_in(client, make_thread, method, name, headers):
    thread = make_thread()
    response = getattr(client, method)(reverse(name, args=[thread.pk]), headers=headers)
    assert response.status_code == 302
    assert response["Location"].startswith(reverse("login"))
    assert Thread.objects.get(pk=thread.pk).status == Thread.Status.ACTIVE


@pytest.mark.parametrize(("method", "name"), ENDPOINTS)
def test_an_unknown_thread_is_a_404(signed_in, method, name):
    response = getattr(signed_in, method)(reverse(name, args=[987654]), headers=HTMX)
    assert response.status_code == 404


def test_exports_need_a_signed_in_user_and_a_known_format(client, signed_in, make_thread):
    thread = make_thread()
    assert signed_in.get(reverse("thread_export", args=[thread.pk, "pdf"])).status_code == 404
    signed_in.logout()
    response = client.get(reverse("thread_export", args=[thread.pk, "json"]))
    assert response.status_code == 302 and response["Location"].startswith(reverse("login"))


# --- The page and its messages ------------------------------------------------------------------------


def test_the_thread_page_renders_at_once_and_leaves_the_api_to_fragments(
    signed_in, simulator, assistants_thread
):
    StatusChange.objects.create(
        thread=assistants_thread, old_status="missing", new_status="active", reason="found"
    )
    response = signed_in.get(reverse("thread_detail", args=[assistants_thread.pk]))
    body = response.content.decode()
    assert response.status_code == 200
    assert api_requests(simulator) == []
    assert f'hx-get="/threads/{assistants_thread.pk}/messages/" hx-trigger="load"' in body
    assert 'href="?show=messages#messages"' in body  # the same, without JavaScript
    assert f'hx-post="/threads/{assistants_thread.pk}/refresh/" hx-trigger="load"' in body
    assert "sk-…1234" in body and "sk-test-alpha-key-1234" not in body
    # The status history also loads itself, from the registry (no API request either).
    assert f'hx-get="/threads/{assistants_thread.pk}/history/" hx-trigger="load, threadChanged' in body
    history = signed_in.get(reverse("thread_history", args=[assistants_thread.pk]), headers=HTMX)
    assert "found" in history.content.decode() and api_requests(simulator) == []


def test_messages_come_newest_first_twenty_at_a_time_one_request_per_page(
    signed_in, simulator, assistants_thread
):
    url = reverse("thread_messages", args=[assistants_thread.pk])
    first = signed_in.get(url, headers=HTMX)
    assert first.status_code == 200
    assert entries_shown(first) == [str(i) for i in range(44, 24, -1)]
    assert len(api_requests(simulator)) == 1
    second = signed_in.get(older_link(first)[1], headers=HTMX)
    assert entries_shown(second) == [str(i) for i in range(24, 4, -1)]
    third = signed_in.get(older_link(second)[1], headers=HTMX)
    assert entries_shown(third) == ["4", "3", "2", "1", "0"]
    assert older_link(third) == ("", "")
    assert "Start of the thread." in third.content.decode()
    assert len(api_requests(simulator)) == 3
    assert all(method == "GET" and "/messages" in path for method, path, _ in api_requests(simulator))


def test_the_first_page_records_the_last_activity_and_the_count_when_it_holds_everything(
    signed_in, simulator, sim_clock, sim_credential, make_thread
):
    remote = simulator.state.create_thread(
        "proj_alpha", created_at=BASE, messages=[("user", "hello", {"created_at": BASE + timedelta(hours=2)})]
    )
    thread = make_thread(remote_id=remote["id"], credential=sim_credential)
    signed_in.get(reverse("thread_messages", args=[thread.pk]), headers=HTMX)
    thread.refresh_from_db()
    assert thread.last_activity_at == BASE + timedelta(hours=2)
    assert thread.activity_source == Thread.ActivitySource.MESSAGE
    assert thread.message_count == 1


def test_a_long_history_leaves_the_count_unknown(signed_in, assistants_thread):
    signed_in.get(reverse("thread_messages", args=[assistants_thread.pk]), headers=HTMX)
    assistants_thread.refresh_from_db()
    assert assistants_thread.message_count is None
    assert assistants_thread.last_activity_at == BASE + timedelta(minutes=44)


def test_without_javascript_messages_and_older_pages_render_inline(signed_in, assistants_thread):
    detail = reverse("thread_detail", args=[assistants_thread.pk])
    first = signed_in.get(detail, {"show": "messages"})
    assert "<html" in first.content.decode()
    assert entries_shown(first)[:2] == ["44", "43"]
    href, _ = older_link(first)
    assert href.startswith(f"{detail}?show=messages&after=msg_")
    second = signed_in.get(href)
    assert entries_shown(second)[0] == "24"


def test_the_messages_fragment_sends_a_plain_request_to_the_page(signed_in, assistants_thread):
    response = signed_in.get(reverse("thread_messages", args=[assistants_thread.pk]), {"after": "msg_abc"})
    assert response.status_code == 302
    assert response["Location"] == f"/threads/{assistants_thread.pk}/?after=msg_abc&show=messages#messages"


@pytest.mark.parametrize("headers", [{}, HTMX])
def test_a_broken_load_older_link_is_a_400(signed_in, simulator, assistants_thread, headers):
    name = "thread_messages" if headers else "thread_detail"
    response = signed_in.get(
        reverse(name, args=[assistants_thread.pk]),
        {"after": "x/../../y", "show": "messages"},
        headers=headers,
    )
    assert response.status_code == 400
    assert "its cursor is not a message ID" in unescape(response.content.decode())
    assert api_requests(simulator) == []


def test_message_text_is_escaped_and_fenced_code_becomes_a_code_block(
    signed_in, simulator, sim_credential, make_thread
):
    text = (
        "Try this:\n<script>alert('x')</script>\n```python\nprint('<b>hi</b>')\n```\n"
        "<img src=x onerror=alert(1)>"
    )
    remote = simulator.state.create_thread("proj_alpha", messages=[("user", text)])
    thread = make_thread(remote_id=remote["id"], credential=sim_credential)
    body = signed_in.get(reverse("thread_messages", args=[thread.pk]), headers=HTMX).content.decode()
    assert "<script>alert" not in body and "<img src=x" not in body
    assert "&lt;script&gt;alert(&#x27;x&#x27;)&lt;/script&gt;" in body
    assert '<pre><code class="language-python">print(&#x27;&lt;b&gt;hi&lt;/b&gt;&#x27;)</code></pre>' in body
    assert "Try this:<br>" in body


def test_annotations_attachments_run_and_assistant_ids_are_shown(
    signed_in, simulator, sim_credential, make_thread
):
    remote = simulator.state.create_thread("proj_alpha")
    citation = {
        "type": "file_citation",
        "text": "【4:0†source】",
        "file_citation": {"file_id": "file-cited1"},
        "start_index": 4,
        "end_index": 16,
    }
    simulator.state.add_message(
        remote["id"],
        "assistant",
        content=[objects.text_part("See 【4:0†source】", [citation])],
        attachments=[{"file_id": "file-attached1", "tools": [{"type": "file_search"}]}],
        run_id="run_abc123",
        assistant_id="asst_abc123",
    )
    thread = make_thread(remote_id=remote["id"], credential=sim_credential)
    body = signed_in.get(reverse("thread_messages", args=[thread.pk]), headers=HTMX).content.decode()
    assert "【" not in body  # the marker became a footnote naming the source and its file
    for shown in (
        '<sup class="cite">[1]</sup>',
        '<li value="1">source <code class="muted">file-cited1</code></li>',
        "file-attached1",
        "run_abc123",
        "asst_abc123",
        "File · attachment",
    ):
        assert shown in body


def test_conversation_items_show_messages_and_tool_calls(signed_in, simulator, sim_credential, make_thread):
    remote = simulator.state.create_conversation(
        "proj_alpha",
        items=[
            ("user", "What is the weather?"),
            {
                "type": "function_call",
                "call_id": "call_1",
                "name": "get_weather",
                "arguments": '{"city": "Oslo"}',
            },
            {"type": "function_call_output", "call_id": "call_1", "output": "12 degrees"},
            ("assistant", "It is 12 degrees."),
        ],
    )
    thread = make_thread(remote_id=remote["id"], kind=Thread.Kind.CONVERSATION, credential=sim_credential)
    body = signed_in.get(reverse("thread_messages", args=[thread.pk]), headers=HTMX).content.decode()
    assert "Tool call · get_weather" in body and "Oslo" in body
    assert "Tool output" in body and "12 degrees" in body
    assert body.index("It is 12 degrees.") < body.index("What is the weather?")  # newest first


def test_chatkit_items_show_widgets_and_client_tool_calls(signed_in, simulator, sim_credential, make_thread):
    remote = simulator.state.create_chatkit_thread(
        "proj_alpha",
        user="customer-1",
        title="Help",
        items=[
            ("user", "hi"),
            ("widget", '{"type": "Card", "children": []}'),
            ("client_tool_call", "open_map"),
        ],
    )
    thread = make_thread(remote_id=remote["id"], kind=Thread.Kind.CHATKIT, credential=sim_credential)
    body = signed_in.get(reverse("thread_messages", args=[thread.pk]), headers=HTMX).content.decode()
    assert "Widget · Card" in body
    assert "Tool call · open_map" in body
    assert ">hi<" in body or "hi</div>" in body


# --- When the API cannot answer -----------------------------------------------------------------------


def test_a_thread_the_api_no_longer_has_is_explained_and_can_be_marked_missing(
    signed_in, alice, sim_credential, make_thread
):
    thread = make_thread(remote_id="thread_gone0000001", credential=sim_credential)
    body = signed_in.get(reverse("thread_messages", args=[thread.pk]), headers=HTMX).content.decode()
    assert "no longer exists for this credential" in body
    assert (
        "It may have been deleted outside Threadsite or created under another project than proj_alpha."
        in body
    )
    assert f'hx-post="/threads/{thread.pk}/mark-missing/"' in body

    response = signed_in.post(reverse("thread_mark_missing", args=[thread.pk]), headers=HTMX)
    assert response.status_code == 200 and response["HX-Refresh"] == "true"
    thread.refresh_from_db()
    assert thread.status == Thread.Status.MISSING
    change = StatusChange.objects.get(thread=thread)
    assert change.changed_by == alice and "404" in change.reason


@pytest.mark.parametrize(
    ("fault", "shown"),
    [
        ("500", "could not be reached or failed"),
        ("502_html", "could not be reached or failed"),
        ("drop", "could not be reached or failed"),
        ("429", "rate-limiting"),
    ],
)
def test_api_failures_are_shown_with_a_retry_and_the_page_stays_usable(
    signed_in, simulator, assistants_thread, fault, shown
):
    simulator.state.enqueue_faults(fault)
    url = reverse("thread_messages", args=[assistants_thread.pk])
    response = signed_in.get(url, headers=HTMX)
    body = response.content.decode()
    assert response.status_code == 200
    assert "The messages could not be loaded." in body and shown in body
    assert f'hx-get="{url}"' in body and ">Retry</a>" in body
    assert "44" in entries_shown(signed_in.get(url, headers=HTMX))  # the retry works
    assert Thread.objects.get(pk=assistants_thread.pk).status == Thread.Status.ACTIVE


def test_a_failed_older_page_offers_one_retry_link_that_keeps_its_place_and_order(
    signed_in, simulator, assistants_thread
):
    url = reverse("thread_messages", args=[assistants_thread.pk])
    _, older = older_link(signed_in.get(url + "?order=asc", headers=HTMX))
    cursor = re.search(r"after=([^&]+)", older).group(1)
    simulator.state.enqueue_faults("500")
    body = signed_in.get(older, headers=HTMX).content.decode()
    retry = re.findall(r'<a class="button" href="([^"]+)"\s+hx-get="([^"]+)"[^>]*>Retry</a>', body)
    # One link (a stale copy of its opening tag once swallowed the "order" of its plain-page address).
    assert body.count('<a class="button"') == 1
    href, hx_get = (unescape(part) for part in retry[0])
    detail = reverse("thread_detail", args=[assistants_thread.pk])
    assert href == f"{detail}?show=messages&after={cursor}&order=asc#messages"
    assert hx_get == f"{url}?after={cursor}&order=asc"


def test_a_refused_key_is_shown_as_such(signed_in, simulator, assistants_thread):
    assistants_thread.credential.api_key = "sk-wrong-key-0000"
    assistants_thread.credential.save()
    body = signed_in.get(
        reverse("thread_messages", args=[assistants_thread.pk]), headers=HTMX
    ).content.decode()
    assert "refused the credential’s key" in body


def test_refreshing_stores_the_remote_metadata_with_one_request(signed_in, simulator, assistants_thread):
    response = signed_in.post(reverse("thread_refresh", args=[assistants_thread.pk]), headers=HTMX)
    assert response.status_code == 200
    assert "ZD-1" in response.content.decode()
    assistants_thread.refresh_from_db()
    assert assistants_thread.metadata == {"ticket": "ZD-1"}
    assert assistants_thread.remote_created_at == BASE
    assert len(api_requests(simulator)) == 1


def test_a_failed_refresh_shows_the_stored_facts(signed_in, simulator, assistants_thread):
    simulator.state.enqueue_faults("503")
    body = signed_in.post(
        reverse("thread_refresh", args=[assistants_thread.pk]), headers=HTMX
    ).content.decode()
    assert "Showing what was stored" in body and 'id="thread-facts"' in body


# --- Editing ------------------------------------------------------------------------------------------


def test_editing_local_fields_swaps_the_facts_panel(signed_in, bob, make_thread):
    thread = make_thread(title="Old")
    url = reverse("thread_edit", args=[thread.pk])
    form = signed_in.get(url, headers=HTMX).content.decode()
    assert form.lstrip().startswith('<section id="thread-facts"') and 'value="Old"' in form
    response = signed_in.post(url, {"title": "New title", "owner": bob.pk, "end_user": "acme"}, headers=HTMX)
    assert response.status_code == 200
    body = response.content.decode()
    assert (
        'id="thread-facts"' in body
        and "Saved." in body
        and "<dd>acme</dd>" in body
        and "<dd>bob</dd>" in body
    )
    thread.refresh_from_db()
    assert (thread.title, thread.owner, thread.end_user) == ("New title", bob, "acme")


def test_editing_without_javascript_redirects_to_the_thread(signed_in, make_thread):
    thread = make_thread()
    response = signed_in.post(
        reverse("thread_edit", args=[thread.pk]), {"title": "T", "owner": "", "end_user": ""}
    )
    assert response.status_code == 302 and response["Location"] == reverse("thread_detail", args=[thread.pk])
    assert "<html" in signed_in.get(reverse("thread_edit", args=[thread.pk])).content.decode()


def test_an_invalid_edit_is_a_400_and_changes_nothing(signed_in, make_thread):
    thread = make_thread(title="Kept")
    response = signed_in.post(
        reverse("thread_edit", args=[thread.pk]), {"title": "x" * 301, "owner": "99999"}, headers=HTMX
    )
    assert response.status_code == 400
    assert "Select a valid choice" in response.content.decode()
    thread.refresh_from_db()
    assert thread.title == "Kept"


def metadata_post(pairs: dict) -> dict:
    data = {}
    for index, (key, value) in enumerate(pairs.items()):
        data[f"key_{index}"], data[f"value_{index}"] = key, value
    return data


def test_metadata_is_sent_to_the_api_and_stored(signed_in, simulator, assistants_thread):
    url = reverse("thread_metadata", args=[assistants_thread.pk])
    response = signed_in.post(url, metadata_post({"ticket": "ZD-2", "team": "support"}), headers=HTMX)
    assert response.status_code == 200 and "Saved." in response.content.decode()
    assert simulator.state.threads[assistants_thread.remote_id].data["metadata"] == {
        "ticket": "ZD-2",
        "team": "support",
    }
    assistants_thread.refresh_from_db()
    assert assistants_thread.metadata == {"ticket": "ZD-2", "team": "support"}


@pytest.mark.parametrize(
    ("pairs", "message"),
    [
        ({"k" * 65: "v"}, "at most 64 characters"),
        ({"key": "v" * 513}, "at most 512 characters"),
        ({"": "orphan value"}, "A value needs a key."),
    ],
)
def test_metadata_over_the_limits_is_refused_before_sending(
    signed_in, simulator, assistants_thread, pairs, message
):
    response = signed_in.post(
        reverse("thread_metadata", args=[assistants_thread.pk]), metadata_post(pairs), headers=HTMX
    )
    assert response.status_code == 400
    assert message in unescape(response.content.decode())
    assert api_requests(simulator) == []


def test_the_metadata_form_has_room_for_sixteen_pairs_and_no_more(assistants_thread):
    form = MetadataForm(metadata_post({f"k{i}": "v" for i in range(17)}))
    assert form.is_valid()
    assert len(form.cleaned_data["metadata"]) == 16


def test_duplicate_metadata_keys_are_refused(signed_in, simulator, assistants_thread):
    data = {"key_0": "a", "value_0": "1", "key_1": "a", "value_1": "2"}
    response = signed_in.post(reverse("thread_metadata", args=[assistants_thread.pk]), data, headers=HTMX)
    assert response.status_code == 400 and "appears twice" in unescape(response.content.decode())
    assert api_requests(simulator) == []


def test_the_apis_refusal_of_metadata_is_shown(signed_in, simulator, assistants_thread):
    simulator.state.enqueue_faults("500")
    response = signed_in.post(
        reverse("thread_metadata", args=[assistants_thread.pk]), metadata_post({"a": "b"}), headers=HTMX
    )
    assert response.status_code == 502
    assert "could not be reached or failed" in response.content.decode()
    assistants_thread.refresh_from_db()
    assert assistants_thread.metadata == {}


def test_kinds_without_metadata_say_so(signed_in, simulator, sim_credential, make_thread):
    remote = simulator.state.create_chatkit_thread("proj_alpha", user="u1")
    thread = make_thread(remote_id=remote["id"], kind=Thread.Kind.CHATKIT, credential=sim_credential)
    url = reverse("thread_metadata", args=[thread.pk])
    assert "no way to change the metadata of a ChatKit thread" in signed_in.get(url).content.decode()
    simulator.state.request_log.clear()
    response = signed_in.post(url, metadata_post({"a": "b"}), headers=HTMX)
    assert response.status_code == 400
    assert api_requests(simulator) == []


# --- Deleting -----------------------------------------------------------------------------------------


def test_the_confirmation_names_the_thread_as_a_dialog_or_a_page(signed_in, assistants_thread):
    url = reverse("thread_delete", args=[assistants_thread.pk])
    dialog = signed_in.get(url, {"origin": "list", "next": "/?status=active"}, headers=HTMX).content.decode()
    assert dialog.lstrip().startswith("<dialog") and assistants_thread.remote_id in dialog
    assert 'name="next" value="/?status=active"' in dialog
    page = signed_in.get(url).content.decode()
    assert "<html" in page and f"Delete {assistants_thread.remote_id}" in page
    assert "Also delete its items" not in page  # only conversations keep items apart


def test_deleting_asks_the_api_and_records_who_did_it(signed_in, simulator, alice, assistants_thread):
    response = signed_in.post(
        reverse("thread_delete", args=[assistants_thread.pk]), {"origin": "list"}, headers=HTMX
    )
    body = response.content.decode()
    assert response.status_code == 200
    assert f"Deleted {assistants_thread.remote_id}." in body
    assert f'<tr id="thread-row-{assistants_thread.pk}" hx-swap-oob="true">' in body
    assert assistants_thread.remote_id not in simulator.state.threads
    assistants_thread.refresh_from_db()
    assert assistants_thread.status == Thread.Status.DELETED
    assert assistants_thread.status_changed_by == alice
    assert StatusChange.objects.get(thread=assistants_thread).new_status == Thread.Status.DELETED


def test_deleting_without_javascript_goes_back_where_it_came_from(signed_in, assistants_thread):
    url = reverse("thread_delete", args=[assistants_thread.pk])
    response = signed_in.post(url, {"next": "/?owner=none"})
    assert response.status_code == 302 and response["Location"] == "/?owner=none"
    assert Thread.objects.get(pk=assistants_thread.pk).status == Thread.Status.DELETED


def test_a_next_elsewhere_is_ignored(signed_in, make_thread):
    thread = make_thread(status=Thread.Status.DELETED)
    response = signed_in.post(reverse("thread_delete", args=[thread.pk]), {"next": "https://evil.example/"})
    assert response["Location"] == reverse("thread_detail", args=[thread.pk])


def test_deleting_a_thread_the_api_no_longer_has_marks_it_gone(signed_in, sim_credential, make_thread):
    thread = make_thread(
        remote_id="thread_gone0000002", credential=sim_credential, last_activity_at=timezone.now()
    )
    response = signed_in.post(reverse("thread_delete", args=[thread.pk]), {"origin": "detail"}, headers=HTMX)
    assert response.status_code == 200
    thread.refresh_from_db()
    assert thread.status == Thread.Status.MISSING
    assert "no longer had" in response.content.decode()
    assert json.loads(response["HX-Trigger"]) == {"threadChanged": {}}  # the header asks for itself again


def test_a_failed_deletion_leaves_the_status_and_shows_the_error(signed_in, simulator, assistants_thread):
    simulator.state.enqueue_faults("503")
    response = signed_in.post(reverse("thread_delete", args=[assistants_thread.pk]), headers=HTMX)
    assert response.status_code == 502
    assert "was not deleted" in response.content.decode()
    assistants_thread.refresh_from_db()
    assert assistants_thread.status == Thread.Status.ACTIVE
    assert not StatusChange.objects.filter(thread=assistants_thread).exists()
    assert assistants_thread.remote_id in simulator.state.threads


def test_a_thread_already_deleted_is_not_sent_again(signed_in, simulator, make_thread):
    thread = make_thread(status=Thread.Status.DELETED)
    response = signed_in.post(reverse("thread_delete", args=[thread.pk]), headers=HTMX)
    assert response.status_code == 409 and "already deleted" in response.content.decode()
    assert api_requests(simulator) == []


@pytest.fixture
def conversation(simulator, sim_credential, make_thread):
    remote = simulator.state.create_conversation("proj_alpha", items=[("user", "a"), ("assistant", "b")])
    return make_thread(remote_id=remote["id"], kind=Thread.Kind.CONVERSATION, credential=sim_credential)


def test_a_conversation_is_deleted_with_its_items_by_default(signed_in, simulator, conversation):
    url = reverse("thread_delete", args=[conversation.pk])
    confirmation = signed_in.get(url, headers=HTMX).content.decode()
    assert "Also delete its items" in confirmation and "checked" in confirmation
    assert "keeps a conversation’s items" in confirmation
    response = signed_in.post(url, {"delete_items": "on"}, headers=HTMX)
    assert "with its items" in response.content.decode()
    assert simulator.state.stored_items(conversation.remote_id) == []
    assert Thread.objects.get(pk=conversation.pk).status == Thread.Status.DELETED


def test_a_conversation_can_be_deleted_leaving_its_items(signed_in, simulator, conversation):
    signed_in.post(reverse("thread_delete", args=[conversation.pk]), {}, headers=HTMX)
    assert len(simulator.state.stored_items(conversation.remote_id)) == 2
    assert Thread.objects.get(pk=conversation.pk).status == Thread.Status.DELETED


@pytest.mark.parametrize("who", ["alice", "bob"])
def test_a_conversation_too_long_to_delete_while_the_page_waits_goes_to_a_job(
    client, simulator, sim_credential, make_thread, who, request
):
    person = request.getfixturevalue(who)  # an admin follows jobs; bob, a member who owns it, does not
    remote = simulator.state.create_conversation("proj_alpha", items=[("user", f"m{n}") for n in range(150)])
    thread = make_thread(remote_id=remote["id"], kind=Thread.Kind.CONVERSATION, owner=person)
    client.force_login(person)
    response = client.post(reverse("thread_delete", args=[thread.pk]), {"delete_items": "on"}, headers=HTMX)
    assert response.status_code == 202
    page = response.content.decode()
    job = DeletionJob.objects.get()
    assert 'class="okbox"' in page
    assert f"are being deleted in the background (deletion job {job.pk})" in unescape(page)
    link = f'<a href="{reverse("job_detail", args=[job.pk])}">Follow job {job.pk}</a>'
    assert (link in page) is (who == "alice")
    assert len(simulator.state.stored_items(thread.remote_id)) == 150


# --- Export -------------------------------------------------------------------------------------------


def test_the_transcript_downloads_as_json_with_every_message(signed_in, simulator, assistants_thread):
    response = signed_in.get(reverse("thread_export", args=[assistants_thread.pk, "json"]))
    assert response.status_code == 200
    assert response["Content-Disposition"] == f'attachment; filename="{assistants_thread.remote_id}.json"'
    document = json.loads(response.content)
    assert document["thread"]["id"] == assistants_thread.remote_id
    assert [e["parts"][0]["text"] for e in document["entries"]] == [f"message number {i}" for i in range(45)]
    assert Thread.objects.get(pk=assistants_thread.pk).message_count == 45


def test_the_transcript_downloads_as_markdown(signed_in, simulator, conversation):
    response = signed_in.get(reverse("thread_export", args=[conversation.pk, "md"]))
    text = response.content.decode()
    assert response["Content-Type"].startswith("text/markdown")
    assert text.startswith(f"# {conversation.remote_id}")
    assert text.index("## user") < text.index("## assistant")


def test_a_failed_export_says_why_on_the_thread_page(signed_in, sim_credential, make_thread):
    thread = make_thread(remote_id="thread_gone0000003", credential=sim_credential)
    response = signed_in.get(reverse("thread_export", args=[thread.pk, "json"]), follow=True)
    assert "Export failed. The API no longer finds this thread" in response.content.decode()


# --- Fragments asked for without htmx, and message text ------------------------------------------------


@pytest.mark.parametrize(("method", "name"), [("get", "thread_facts"), ("post", "thread_refresh")])
def test_panel_fragments_send_a_plain_request_to_the_thread_page(signed_in, make_thread, method, name):
    thread = make_thread()
    response = getattr(signed_in, method)(reverse(name, args=[thread.pk]))
    assert response.status_code == 302 and response["Location"] == reverse("thread_detail", args=[thread.pk])


def test_a_refresh_is_never_set_off_by_a_get(signed_in, simulator, assistants_thread):
    response = signed_in.get(reverse("thread_refresh", args=[assistants_thread.pk]))
    assert response.status_code == 405 and api_requests(simulator) == []


def test_the_facts_fragment_shows_the_stored_facts_without_asking_the_api(
    signed_in, simulator, assistants_thread
):
    response = signed_in.get(reverse("thread_facts", args=[assistants_thread.pk]), headers=HTMX)
    assert response.content.decode().lstrip().startswith('<section id="thread-facts"')
    assert api_requests(simulator) == []


def test_links_from_the_api_are_shown_only_when_they_are_web_links(
    signed_in, simulator, sim_credential, make_thread
):
    remote = simulator.state.create_thread("proj_alpha")
    notes = [
        {
            "type": "url_citation",
            "text": "[1]",
            "url": "javascript:alert(1)",
            "start_index": 0,
            "end_index": 3,
        },
        {
            "type": "url_citation",
            "text": "[2]",
            "url": "https://example.com/a",
            "start_index": 4,
            "end_index": 7,
        },
    ]
    simulator.state.add_message(remote["id"], "assistant", content=[objects.text_part("[1] [2]", notes)])
    thread = make_thread(remote_id=remote["id"], credential=sim_credential)
    body = signed_in.get(reverse("thread_messages", args=[thread.pk]), headers=HTMX).content.decode()
    assert 'href="https://example.com/a"' in body
    assert "javascript:" not in body


@pytest.mark.parametrize(
    ("text", "html"),
    [
        ("one\ntwo", "one<br>\ntwo"),
        ("use `x < y`", "use <code>x &lt; y</code>"),
        ("```\nunclosed <b>", "<pre><code>unclosed &lt;b&gt;</code></pre>"),
        ('```"><script>\nx\n```', "<pre><code>x</code></pre>"),  # not a language: no attribute
        ("```js\na\n```\nafter", '<pre><code class="language-js">a</code></pre>\nafter'),
    ],
)
def test_message_text_becomes_safe_html(text, html):
    assert transcripts.message_html(text) == html


def test_a_persons_pages_may_call_the_api_only_so_often(signed_in, simulator, assistants_thread, settings):
    import time_machine
    from django.core.cache import cache

    settings.THREADSITE_PAGE_API_CALLS_PER_MINUTE = 2
    cache.clear()
    url = reverse("thread_messages", args=[assistants_thread.pk])
    with time_machine.travel(datetime(2026, 11, 23, 12, 0, 10, tzinfo=UTC), tick=False):
        bodies = [signed_in.get(url, headers=HTMX).content.decode() for _ in range(3)]
        assert "wait a moment" not in bodies[1]
        assert "More than 2 requests to the API from your pages this minute" in bodies[2]
        assert len(api_requests(simulator)) == 2
    with time_machine.travel(datetime(2026, 11, 23, 12, 1, 10, tzinfo=UTC), tick=False):
        assert "wait a moment" not in signed_in.get(url, headers=HTMX).content.decode()


def test_a_huge_message_is_folded_on_the_page(signed_in, simulator, assistants_thread):
    simulator.state.add_message(assistants_thread.remote_id, "user", "word " * 2_000_000)  # 10 MB
    response = signed_in.get(reverse("thread_messages", args=[assistants_thread.pk]), headers=HTMX)
    body = response.content.decode()
    assert len(body) < 200_000
    assert "9,980,000 more characters are not shown here: export the transcript" in body


def test_paging_to_the_start_records_the_message_count_and_updates_the_details(signed_in, assistants_thread):
    Thread.objects.filter(pk=assistants_thread.pk).update(message_count=4)  # stale: counted long ago
    url = reverse("thread_messages", args=[assistants_thread.pk])
    first = signed_in.get(url, headers=HTMX)
    assistants_thread.refresh_from_db()
    assert assistants_thread.message_count is None, "a first page of 20 with more proves 4 wrong"
    second = signed_in.get(older_link(first)[1], headers=HTMX)
    assert 'id="thread-message-count"' not in second.content.decode()
    third = signed_in.get(older_link(second)[1], headers=HTMX)
    assistants_thread.refresh_from_db()
    assert assistants_thread.message_count == 45
    assert re.search(r'<dd id="thread-message-count" hx-swap-oob="true">45</dd>', third.content.decode())


def test_a_forged_or_foreign_count_in_an_older_link_is_ignored(signed_in, assistants_thread, make_thread):
    url = reverse("thread_messages", args=[assistants_thread.pk])
    first = signed_in.get(url, headers=HTMX)
    second = signed_in.get(older_link(first)[1], headers=HTMX)
    last_link = older_link(second)[1]
    cursor = re.search(r"after=([^&]+)", last_link).group(1)
    forged = signed_in.get(url, {"after": cursor, "seen": "5000:forged"}, headers=HTMX)
    other = make_thread()
    foreign_seen = re.search(r"seen=([^&]+)", older_link(first)[1]).group(1)
    foreign = signed_in.get(url, {"after": cursor, "seen": foreign_seen}, headers=HTMX)
    assert forged.status_code == foreign.status_code == 200
    assert entries_shown(forged) == ["4", "3", "2", "1", "0"]
    assistants_thread.refresh_from_db()
    assert assistants_thread.message_count is None
    assert other.message_count is None


@pytest.mark.parametrize(
    ("name", "shown"), [("thread_history", "Status history"), ("thread_messages_panel", "Ask anyway")]
)
def test_a_panel_of_the_thread_page_renders_alone_for_htmx_and_redirects_otherwise(
    signed_in, make_thread, name, shown
):
    thread = make_thread(status=Thread.Status.DELETED)
    url = reverse(name, args=[thread.pk])
    fragment = signed_in.get(url, headers=HTMX)
    assert fragment.status_code == 200 and shown in fragment.content.decode()
    assert "<html" not in fragment.content.decode()
    assert signed_in.get(url).status_code == 302


def test_the_history_loads_itself_after_the_page_and_renders_inline_without_javascript(
    client, alice, make_thread
):
    thread = make_thread(status=Thread.Status.ACTIVE)
    thread.set_status(Thread.Status.MISSING, by=alice, reason="the API answered 404")
    client.force_login(alice)
    detail, history = reverse("thread_detail", args=[thread.pk]), reverse("thread_history", args=[thread.pk])
    with CaptureQueriesContext(connection) as queries:
        page = client.get(detail).content.decode()
    # The page reads neither the status changes nor the audit log: the panel asks for itself on load.
    assert not [q for q in queries if "statuschange" in q["sql"] or "auditevent" in q["sql"]]
    assert f'hx-get="{history}" hx-trigger="load, threadChanged from:body"' in page
    assert "the API answered 404" not in page
    assert 'href="?show=history#thread-history">Show the status history and the audit trail</a>' in page
    # What it loads, and what the link shows without JavaScript (also beside messages shown inline).
    loaded = client.get(history, headers=HTMX).content.decode()
    for body in (
        loaded,
        client.get(detail, {"show": "history"}).content.decode(),
        client.get(detail, {"show": "messages"}).content.decode(),
    ):
        assert "the API answered 404" in body and "Audit trail" in body and "?show=history" not in body
        assert f'hx-get="{history}" hx-trigger="threadChanged from:body"' in body


def test_the_messages_panel_stays_as_it_is_while_the_status_it_was_shown_for_holds(signed_in, make_thread):
    thread = make_thread(status=Thread.Status.DELETED)
    url = reverse("thread_messages_panel", args=[thread.pk])
    page = signed_in.get(reverse("thread_detail", args=[thread.pk])).content.decode()
    assert f'hx-get="{url}?shown=deleted" hx-trigger="threadChanged from:body"' in page
    kept = signed_in.get(url, {"shown": "deleted"}, headers=HTMX)
    assert kept.status_code == 204 and kept.content == b""  # the pages of messages loaded stay
    changed = signed_in.get(url, {"shown": "active"}, headers=HTMX)
    assert changed.status_code == 200 and "Ask anyway" in changed.content.decode()


def test_a_deletion_tells_the_thread_page_its_panels_changed(signed_in, simulator, assistants_thread):
    url = reverse("thread_delete", args=[assistants_thread.pk])
    response = signed_in.post(url, {"origin": "detail"}, headers=HTMX)
    assert response.status_code == 200
    assert "threadChanged" in response["HX-Trigger"]


# --- Why the API answers 404: only what applies to the kind and the thread's history ------------------


def words(thread) -> str:
    from threads_app.templatetags.threads_browse import not_found_words

    return not_found_words(thread)


def test_a_conversation_never_expires_and_has_no_sunset(make_thread):
    thread = make_thread(kind=Thread.Kind.CONVERSATION, last_activity_at=timezone.now() - timedelta(days=400))
    assert words(thread) == (
        "It may have been deleted outside Threadsite or created under another project than proj_alpha."
    )


def test_an_assistants_thread_names_its_expiry_only_once_it_is_past(make_thread):
    recent = make_thread(last_activity_at=timezone.now() - timedelta(days=3), newest_entry_id="msg_1")
    assert words(recent) == "It may have been deleted outside Threadsite."
    old = timezone.now() - timedelta(days=90)
    quiet = make_thread(last_activity_at=old, newest_entry_id="msg_1")
    expired_on = f"{old + timedelta(days=60):%Y-%m-%d}"
    assert words(quiet) == (
        "It may have been deleted outside Threadsite or "
        f"expired on {expired_on}, 60 days after its last activity."
    )


def test_an_assistants_thread_on_openai_names_the_sunset_once_it_is_past(make_thread, credential):
    credential.base_url = "https://api.openai.com/v1"
    credential.save()
    thread = make_thread(last_activity_at=datetime(2026, 8, 20, tzinfo=UTC), remote_created_at=BASE)
    assert words(thread) == (
        "It may have been deleted outside Threadsite or "
        "removed with the Assistants threads’ sunset on 2026-08-26."
    )


def test_a_thread_threadsite_deleted_is_said_to_be_so(make_thread, alice):
    thread = make_thread(kind=Thread.Kind.CONVERSATION)
    thread.set_status(Thread.Status.DELETED, by=alice, reason="Deleted through the API")
    assert words(thread) == (
        f"Threadsite deleted it on {timezone.now():%Y-%m-%d} by alice (Deleted through the API)."
    )


def test_a_failure_that_asking_again_cannot_mend_offers_no_retry(signed_in, simulator, assistants_thread):
    simulator.state.enqueue_faults("429_quota")
    url = reverse("thread_messages", args=[assistants_thread.pk])
    body = signed_in.get(url, headers=HTMX).content.decode()
    assert "out of quota" in body and ">Retry</a>" not in body
    broken = signed_in.get(url, {"after": "msg_doesnotexist123"}, headers=HTMX).content.decode()
    assert "The messages could not be loaded." in broken and ">Retry</a>" not in broken
    assert (
        f'href="/threads/{assistants_thread.pk}/?show=messages#messages">Show the newest messages</a>'
        in broken
    )


def test_saving_from_the_edit_pages_themselves_goes_back_to_the_thread_page(signed_in, make_thread):
    thread = make_thread(title="Before")
    edit = reverse("thread_edit", args=[thread.pk])
    response = signed_in.post(
        edit,
        {"title": "After", "owner": "", "end_user": ""},
        headers={**HTMX, "HX-Current-URL": f"http://testserver{edit}"},
    )
    assert response.status_code == 200 and response["HX-Redirect"] == f"/threads/{thread.pk}/"
    on_page = signed_in.post(
        edit,
        {"title": "Again", "owner": "", "end_user": ""},
        headers={**HTMX, "HX-Current-URL": f"http://testserver/threads/{thread.pk}/?show=messages"},
    )
    assert "HX-Redirect" not in on_page and 'id="thread-facts"' in on_page.content.decode()


# --- Forgetting a thread that is no longer active ----------------------------------------------------


def test_forget_removes_only_a_thread_that_is_not_active(make_thread, alice):
    from threads_app import importing

    missing = make_thread(status=Thread.Status.MISSING)
    missing.set_status(Thread.Status.DELETED, by=alice, reason="gone")
    active = make_thread()
    assert importing.forget_thread(missing, by=alice) == missing.remote_id
    assert not Thread.objects.filter(pk=missing.pk).exists()
    assert StatusChange.objects.get(remote_id=missing.remote_id).thread is None  # the history stays
    forgotten = AuditEvent.objects.get(action=AuditEvent.Action.THREAD_FORGOTTEN)
    assert (forgotten.actor, forgotten.remote_id) == (alice, missing.remote_id)
    with pytest.raises(importing.ForgetRefused):
        importing.forget_thread(active, by=alice)
    assert Thread.objects.filter(pk=active.pk).exists()
    assert (
        AuditEvent.objects.filter(action=AuditEvent.Action.THREAD_FORGOTTEN).count() == 1
    )  # a refusal records nothing


def test_only_admins_may_forget(signed_in, client, alice, bob, make_thread):
    thread = make_thread(status=Thread.Status.EXPIRED)
    url = reverse("thread_forget", args=[thread.pk])
    client.force_login(bob)  # a member
    assert client.get(url).status_code == 403
    assert client.post(url).status_code == 403
    client.force_login(alice)  # an admin
    assert signed_in.get(url, headers=HTMX).status_code == 200
    assert signed_in.post(url, {"remote_id": "thread_other"}).status_code == 400  # not confirmed
    response = signed_in.post(url, {"remote_id": thread.remote_id})
    assert response.status_code == 302 and response["Location"] == reverse("thread_list")
    assert not Thread.objects.filter(pk=thread.pk).exists()
    active = make_thread()
    refused = signed_in.post(reverse("thread_forget", args=[active.pk]), {"remote_id": active.remote_id})
    assert refused.status_code == 302 and Thread.objects.filter(pk=active.pk).exists()


# --- Citations --------------------------------------------------------------------------------------


def test_citation_markers_become_numbered_references_and_nothing_can_forge_one():
    from threads_app.entries import Annotation

    marker = "【7:1†policies.md】"
    cited = Annotation("file_citation", text=marker, file_id="file-1")
    link = Annotation("url_citation", text="", url="https://example.com")
    html, notes, rest = transcripts.cited_html(
        f"a{marker} b【2†x<b>.md】 \x001\x00 `code{marker}`", [cited, link]
    )
    assert html.count('<sup class="cite">') == 3
    assert "\x00" not in html and "x&lt;b&gt;.md" not in html and "<b>" not in html
    assert [(n.number, n.name, n.file_id) for n in notes] == [
        (1, "policies.md", "file-1"),
        (2, "x<b>.md", ""),
    ]
    assert rest == [link]
    folded, _, _ = transcripts.cited_html("x" * (transcripts.SHOWN_CHARACTERS - 1) + marker)
    assert "\x00" not in folded
