"""docs/openai_register_hook.py, the snippet for teams that will not put the proxy in the path: the official
client talks to the simulator directly, and what it creates is registered through the REST API of a live
server; with Threadsite down, the application's calls still succeed."""

import importlib.util
import logging
from pathlib import Path

import openai
import pytest

from threads_app import tokens
from threads_app.models import Thread

pytestmark = [
    pytest.mark.filterwarnings("ignore::DeprecationWarning"),
    pytest.mark.django_db(transaction=True),
]
SNIPPET = Path(__file__).resolve().parent.parent / "docs" / "openai_register_hook.py"


@pytest.fixture(scope="module")
def hook():
    spec = importlib.util.spec_from_file_location("openai_register_hook", SNIPPET)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_created_threads_and_conversations_are_registered(
    hook, live_server, simulator, sim_key, sim_credential, alice
):
    made = tokens.create("app", scopes=["register"], credential=sim_credential, owner=alice)
    http_client = hook.registering_http_client(live_server.url, made.secret)
    client = openai.OpenAI(
        api_key=sim_key("proj_alpha"), base_url=simulator.base_url, http_client=http_client
    )
    thread = client.beta.threads.create()
    conversation = client.conversations.create(extra_headers={"X-Threadsite-End-User": "cust-7"})
    client.conversations.items.create(conversation.id, items=[{"role": "user", "content": "Hi"}])
    client.conversations.retrieve(conversation.id)
    http_client.registrar.flush()
    registered = {t.remote_id: t for t in Thread.objects.all()}
    assert set(registered) == {thread.id, conversation.id}
    assert registered[conversation.id].end_user == "cust-7"
    assert registered[thread.id].owner == alice and registered[thread.id].source == Thread.Source.API
    assert registered[thread.id].credential == sim_credential


def test_with_threadsite_down_the_application_still_gets_its_answers(hook, simulator, sim_key, caplog):
    http_client = hook.registering_http_client("http://127.0.0.1:9", "tsk_unused", timeout=1)
    client = openai.OpenAI(
        api_key=sim_key("proj_alpha"), base_url=simulator.base_url, http_client=http_client
    )
    with caplog.at_level(logging.WARNING, logger="threadsite.register"):
        conversation = client.conversations.create()
        http_client.registrar.flush()
    assert conversation.id.startswith("conv_")
    assert f"{conversation.id} was not registered" in caplog.text
