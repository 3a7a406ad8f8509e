"""The gate's rules one by one, as `permissions.py` states them: who holds which right, what each is shown
and reaches, what a refusal says, and that a request asks the database for a user's rights once."""

import pytest
from django.contrib.auth.models import AnonymousUser, Group, Permission, User
from django.contrib.contenttypes.models import ContentType
from django.core.exceptions import PermissionDenied
from django.urls import reverse

from tests.conftest import make_user
from threads_app import ownership, permissions
from threads_app.models import ApiToken, Credential, DeletionJob, RetentionPolicy, Thread


def granted(user, *names):
    """`user` afresh (nothing remembered on the object) with the permissions `names` added to it."""
    for name in names:
        app_label, codename = name.split(".")
        user.user_permissions.add(
            Permission.objects.get(content_type__app_label=app_label, codename=codename)
        )
    return User.objects.get(pk=user.pk)


@pytest.fixture
def closed(db, personas):
    """A credential open to the stranger only."""
    credential = Credential.objects.create(name="closed", api_key_encrypted="x")
    credential.limited_to.add(personas["stranger"])
    return credential


# --- Rights -----------------------------------------------------------------------------------------------


def test_a_deactivated_account_holds_no_right_whatever_its_role(db):
    assert permissions.access(make_user("former", "admin", is_active=False)) == permissions.ANONYMOUS
    root = User.objects.create_superuser("oldroot", password="pw", is_active=False)
    assert permissions.access(root) == permissions.ANONYMOUS


def test_a_superuser_holds_every_right_without_a_query(db, django_assert_num_queries):
    root = User.objects.create_superuser("root", password="pw")
    with django_assert_num_queries(0):
        rights = permissions.access(root)
    assert rights.role == permissions.ADMIN
    assert all(value for name, value in vars(rights).items() if name != "role")


def test_a_users_rights_are_read_from_the_database_once_per_request(personas, django_assert_num_queries):
    auditor = User.objects.get(pk=personas["auditor"].pk)
    with django_assert_num_queries(1):
        first = permissions.access(auditor)
        assert permissions.access(auditor) is first
    assert first.role == permissions.AUDITOR and first.reads_audit_log and not first.manages_jobs


@pytest.mark.parametrize(
    ("flag", "pair"),
    [
        ("manages_intake", ("threads_app.add_thread", "threads_app.change_credential")),
        ("manages_jobs", ("threads_app.add_deletionjob", "threads_app.change_deletionjob")),
        ("manages_team", ("auth.add_user", "auth.change_user")),
    ],
)
def test_a_right_made_of_two_permissions_needs_both(db, flag, pair):
    for n, alone in enumerate(pair):
        assert not getattr(permissions.access(granted(make_user(f"half{n}", "member"), alone)), flag), alone
    assert getattr(permissions.access(granted(make_user("both", "member"), *pair)), flag)


def test_the_role_of_someone_not_signed_in_is_none(db):
    assert permissions.role_of(AnonymousUser()) == ""
    assert permissions.access(AnonymousUser()) == permissions.ANONYMOUS


def test_a_roles_permissions_are_those_of_its_app_not_a_namesake_in_another(db):
    # A permission named as one of the auditor's, but of another app, is not the auditor's.
    other_app = ContentType.objects.get_for_model(Group)
    namesake = Permission.objects.create(codename="view_all_threads", name="Namesake", content_type=other_app)
    permissions.sync_role_permissions()
    assert not Group.objects.get(name=permissions.AUDITOR).permissions.filter(pk=namesake.pk).exists()


def test_the_navigation_of_a_request_without_a_signed_in_user_is_anonymous(rf, db):
    request = rf.get("/")
    assert permissions.navigation(request) == {"access": permissions.ANONYMOUS}  # no user at all
    request.user = AnonymousUser()
    assert permissions.navigation(request) == {"access": permissions.ANONYMOUS}


def test_the_navigation_offers_the_audit_log_to_those_who_may_read_it(rf, personas):
    for persona, reads in (("auditor", True), ("admin", True), ("owner", False)):
        request = rf.get("/")
        request.user = personas[persona]
        shown = permissions.navigation(request)
        assert shown["can_read_audit_log"] == reads, persona
        assert shown["access"].reads_audit_log == reads, persona


# --- What each person reaches -----------------------------------------------------------------------------


def test_closed_credentials_are_read_once_per_request(personas, closed, django_assert_num_queries):
    owner = personas["owner"]
    with django_assert_num_queries(1):
        assert permissions.closed_credential_ids(owner) == [closed.pk]
        assert permissions.closed_credential_ids(owner) == [closed.pk]
    assert permissions.closed_credential_ids(personas["stranger"]) == []


def test_the_overview_hides_no_credential_from_those_who_see_every_thread(personas, closed):
    assert permissions.overview_hidden_credentials(personas["admin"]) == set()
    assert permissions.overview_hidden_credentials(personas["auditor"]) == set()
    assert permissions.overview_hidden_credentials(personas["owner"]) == {closed.pk}


