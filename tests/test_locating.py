"""Finding the credential that owns a thread: imports and additions that ask each credential, and
re-homing a thread that was filed under the wrong one."""

import io

import pytest
from django.core.management import call_command
from django.urls import reverse

from threads_app import locating
from threads_app.models import Credential, StatusChange, Thread, UnfoundId

pytestmark = pytest.mark.usefixtures("no_retries")


def make_credential(name, simulator, key, project):
    credential = Credential(name=name, base_url=simulator.base_url, project_id=project)
    credential.api_key = key
    credential.save()
    return credential


@pytest.fixture
def world(simulator, sim_key, db):
    """Three projects' credentials (gamma's key is valid but its project holds nothing), one whose key the
    API refuses, and threads of every kind in alpha and beta."""
    simulator.state.add_key("sk-test-gamma-key-9012", "proj_gamma")
    credentials = {
        "alpha": make_credential("alpha", simulator, sim_key("proj_alpha"), "proj_alpha"),
        "beta": make_credential("beta", simulator, sim_key("proj_beta"), "proj_beta"),
        "gamma": make_credential("gamma", simulator, "sk-test-gamma-key-9012", "proj_gamma"),
        "revoked": make_credential("revoked", simulator, "sk-revoked-key-00000", "proj_alpha"),
    }
    state = simulator.state
    owned = {"alpha": [], "beta": []}
    for project, name in (("proj_alpha", "alpha"), ("proj_beta", "beta")):
        for _ in range(4):
            owned[name].append(state.create_thread(project)["id"])
            owned[name].append(state.create_conversation(project)["id"])
            owned[name].append(state.create_chatkit_thread(project, user="u")["id"])
    keys_used = []
    key_for = state.key_for
    state.key_for = lambda api_key: keys_used.append(api_key) or key_for(api_key)
    return credentials, owned, keys_used


def test_each_id_is_found_under_the_credential_of_its_own_project(world):
    credentials, owned, _ = world
    ids = owned["alpha"] + owned["beta"] + ["thread_nowhere000001"]
    searches = [
        locating.Search(
            remote_id,
            "conversation"
            if remote_id.startswith("conv_")
            else "chatkit_thread"
            if remote_id.startswith("cthr_")
            else "assistants_thread",
            order=locating.candidates(Credential.objects.all()),
        )
        for remote_id in ids
    ]
    locating.locate(searches)
    found = {search.remote_id: search.found.name if search.found else None for search in searches}
    assert {found[r] for r in owned["alpha"]} == {"alpha"}
    assert {found[r] for r in owned["beta"]} == {"beta"}
    nowhere = searches[-1]
    assert nowhere.found is None
    assert sorted(name for name, _ in nowhere.tried) == ["alpha", "beta", "gamma", "revoked"]
    said = dict(nowhere.tried)
    assert said["gamma"] == "not found" and ("refused" in said["revoked"] or "not asked" in said["revoked"])


def test_a_refused_key_is_asked_no_more(world, simulator):
    credentials, owned, keys_used = world
    order = [credentials["revoked"], credentials["alpha"], credentials["beta"]]
    searches = [locating.Search(r, "assistants_thread", order=list(order)) for r in owned["beta"][::3]]
    locating.locate(searches)
    assert all(search.found == credentials["beta"] for search in searches)
    assert keys_used.count("sk-revoked-key-00000") <= 2 * credentials["revoked"].concurrency


def test_an_import_that_finds_each_credential_files_each_id_under_its_own(admin_client, world, settings):
    settings.IMPORT_INLINE_CHECK_LIMIT = 100
    credentials, owned, _ = world
    text = "\n".join(owned["alpha"] + owned["beta"] + ["conv_nowhere0000000000001"])
    response = admin_client.post(reverse("thread_import"), {"credential": "", "text": text})
    page = response.content.decode()
    assert response.status_code == 200
    assert "<strong>12</strong> under alpha" in page and "<strong>12</strong> under beta" in page
    assert "<strong>1</strong> not found under any credential" in page
    for name in ("alpha", "beta"):
        filed = set(Thread.objects.filter(credential=credentials[name]).values_list("remote_id", flat=True))
        assert filed == set(owned[name])
    assert set(Thread.objects.values_list("last_check", flat=True)) == {Thread.Check.OK}
    unfound = UnfoundId.objects.get()
    assert unfound.remote_id == "conv_nowhere0000000000001" and len(unfound.tried) == 4
    assert not Thread.objects.filter(remote_id="conv_nowhere0000000000001").exists()


def test_no_credential_the_person_may_not_use_is_tried(
    admin_client, world, monkeypatch, sim_key, settings, django_capture_on_commit_callbacks
):
    credentials, owned, keys_used = world
    settings.IMPORT_INLINE_CHECK_LIMIT = 1  # in the background, where the gate is asked again
    monkeypatch.setattr(
        "threads_app.permissions.visible_credentials", lambda user: Credential.objects.filter(name="alpha")
    )
    with django_capture_on_commit_callbacks(execute=True):
        response = admin_client.post(
            reverse("thread_import"), {"credential": "", "text": "\n".join(owned["beta"][:3])}
        )
    assert response.status_code == 302
    page = admin_client.get(response["Location"]).content.decode()
    assert "<strong>3</strong> not found under any credential" in page
    assert sim_key("proj_beta") not in keys_used and keys_used
    assert UnfoundId.objects.count() == 3 and not Thread.objects.exists()


