"""The registration REST API under /api/v1/: every answer (and every valid request) is checked by openapi-core
against the description the project serves, so the description cannot drift from the code."""

import json
from urllib.parse import parse_qsl, urlsplit

import pytest
import yaml
from openapi_core import OpenAPI
from openapi_core.testing import MockRequest, MockResponse

from threads_app import tokens
from threads_app.models import ApiToken, AuditEvent, Credential, DeletionJob, StatusChange, Thread


@pytest.fixture(scope="module")
def served_spec():
    from django.test import Client

    # The description as the project serves it, not as the file lies on disk.
    return Client().get("/api/v1/openapi.yaml")


@pytest.fixture(scope="module")
def spec(served_spec):
    return OpenAPI.from_dict(yaml.safe_load(served_spec.content))


class Api:
    def __init__(self, client, spec, secret):
        self.client, self.spec, self.secret = client, spec, secret

    def call(self, method, path, *, body=None, expect=200, secret=None, check_request=True):
        headers = {"HTTP_AUTHORIZATION": f"Bearer {secret or self.secret}"}
        kwargs = {"content_type": "application/json", "data": json.dumps(body)} if body is not None else {}
        response = getattr(self.client, method.lower())(path, **kwargs, **headers)
        assert response.status_code == expect, response.content
        url = urlsplit(path)
        request = MockRequest(
            "http://testserver",
            method.lower(),
            url.path,
            args=dict(parse_qsl(url.query)),
            headers={"Authorization": f"Bearer {secret or self.secret}", "Content-Type": "application/json"},
            data=json.dumps(body).encode() if body is not None else None,
        )
        if check_request:
            self.spec.validate_request(request)
        self.spec.validate_response(
            request,
            MockResponse(response.content, status_code=response.status_code, content_type="application/json"),
        )
        return response.json()


@pytest.fixture
def full(db, credential, alice):
    return tokens.create("ops", scopes=["register", "read", "delete"], credential=credential, owner=alice)


@pytest.fixture
def api(client, spec, full):
    return Api(client, spec, full.secret)


CONV = "conv_" + "a1" * 24


def test_the_description_is_served_and_is_valid_openapi(served_spec):
    from openapi_spec_validator import validate

    assert served_spec.status_code == 200
    assert served_spec["Content-Type"] == "application/yaml"
    validate(yaml.safe_load(served_spec.content))


def test_the_description_names_every_sort_the_list_takes(served_spec):
    from threads_app import listing

    listed = yaml.safe_load(served_spec.content)["paths"]["/threads"]["get"]["parameters"]
    sort = next(parameter for parameter in listed if parameter.get("name") == "sort")
    assert sort["schema"]["enum"] == [choice for choice, _ in listing.SORT_CHOICES]
    assert sort["schema"]["default"] == listing.DEFAULT_SORT


def test_registering_is_idempotent_and_updates_labels(api, full, alice):
    created = api.call(
        "POST", "/api/v1/threads", body={"id": CONV, "end_user": "cust-42", "title": "Refund"}, expect=201
    )
    assert created["credential"] == "alpha" and created["owner"] == "alice" and created["source"] == "api"
    again = api.call(
        "POST", "/api/v1/threads", body={"id": CONV, "title": "Refund, again", "metadata": {"a": "b"}}
    )
    assert (
        again["title"] == "Refund, again"
        and again["end_user"] == "cust-42"
        and again["metadata"] == {"a": "b"}
    )
    thread = Thread.objects.get(remote_id=CONV)
    assert Thread.objects.count() == 1 and thread.api_token == full.token and thread.kind == "conversation"


