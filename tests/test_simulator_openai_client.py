"""The official `openai` package (3.x) driving the simulator: if it parses every answer into its own types
and raises its own errors, code written against the real API works against the simulator too."""

import openai
import pytest

# The package marks the whole Assistants API deprecated (it is sunset); the calls still work.
pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")


@pytest.fixture
def client(simulator, sim_key):
    return openai.OpenAI(api_key=sim_key("proj_alpha"), base_url=simulator.base_url, max_retries=0)


@pytest.fixture
def other_project(simulator, sim_key):
    return openai.OpenAI(api_key=sim_key("proj_beta"), base_url=simulator.base_url, max_retries=0)


def test_assistants_threads_work_through_the_official_client(client, other_project, simulator):
    threads = client.beta.threads
    thread = threads.create(messages=[{"role": "user", "content": f"Question {n}"} for n in range(3)])
    for n in range(3, 5):
        threads.messages.create(thread.id, role="user", content=f"Question {n}")

    first = threads.messages.list(thread.id, limit=2)
    assert [m.content[0].text.value for m in first.data] == ["Question 4", "Question 3"]
    assert first.has_more is True
    older = threads.messages.list(thread.id, limit=2, after=first.data[-1].id)
    assert [m.content[0].text.value for m in older.data] == ["Question 2", "Question 1"]
    newer = threads.messages.list(thread.id, limit=2, before=older.data[0].id)
    assert [m.content[0].text.value for m in newer.data] == ["Question 4", "Question 3"]
    assert len(list(threads.messages.list(thread.id, limit=2, order="asc"))) == 5  # auto-paging

    assert threads.update(thread.id, metadata={"stage": "triaged"}).metadata == {"stage": "triaged"}
    assert threads.retrieve(thread.id).metadata == {"stage": "triaged"}
    message = threads.messages.retrieve(first.data[0].id, thread_id=thread.id)
    assert message.role == "user"

    run = simulator.state.add_run(thread.id)
    assert [r.id for r in threads.runs.list(thread.id)] == [run["id"]]

    with pytest.raises(openai.NotFoundError, match="No thread found with id"):
        other_project.beta.threads.retrieve(thread.id)
    assert threads.delete(thread.id).deleted is True
    with pytest.raises(openai.NotFoundError):
        threads.retrieve(thread.id)


def test_conversations_work_through_the_official_client(client, other_project, simulator):
    conversations = client.conversations
    conversation = conversations.create(
        items=[{"role": "user", "content": "Hello"}, {"role": "assistant", "content": "Hi, how can I help?"}],
        metadata={"topic": "greeting"},
    )
    added = conversations.items.create(
        conversation.id, items=[{"role": "user", "content": f"Follow-up {n}"} for n in range(3)]
    )
    assert [item.content[0].text for item in added.data] == ["Follow-up 0", "Follow-up 1", "Follow-up 2"]

    page = conversations.items.list(conversation.id, limit=2)
    assert [item.content[0].text for item in page.data] == ["Follow-up 2", "Follow-up 1"]
    rest = conversations.items.list(conversation.id, limit=2, after=page.data[-1].id)
    assert [item.content[0].text for item in rest.data] == ["Follow-up 0", "Hi, how can I help?"]
    everything = list(conversations.items.list(conversation.id, limit=2, order="asc"))
    assert [item.role for item in everything] == ["user", "assistant", "user", "user", "user"]

    item = conversations.items.retrieve(added.data[0].id, conversation_id=conversation.id)
    assert item.content[0].text == "Follow-up 0"
    assert conversations.update(conversation.id, metadata={"topic": "sales"}).metadata == {"topic": "sales"}
    assert conversations.items.delete(item.id, conversation_id=conversation.id).id == conversation.id

    with pytest.raises(openai.NotFoundError):
        other_project.conversations.retrieve(conversation.id)
    assert conversations.delete(conversation.id).deleted is True
    with pytest.raises(openai.NotFoundError):
        conversations.items.list(conversation.id)
    # Deleting a conversation leaves its items stored, as the API does.
    assert len(simulator.state.stored_items(conversation.id)) == 4


def test_chatkit_threads_work_through_the_official_client(client, other_project, simulator):
    # The API creates ChatKit threads only through ChatKit sessions: seed them directly.
    state = simulator.state
    mine = [
        state.create_chatkit_thread(
            "proj_alpha",
            user="user_ada",
            title=f"Ada {n}",
            created_at=1_790_000_000 + n,
            items=[("user", "Hi")],
        )
        for n in range(5)
    ]
    state.create_chatkit_thread("proj_alpha", user="user_grace", created_at=1_790_000_100)
    chatkit = client.beta.chatkit.threads

    first = chatkit.list(user="user_ada", limit=2)
    assert [t.title for t in first.data] == ["Ada 4", "Ada 3"]
    after = chatkit.list(user="user_ada", limit=2, after=first.data[-1].id)
    assert [t.title for t in after.data] == ["Ada 2", "Ada 1"]
    before = chatkit.list(user="user_ada", limit=2, before=after.data[0].id)
    assert [t.title for t in before.data] == ["Ada 4", "Ada 3"]
    assert len(list(chatkit.list(user="user_ada", limit=2))) == 5  # auto-paging follows last_id
    assert len(list(chatkit.list())) == 6

    thread = chatkit.retrieve(mine[0]["id"])
    assert (thread.user, thread.status.type) == ("user_ada", "active")
    items = chatkit.list_items(thread.id)
    assert [item.type for item in items.data] == ["chatkit.user_message"]

    with pytest.raises(openai.NotFoundError):
        other_project.beta.chatkit.threads.retrieve(thread.id)
    assert list(other_project.beta.chatkit.threads.list()) == []
    assert chatkit.delete(thread.id).deleted is True
    with pytest.raises(openai.NotFoundError):
        chatkit.retrieve(thread.id)


def test_the_official_client_raises_its_own_errors_for_refusals(client, simulator):
    stranger = openai.OpenAI(api_key="sk-nobody-0000", base_url=simulator.base_url, max_retries=0)
    with pytest.raises(openai.AuthenticationError) as refused:
        stranger.conversations.retrieve("conv_123")
    assert refused.value.code == "invalid_api_key"
    with pytest.raises(openai.BadRequestError) as bad_limit:
        client.beta.chatkit.threads.list(limit=101)
    assert bad_limit.value.param == "limit"
    simulator.state.enqueue_faults("429")
    with pytest.raises(openai.RateLimitError):
        client.conversations.retrieve("conv_123")
    simulator.state.enqueue_faults("503")
    with pytest.raises(openai.InternalServerError):
        client.conversations.retrieve("conv_123")


def test_the_official_client_retries_through_faults(simulator, sim_key):
    client = openai.OpenAI(api_key=sim_key("proj_alpha"), base_url=simulator.base_url, max_retries=2)
    # Record the waits the client computes, and skip them: the test must not sleep.
    waits, compute = [], client._calculate_retry_timeout
    client._calculate_retry_timeout = lambda *args: waits.append(compute(*args)) or 0
    conversation = simulator.state.create_conversation("proj_alpha")
    simulator.state.enqueue_faults("429_ms", "drop")
    assert client.conversations.retrieve(conversation["id"]).id == conversation["id"]
    assert [status for _, _, status in simulator.state.request_log] == [429, None, 200]
    assert waits[0] == pytest.approx(0.25)  # retry-after-ms honoured
