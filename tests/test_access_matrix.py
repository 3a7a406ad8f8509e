"""Every URL the project defines × every kind of person: the exact status each gets, and nothing changed by
a request that was refused. A URL pattern added without a row here fails `test_every_url_has_a_row`.

People: anonymous, a member who owns the thread under test, a member who does not, an auditor without
and with the permission to read message content, and an admin. Columns of each row are in that order.
"""

import inspect
from dataclasses import dataclass, field

import pytest
from django.contrib.auth.models import Group, User
from django.core.exceptions import PermissionDenied
from django.db.models import Model
from django.http import Http404
from django.urls import URLPattern, URLResolver, get_resolver, reverse

from tests.conftest import make_user
from threads_app import models as project_models
from threads_app import permissions, tokens
from threads_app.models import (
    DeletionArchive,
    DeletionItem,
    DeletionJob,
    ImportRun,
    RehomeRun,
    Thread,
)

pytestmark = pytest.mark.usefixtures("no_retries")

PEOPLE = ["anonymous", "owner", "stranger", "auditor", "reader", "admin"]


@dataclass
class Site:
    thread: Thread
    credential: object
    job: DeletionJob
    import_run: ImportRun
    rehome_run: RehomeRun
    target: User  # someone the team pages act on
    people: dict
    simulator: object
    sim_key: object
    spare_ids: list = field(default_factory=list)  # remote threads nobody tracks yet
    token: object = None


@pytest.fixture
def site(simulator, sim_key, sim_credential, personas):
    state = simulator.state
    remote = state.create_thread("proj_alpha", messages=[("user", "hello"), ("assistant", "hi there")])
    thread = Thread.objects.create(
        remote_id=remote["id"],
        kind=Thread.Kind.ASSISTANTS,
        credential=sim_credential,
        owner=personas["owner"],
        title="Refund for order 7",
    )
    spare = [state.create_thread("proj_alpha", messages=[("user", "x")])["id"] for _ in range(2)]
    job = DeletionJob.objects.create(
        requested_by=personas["admin"],
        requested_by_name="ada",
        summary="1 thread picked in the list",
        archive=True,
        state=DeletionJob.State.FINISHED,
        total=1,
        deleted=1,
    )
    item = DeletionItem.objects.create(
        job=job,
        remote_id="thread_gonegonegone1",
        kind=Thread.Kind.ASSISTANTS,
        credential=sim_credential,
        credential_name=sim_credential.name,
        state=DeletionItem.State.DELETED,
    )
    DeletionArchive.objects.create(item=item, content='{"messages": []}')
    import_run = ImportRun.objects.create(
        credential=sim_credential, added_by=personas["admin"], state=ImportRun.State.FINISHED
    )
    rehome_run = RehomeRun.objects.create(summary="1 thread", thread_ids=[], state=RehomeRun.State.FINISHED)
    target = make_user("tess", "member")
    token = tokens.create("ci", scopes=["read"], created_by=personas["admin"]).token
    return Site(
        thread,
        sim_credential,
        job,
        import_run,
        rehome_run,
        target,
        personas,
        simulator,
        sim_key,
        spare,
        token,
    )


@dataclass(frozen=True)
class Row:
    name: str
    method: str
    codes: tuple  # one status per person, in PEOPLE's order
    args: object = None  # site → URL args
    query: str = ""
    data: object = None  # site → POST data
    headers: dict = field(default_factory=dict)


HTMX = {"HX-Request": "true"}


def thread_pk(s):
    return [s.thread.pk]


def job_pk(s):
    return [s.job.pk]


def target_pk(s):
    return [s.target.pk]


def credential_pk(s):
    return [s.credential.pk]


# Shorthands for the common rows: (anonymous, owner, stranger, auditor, reader, admin).
THREAD_READ = (302, 200, 404, 200, 200, 200)
THREAD_CONTENT = (302, 200, 404, 403, 200, 200)
THREAD_CHANGE_GET = (302, 200, 404, 403, 403, 200)
THREAD_CHANGE_POST = (302, 302, 404, 403, 403, 302)
THREAD_ADMIN_POST = (302, 403, 404, 403, 403, 302)
ADMIN_GET = (302, 403, 403, 403, 403, 200)
ADMIN_POST = (302, 403, 403, 403, 403, 302)
READER_GET = (302, 403, 403, 200, 200, 200)  # admins and auditors
JOB_READ = (302, 404, 404, 200, 200, 200)
JOB_CHANGE = (302, 404, 404, 403, 403, 302)
EVERYONE_SIGNED_IN = (302, 200, 200, 200, 200, 200)
PUBLIC = (200, 200, 200, 200, 200, 200)