def test_a_batch_registers_all_or_nothing(api):
    batch = {"threads": [{"id": "thread_abc123456"}, {"id": CONV}, {"id": "cthr_xyz987654"}]}
    result = api.call("POST", "/api/v1/threads", body=batch, expect=201)
    assert (result["created"], result["updated"]) == (3, 0)
    result = api.call(
        "POST", "/api/v1/threads", body={"threads": [{"id": CONV}, {"id": "thread_new0000001"}]}, expect=201
    )
    assert (result["created"], result["updated"]) == (1, 1)
    refused = api.call(
        "POST",
        "/api/v1/threads",
        body={"threads": [{"id": "thread_fine000001"}, {"id": "run_abc123456"}]},
        expect=400,
    )
    assert "run_abc123456 is a run of an Assistants thread" in refused["error"]["details"][0]
    assert not Thread.objects.filter(remote_id="thread_fine000001").exists()


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"id": "resp_abc123456"}, "a Responses API response, not a thread"),
        ({"id": "hello"}, "is not a thread ID"),
        ({"title": "no id"}, "`id` is required"),
        ({"id": CONV, "credential": "nope"}, "no credential is named"),
        ({"id": CONV, "owner": "nobody"}, "no team member is named"),
        ({"id": CONV, "metadata": {"k": 1}}, "must be text"),
        ({"id": CONV, "color": "red"}, "unknown field color"),
    ],
)
def test_wrong_entries_get_a_clear_message_and_change_nothing(api, body, message):
    refused = api.call("POST", "/api/v1/threads", body=body, expect=400, check_request=False)
    assert message in refused["error"]["message"]
    assert not Thread.objects.exists()


def test_a_body_that_is_not_json_is_refused_in_the_error_shape(client, full):
    response = client.post(
        "/api/v1/threads",
        data="{nope",
        content_type="application/json",
        HTTP_AUTHORIZATION=f"Bearer {full.secret}",
    )
    assert response.status_code == 400 and response.json()["error"]["code"] == "invalid_json"


def test_listing_pages_by_cursor_with_the_lists_filters(api, make_thread, credential, alice, bob):
    for n in range(5):
        make_thread(remote_id=f"conv_page{n:08d}", kind="conversation", owner=alice, title=f"T{n}")
    make_thread(remote_id="thread_other0001", owner=alice)
    first = api.call("GET", "/api/v1/threads?kind=conversation&limit=2&sort=id")
    assert [t["id"] for t in first["data"]] == ["conv_page00000000", "conv_page00000001"] and first[
        "has_more"
    ]
    second = api.call("GET", f"/api/v1/threads?kind=conversation&limit=2&sort=id&after={first['next_after']}")
    third = api.call("GET", f"/api/v1/threads?kind=conversation&limit=2&sort=id&after={second['next_after']}")
    assert [t["id"] for t in second["data"] + third["data"]] == [f"conv_page{n:08d}" for n in (2, 3, 4)]
    assert third["has_more"] is False and third["next_after"] is None
    assert [t["id"] for t in api.call("GET", "/api/v1/threads?q=T3")["data"]] == ["conv_page00000003"]
    assert len(api.call("GET", "/api/v1/threads?owner=alice&credential=alpha")["data"]) == 6
    bad = api.call("GET", "/api/v1/threads?after=garbage", expect=400)
    assert "page link is broken" in bad["error"]["message"]
    api.call("GET", "/api/v1/threads?limit=1000", expect=400, check_request=False)


def test_a_token_sees_only_its_credentials_threads(client, spec, make_thread, credential, alice):
    other = Credential(name="beta", base_url="http://127.0.0.1:9/v1")
    other.api_key = "sk-beta-1234"
    other.save()
    make_thread(remote_id="thread_mine00001")
    make_thread(remote_id="thread_theirs001", credential=other)
    bound = Api(
        client,
        spec,
        tokens.create("bound", scopes=["read", "delete", "register"], credential=credential).secret,
    )
    assert [t["id"] for t in bound.call("GET", "/api/v1/threads")["data"]] == ["thread_mine00001"]
    bound.call("GET", "/api/v1/threads/thread_theirs001", expect=404)
    bound.call("DELETE", "/api/v1/threads/thread_theirs001", expect=404)
    refused = bound.call("POST", "/api/v1/threads", body={"id": "thread_theirs001"}, expect=409)
    assert "cannot reach" in refused["error"]["message"]
    refused = bound.call(
        "POST", "/api/v1/threads", body={"id": "thread_new000001", "credential": "beta"}, expect=400
    )
    assert "cannot file threads under the credential beta" in refused["error"]["message"]
    assert Thread.objects.get(remote_id="thread_theirs001").status == "active"


@pytest.mark.parametrize("how", ["missing", "wrong", "revoked", "not bearer"])
def test_a_bad_token_gets_401(client, spec, full, how):
    header = {
        "missing": "",
        "wrong": "Bearer tsk_" + "x" * 43,
        "revoked": f"Bearer {full.secret}",
        "not bearer": f"Basic {full.secret}",
    }[how]
    if how == "revoked":
        tokens.revoke(full.token)
    response = client.get("/api/v1/threads", HTTP_AUTHORIZATION=header)
    assert response.status_code == 401
    assert response.json()["error"]["type"] == "authentication_error"


