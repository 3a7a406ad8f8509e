"""The simulator against the contract: every answer, success or error, validated by openapi-core against
OpenAI's own OpenAPI description (shared/openai/openapi.yaml), through real HTTP."""

import json
import time
from pathlib import Path
from urllib.parse import parse_qsl, urlsplit

import pytest
import requests
import yaml
from openapi_core import Config, OpenAPI
from openapi_core.contrib.requests import RequestsOpenAPIResponse
from openapi_core.testing import MockRequest, MockResponse
from openapi_core.validation.response.exceptions import InvalidData

from threads_app.simulator import SimulatorState, running_simulator, seed_demo

ASSISTANTS = "assistants=v2"
CHATKIT = "chatkit_beta=v1"
SSE_EVENT_PATH = "/__one_response_stream_event"
ERROR_RESPONSE = {
    "description": "An error, in the API's common error shape.",
    "content": {"application/json": {"schema": {"$ref": "#/components/schemas/ErrorResponse"}}},
}


@pytest.fixture(scope="session")
def openapi(openapi_spec_path):
    return load_openapi(openapi_spec_path)


def load_openapi(path: Path) -> OpenAPI:
    if not path.is_file():
        pytest.fail(
            f"The OpenAPI description of the OpenAI API is missing: {path} does not exist. The conformance "
            "tests need it; put it there or name another file in THREADSITE_OPENAPI_SPEC.",
            pytrace=False,
        )
    started = time.monotonic()
    with path.open("rb") as stream:
        spec = yaml.load(stream, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))  # noqa: S506
    adapt_spec(spec)
    # Server-sent events are checked one by one: each event's data as the answer of an operation that
    # answers one ResponseStreamEvent (openapi-core does not split a text/event-stream body).
    spec["paths"][SSE_EVENT_PATH] = {
        "post": {
            "responses": {
                "200": {
                    "description": "One server-sent event's data.",
                    "content": {
                        "application/json": {"schema": {"$ref": "#/components/schemas/ResponseStreamEvent"}}
                    },
                }
            }
        }
    }
    # Validating the 3 MB description itself takes long and proves nothing about the simulator.
    api = OpenAPI.from_dict(spec, config=Config(spec_validator_cls=None))
    assert time.monotonic() - started < 30, "loading the OpenAPI description got far slower than expected"
    return api


def adapt_spec(node) -> None:
    """The smallest changes that let openapi-core judge the simulator by this spec; each says why.

    1. `discriminator` without a `mapping`: openapi-schema-validator then looks the `type` value up as a
       schema name (`#/components/schemas/active`), which does not exist, and fails every such object.
       The `oneOf` branches each pin `type` with an enum, so dropping the keyword loses no strictness.
    2. `nullable: true` is OpenAPI 3.0; in this 3.1 document it is ignored, so the Assistants schemas
       (RunObject's `cancelled_at`, …) would refuse the nulls the API sends. Rewritten as 3.1 nulls.
    3. The older list schemas declare `first_id`/`last_id` as strings, but the API sends null for an
       empty list (known to client libraries, e.g. tjardoo/openai-client#59); the newer ChatKit list
       schemas of the same document already say `string | null`.
    4. These operations document only 200 and 429, yet the API answers 400/401/404/5xx with the same
       ErrorResponse body as its 429; that schema becomes the operations' `default` answer.
    """
    _rewrite(node)
    for schema in node["components"]["schemas"].values():
        properties = schema.get("properties", {}) if isinstance(schema, dict) else {}
        for name in ("first_id", "last_id"):
            if properties.get(name, {}).get("type") == "string":
                properties[name]["type"] = ["string", "null"]
    for path, item in node["paths"].items():
        if path.startswith(("/threads", "/conversations", "/chatkit/threads", "/responses")):
            for operation in item.values():
                if isinstance(operation, dict) and "responses" in operation:
                    operation["responses"].setdefault("default", ERROR_RESPONSE)