def test_adding_one_thread_finds_its_credential_or_says_none_does(admin_client, world):
    credentials, owned, _ = world
    response = admin_client.post(reverse("thread_add"), {"remote_id": owned["beta"][1], "credential": ""})
    thread = Thread.objects.get(remote_id=owned["beta"][1])
    assert response.status_code == 302 and thread.credential == credentials["beta"]
    response = admin_client.post(
        reverse("thread_add"), {"remote_id": "cthr_nowhere0000001", "credential": ""}
    )
    assert (
        response.status_code == 200 and "No credential finds cthr_nowhere0000001" in response.content.decode()
    )


def test_the_command_imports_with_credential_auto(world, tmp_path):
    credentials, owned, _ = world
    ids = tmp_path / "ids.txt"
    ids.write_text("\n".join([*owned["alpha"][:2], *owned["beta"][:1], "thread_nowhere000003"]))
    out, err = io.StringIO(), io.StringIO()
    call_command("import_threads", str(ids), "--credential", "auto", stdout=out, stderr=err)
    assert "found 2 under alpha, 1 under beta; 1 not found under any credential" in out.getvalue()
    assert "thread_nowhere000003 is not found under any credential (alpha: not found;" in err.getvalue()


def test_a_thread_filed_under_the_wrong_credential_is_found_and_moved_with_one_click(
    admin_client, world, simulator
):
    credentials, owned, _ = world
    thread = Thread.objects.create(
        remote_id=owned["beta"][0],
        kind="assistants_thread",
        credential=credentials["alpha"],
        status="missing",
    )
    page = admin_client.get(reverse("thread_detail", args=[thread.pk])).content.decode()
    assert "Look under the other credentials" in page

    response = admin_client.post(reverse("thread_rehome", args=[thread.pk]), follow=True)

    assert "Found under beta" in response.content.decode()
    thread.refresh_from_db()
    assert (thread.credential, thread.status, thread.last_check) == (credentials["beta"], "active", "ok")
    move = StatusChange.objects.get(thread=thread)
    assert (move.moved_from, move.moved_to, move.old_status, move.new_status) == (
        "alpha",
        "beta",
        "missing",
        "active",
    )
    listing = admin_client.get(reverse("credential_list")).content.decode()
    assert "re-homed: 1 in, 0 out" in listing and "re-homed: 0 in, 1 out" in listing


def test_a_thread_found_nowhere_stays_as_it_was(admin_client, world):
    credentials, _, _ = world
    thread = Thread.objects.create(
        remote_id="thread_nowhere000002",
        kind="assistants_thread",
        credential=credentials["alpha"],
        status="missing",
    )
    response = admin_client.post(reverse("thread_rehome", args=[thread.pk]), follow=True)
    assert "No other credential finds thread_nowhere000002" in response.content.decode()
    thread.refresh_from_db()
    assert (thread.credential, thread.status) == (credentials["alpha"], "missing")
    assert not StatusChange.objects.exists()


def test_missing_threads_are_re_homed_in_bulk(world):
    credentials, owned, _ = world
    for remote_id in owned["beta"][:5]:
        kind = {"thread": "assistants_thread", "conv": "conversation", "cthr": "chatkit_thread"}[
            remote_id.split("_")[0]
        ]
        Thread.objects.create(
            remote_id=remote_id, kind=kind, credential=credentials["alpha"], status="missing"
        )
    Thread.objects.create(
        remote_id="thread_nowhere000004",
        kind="assistants_thread",
        credential=credentials["alpha"],
        status="missing",
    )
    out = io.StringIO()
    call_command("locate_threads", stdout=out)
    assert out.getvalue().strip() == "6 looked for: 5 to beta; 1 found under no other credential"
    assert Thread.objects.filter(credential=credentials["beta"], status="active").count() == 5


def test_a_selection_of_missing_threads_is_looked_for_from_the_list(
    admin_client, world, django_capture_on_commit_callbacks
):
    credentials, owned, _ = world
    wrong = [
        Thread.objects.create(
            remote_id=r, kind="assistants_thread", credential=credentials["alpha"], status="missing"
        )
        for r in owned["beta"][0:6:3]
    ]
    active = Thread.objects.create(
        remote_id=owned["alpha"][0], kind="assistants_thread", credential=credentials["alpha"]
    )
    query = "&".join(f"ids={t.pk}" for t in [*wrong, active])
    page = admin_client.get(f"/threads/rehome/?{query}").content.decode()
    assert "<strong>2</strong> of these threads are missing or expired" in page

    with django_capture_on_commit_callbacks(execute=True):
        response = admin_client.post(f"/threads/rehome/?{query}")
    assert response.status_code == 302
    progress = admin_client.get(response["Location"], headers={"HX-Request": "true"})
    body = progress.content.decode()
    assert progress.status_code == 286, "the finished search stops polling"
    assert "<strong>2</strong> found under beta and moved there" in body
    assert {t.credential.name for t in Thread.objects.filter(pk__in=[t.pk for t in wrong])} == {"beta"}
    assert Thread.objects.get(pk=active.pk).credential == credentials["alpha"]


def test_looking_for_a_selection_is_for_admins_and_refuses_bad_input(client, admin_client, world, bob):
    assert admin_client.get("/threads/rehome/?ids=abc").status_code == 400
    client.force_login(bob)
    assert client.post("/threads/rehome/?all=1").status_code == 403
