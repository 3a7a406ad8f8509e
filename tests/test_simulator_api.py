"""The simulator's API behaviour: keys and projects, 60-day expiry, paging, refusals of bad input."""

import threading
from datetime import timedelta

import pytest
import requests

ASSISTANTS = {"OpenAI-Beta": "assistants=v2"}
CHATKIT = {"OpenAI-Beta": "chatkit_beta=v1"}


class Api:
    def __init__(self, simulator, api_key):
        self.base_url = simulator.base_url
        self.session = requests.Session()
        self.session.headers["Authorization"] = f"Bearer {api_key}"

    def get(self, path, **kwargs):
        return self.session.get(self.base_url + path, timeout=5, **kwargs)

    def post(self, path, **kwargs):
        return self.session.post(self.base_url + path, timeout=5, **kwargs)

    def delete(self, path, **kwargs):
        return self.session.delete(self.base_url + path, timeout=5, **kwargs)


@pytest.fixture
def alpha(simulator, sim_key):
    return Api(simulator, sim_key("proj_alpha"))


@pytest.fixture
def beta(simulator, sim_key):
    return Api(simulator, sim_key("proj_beta"))


def error_of(response, status):
    assert response.status_code == status, response.text
    return response.json()["error"]


# --- Keys and projects ----------------------------------------------------------------------------


def test_objects_belong_to_the_project_of_the_key_that_created_them(alpha, beta, simulator):
    thread = alpha.post("/threads", headers=ASSISTANTS, json={}).json()
    conversation = alpha.post("/conversations", json={}).json()
    chatkit = simulator.state.create_chatkit_thread("proj_alpha", user="user_ada")

    assert error_of(beta.get(f"/threads/{thread['id']}", headers=ASSISTANTS), 404) == {
        "message": f"No thread found with id '{thread['id']}'.",
        "type": "invalid_request_error",
        "param": None,
        "code": None,
    }
    assert error_of(beta.get(f"/conversations/{conversation['id']}/items"), 404)["message"] == (
        f"Conversation with id '{conversation['id']}' not found."
    )
    assert error_of(beta.delete(f"/chatkit/threads/{chatkit['id']}", headers=CHATKIT), 404)["message"] == (
        f"Thread with id '{chatkit['id']}' not found."
    )
    assert beta.get("/chatkit/threads", headers=CHATKIT).json()["data"] == []
    # Nothing was changed by the refused requests.
    assert alpha.get(f"/threads/{thread['id']}", headers=ASSISTANTS).status_code == 200
    assert alpha.get(f"/conversations/{conversation['id']}").status_code == 200
    assert alpha.get(f"/chatkit/threads/{chatkit['id']}", headers=CHATKIT).status_code == 200


def test_a_missing_key_is_refused(simulator):
    response = requests.get(f"{simulator.base_url}/conversations/conv_1", timeout=5)
    assert error_of(response, 401)["message"].startswith("You didn't provide an API key.")


def test_an_unknown_key_is_refused_with_the_key_masked(simulator):
    key = "sk-proj-SECRETsecretSECRET-wxyz"
    response = Api(simulator, key).get("/conversations/conv_1")
    error = error_of(response, 401)
    assert error["code"] == "invalid_api_key"
    assert error["message"].startswith("Incorrect API key provided: sk-***")
    assert "wxyz." in error["message"]
    assert "SECRET" not in error["message"] and "proj" not in error["message"]


def test_project_and_organization_headers_must_match_the_key(alpha):
    assert alpha.get("/conversations/conv_1", headers={"OpenAI-Project": "proj_alpha"}).status_code == 404
    mismatched = alpha.get("/conversations/conv_1", headers={"OpenAI-Project": "proj_beta"})
    assert error_of(mismatched, 401)["code"] == "mismatched_project"
    wrong_org = alpha.get("/conversations/conv_1", headers={"OpenAI-Organization": "org-else"})
    assert error_of(wrong_org, 401)["code"] == "mismatched_organization"
    assert alpha.get("/conversations/conv_1", headers={"OpenAI-Organization": "org-sim"}).status_code == 404