def _rewrite(node) -> None:
    if isinstance(node, list):
        for child in node:
            _rewrite(child)
        return
    if not isinstance(node, dict):
        return
    node.pop("discriminator", None)
    parts = node.get("allOf")
    if isinstance(parts, list) and {"nullable": True} in parts:
        rest = [part for part in parts if part != {"nullable": True}]
        del node["allOf"]
        node["anyOf"] = [{"allOf": rest}, {"type": "null"}]
    if node.pop("nullable", None) is True:
        if isinstance(node.get("type"), str):
            node["type"] = [node["type"], "null"]
            if "enum" in node:
                node["enum"] = [*node["enum"], None]
        else:
            inner = dict(node)
            node.clear()
            node["anyOf"] = [inner, {"type": "null"}]
    for child in list(node.values()):
        _rewrite(child)


class Api:
    """requests against the simulator; every answer is validated against the spec before it is returned."""

    def __init__(self, openapi, base_url: str, api_key: str):
        self.openapi = openapi
        self.base_url = base_url
        self.session = requests.Session()
        self.session.headers["Authorization"] = f"Bearer {api_key}"
        self.checked = 0

    def call(self, method: str, path: str, *, beta: str | None = None, expect: int = 200, **kwargs):
        headers = kwargs.pop("headers", {})
        if beta:
            headers["OpenAI-Beta"] = beta
        response = self.session.request(method, self.base_url + path, headers=headers, timeout=5, **kwargs)
        assert response.status_code == expect, response.text
        assert response.headers["x-request-id"].startswith("req_")
        self.validate(response)
        return response.json()

    def validate(self, response: requests.Response) -> None:
        sent = response.request
        url = urlsplit(sent.url)
        request = MockRequest(
            "https://api.openai.com",  # the spec's server; the simulator serves the same paths under /v1
            sent.method,
            url.path,
            args=dict(parse_qsl(url.query)),
            headers=dict(sent.headers),
            data=sent.body if isinstance(sent.body, bytes) else (sent.body or "").encode(),
        )
        self.openapi.validate_response(request, RequestsOpenAPIResponse(response))
        self.checked += 1


@pytest.fixture
def alpha(openapi, simulator, sim_key):
    return Api(openapi, simulator.base_url, sim_key("proj_alpha"))


@pytest.fixture
def beta(openapi, simulator, sim_key):
    return Api(openapi, simulator.base_url, sim_key("proj_beta"))


