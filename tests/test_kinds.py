"""The kind adapters: activity and status, the registry, what each kind refuses, and the API calls made
against the simulator (paging, retrieving, updating, deleting, discovering).

How each kind's messages and items are read is tested in `test_entries.py`.
"""

import time
from datetime import UTC, datetime, timedelta

import pytest
import time_machine
from django.utils import timezone

from threads_app.client import APIError, Client, NotFound
from threads_app.entries import Entry, Page, RemoteThread
from threads_app.kinds import (
    ADAPTERS,
    AssistantsThreads,
    ChatKitThreads,
    Conversations,
    NotSupported,
    adapter_for,
)
from threads_app.models import Thread

T0 = 1_760_000_000  # 2025-10-09T08:53:20Z
assistants, conversations, chatkit = AssistantsThreads(), Conversations(), ChatKitThreads()


def at(seconds: int) -> datetime:
    return datetime.fromtimestamp(seconds, tz=UTC)


# --- Activity and status ------------------------------------------------------------------------------


def remote(kind, created=T0, updated=None):
    return RemoteThread(
        id="x_1", kind=kind, created_at=at(created), metadata={}, updated_at=updated and at(updated)
    )


def newest(*seconds):
    return Page([Entry(f"m{s}", "user", "message", at(s)) for s in seconds], None, None, False)


def test_assistants_activity_is_the_newest_message_else_creation():
    assert assistants.last_activity(remote(assistants.kind), newest(T0 + 50, T0 + 90)) == (
        at(T0 + 90),
        Thread.ActivitySource.MESSAGE,
    )
    assert assistants.last_activity(remote(assistants.kind), newest()) == (
        at(T0),
        Thread.ActivitySource.CREATED,
    )
    assert assistants.last_activity(remote(assistants.kind), None) == (at(T0), Thread.ActivitySource.CREATED)


def test_conversation_activity_is_its_creation_whatever_the_items():
    assert conversations.last_activity(remote(conversations.kind), newest(T0 + 500)) == (
        at(T0),
        Thread.ActivitySource.CREATED,
    )


def test_chatkit_activity_is_the_newest_item_else_creation():
    assert chatkit.last_activity(remote(chatkit.kind), newest(T0 + 7)) == (
        at(T0 + 7),
        Thread.ActivitySource.MESSAGE,
    )
    assert chatkit.last_activity(remote(chatkit.kind), None) == (at(T0), Thread.ActivitySource.CREATED)


def test_a_remote_update_time_counts_when_a_server_gives_one():
    assert conversations.last_activity(remote(conversations.kind, updated=T0 + 60), None) == (
        at(T0 + 60),
        Thread.ActivitySource.UPDATED,
    )


def test_without_any_time_the_activity_is_unknown():
    bare = RemoteThread(id="conv_1", kind=conversations.kind, created_at=None, metadata={})
    assert conversations.last_activity(bare, None) == (None, Thread.ActivitySource.UNKNOWN)


def test_a_vanished_assistants_thread_idle_for_60_days_has_expired(credential):
    now = timezone.now()
    idle = Thread(credential=credential, kind=assistants.kind, last_activity_at=now - timedelta(days=61))
    recent = Thread(credential=credential, kind=assistants.kind, last_activity_at=now - timedelta(days=5))
    assert assistants.status_when_not_found(idle) == Thread.Status.EXPIRED
    assert assistants.status_when_not_found(recent) == Thread.Status.MISSING
    assert conversations.status_when_not_found(idle) == Thread.Status.MISSING
    assert chatkit.status_when_not_found(idle) == Thread.Status.MISSING


def test_assistants_threads_on_openai_expired_with_the_sunset(credential):
    credential.base_url = "https://api.openai.com/v1"
    recent = Thread(
        credential=credential, kind=assistants.kind, last_activity_at=datetime(2026, 8, 20, tzinfo=UTC)
    )
    with time_machine.travel(datetime(2026, 8, 25, 23, tzinfo=UTC), tick=False):
        assert assistants.status_when_not_found(recent) == Thread.Status.MISSING
    with time_machine.travel(datetime(2026, 8, 26, 1, tzinfo=UTC), tick=False):
        assert assistants.status_when_not_found(recent) == Thread.Status.EXPIRED
    credential.base_url = "https://assistants.example.com/v1"
    with time_machine.travel(datetime(2026, 8, 26, 1, tzinfo=UTC), tick=False):
        assert assistants.status_when_not_found(recent) == Thread.Status.MISSING


# --- Adapters: registry and refusals ----------------------------------------------------------------