def test_beta_apis_require_their_beta_header(alpha, simulator):
    thread = simulator.state.create_thread("proj_alpha")
    error = error_of(alpha.get(f"/threads/{thread['id']}"), 400)
    assert error["code"] == "invalid_beta"
    assert "'OpenAI-Beta: assistants=v2'" in error["message"]
    assert error_of(alpha.get("/chatkit/threads", headers=ASSISTANTS), 400)["code"] == "invalid_beta"
    both = {"OpenAI-Beta": "chatkit_beta=v1, assistants=v2"}
    assert alpha.get(f"/threads/{thread['id']}", headers=both).status_code == 200


def test_every_answer_carries_its_own_request_id(alpha, simulator):
    responses = [
        alpha.get("/conversations/conv_1"),
        alpha.get("/nowhere"),
        requests.get(f"{simulator.base_url}/conversations", timeout=5),
        alpha.post("/conversations", json={}),
    ]
    ids = [response.headers["x-request-id"] for response in responses]
    assert all(request_id.startswith("req_") for request_id in ids)
    assert len(set(ids)) == len(ids)


def test_an_unknown_url_gets_the_apis_invalid_url_answer(alpha):
    assert error_of(alpha.get("/nowhere"), 404)["message"] == "Invalid URL (GET /v1/nowhere)"
    assert error_of(alpha.delete("/conversations/conv_1/items"), 404)["message"].startswith("Invalid URL")


# --- Expiry of Assistants threads -----------------------------------------------------------------


def test_an_assistants_thread_idle_for_60_days_disappears(alpha, simulator, sim_clock):
    idle_since = sim_clock.now - timedelta(days=59, hours=23)
    thread = simulator.state.create_thread("proj_alpha", created_at=idle_since, messages=[("user", "Hi")])
    assert alpha.get(f"/threads/{thread['id']}", headers=ASSISTANTS).status_code == 200

    sim_clock.advance(hours=1)

    response = alpha.get(f"/threads/{thread['id']}/messages", headers=ASSISTANTS)
    assert error_of(response, 404)["message"] == f"No thread found with id '{thread['id']}'."
    assert thread["id"] not in simulator.state.threads


def test_a_new_message_keeps_an_assistants_thread_alive(alpha, simulator, sim_clock):
    thread = simulator.state.create_thread("proj_alpha", created_at=sim_clock.now - timedelta(days=59))
    posted = alpha.post(
        f"/threads/{thread['id']}/messages", headers=ASSISTANTS, json={"role": "user", "content": "!"}
    )
    assert posted.status_code == 200

    sim_clock.advance(days=59)
    assert alpha.get(f"/threads/{thread['id']}", headers=ASSISTANTS).status_code == 200
    sim_clock.advance(days=1)
    assert alpha.get(f"/threads/{thread['id']}", headers=ASSISTANTS).status_code == 404


def test_conversations_and_chatkit_threads_do_not_expire(alpha, simulator, sim_clock):
    long_ago = sim_clock.now - timedelta(days=400)
    conversation = simulator.state.create_conversation("proj_alpha", created_at=long_ago)
    chatkit = simulator.state.create_chatkit_thread("proj_alpha", user="user_ada", created_at=long_ago)
    assert alpha.get(f"/conversations/{conversation['id']}").status_code == 200
    assert alpha.get(f"/chatkit/threads/{chatkit['id']}", headers=CHATKIT).status_code == 200


# --- Paging ---------------------------------------------------------------------------------------


@pytest.fixture
def five_messages(simulator, sim_clock):
    start = sim_clock.now - timedelta(hours=1)
    thread = simulator.state.create_thread(
        "proj_alpha",
        created_at=start,
        messages=[("user", f"m{n}", {"created_at": start + timedelta(minutes=n)}) for n in range(5)],
    )
    ids = [m["id"] for m in simulator.state.threads[thread["id"]].messages]
    return thread["id"], ids