def test_assistants_thread_endpoints_answer_as_the_spec_says(alpha, beta, simulator):
    thread = alpha.call(
        "POST",
        "/threads",
        beta=ASSISTANTS,
        json={
            "metadata": {"customer": "Globex"},
            "messages": [
                {
                    "role": "user",
                    "content": "Hello",
                    "attachments": [{"file_id": "file-1", "tools": [{"type": "file_search"}]}],
                },
                {
                    "role": "assistant",
                    "content": [
                        {"type": "text", "text": "Here is a picture"},
                        {"type": "image_file", "image_file": {"file_id": "file-2"}},
                        {"type": "image_url", "image_url": {"url": "https://example.com/a.png"}},
                    ],
                },
            ],
        },
    )
    thread_id = thread["id"]
    empty = alpha.call("POST", "/threads", beta=ASSISTANTS)
    assert alpha.call("GET", f"/threads/{empty['id']}/messages", beta=ASSISTANTS)["first_id"] is None
    alpha.call("GET", f"/threads/{thread_id}", beta=ASSISTANTS)
    alpha.call("POST", f"/threads/{thread_id}", beta=ASSISTANTS, json={"metadata": {"stage": "done"}})
    message = alpha.call(
        "POST", f"/threads/{thread_id}/messages", beta=ASSISTANTS, json={"role": "user", "content": "More"}
    )
    listed = alpha.call("GET", f"/threads/{thread_id}/messages", beta=ASSISTANTS, params={"limit": 2})
    alpha.call(
        "GET",
        f"/threads/{thread_id}/messages",
        beta=ASSISTANTS,
        params={"order": "asc", "after": listed["last_id"]},
    )
    alpha.call("GET", f"/threads/{thread_id}/messages", beta=ASSISTANTS, params={"before": listed["last_id"]})
    alpha.call("GET", f"/threads/{thread_id}/messages/{message['id']}", beta=ASSISTANTS)
    alpha.call(
        "POST",
        f"/threads/{thread_id}/messages/{message['id']}",
        beta=ASSISTANTS,
        json={"metadata": {"a": "b"}},
    )
    alpha.call("DELETE", f"/threads/{thread_id}/messages/{message['id']}", beta=ASSISTANTS)

    seeded = simulator.state.create_thread("proj_alpha", messages=[("user", "Hi")])
    simulator.state.add_run(seeded["id"])
    failed = simulator.state.add_run(
        seeded["id"],
        status="failed",
        completed_at=None,
        last_error={"code": "server_error", "message": "Boom"},
    )
    runs = alpha.call("GET", f"/threads/{seeded['id']}/runs", beta=ASSISTANTS, params={"limit": 1})
    assert runs["data"][0]["id"] == failed["id"]
    alpha.call("GET", f"/threads/{seeded['id']}/runs/{failed['id']}", beta=ASSISTANTS)
    deleted = alpha.call("DELETE", f"/threads/{thread_id}", beta=ASSISTANTS)
    assert deleted == {"id": thread_id, "object": "thread.deleted", "deleted": True}

    # Errors, in the API's error shape.
    beta.call("GET", f"/threads/{seeded['id']}", beta=ASSISTANTS, expect=404)
    alpha.call("GET", f"/threads/{thread_id}", beta=ASSISTANTS, expect=404)
    alpha.call("GET", f"/threads/{seeded['id']}", expect=400)
    alpha.call("GET", f"/threads/{seeded['id']}/messages", beta=ASSISTANTS, params={"limit": 0}, expect=400)
    alpha.call("GET", f"/threads/{seeded['id']}/messages/msg_nope", beta=ASSISTANTS, expect=404)
    alpha.call(
        "POST", "/threads", beta=ASSISTANTS, json={"messages": [{"role": "bot", "content": "x"}]}, expect=400
    )
    assert alpha.checked == 20 and beta.checked == 1


def test_conversation_endpoints_answer_as_the_spec_says(alpha, beta, simulator):
    conversation = alpha.call(
        "POST",
        "/conversations",
        json={
            "metadata": {"topic": "billing"},
            "items": [
                {"type": "message", "role": "developer", "content": "Be brief."},
                {"role": "user", "content": [{"type": "input_text", "text": "Refund?"}]},
                {"role": "assistant", "content": "Within 30 days."},
                {"type": "function_call", "call_id": "call_1", "name": "lookup", "arguments": "{}"},
                {"type": "function_call_output", "call_id": "call_1", "output": "{}"},
            ],
        },
    )
    conversation_id = conversation["id"]
    alpha.call("GET", f"/conversations/{conversation_id}")
    alpha.call("POST", f"/conversations/{conversation_id}", json={"metadata": {"topic": "refunds"}})
    added = alpha.call(
        "POST",
        f"/conversations/{conversation_id}/items",
        json={
            "items": [
                {
                    "role": "user",
                    "content": [{"type": "input_image", "image_url": "https://example.com/a.png"}],
                }
            ]
        },
    )
    page = alpha.call("GET", f"/conversations/{conversation_id}/items", params={"limit": 3})
    assert page["has_more"] is True
    alpha.call(
        "GET", f"/conversations/{conversation_id}/items", params={"after": page["last_id"], "order": "desc"}
    )
    item_id = added["data"][0]["id"]
    alpha.call("GET", f"/conversations/{conversation_id}/items/{item_id}")
    after_delete = alpha.call("DELETE", f"/conversations/{conversation_id}/items/{item_id}")
    assert after_delete["id"] == conversation_id
    empty = alpha.call("POST", "/conversations", json={})
    assert alpha.call("GET", f"/conversations/{empty['id']}/items")["data"] == []
    deleted = alpha.call("DELETE", f"/conversations/{conversation_id}")
    assert deleted == {"id": conversation_id, "object": "conversation.deleted", "deleted": True}

    beta.call("GET", f"/conversations/{empty['id']}", expect=404)
    alpha.call("GET", f"/conversations/{conversation_id}/items", expect=404)
    alpha.call("POST", "/conversations", json={"items": [{"role": "user", "content": "x"}] * 21}, expect=400)
    alpha.call("GET", f"/conversations/{empty['id']}/items", params={"limit": 101}, expect=400)
    assert alpha.checked == 14