def test_adapters_are_found_by_kind_or_by_thread(credential):
    assert adapter_for(Thread.Kind.CHATKIT) is ADAPTERS["chatkit_thread"]
    assert isinstance(adapter_for(Thread(kind=Thread.Kind.CONVERSATION)), Conversations)
    assert {a.beta for a in ADAPTERS.values()} == {"assistants=v2", None, "chatkit_beta=v1"}
    with pytest.raises(ValueError, match="Unknown kind"):
        adapter_for("fax")


@pytest.mark.parametrize(
    "remote_id",
    [
        "",
        "thread_1/../../files",
        "../../threads/x",
        "thread_abc\r\nX: y",
        "conv_abcdef123",
        "thread_" + "a" * 300,
    ],
)
def test_a_malformed_id_never_changes_which_endpoint_is_called(remote_id):
    with pytest.raises(APIError, match="is not a valid Assistants thread ID; nothing was sent") as raised:
        assistants.thread_path(remote_id)
    assert raised.value.code == "invalid_id"


def test_paths_are_built_from_valid_ids():
    assert chatkit.entries_path("cthr_abc123") == "/chatkit/threads/cthr_abc123/items"
    assert assistants.thread_path("thread_abc123") == "/threads/thread_abc123"


def test_what_a_kind_cannot_do_is_refused_before_any_request():
    nothing = object()  # Any use of this "client" would fail with AttributeError.
    with pytest.raises(NotSupported):
        chatkit.update_metadata(nothing, "cthr_abc123", {"a": "b"})
    with pytest.raises(NotSupported):
        assistants.discover(nothing)
    with pytest.raises(NotSupported):
        conversations.discover(nothing, user="u")
    with pytest.raises(NotSupported):
        conversations.page(nothing, "conv_abc123", before="msg_1")
    with pytest.raises(NotSupported):
        chatkit.list_runs(nothing, "cthr_abc123")
    with pytest.raises(ValueError, match="order"):
        assistants.page(nothing, "thread_abc123", order="newest")


# --- Against the simulator --------------------------------------------------------------------------

PROJECT = "proj_kinds"
KEY = "sk-sim-kinds-tests-31337"
COUNT = 25  # entries per seeded thread: three pages of 10


@pytest.fixture
def sim(simulator):
    simulator.state.add_key(KEY, PROJECT)
    return simulator


@pytest.fixture
def client(sim):
    return Client(base_url=sim.base_url, api_key=KEY, project=PROJECT, max_retries=0, timeout=(2, 5))


def seed(sim, kind) -> tuple[str, list[str], datetime]:
    """A thread of `kind` holding COUNT entries one minute apart: its ID, the entries' IDs oldest first,
    and its creation time."""
    state = sim.state
    created = (timezone.now() - timedelta(days=1)).replace(microsecond=0)
    entries = [("user" if i % 2 == 0 else "assistant", f"m{i}") for i in range(COUNT)]
    if kind == Thread.Kind.ASSISTANTS:
        dated = [
            (role, text, {"created_at": created + timedelta(minutes=i)})
            for i, (role, text) in enumerate(entries)
        ]
        thread_id = state.create_thread(PROJECT, created_at=created, metadata={"team": "a"}, messages=dated)[
            "id"
        ]
        return thread_id, [m["id"] for m in state.threads[thread_id].messages], created
    if kind == Thread.Kind.CONVERSATION:
        thread_id = state.create_conversation(
            PROJECT, created_at=created, metadata={"team": "a"}, items=entries
        )["id"]
        return thread_id, [i["id"] for i in state.conversations[thread_id].items], created
    dated = [
        (role, text, {"created_at": created + timedelta(minutes=i)}) for i, (role, text) in enumerate(entries)
    ]
    thread_id = state.create_chatkit_thread(
        PROJECT, user="user_1", title="Billing", created_at=created, items=dated
    )["id"]
    return thread_id, [i["id"] for i in state.chatkit_threads[thread_id].items], created


KINDS = [Thread.Kind.ASSISTANTS, Thread.Kind.CONVERSATION, Thread.Kind.CHATKIT]


@pytest.mark.parametrize("kind", KINDS)
def test_each_kind_retrieves_a_thread(sim, client, kind):
    thread_id, _, created = seed(sim, kind)
    remote = adapter_for(kind).retrieve(client, thread_id)
    assert (remote.id, remote.kind, remote.created_at) == (thread_id, kind, created)
    if kind == Thread.Kind.CHATKIT:
        assert (remote.title, remote.user, remote.metadata) == ("Billing", "user_1", {})
    else:
        assert remote.metadata == {"team": "a"}


