"""Fuzzing every page: random query strings and forms, on every URL the project defines, as a member and
as an admin, with and without htmx. No input gives a 500, and an input that is refused (4xx) changes
nothing in the database."""

import inspect

import pytest
from django.db.models import Model
from django.urls import get_resolver, reverse
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.conftest import make_user
from threads_app import forms as project_forms
from threads_app import models as project_models
from threads_app.models import Credential, Thread

pytestmark = pytest.mark.usefixtures("no_retries")


def field_names() -> list[str]:
    """Every field name a form of the project reads, and the query parameters views read themselves."""
    names = {"ids", "all", "after", "before", "show", "next", "origin", "pinned", "confirm_count", "page"}
    for _, form in inspect.getmembers(project_forms, inspect.isclass):
        names.update(getattr(form, "base_fields", {}))
    names.update(f"{prefix}_{n}" for prefix in ("key", "value") for n in (0, 1, 15, 16))
    return sorted(names)


NAMES = field_names()
TEXT = st.one_of(
    st.text(max_size=40),
    st.integers(min_value=-(2**70), max_value=2**70).map(str),
    st.sampled_from(["", "0", "1", "on", "true", "delete", "flag", "off", "all", "me", "none", "-activity"]),
    st.sampled_from(["thread_abcdef123", "conv_abcdef123", "cthr_abcdef123", "run_abcdef", "2026-02-30"]),
    st.text(alphabet="\x00\r\n<>'\"%&;/\\", max_size=10),
)
DATA = st.dictionaries(
    st.one_of(st.sampled_from(NAMES), st.text(max_size=8)),
    st.one_of(TEXT, st.lists(TEXT, min_size=2, max_size=3)),
    max_size=8,
)


def fingerprint() -> dict:
    """Every row of every model of the project: a refusal must leave this as it was."""
    rows = {}
    for _, model in inspect.getmembers(project_models, inspect.isclass):
        if issubclass(model, Model) and not model._meta.abstract and model._meta.app_label == "threads_app":
            rows[model.__name__] = list(model.objects.order_by("pk").values())
    return rows


@pytest.fixture
def site(simulator, db):
    credential = Credential(name="alpha", base_url=simulator.base_url, project_id="proj_alpha")
    credential.api_key = simulator.add_key("sk-sim-fuzz-key-0001", "proj_alpha")
    credential.save()
    remote = simulator.state.create_thread("proj_alpha", messages=[("user", "hi")])
    thread = Thread.objects.create(remote_id=remote["id"], kind=Thread.Kind.ASSISTANTS, credential=credential)
    urls = []
    for pattern in get_resolver("threads_app.urls").url_patterns:
        converters = pattern.pattern.converters
        kwargs = {}
        if "pk" in converters:
            kwargs["pk"] = credential.pk if pattern.name.startswith("credential") else thread.pk
        if "fmt" in converters:
            kwargs["fmt"] = "json"
        urls.append(reverse(pattern.name, kwargs=kwargs))
    return urls


def fuzz(client, urls, data):
    url, method, htmx, fields = data
    before = fingerprint()
    response = getattr(client, method)(url, fields, headers={"HX-Request": "true"} if htmx else {})
    assert response.status_code < 500, f"{method.upper()} {url} {fields!r} → {response.status_code}"
    if response.status_code >= 400:
        assert fingerprint() == before, f"{method.upper()} {url} {fields!r} was refused but changed rows"


def requests_for(urls):
    return st.tuples(st.sampled_from(urls), st.sampled_from(["get", "post"]), st.booleans(), DATA)


@pytest.mark.parametrize("who", ["member", "admin"])
def test_no_random_input_gives_a_500_or_changes_anything_when_refused(client, site, who):
    user = make_user(who, who)
    client.force_login(user)
    client.raise_request_exception = False

    @settings(
        max_examples=400,
        deadline=None,
        derandomize=True,
        suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
    )
    @given(requests_for(site))
    def check(data):
        fuzz(client, site, data)

    check()
