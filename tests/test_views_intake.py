"""The admin pages that bring credentials and threads in."""

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse

from tests.conftest import make_user
from threads_app.models import Credential, Thread

KEY = "sk-sim-alpha-secret-7k3q"


pytestmark = pytest.mark.usefixtures("no_retries")


@pytest.fixture
def admin_client(client, db):
    admin = make_user("root", "admin")
    client.force_login(admin)
    return client


@pytest.fixture
def alpha(simulator, db):
    simulator.state.add_key(KEY, "proj_alpha")
    credential = Credential(name="alpha", base_url=simulator.base_url, project_id="proj_alpha")
    credential.api_key = KEY
    credential.save()
    return credential


@pytest.mark.parametrize("name", ["credential_list", "credential_add", "thread_add", "thread_import"])
def test_intake_pages_are_for_admins_only(client, bob, name):
    url = reverse(name)
    assert client.get(url).status_code == 302  # anonymous: to the sign-in page
    client.force_login(bob)
    assert client.get(url).status_code == 403


def test_adding_a_credential_stores_the_key_encrypted_and_verifies_it(admin_client, simulator):
    simulator.state.add_key(KEY, "proj_alpha")
    response = admin_client.post(
        reverse("credential_add"),
        {"name": "alpha", "base_url": simulator.base_url, "project_id": "proj_alpha", "api_key": KEY},
        follow=True,
    )
    assert response.status_code == 200
    credential = Credential.objects.get()
    assert credential.api_key == KEY
    assert KEY not in credential.api_key_encrypted
    assert credential.last_verification_ok is True
    page = response.content.decode()
    assert "sk-…7k3q" in page
    assert KEY not in page


def test_the_key_is_never_rendered_back_and_blank_keeps_it(admin_client, alpha):
    page = admin_client.get(reverse("credential_edit", args=[alpha.pk])).content.decode()
    assert KEY not in page
    assert "sk-…7k3q" in page
    response = admin_client.post(
        reverse("credential_edit", args=[alpha.pk]),
        {"name": "alpha-renamed", "base_url": alpha.base_url, "project_id": "proj_alpha", "api_key": ""},
    )
    assert response.status_code == 302
    alpha.refresh_from_db()
    assert (alpha.name, alpha.api_key) == ("alpha-renamed", KEY)


@pytest.mark.parametrize(
    ("data", "error"),
    [
        ({"name": "has spaces", "api_key": KEY}, "no spaces"),
        ({"name": "ok", "api_key": "short"}, "does not look like an API key"),
        ({"name": "ok", "api_key": KEY, "base_url": "ftp://example.com"}, "must start with https://"),
        ({"name": "ok", "api_key": KEY, "organization_id": "acme"}, "start with org-"),
        ({"name": "ok"}, "This field is required"),
        ({"name": "ok", "api_key": KEY, "concurrency": "0"}, "greater than or equal to 1"),
        ({"name": "ok", "api_key": KEY, "organization_id": "org-a\r\nX-Evil: 1"}, "only letters, digits"),
        ({"name": "ok", "api_key": KEY, "project_id": "proj_é"}, "only letters, digits"),
        ({"name": "ok", "api_key": KEY, "azure_api_version": "2024\r\nX: y"}, "only letters, digits"),
        ({"name": "ok", "api_key": "sk-" + "a" * 100_000}, "at most 512 plain ASCII characters"),
        ({"name": "ok", "api_key": "sk-ключ-12345678"}, "at most 512 plain ASCII characters"),
        ({"name": "ok", "api_key": KEY, "requests_per_minute": "-5"}, "greater than or equal to 0"),
    ],
)
def test_bad_credential_input_is_refused_and_changes_nothing(admin_client, db, data, error):
    data = {"base_url": "https://api.openai.com/v1", **data}
    response = admin_client.post(reverse("credential_add"), data)
    assert response.status_code == 200
    assert error in response.content.decode()
    assert not Credential.objects.exists()


def test_a_credentials_rate_limit_and_concurrency_are_set_in_its_form(admin_client, db, simulator):
    data = {"name": "ok", "api_key": KEY, "base_url": simulator.base_url}
    admin_client.post(reverse("credential_add"), {**data, "requests_per_minute": "3000", "concurrency": "32"})
    assert Credential.objects.values_list("requests_per_minute", "concurrency").get() == (3000, 32)


def test_a_credential_that_tracks_threads_cannot_be_removed(admin_client, alpha):
    Thread.objects.create(remote_id="thread_aaaaaa111", kind=Thread.Kind.ASSISTANTS, credential=alpha)
    response = admin_client.post(reverse("credential_delete", args=[alpha.pk]), follow=True)
    assert "still tracks 1 threads" in response.content.decode()
    assert Credential.objects.filter(pk=alpha.pk).exists()


def test_verify_answers_htmx_with_the_row_alone(admin_client, alpha):
    response = admin_client.post(
        reverse("credential_verify", args=[alpha.pk]), headers={"HX-Request": "true"}
    )
    page = response.content.decode()
    assert response.status_code == 200
    assert page.lstrip().startswith(f'<tr id="credential-{alpha.pk}"')
    assert "Works" in page