def test_responses_with_a_conversation_answer_as_the_spec_says(alpha, openapi, simulator):
    conversation = alpha.call("POST", "/conversations", json={})
    response = alpha.call(
        "POST",
        "/responses",
        json={
            "model": "gpt-sim",
            "input": "Hello",
            "conversation": conversation["id"],
            "metadata": {"a": "b"},
        },
    )
    assert response["conversation"] == {"id": conversation["id"]}
    items = alpha.call("GET", f"/conversations/{conversation['id']}/items", params={"order": "asc"})
    assert [item["role"] for item in items["data"]] == ["user", "assistant"]
    assert items["data"][1]["content"][0]["text"] == response["output"][0]["content"][0]["text"]
    alpha.call("POST", "/responses", json={"model": "gpt-sim", "input": [{"role": "user", "content": "Hi"}]})
    alpha.call("POST", "/responses", json={"input": "Hi"}, expect=400)
    alpha.call("POST", "/responses", json={"model": "m", "conversation": "conv_" + "0" * 48}, expect=404)

    simulator.config.stream_first_token_ms = simulator.config.stream_token_ms = 0
    streamed = alpha.session.post(
        f"{simulator.base_url}/responses",
        json={"model": "gpt-sim", "input": "Again", "conversation": conversation["id"], "stream": True},
        timeout=5,
    )
    assert streamed.status_code == 200
    assert streamed.headers["content-type"].startswith("text/event-stream")
    events = [block for block in streamed.text.split("\n\n") if block]
    request = MockRequest("https://api.openai.com", "post", "/v1" + SSE_EVENT_PATH)
    for block in events:
        name, data = block.split("\n")
        event = json.loads(data.removeprefix("data: "))
        assert name == f"event: {event['type']}"
        openapi.validate_response(request, MockResponse(data.removeprefix("data: ").encode()))
    types = [json.loads(block.split("data: ", 1)[1])["type"] for block in events]
    assert types[0] == "response.created" and types[-1] == "response.completed"
    assert types.count("response.output_text.delta") > 5
    assert len(alpha.call("GET", f"/conversations/{conversation['id']}/items")["data"]) == 4
    assert alpha.checked == 7


def test_chatkit_endpoints_answer_as_the_spec_says(alpha, beta, simulator):
    state = simulator.state
    every_kind = [
        ("user", "Where is my order?"),
        ("task", "Looking it up"),
        ("task_group", "Checking carriers"),
        ("client_tool_call", "track_parcel"),
        ("widget", '{"type": "Card"}'),
        ("assistant", "It ships tomorrow."),
    ]
    thread = state.create_chatkit_thread("proj_alpha", user="user_ada", title="Order", items=every_kind)
    state.create_chatkit_thread(
        "proj_alpha", user="user_bob", status={"type": "locked", "reason": "Escalated"}
    )
    state.create_chatkit_thread("proj_alpha", user="user_ada", status={"type": "closed", "reason": None})

    listed = alpha.call("GET", "/chatkit/threads", beta=CHATKIT, params={"limit": 2})
    alpha.call("GET", "/chatkit/threads", beta=CHATKIT, params={"after": listed["last_id"]})
    alpha.call("GET", "/chatkit/threads", beta=CHATKIT, params={"user": "user_ada", "order": "asc"})
    alpha.call("GET", "/chatkit/threads", beta=CHATKIT, params={"user": "nobody"})
    alpha.call("GET", f"/chatkit/threads/{thread['id']}", beta=CHATKIT)
    items = alpha.call("GET", f"/chatkit/threads/{thread['id']}/items", beta=CHATKIT)
    assert len(items["data"]) == len(every_kind)
    alpha.call(
        "GET", f"/chatkit/threads/{thread['id']}/items", beta=CHATKIT, params={"limit": 2, "order": "asc"}
    )
    deleted = alpha.call("DELETE", f"/chatkit/threads/{thread['id']}", beta=CHATKIT)
    assert deleted == {"id": thread["id"], "object": "chatkit.thread.deleted", "deleted": True}

    alpha.call("GET", f"/chatkit/threads/{thread['id']}", beta=CHATKIT, expect=404)
    beta.call("GET", f"/chatkit/threads/{listed['first_id']}", beta=CHATKIT, expect=404)
    alpha.call("GET", "/chatkit/threads", expect=400)
    alpha.call("GET", "/chatkit/threads", beta=CHATKIT, params={"limit": 101}, expect=400)
    assert alpha.checked == 11