ROWS = [
    # Signing in and out, and the one-time set-password link (a broken token: the "no longer works" page).
    Row("login", "get", PUBLIC),
    Row("logout", "post", (302, 302, 302, 302, 302, 302)),
    Row("password_reset_confirm", "get", PUBLIC, args=lambda s: ["MQ", "set-password"]),
    Row("password_reset_complete", "get", PUBLIC),
    # Browsing.
    Row("thread_list", "get", EVERYONE_SIGNED_IN),
    Row("overview", "get", EVERYONE_SIGNED_IN),
    Row("thread_detail", "get", THREAD_READ, thread_pk),
    Row("thread_messages", "get", THREAD_CONTENT, thread_pk, headers=HTMX),
    Row("thread_facts", "get", THREAD_READ, thread_pk, headers=HTMX),
    Row("thread_refresh", "post", (302, 302, 404, 302, 302, 302), thread_pk),
    Row("thread_edit", "get", THREAD_CHANGE_GET, thread_pk),
    Row(
        "thread_edit",
        "post",
        THREAD_CHANGE_POST,
        thread_pk,
        data=lambda s: {"title": "Renamed", "end_user": "acme"},
    ),
    Row("thread_metadata", "get", THREAD_CHANGE_GET, thread_pk),
    Row(
        "thread_metadata",
        "post",
        THREAD_CHANGE_POST,
        thread_pk,
        data=lambda s: {"key_0": "topic", "value_0": "refunds"},
    ),
    Row("thread_delete", "get", THREAD_CHANGE_GET, thread_pk),
    Row("thread_delete", "post", THREAD_CHANGE_POST, thread_pk, data=lambda s: {}),
    Row("thread_mark_missing", "post", THREAD_ADMIN_POST, thread_pk),
    Row("thread_pin", "post", THREAD_ADMIN_POST, thread_pk, data=lambda s: {"pinned": "1"}),
    Row("thread_rehome", "post", THREAD_ADMIN_POST, thread_pk),
    Row("thread_export", "get", THREAD_CONTENT, lambda s: [s.thread.pk, "json"]),
    Row("rehome_new", "get", ADMIN_GET, query="ids={pk}"),
    Row("rehome_new", "post", ADMIN_POST, query="ids={pk}", data=lambda s: {}),
    Row("rehome_run", "get", ADMIN_GET, lambda s: [s.rehome_run.pk]),
    # The list's CSV: everyone signed in, of the threads they see (`test_the_list_export_holds_...`).
    Row("thread_list_csv", "get", EVERYONE_SIGNED_IN),
    # The list's bulk reassignment (`ownership.reassign`): admins only.
    Row("reassign_new", "get", ADMIN_GET, query="ids={pk}"),
    Row(
        "reassign_new",
        "post",
        ADMIN_POST,
        query="ids={pk}",
        data=lambda s: {"owner": s.people["admin"].pk},
    ),
    Row("thread_header", "get", THREAD_READ, thread_pk, headers=HTMX),
    # Intake.
    Row("credential_list", "get", READER_GET),
    Row("credential_add", "get", ADMIN_GET),
    Row(
        "credential_add",
        "post",
        ADMIN_POST,
        data=lambda s: {
            "name": "beta",
            "base_url": s.simulator.base_url,
            "api_key": s.sim_key("proj_beta"),
            "project_id": "proj_beta",
        },
    ),
    Row("credential_edit", "get", ADMIN_GET, credential_pk),
    Row(
        "credential_edit",
        "post",
        ADMIN_POST,
        credential_pk,
        data=lambda s: {"name": "alpha", "base_url": s.simulator.base_url, "project_id": "proj_alpha"},
    ),
    Row("credential_verify", "post", ADMIN_POST, credential_pk),
    Row("credential_discover", "post", ADMIN_POST, credential_pk),
    # A discovery run's progress, which the credentials page polls (286: no run, nothing to poll).
    Row("credential_discovery", "get", (302, 403, 403, 286, 286, 286), credential_pk, headers=HTMX),
    Row("credential_delete", "post", ADMIN_POST, credential_pk),
    Row(
        "credential_retention",
        "post",
        ADMIN_POST,
        credential_pk,
        data=lambda s: {"mode": "flag", "window_days": "30"},
    ),
    Row("thread_add", "get", ADMIN_GET),
    Row(
        "thread_add",
        "post",
        ADMIN_POST,
        data=lambda s: {"remote_id": s.spare_ids[0], "credential": s.credential.pk},
    ),
    Row("thread_import", "get", ADMIN_GET),
    Row(
        "thread_import",
        "post",
        (302, 403, 403, 403, 403, 200),
        data=lambda s: {"credential": s.credential.pk, "text": s.spare_ids[1]},
    ),
    Row("import_run", "get", ADMIN_GET, lambda s: [s.import_run.pk]),
    # Bulk deletion.
    Row("job_list", "get", READER_GET),
    Row("job_new", "get", ADMIN_GET, query="ids={pk}"),
    Row("job_new", "post", ADMIN_POST, query="ids={pk}", data=lambda s: {"confirm_count": "1"}),
    Row("job_detail", "get", JOB_READ, job_pk),
    Row("job_cancel", "post", JOB_CHANGE, job_pk),
    Row("job_retry", "post", JOB_CHANGE, job_pk),
    Row("job_confirm", "post", JOB_CHANGE, job_pk),
    Row("job_receipt_csv", "get", JOB_READ, job_pk),
    Row("job_receipt_json", "get", JOB_READ, job_pk),
    Row("job_archive", "get", (302, 404, 404, 403, 200, 200), job_pk),
    # The team.
    Row("team", "get", ADMIN_GET),
    Row("team_add", "get", ADMIN_GET),
    Row(
        "team_add",
        "post",
        ADMIN_POST,
        data=lambda s: {"username": "newbie", "role": "member", "password": "a-long-unusual-pass-9"},
    ),
    Row("team_member", "get", ADMIN_GET, target_pk),
    Row("team_member", "post", ADMIN_POST, target_pk, data=lambda s: {"role": "auditor"}),
    Row("team_deactivate", "get", ADMIN_GET, target_pk),
    Row("team_deactivate", "post", ADMIN_POST, target_pk, data=lambda s: {"reassign_to": ""}),
    Row("team_reactivate", "post", ADMIN_POST, target_pk),
    Row("team_link", "post", (302, 403, 403, 403, 403, 200), target_pk),
    # The ownership review.
    Row("ownership", "get", READER_GET),
    Row(
        "ownership_reassign",
        "post",
        (302, 403, 403, 403, 403, 302),
        data=lambda s: {"from_owner": s.people["owner"].pk, "to_owner": s.people["admin"].pk},
    ),
    Row("ownership_export", "get", READER_GET),
    Row("thread_history", "get", THREAD_READ, thread_pk, headers=HTMX),
    # The messages panel holds only the refusal for those who may not read what was said.
    Row("thread_messages_panel", "get", THREAD_READ, thread_pk, headers=HTMX),
    Row("thread_forget", "get", ADMIN_GET, thread_pk),
    Row(
        "thread_forget",
        "post",
        ADMIN_POST,
        thread_pk,
        data=lambda s: {"remote_id": s.thread.remote_id},
    ),
    Row("favicon", "get", (302,) * 6),
    # API tokens (admins), and the REST API and capture proxy, which take a token, never a session.
    Row("token_list", "get", ADMIN_GET),
    Row(
        "token_list",
        "post",
        (302, 403, 403, 403, 403, 200),
        data=lambda s: {"name": "made", "scopes": ["read"], "requests_per_minute": "600"},
    ),
    Row("token_detail", "get", ADMIN_GET, lambda s: [s.token.pk]),
    Row("token_revoke", "post", ADMIN_POST, lambda s: [s.token.pk]),
    Row("api_openapi", "get", PUBLIC),
    Row("api_threads", "get", (401,) * 6),
    Row("api_thread", "get", (401,) * 6, lambda s: [s.thread.remote_id]),
    Row("capture_proxy", "post", (401,) * 6, lambda s: ["threads"]),
    # The audit log.
    Row("audit_log", "get", READER_GET),
    Row("audit_export", "get", READER_GET),
]