def test_adding_a_thread_by_id_checks_it_and_opens_it(admin_client, alpha, simulator):
    remote = simulator.state.create_thread("proj_alpha", metadata={"team": "sales"})
    response = admin_client.post(
        reverse("thread_add"), {"remote_id": remote["id"], "credential": alpha.pk, "title": "Sales"}
    )
    thread = Thread.objects.get()
    assert response.status_code == 302
    assert response.url == reverse("thread_detail", args=[thread.pk])
    assert (thread.title, thread.last_check, thread.metadata) == ("Sales", Thread.Check.OK, {"team": "sales"})


@pytest.mark.parametrize(
    ("remote_id", "error"),
    [
        ("run_abc123XYZ456", "a run of an Assistants thread"),
        ("asst_abc123XYZ456", "an assistant"),
        ("<script>alert(1)</script>", "is not a thread ID"),
    ],
)
def test_adding_a_wrong_id_says_what_it_is_and_adds_nothing(admin_client, alpha, remote_id, error):
    response = admin_client.post(reverse("thread_add"), {"remote_id": remote_id, "credential": alpha.pk})
    assert response.status_code == 200
    page = response.content.decode()
    assert error in page
    assert "<script>alert(1)</script>" not in page
    assert not Thread.objects.exists()


def test_adding_a_tracked_thread_again_is_refused(admin_client, alpha):
    Thread.objects.create(remote_id="thread_aaaaaa111", kind=Thread.Kind.ASSISTANTS, credential=alpha)
    response = admin_client.post(
        reverse("thread_add"), {"remote_id": "thread_aaaaaa111", "credential": alpha.pk}
    )
    assert "already tracked" in response.content.decode()
    assert Thread.objects.count() == 1


def test_pasted_import_reports_and_checks_small_batches_inline(admin_client, alpha, simulator):
    real = simulator.state.create_conversation("proj_alpha")["id"]
    text = f"{real}\n{real}\nrun_abcdef123 and conv_missing0001\n"
    response = admin_client.post(
        reverse("thread_import"), {"credential": alpha.pk, "text": text}, headers={"HX-Request": "true"}
    )
    page = response.content.decode()
    assert response.status_code == 200
    assert page.lstrip().startswith('<div id="import-panel">')
    assert "Imported 2 threads" in page
    assert "a run of an Assistants thread" in page
    assert "2 checked: 1 found, 1 not found" in page
    assert Thread.objects.get(remote_id="conv_missing0001").status == Thread.Status.MISSING


def test_uploaded_csv_import_assigns_owners(admin_client, alpha, alice):
    upload = SimpleUploadedFile("threads.csv", b"id,owner\nthread_aaaaaa111,alice\n", content_type="text/csv")
    response = admin_client.post(
        reverse("thread_import"), {"credential": alpha.pk, "file": upload, "owner": ""}
    )
    # The simulator does not hold it: registered, and said to be found by no one.
    assert "Registered 1 thread, but the API found none of them" in response.content.decode()
    assert Thread.objects.get().owner == alice


@pytest.mark.parametrize(
    ("data", "error"),
    [
        ({"text": ""}, "Paste some IDs or choose a file."),
        ({"text": "nothing to see"}, "holds no thread IDs"),
        ({"text": "id,owner\nthread_aaaaaa111,nobody\n"}, "Unknown owner"),
        ({"file": b"\xff\xfe\x00\x01"}, "not UTF-8"),
    ],
)
def test_bad_imports_say_why_and_change_nothing(admin_client, alpha, data, error):
    # The upload is made here, not in the parameters: a file is read once, and a second run of the test in
    # the same process (as mutation testing does) would send an empty one.
    if "file" in data:
        data = {"file": SimpleUploadedFile("x.bin", data["file"])}
    response = admin_client.post(reverse("thread_import"), {"credential": alpha.pk, **data})
    assert response.status_code == 200
    assert error in response.content.decode()
    assert not Thread.objects.exists()


def test_import_with_an_unknown_credential_is_refused(admin_client, alpha):
    response = admin_client.post(reverse("thread_import"), {"credential": 999, "text": "thread_aaaaaa111"})
    assert "Select a valid choice" in response.content.decode()
    assert not Thread.objects.exists()


def test_admins_see_the_intake_links_and_team_members_do_not(admin_client, client, bob):
    page = admin_client.get(reverse("thread_list")).content.decode()
    for name in ("thread_add", "thread_import", "credential_list"):
        assert f'href="{reverse(name)}"' in page
    client.force_login(bob)
    page = client.get(reverse("thread_list")).content.decode()
    assert f'href="{reverse("credential_list")}"' not in page


def test_a_new_key_rechecks_the_threads_the_old_one_could_not(
    admin_client, alpha, simulator, django_capture_on_commit_callbacks
):
    remote = simulator.state.create_thread("proj_alpha")
    thread = Thread.objects.create(
        remote_id=remote["id"], kind=Thread.Kind.ASSISTANTS, credential=alpha, last_check=Thread.Check.BAD_KEY
    )
    simulator.state.add_key("sk-sim-alpha-rotated-0002", "proj_alpha")
    with django_capture_on_commit_callbacks(execute=True):
        admin_client.post(
            reverse("credential_edit", args=[alpha.pk]),
            {
                "name": "alpha",
                "base_url": alpha.base_url,
                "project_id": "proj_alpha",
                "api_key": "sk-sim-alpha-rotated-0002",
            },
        )
    thread.refresh_from_db()
    assert thread.last_check == Thread.Check.OK