def texts(response):
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["object"] == "list"
    if body["data"]:
        assert (body["first_id"], body["last_id"]) == (body["data"][0]["id"], body["data"][-1]["id"])
    return [m["content"][0]["text"]["value"] for m in body["data"]], body["has_more"]


def test_messages_page_newest_first_with_after_and_before(alpha, five_messages):
    thread_id, ids = five_messages
    path = f"/threads/{thread_id}/messages"

    def page(**params):
        return texts(alpha.get(path, headers=ASSISTANTS, params=params))

    assert page() == (["m4", "m3", "m2", "m1", "m0"], False)
    assert page(limit=2) == (["m4", "m3"], True)
    assert page(limit=2, after=ids[3]) == (["m2", "m1"], True)
    assert page(limit=2, after=ids[1]) == (["m0"], False)
    assert page(limit=2, before=ids[1]) == (["m3", "m2"], True)
    assert page(limit=2, before=ids[3]) == (["m4"], False)
    assert page(limit=2, order="asc", after=ids[1]) == (["m2", "m3"], True)
    assert page(order="asc", after=ids[0], before=ids[4]) == (["m1", "m2", "m3"], False)
    assert page(after=ids[0]) == ([], False)


def test_an_empty_page_has_null_cursors(alpha, simulator):
    thread = simulator.state.create_thread("proj_alpha")
    body = alpha.get(f"/threads/{thread['id']}/messages", headers=ASSISTANTS).json()
    assert body == {"object": "list", "data": [], "first_id": None, "last_id": None, "has_more": False}


@pytest.mark.parametrize(
    ("params", "param", "code"),
    [
        ({"limit": 0}, "limit", "integer_below_min_value"),
        ({"limit": 101}, "limit", "integer_above_max_value"),
        ({"limit": "many"}, "limit", "invalid_type"),
        ({"order": "sideways"}, "order", "invalid_value"),
        ({"after": "msg_unknown"}, "after", None),
        ({"before": "msg_unknown"}, "before", None),
    ],
)
def test_bad_paging_parameters_get_the_apis_400(alpha, five_messages, params, param, code):
    thread_id, _ = five_messages
    error = error_of(alpha.get(f"/threads/{thread_id}/messages", headers=ASSISTANTS, params=params), 400)
    assert (error["type"], error["param"], error["code"]) == ("invalid_request_error", param, code)


def test_chatkit_lists_page_by_user_and_accept_a_zero_limit(alpha, simulator):
    for n in range(3):
        simulator.state.create_chatkit_thread(
            "proj_alpha", user="user_ada", title=f"Ada {n}", created_at=1000 + n
        )
    simulator.state.create_chatkit_thread("proj_alpha", user="user_bob", title="Bob", created_at=2000)

    def titles(**params):
        body = alpha.get("/chatkit/threads", headers=CHATKIT, params=params).json()
        return [t["title"] for t in body["data"]], body["has_more"]

    assert titles() == (["Bob", "Ada 2", "Ada 1", "Ada 0"], False)
    assert titles(user="user_ada", limit=2) == (["Ada 2", "Ada 1"], True)
    assert titles(user="user_ada", order="asc", limit=2) == (["Ada 0", "Ada 1"], True)
    assert titles(limit=0) == ([], True)


def test_conversation_items_page_in_the_order_they_were_added(alpha, simulator):
    conversation = simulator.state.create_conversation(
        "proj_alpha", items=[("user", f"i{n}") for n in range(4)]
    )
    items = simulator.state.conversations[conversation["id"]].items
    path = f"/conversations/{conversation['id']}/items"

    def page(**params):
        body = alpha.get(path, params=params).json()
        return [item["content"][0]["text"] for item in body["data"]], body["has_more"]

    assert page(limit=3) == (["i3", "i2", "i1"], True)
    assert page(limit=3, after=items[1]["id"]) == (["i0"], False)
    assert page(order="asc", limit=1) == (["i0"], True)
    # The items list takes no `before`; it is ignored as an unknown query parameter.
    assert page(before=items[1]["id"]) == (["i3", "i2", "i1", "i0"], False)
    assert all("created_at" not in item for item in items)