def project_url_names() -> set[str]:
    """The name of every URL pattern the project defines (Django's admin, which decides its own access by
    is_staff, aside: `test_django_admin_is_for_admins` covers it)."""
    names = set()

    def walk(patterns):
        for pattern in patterns:
            if isinstance(pattern, URLResolver):
                if pattern.namespace != "admin":
                    walk(pattern.url_patterns)
            elif isinstance(pattern, URLPattern):
                assert pattern.name, f"the URL pattern {pattern.pattern} has no name, so no row can name it"
                names.add(pattern.name)

    walk(get_resolver().url_patterns)
    return names


def test_every_url_has_a_row():
    assert project_url_names() == {row.name for row in ROWS}


def fingerprint() -> dict:
    """Every row of the project's models, and the people, their groups and permissions."""
    rows = {}
    for _, model in inspect.getmembers(project_models, inspect.isclass):
        if issubclass(model, Model) and not model._meta.abstract and model._meta.app_label == "threads_app":
            rows[model.__name__] = list(model.objects.order_by("pk").values())
    rows["users"] = list(
        User.objects.order_by("pk").values("pk", "username", "is_active", "is_staff", "password")
    )
    rows["groups"] = list(User.groups.through.objects.order_by("pk").values())
    rows["user_permissions"] = list(User.user_permissions.through.objects.order_by("pk").values())
    rows["group_permissions"] = list(Group.permissions.through.objects.order_by("pk").values())
    return rows