@pytest.mark.parametrize("kind", KINDS)
def test_each_kind_pages_newest_first_across_cursors_without_gaps_or_duplicates(sim, client, kind):
    thread_id, oldest_first, _ = seed(sim, kind)
    adapter = adapter_for(kind)
    seen, sizes, cursor = [], [], None
    while True:
        page = adapter.page(client, thread_id, limit=10, after=cursor)
        seen += [entry.id for entry in page.entries]
        sizes.append(len(page.entries))
        cursor = page.next_cursor
        if cursor is None:
            break
    assert seen == oldest_first[::-1]
    assert sizes == [10, 10, 5]
    newest = adapter.page(client, thread_id, limit=1).entries[0]
    assert (newest.text, newest.role) == (f"m{COUNT - 1}", "user")


@pytest.mark.parametrize("kind", KINDS)
def test_each_kind_iterates_every_entry_oldest_first(sim, client, kind):
    thread_id, oldest_first, created = seed(sim, kind)
    entries = list(adapter_for(kind).iter_entries(client, thread_id))
    assert [entry.id for entry in entries] == oldest_first
    assert [entry.text for entry in entries] == [f"m{i}" for i in range(COUNT)]
    if adapter_for(kind).supports_timestamps:
        assert [entry.created_at for entry in entries] == [
            created + timedelta(minutes=i) for i in range(COUNT)
        ]
    else:
        assert {entry.created_at for entry in entries} == {None}


@pytest.mark.parametrize("kind", KINDS)
def test_each_kind_dates_its_last_activity_from_what_the_api_shows(sim, client, kind):
    thread_id, _, created = seed(sim, kind)
    adapter = adapter_for(kind)
    remote = adapter.retrieve(client, thread_id)
    newest = adapter.page(client, thread_id, limit=1) if adapter.supports_timestamps else None
    expected = {
        Thread.Kind.ASSISTANTS: (created + timedelta(minutes=COUNT - 1), Thread.ActivitySource.MESSAGE),
        Thread.Kind.CONVERSATION: (created, Thread.ActivitySource.CREATED),
        Thread.Kind.CHATKIT: (created + timedelta(minutes=COUNT - 1), Thread.ActivitySource.MESSAGE),
    }
    assert adapter.last_activity(remote, newest) == expected[kind]


@pytest.mark.parametrize("kind", [Thread.Kind.ASSISTANTS, Thread.Kind.CONVERSATION])
def test_metadata_is_updated_where_the_api_allows_it(sim, client, kind):
    thread_id, _, _ = seed(sim, kind)
    adapter = adapter_for(kind)
    updated = adapter.update_metadata(client, thread_id, {"team": "b", "ticket": "T-1"})
    assert updated.metadata == {"team": "b", "ticket": "T-1"}
    assert adapter.retrieve(client, thread_id).metadata == {"team": "b", "ticket": "T-1"}


def test_chatkit_metadata_cannot_be_updated(sim, client):
    thread_id, _, _ = seed(sim, Thread.Kind.CHATKIT)
    with pytest.raises(NotSupported):
        chatkit.update_metadata(client, thread_id, {"team": "b"})
    assert sim.state.request_log == []


@pytest.mark.parametrize("kind", KINDS)
def test_each_kind_deletes_a_thread(sim, client, kind):
    thread_id, _, _ = seed(sim, kind)
    adapter = adapter_for(kind)
    adapter.delete(client, thread_id)
    with pytest.raises(NotFound):
        adapter.retrieve(client, thread_id)


def test_deleting_a_conversation_alone_leaves_its_items_stored(sim, client):
    thread_id, item_ids, _ = seed(sim, Thread.Kind.CONVERSATION)
    conversations.delete(client, thread_id)
    assert [item["id"] for item in sim.state.stored_items(thread_id)] == item_ids


def test_deleting_a_conversations_items_really_erases_them(sim, client):
    thread_id, item_ids, _ = seed(sim, Thread.Kind.CONVERSATION)
    assert conversations.delete_items(client, thread_id) == COUNT
    with pytest.raises(NotFound):
        client.get(f"/conversations/{thread_id}/items/{item_ids[0]}")
    assert conversations.page(client, thread_id).entries == []
    assert conversations.retrieve(client, thread_id).id == thread_id  # Only the items went.


def test_a_conversation_whose_items_fill_one_page_is_emptied_while_a_person_waits(sim, client):
    # The items are listed a hundred at a time: 25 are one page, deleted within the deadline, where the
    # API's default page of 20 would say there is more and hand the work to a job.
    thread_id, _, _ = seed(sim, Thread.Kind.CONVERSATION)
    assert conversations.delete_items(client, thread_id, until=time.monotonic() + 60) == COUNT
    assert sim.state.stored_items(thread_id) == []