# --- Writes ---------------------------------------------------------------------------------------


def test_a_thread_is_created_with_its_messages_in_order(alpha, simulator):
    response = alpha.post(
        "/threads",
        headers=ASSISTANTS,
        json={
            "metadata": {"k": "v"},
            "messages": [{"role": "user", "content": "a"}, {"role": "assistant", "content": "b"}],
        },
    )
    thread = response.json()
    assert (thread["object"], thread["metadata"]) == ("thread", {"k": "v"})
    messages = alpha.get(
        f"/threads/{thread['id']}/messages", headers=ASSISTANTS, params={"order": "asc"}
    ).json()
    assert [(m["role"], m["content"][0]["text"]["value"]) for m in messages["data"]] == [
        ("user", "a"),
        ("assistant", "b"),
    ]


@pytest.mark.parametrize(
    ("body", "param", "code"),
    [
        (
            {"messages": [{"role": "user", "content": "ok"}, {"role": "robot", "content": "x"}]},
            "messages[1].role",
            "invalid_value",
        ),
        ({"messages": [{"role": "user"}]}, "messages[0].content", "missing_required_parameter"),
        ({"metadata": {f"k{n}": "v" for n in range(17)}}, "metadata", "object_above_max_properties"),
        ({"metadata": {"k": "v" * 513}}, "metadata.k", "string_above_max_length"),
        ({"colour": "blue"}, "colour", "unknown_parameter"),
    ],
)
def test_a_bad_thread_is_refused_and_nothing_is_created(alpha, simulator, body, param, code):
    error = error_of(alpha.post("/threads", headers=ASSISTANTS, json=body), 400)
    assert (error["param"], error["code"]) == (param, code)
    assert simulator.state.threads == {}


def test_a_body_that_is_not_json_is_refused(alpha, simulator):
    response = alpha.post("/conversations", data=b"{not json", headers={"Content-Type": "application/json"})
    assert error_of(response, 400)["message"].startswith("We could not parse the JSON body of your request.")
    assert simulator.state.conversations == {}


def test_more_than_20_items_at_once_are_refused(alpha, simulator):
    response = alpha.post("/conversations", json={"items": [{"role": "user", "content": "x"}] * 21})
    assert error_of(response, 400)["code"] == "array_above_max_length"
    assert simulator.state.conversations == {}


def test_deleting_a_conversation_leaves_its_items_stored_unless_deleted_first(alpha, simulator):
    kept = simulator.state.create_conversation("proj_alpha", items=[("user", "a"), ("assistant", "b")])
    emptied = simulator.state.create_conversation("proj_alpha", items=[("user", "c")])
    for item in simulator.state.stored_items(emptied["id"]):
        assert alpha.delete(f"/conversations/{emptied['id']}/items/{item['id']}").status_code == 200

    for conversation in (kept, emptied):
        assert alpha.delete(f"/conversations/{conversation['id']}").json()["deleted"] is True
        assert alpha.get(f"/conversations/{conversation['id']}").status_code == 404

    assert [item["role"] for item in simulator.state.stored_items(kept["id"])] == ["user", "assistant"]
    assert simulator.state.stored_items(emptied["id"]) == []


def test_concurrent_writers_lose_nothing(alpha, simulator, sim_key):
    thread = simulator.state.create_thread("proj_alpha")
    path = f"/threads/{thread['id']}/messages"

    def write(worker):
        api = Api(simulator, sim_key("proj_alpha"))
        for n in range(10):
            response = api.post(path, headers=ASSISTANTS, json={"role": "user", "content": f"{worker}-{n}"})
            assert response.status_code == 200

    workers = [threading.Thread(target=write, args=(w,)) for w in range(6)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    assert len(simulator.state.threads[thread["id"]].messages) == 60
    assert len({m["id"] for m in simulator.state.threads[thread["id"]].messages}) == 60