CASES = [
    pytest.param(row, person, id=f"{row.method.upper()} {row.name} as {person}")
    for row in ROWS
    for person in PEOPLE
]


@pytest.mark.parametrize(("row", "person"), CASES)
def test_each_person_gets_exactly_what_their_role_allows(client, site, row, person):
    if person != "anonymous":
        client.force_login(site.people[person])
    url = reverse(row.name, args=row.args(site) if row.args else None)
    if row.query:
        url += "?" + row.query.format(pk=site.thread.pk)
    before = fingerprint()
    if row.method == "get":
        response = client.get(url, headers=row.headers)
    else:
        response = client.post(url, row.data(site) if row.data else {}, headers=row.headers)
    expected = row.codes[PEOPLE.index(person)]
    assert response.status_code == expected, response.content.decode()[:2000]
    signed_out = person == "anonymous" and response.status_code == 302
    if signed_out and row.name not in ("logout", "password_reset_confirm", "favicon"):
        assert response["Location"].startswith(reverse("login"))
    if response.status_code in (401, 403, 404, 405) or (signed_out and row.name != "logout"):
        assert fingerprint() == before, "a refused request changed something"


def test_the_refusals_say_why(rf, site):
    # The 403 page shows the reason the gate gives (its template is the error pages' business).
    request = rf.get("/")
    request.user = site.people["auditor"]
    with pytest.raises(PermissionDenied, match="read message content"):
        permissions.get_thread_for_action(request, site.thread.pk, "can_export")
    request.user = site.people["owner"]
    with pytest.raises(PermissionDenied, match="Only admins can pin"):
        permissions.get_thread_for_action(request, site.thread.pk, "can_pin")
    request.user = site.people["stranger"]
    with pytest.raises(Http404):
        permissions.get_thread_for_action(request, site.thread.pk, "can_pin")


def test_the_list_export_holds_only_the_threads_the_gate_shows(client, site, make_thread):
    others = make_thread(owner=site.people["stranger"])
    for person, sees_all in (("owner", False), ("stranger", False), ("auditor", True), ("admin", True)):
        client.force_login(site.people[person])
        body = b"".join(client.get(reverse("thread_list_csv")).streaming_content).decode()
        assert (site.thread.remote_id in body) == (person == "owner" or sees_all), person
        assert (others.remote_id in body) == (person == "stranger" or sees_all), person


def test_django_admin_is_for_admins(client, site):
    for person, expected in zip(PEOPLE, (302, 302, 302, 302, 302, 200), strict=True):
        if person != "anonymous":
            client.force_login(site.people[person])
        assert client.get(reverse("admin:index")).status_code == expected, person