def test_an_item_deleted_meanwhile_is_not_counted_as_deleted_here(sim, client, monkeypatch):
    thread_id, item_ids, _ = seed(sim, Thread.Kind.CONVERSATION)
    send = client.delete

    def delete(path, **options):
        if path.endswith(item_ids[0]):  # someone else deleted it between the listing and this call
            send(path, **options)
        return send(path, **options)

    monkeypatch.setattr(client, "delete", delete)
    assert conversations.delete_items(client, thread_id) == COUNT - 1
    assert sim.state.stored_items(thread_id) == []


def test_items_still_listed_after_their_deletion_was_answered_end_the_work_with_an_error(
    sim, client, monkeypatch
):
    # A server that answers each DELETE but keeps the items: past the first page, the same items come back
    # on the next look, and would be asked for ever.
    thread_id = sim.state.create_conversation(PROJECT, items=[("user", f"m{n}") for n in range(150)])["id"]
    monkeypatch.setattr(client, "delete", lambda path, **options: {"deleted": True})
    with pytest.raises(APIError) as raised:
        conversations.delete_items(client, thread_id)
    assert raised.value.message == f"Items of {thread_id} were still listed after being deleted"
    assert len(sim.state.stored_items(thread_id)) == 150


def test_a_deletion_to_confirm_looks_at_the_items_again_even_when_they_filled_one_page(
    sim, client, monkeypatch
):
    thread_id, _, _ = seed(sim, Thread.Kind.CONVERSATION)  # one page of items: no second look needed
    monkeypatch.setattr(client, "delete", lambda path, **options: {"deleted": True})  # answers, keeps
    assert conversations.delete_items(client, thread_id) == COUNT  # the API's word, a request saved
    with pytest.raises(APIError, match="were still listed after being deleted"):
        conversations.delete(client, thread_id, delete_items=True, confirm=True)
    assert conversations.retrieve(client, thread_id).id == thread_id, "not deleted over its items"


def test_deleting_a_conversation_with_its_items_erases_everything(sim, client):
    thread_id, _, _ = seed(sim, Thread.Kind.CONVERSATION)
    conversations.delete(client, thread_id, delete_items=True)
    assert sim.state.stored_items(thread_id) == []
    with pytest.raises(NotFound):
        conversations.retrieve(client, thread_id)


def test_assistants_threads_page_backwards_with_before(sim, client):
    thread_id, oldest_first, _ = seed(sim, Thread.Kind.ASSISTANTS)
    page = assistants.page(client, thread_id, limit=5, before=oldest_first[10], order="asc")
    assert [entry.id for entry in page.entries] == oldest_first[5:10]


def test_assistants_runs_are_listed_as_entries(sim, client):
    thread_id, _, created = seed(sim, Thread.Kind.ASSISTANTS)
    runs = [sim.state.add_run(thread_id, created_at=created + timedelta(minutes=m)) for m in (1, 2, 3)]
    page = assistants.list_runs(client, thread_id, limit=2)
    assert [entry.id for entry in page.entries] == [runs[2]["id"], runs[1]["id"]]
    assert page.entries[0].type == "run"
    assert page.entries[0].assistant_id == runs[2]["assistant_id"]
    rest = assistants.list_runs(client, thread_id, limit=2, after=page.next_cursor)
    assert [entry.id for entry in rest.entries] == [runs[0]["id"]]
    assert rest.next_cursor is None


def test_chatkit_threads_are_discovered_across_pages_and_by_user(sim, client):
    state = sim.state
    start = timezone.now() - timedelta(days=3)
    mine = [
        state.create_chatkit_thread(PROJECT, user=f"user_{i % 3}", created_at=start + timedelta(seconds=i))[
            "id"
        ]
        for i in range(130)
    ]
    state.create_chatkit_thread("proj_elsewhere", user="user_0")
    discovered = list(chatkit.discover(client))
    assert [remote.id for remote in discovered] == mine[::-1]
    assert {remote.kind for remote in discovered} == {Thread.Kind.CHATKIT}
    of_user = list(chatkit.discover(client, user="user_1"))
    assert [remote.id for remote in of_user] == mine[1::3][::-1]
    assert {remote.user for remote in of_user} == {"user_1"}
    assert [path for _, path, _ in state.request_log].count("/v1/chatkit/threads") == 2 + 1


def test_adapters_work_through_an_azure_style_client(sim):
    thread_id, oldest_first, _ = seed(sim, Thread.Kind.ASSISTANTS)
    azure = Client(base_url=sim.base_url, api_key=KEY, azure_api_version="2024-05-01-preview", max_retries=0)
    assert [entry.id for entry in assistants.iter_entries(azure, thread_id)] == oldest_first