def test_refusals_and_faults_come_in_the_error_shape_of_the_spec(openapi, simulator, sim_key):
    stranger = Api(openapi, simulator.base_url, "sk-not-a-key-0000")
    stranger.call("GET", "/conversations/conv_123", expect=401)
    alpha = Api(openapi, simulator.base_url, sim_key("proj_alpha"))
    alpha.call("GET", "/conversations/conv_123", headers={"OpenAI-Project": "proj_other"}, expect=401)
    for fault, status in (("429", 429), ("429_ms", 429), ("429_quota", 429), ("500", 500), ("503", 503)):
        simulator.state.enqueue_faults(fault)
        alpha.call("GET", "/conversations/conv_123", expect=status)
    simulator.config.rate_limit_per_minute = 1
    alpha.call("GET", "/chatkit/threads", beta=CHATKIT)
    alpha.call("GET", "/chatkit/threads", beta=CHATKIT, expect=429)
    assert alpha.checked == 8 and stranger.checked == 1
    # The HTML page of a failing proxy is outside the contract altogether: a client must not parse it.
    simulator.state.enqueue_faults("502_html")
    response = requests.get(f"{simulator.base_url}/chatkit/threads", timeout=5)
    assert response.status_code == 502
    assert response.headers["content-type"] == "text/html"


def test_every_object_of_the_demo_world_conforms(openapi):
    state = SimulatorState()
    project = seed_demo(state, threads_per_kind=25)[0]
    with running_simulator(state=state) as simulator:
        api = Api(openapi, simulator.base_url, project["api_key"])
        for remote_id in project["remote_ids"]:
            if remote_id.startswith("thread_"):
                api.call("GET", f"/threads/{remote_id}", beta=ASSISTANTS)
                api.call("GET", f"/threads/{remote_id}/messages", beta=ASSISTANTS, params={"limit": 100})
                api.call("GET", f"/threads/{remote_id}/runs", beta=ASSISTANTS)
            elif remote_id.startswith("conv_"):
                api.call("GET", f"/conversations/{remote_id}")
                api.call("GET", f"/conversations/{remote_id}/items", params={"limit": 100})
            else:
                api.call("GET", f"/chatkit/threads/{remote_id}", beta=CHATKIT)
                api.call("GET", f"/chatkit/threads/{remote_id}/items", beta=CHATKIT, params={"limit": 100})
        api.call("GET", "/chatkit/threads", beta=CHATKIT, params={"limit": 100})
    assert api.checked == 25 * 7 + 1


def test_the_harness_rejects_an_answer_the_spec_does_not_allow(openapi, simulator, sim_key):
    api = Api(openapi, simulator.base_url, sim_key("proj_alpha"))
    thread = simulator.state.create_chatkit_thread("proj_alpha", user="user_ada")
    response = api.session.get(
        f"{simulator.base_url}/chatkit/threads/{thread['id']}", headers={"OpenAI-Beta": CHATKIT}, timeout=5
    )
    api.validate(response)
    response._content = response.content.replace(b'"active"', b'"paused"')
    with pytest.raises(InvalidData):
        api.validate(response)


def test_a_missing_spec_fails_the_run_with_a_clear_message(tmp_path):
    with pytest.raises(pytest.fail.Exception, match="OpenAPI description of the OpenAI API is missing"):
        load_openapi(tmp_path / "openapi.yaml")