def test_only_those_who_manage_intake_may_use_credentials_or_choose_owners(personas, credential):
    assert set(permissions.usable_credentials(personas["admin"])) == {credential}
    for persona in ("owner", "auditor"):
        assert not permissions.usable_credentials(personas[persona]).exists(), persona
        assert not permissions.owner_choices(personas[persona]).exists(), persona
    assert "ada" in permissions.owner_choices(personas["admin"]).values_list("username", flat=True)


def test_the_thread_asked_for_is_the_one_given_with_its_credential_and_owner(
    rf, personas, make_thread, django_assert_num_queries
):
    make_thread(owner=personas["owner"])
    wanted = make_thread(owner=personas["owner"], title="this one")
    request = rf.get("/")
    request.user = personas["admin"]
    permissions.access(request.user)
    with django_assert_num_queries(1):
        thread = permissions.get_thread_for_user(request, wanted.pk)
        assert (thread.title, thread.credential.name, thread.owner.username) == ("this one", "alpha", "olga")


def test_the_job_asked_for_is_the_one_given_with_who_asked_and_its_policy(
    rf, personas, credential, django_assert_num_queries
):
    policy = RetentionPolicy.objects.create(credential=credential, mode="delete", window_days=45)
    DeletionJob.objects.create(summary="first")
    wanted = DeletionJob.objects.create(summary="second", requested_by=personas["admin"], policy=policy)
    request = rf.get("/")
    request.user = personas["auditor"]
    permissions.access(request.user)
    with django_assert_num_queries(1):
        job = permissions.get_job_for_user(request, wanted.pk)
        assert (job.summary, job.requested_by.username, job.policy.window_days) == ("second", "ada", 45)


def test_only_admins_may_forget_and_only_a_thread_no_longer_active(personas, make_thread):
    gone = make_thread(owner=personas["owner"], status=Thread.Status.DELETED)
    active = make_thread(owner=personas["owner"])
    assert permissions.can_forget(personas["admin"], gone)
    assert not permissions.can_forget(personas["admin"], active)
    assert not permissions.can_forget(personas["owner"], gone)


# --- Refusals say why -------------------------------------------------------------------------------------


def test_each_refusal_of_a_page_says_why(client, personas, make_thread):
    thread = make_thread(owner=personas["owner"], status=Thread.Status.DELETED)
    job = DeletionJob.objects.create(summary="old", state=DeletionJob.State.FINISHED)
    refusals = [
        (
            "owner",
            "post",
            reverse("thread_forget", args=[thread.pk]),
            "Only admins can remove threads from the registry.",
        ),
        (
            "auditor",
            "post",
            reverse("job_retry", args=[job.pk]),
            "Only admins can cancel, retry or confirm deletion jobs.",
        ),
        (
            "auditor",
            "get",
            reverse("job_archive", args=[job.pk]),
            "The archive holds what was said in the threads: downloading it needs the “read message "
            "content” permission, which an admin grants.",
        ),
    ]
    for persona, method, url, reason in refusals:
        client.force_login(personas[persona])
        response = getattr(client, method)(url)
        assert response.status_code == 403, url
        assert reason in response.content.decode(), url


def test_reassigning_by_someone_not_an_admin_is_refused_with_the_reason(personas, make_thread):
    make_thread(owner=personas["owner"])
    with pytest.raises(PermissionDenied) as refused:
        ownership.reassign(Thread.objects.all(), personas["stranger"], by=personas["owner"])
    assert str(refused.value) == "Only admins can reassign threads."
    assert Thread.objects.get().owner == personas["owner"]


# --- API tokens -------------------------------------------------------------------------------------------


def test_a_token_reaches_its_credentials_threads_and_of_those_what_its_owner_sees(
    personas, make_thread, credential, closed
):
    owner = personas["owner"]
    mine = make_thread(owner=owner)
    mine_closed = make_thread(owner=owner, credential=closed)
    theirs = make_thread(owner=personas["stranger"])
    theirs_closed = make_thread(owner=personas["stranger"], credential=closed)
    reach = [
        (ApiToken(), {mine, mine_closed, theirs, theirs_closed}),
        (ApiToken(credential=closed), {mine_closed, theirs_closed}),
        (ApiToken(owner=owner), {mine}),
        (ApiToken(owner=personas["stranger"], credential=closed), {theirs_closed}),
        (ApiToken(owner=owner, credential=closed), set()),
    ]
    for token, threads in reach:
        assert set(permissions.token_threads(token)) == threads, (token.owner_id, token.credential_id)


def test_a_token_files_threads_under_its_own_credential_or_one_its_owner_may_see(
    personas, credential, closed
):
    assert permissions.token_may_use_credential(ApiToken(), closed)
    assert permissions.token_may_use_credential(ApiToken(credential=closed), closed)
    assert not permissions.token_may_use_credential(ApiToken(credential=closed), credential)
    assert permissions.token_may_use_credential(ApiToken(owner=personas["owner"]), credential)
    assert not permissions.token_may_use_credential(ApiToken(owner=personas["owner"]), closed)
    assert permissions.token_may_use_credential(ApiToken(owner=personas["stranger"]), closed)