def test_scopes_are_enforced(client, spec, credential, make_thread):
    make_thread(remote_id="thread_scoped001")
    reader = Api(client, spec, tokens.create("reader", scopes=["read"], credential=credential).secret)
    assert (
        reader.call("POST", "/api/v1/threads", body={"id": CONV}, expect=403)["error"]["code"]
        == "missing_scope"
    )
    reader.call("DELETE", "/api/v1/threads/thread_scoped001", expect=403)
    reader.call("GET", "/api/v1/threads/thread_scoped001")


def test_deleting_goes_through_the_api_and_is_recorded(api, full, sim_credential, simulator):
    conversation = simulator.state.create_conversation("proj_alpha", items=[("user", "Hi")])
    api.call("POST", "/api/v1/threads", body={"id": conversation["id"]}, expect=201)
    result = api.call("DELETE", f"/api/v1/threads/{conversation['id']}")
    assert result["outcome"] == "deleted" and result["thread"]["status"] == "deleted"
    assert simulator.state.conversations[conversation["id"]].deleted is True
    change = StatusChange.objects.get(remote_id=conversation["id"])
    assert change.reason.endswith("by API token ops") and change.changed_by == full.token.owner
    event = AuditEvent.objects.get(action="thread_deleted")
    assert event.actor == full.token.owner and event.details["via"] == "API token ops"
    again = api.call("DELETE", f"/api/v1/threads/{conversation['id']}", expect=409)
    assert "already deleted" in again["error"]["message"]


def test_a_conversation_with_more_items_than_a_call_can_wait_for_is_finished_by_a_job(
    api, full, sim_credential, simulator
):
    items = [("user", f"m{n}") for n in range(150)]
    conversation = simulator.state.create_conversation("proj_alpha", items=items)
    api.call("POST", "/api/v1/threads", body={"id": conversation["id"]}, expect=201)
    result = api.call("DELETE", f"/api/v1/threads/{conversation['id']}", expect=202)
    job = DeletionJob.objects.get()
    assert (result["outcome"], result["deleted"], result["job"]) == ("queued", False, job.pk)
    assert result["thread"]["status"] == "active"
    assert (job.source, job.requested_by) == (DeletionJob.Source.API, full.token.owner)
    assert "while API token ops waited" in job.summary


def test_each_token_is_rate_limited(client, spec, credential):
    made = tokens.create("slow", scopes=["read"], credential=credential, requests_per_minute=2)
    api = Api(client, spec, made.secret)
    api.call("GET", "/api/v1/threads")
    refused = api.call("GET", "/api/v1/threads", expect=429)
    assert refused["error"]["code"] == "rate_limit_exceeded"
    other = Api(client, spec, tokens.create("fast", scopes=["read"], credential=credential).secret)
    other.call("GET", "/api/v1/threads")  # another token's budget is its own


def test_last_used_is_recorded_and_the_secret_is_stored_hashed(api, full):
    api.call("GET", "/api/v1/threads")
    stored = ApiToken.objects.get(pk=full.token.pk)
    assert stored.last_used_at is not None
    assert full.secret not in json.dumps(list(ApiToken.objects.values()), default=str)
    assert stored.masked == full.secret[:8] + "…"


def test_a_revocation_from_another_process_applies_within_the_cache_time(full, settings, monkeypatch):
    header = f"Bearer {full.secret}"
    assert tokens.authenticate(header) == full.token
    # Revoked as another process would (its own copy of the token): this process still holds it, briefly.
    ApiToken.objects.filter(pk=full.token.pk).update(revoked_at="2026-01-01T00:00:00Z")
    assert tokens.authenticate(header) == full.token
    later = tokens._clock() + settings.THREADSITE_TOKEN_CACHE_SECONDS + 0.1
    monkeypatch.setattr(tokens, "_clock", lambda: later)
    assert tokens.authenticate(header) is None


def test_with_no_cache_time_every_request_looks_the_token_up(full, settings):
    settings.THREADSITE_TOKEN_CACHE_SECONDS = 0
    other = tokens.create("uncached", scopes=["read"])
    assert tokens.authenticate(f"Bearer {other.secret}") == other.token
    ApiToken.objects.filter(pk=other.token.pk).update(revoked_at="2026-01-01T00:00:00Z")
    assert tokens.authenticate(f"Bearer {other.secret}") is None
