"""No input, however malformed, gives a 500 or changes what it should not: every URL, with junk in the
query string and the form, as anonymous, a team member and an admin, with and without htmx."""

import pytest
from django.urls import get_resolver, reverse

from tests.conftest import make_user
from threads_app.models import Credential, Thread

pytestmark = pytest.mark.usefixtures("no_retries")

JUNK_VALUES = [
    "",
    "x",
    "-1",
    "99999999999999999999999",
    "'; DROP TABLE threads_app_thread; --",
    "<script>alert(1)</script>",
    "%00",
    "\x00",
    "ü" * 600,
    "2026-13-45",
    "thread_" + "a" * 300,
    '{"a": [1, 2',
]
JUNK_NAMES = [
    "q",
    "owner",
    "credential",
    "project",
    "kind",
    "status",
    "sort",
    "after",
    "before",
    "created_from",
    "created_to",
    "active_from",
    "active_to",
    "inactive_days",
    "show",
    "next",
    "fmt",
    "remote_id",
    "title",
    "end_user",
    "text",
    "name",
    "base_url",
    "api_key",
    "organization_id",
    "project_id",
    "delete_items",
    "key_0",
    "value_0",
    "key_99",
    "confirm",
    "ids",
    "all",
    "confirm_count",
    "archive",
    "verify_all",
    "page",
]


def junk():
    for value in JUNK_VALUES:
        yield {name: value for name in JUNK_NAMES}
    yield {name: [value, value] for name, value in zip(JUNK_NAMES, JUNK_VALUES * 3, strict=False)}


def urls(thread_pk, credential_pk):
    for pattern in get_resolver("threads_app.urls").url_patterns:
        converters = pattern.pattern.converters
        kwargs = {}
        if "pk" in converters:
            kwargs["pk"] = credential_pk if pattern.name.startswith("credential") else thread_pk
        if "fmt" in converters:
            kwargs["fmt"] = "json"
        yield reverse(pattern.name, kwargs=kwargs)
    yield reverse("thread_detail", kwargs={"pk": 999999})
    yield "/threads/export.md"
    yield "/threads/1/export.exe"


@pytest.mark.parametrize("who", ["anonymous", "member", "admin"])
def test_no_junk_gives_a_server_error(client, simulator, db, who):
    credential = Credential(name="alpha", base_url=simulator.base_url, project_id="proj_alpha")
    credential.api_key = simulator.add_key("sk-sim-junk-key-0001", "proj_alpha")
    credential.save()
    remote = simulator.state.create_thread("proj_alpha", messages=[("user", "hi")])
    thread = Thread.objects.create(remote_id=remote["id"], kind=Thread.Kind.ASSISTANTS, credential=credential)
    if who != "anonymous":
        user = make_user(who, who)
        client.force_login(user)
    client.raise_request_exception = False
    failures = []
    for url in urls(thread.pk, credential.pk):
        for data in junk():
            for headers in ({}, {"HX-Request": "true"}):
                for method in (client.get, client.post):
                    response = method(url, data, headers=headers)
                    if response.status_code >= 500:
                        failures.append(f"{method.__name__.upper()} {url} {headers} → {response.status_code}")
    assert not failures, "\n".join(failures[:20])
    # Junk never registers, renames or deletes anything.
    assert list(Thread.objects.values_list("remote_id", flat=True)) == [remote["id"]]
    assert list(Credential.objects.values_list("name", flat=True)) == ["alpha"]


@pytest.mark.parametrize(
    "query",
    [
        "after=WyI5OTk5LTk5LTk5VDAwOjAwOjAwIiwxXQ",  # ["9999-99-99T00:00:00", 1]: no such moment
        "after=WyJ4Iiw5MjIzMzcyMDM2ODU0Nzc1ODA4XQ&sort=title",  # ["x", 2**63]: past a 64-bit row id
    ],
)
def test_impossible_cursors_are_a_400(admin_client, query):
    response = admin_client.get(f"/?{query}")
    assert response.status_code == 400 and "This page link is broken" in response.content.decode()


@pytest.mark.parametrize(
    "text",
    [
        '{"id": "thread_abc123", "title": "' + "x," * 70_000 + '"}',  # one line past the csv field limit
        "[" * 100_000 + "]" * 100_000,  # nested past Python's recursion limit
        "id,title\nthread_abc123," + "y" * 140_000,  # a CSV field past the limit
    ],
    ids=["long JSON line with commas", "deeply nested JSON", "long CSV field"],
)
def test_pathological_imports_are_refused_or_scanned_never_a_500(admin_client, credential, text):
    from threads_app.models import Thread

    response = admin_client.post("/threads/import/", {"credential": credential.pk, "text": text})
    assert response.status_code == 200
    assert Thread.objects.count() <= 1
