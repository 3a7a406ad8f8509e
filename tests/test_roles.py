"""Roles, the gate's querysets and flags, the team's functions and the ownership review."""

import csv
import io

import pytest
from django.contrib.auth.models import Group, Permission, User
from django.urls import reverse

from tests.conftest import make_user
from threads_app import ownership, permissions, team
from threads_app.models import Credential, Thread


def test_each_role_gets_exactly_the_permissions_of_the_table(db):
    permissions.sync_role_permissions()
    for role, names in permissions.ROLE_PERMISSIONS.items():
        held = {
            f"{app_label}.{codename}"
            for app_label, codename in Group.objects.get(name=role).permissions.values_list(
                "content_type__app_label", "codename"
            )
        }
        assert held == set(names), f"{role}: a name in ROLE_PERMISSIONS matches no permission"


def test_the_roles_exist_after_migrating(db):
    assert set(Group.objects.values_list("name", flat=True)) >= {"member", "admin", "auditor"}
    assert Group.objects.get(name="auditor").permissions.filter(codename="view_all_threads").exists()


def test_a_superuser_is_an_admin_and_someone_without_a_group_a_member(db):
    root = User.objects.create_superuser("root", password="pw")
    plain = User.objects.create_user("plain", password="pw")
    assert permissions.access(root).role == "admin" and permissions.access(root).manages_team
    assert permissions.access(plain).role == "member" and not permissions.access(plain).sees_all_threads


def test_members_see_their_own_threads_under_the_credentials_open_to_them(personas, make_thread, credential):
    owner, stranger = personas["owner"], personas["stranger"]
    mine = make_thread(owner=owner)
    make_thread(owner=stranger)
    make_thread()
    closed = Credential.objects.create(name="closed", api_key_encrypted="x")
    hidden = make_thread(owner=owner, credential=closed)
    closed.limited_to.add(stranger)
    assert list(permissions.visible_threads(owner)) == [mine]
    assert set(permissions.visible_credentials(owner)) == {credential}
    assert set(permissions.visible_credentials(stranger)) == {credential, closed}
    assert hidden in permissions.visible_threads(personas["auditor"])
    assert permissions.visible_threads(personas["admin"]).count() == 4


def test_the_flags_follow_role_and_ownership(personas, make_thread):
    thread = make_thread(owner=personas["owner"])
    owner = permissions.thread_flags(personas["owner"], thread)
    assert owner.can_edit and owner.can_delete and owner.can_export and not owner.can_assign_owner
    assert not owner.can_pin
    auditor = permissions.thread_flags(personas["auditor"], thread)
    assert not (auditor.can_edit or auditor.can_delete or auditor.can_export or auditor.can_read_messages)
    reader = permissions.thread_flags(personas["reader"], thread)
    assert reader.can_read_messages and reader.can_export and not reader.can_edit
    admin = permissions.thread_flags(personas["admin"], thread)
    assert all(vars(admin).values())


def test_pages_show_only_the_buttons_the_person_may_use(client, personas, make_thread):
    thread = make_thread(owner=personas["owner"], status=Thread.Status.ACTIVE)
    url = reverse("thread_detail", args=[thread.pk])
    client.force_login(personas["auditor"])
    page = client.get(url).content.decode()
    for hidden in ("thread_edit", "thread_delete", "thread_export", "thread_pin", "thread_messages"):
        assert (
            reverse(hidden, args=[thread.pk] if hidden != "thread_export" else [thread.pk, "json"])
            not in page
        )
    assert "read message content" in page
    assert 'href="/team/"' not in page and 'href="/ownership/"' in page and 'href="/jobs/"' in page
    client.force_login(personas["owner"])
    page = client.get(url).content.decode()
    assert (
        reverse("thread_edit", args=[thread.pk]) in page
        and reverse("thread_delete", args=[thread.pk]) in page
    )
    assert reverse("thread_pin", args=[thread.pk]) not in page
    assert 'href="/ownership/"' not in page and 'href="/credentials/"' not in page
    # A member edits title and end-user label, never the owner.
    form = client.get(reverse("thread_edit", args=[thread.pk])).content.decode()
    assert 'name="owner"' not in form
    client.post(reverse("thread_edit", args=[thread.pk]), {"title": "Mine", "owner": personas["stranger"].pk})
    thread.refresh_from_db()
    assert thread.title == "Mine" and thread.owner == personas["owner"]


def test_a_members_list_overview_and_filters_count_only_their_threads(client, personas, make_thread):
    for _ in range(3):
        make_thread(owner=personas["stranger"])
    make_thread(owner=personas["owner"], title="the one")
    client.force_login(personas["owner"])
    page = client.get(reverse("thread_list")).content.decode()
    assert "the one" in page and "sam" not in page  # nor the other owners in the filter's choices
    overview = client.get(reverse("overview")).content.decode()
    assert "1 tracked thread" in overview
    page = client.get(reverse("thread_list"), {"owner": personas["stranger"].pk}).content.decode()
    assert "No threads match" in page


# --- The team ---------------------------------------------------------------------------------------------


def test_a_role_change_moves_the_group_and_django_admin_access(db):
    user = make_user("una", "member")
    assert team.set_role(user, "admin") == "member"
    assert user.is_staff and list(user.groups.values_list("name", flat=True)) == ["admin"]
    team.set_role(user, "auditor")
    user.refresh_from_db()
    assert not user.is_staff and permissions.access(User.objects.get(pk=user.pk)).role == "auditor"
    with pytest.raises(team.TeamError):
        team.set_role(user, "owner")


def test_nobody_demotes_or_deactivates_themselves(db):
    admin = make_user("ada", "admin")
    with pytest.raises(team.TeamError):
        team.set_role(admin, "member", by=admin)
    with pytest.raises(team.TeamError):
        team.deactivate(admin, by=admin)


def test_deactivating_hands_the_threads_over_and_ends_sign_in(client, personas, make_thread):
    leaver = personas["stranger"]
    for _ in range(3):
        make_thread(owner=leaver)
    client.force_login(leaver)
    assert client.get(reverse("thread_list")).status_code == 200
    moved = team.deactivate(leaver, by=personas["admin"], reassign_to=personas["owner"])
    assert moved == 3 and Thread.objects.filter(owner=personas["owner"]).count() == 3
    assert client.get(reverse("thread_list")).status_code == 302  # the open session is gone
    with pytest.raises(ownership.ReassignError):
        ownership.reassign(Thread.objects.all(), leaver)


def test_the_team_page_creates_a_person_with_a_one_time_link(client, personas):
    client.force_login(personas["admin"])
    response = client.post(
        reverse("team_add"), {"username": "newbie", "role": "auditor", "content_access": "on"}
    )
    assert response.status_code == 200
    link = response.context["link"]
    newbie = User.objects.get(username="newbie")
    assert not newbie.has_usable_password() and permissions.access(newbie).reads_all_content
    client.logout()
    # The link leads to a form (Django moves the token into the session), which sets the password once.
    form_url = client.get(link)["Location"]
    response = client.post(
        form_url, {"new_password1": "a-long-unusual-pass-9", "new_password2": "a-long-unusual-pass-9"}
    )
    assert response.status_code == 302
    assert client.login(username="newbie", password="a-long-unusual-pass-9")
    client.logout()
    assert "no longer works" in client.get(link, follow=True).content.decode()


def test_the_team_page_refuses_a_duplicate_name_and_weak_password(client, personas):
    client.force_login(personas["admin"])
    response = client.post(reverse("team_add"), {"username": "OLGA", "role": "member"})
    assert response.status_code == 400 and "already a user named" in response.content.decode()
    response = client.post(reverse("team_add"), {"username": "x1", "role": "member", "password": "123"})
    assert response.status_code == 400 and not User.objects.filter(username="x1").exists()


# --- The ownership review ---------------------------------------------------------------------------------


@pytest.fixture
def owned(personas, make_thread, credential):
    leaver = make_user("leo", "member")
    for status in ("active", "active", "deleted"):
        make_thread(owner=leaver, status=status)
    make_thread(owner=personas["owner"])
    make_thread(status="active", last_check=Thread.Check.BAD_KEY)
    team.deactivate(leaver)
    return leaver


def test_the_review_groups_by_owner_and_credential_and_finds_departed_users(owned, personas, credential):
    result = ownership.review(Thread.objects.all())
    assert result.total == 5 and (result.unassigned, result.unassigned_live) == (1, 1)
    assert [(row.name, row.live, row.total, row.active) for row in result.departed] == [("leo", 2, 3, False)]
    assert [(row.name, row.refused) for row in result.failing_credentials] == [("alpha", 1)]
    assert result.projects == [("proj_alpha", 5, 4)]


def test_the_review_costs_the_same_few_queries_however_many_threads(
    owned, make_thread, django_assert_num_queries
):
    # The tallies with their changes (one query), the threads the key refused, the users named (with their
    # groups) and the credentials: never a count of the thread table.
    with django_assert_num_queries(5) as captured:
        ownership.review(Thread.objects.all())
    assert sum("threads_app_thread" in query["sql"] for query in captured.captured_queries) == 1
    for _ in range(30):
        make_thread(owner=owned)
    with django_assert_num_queries(5):
        ownership.review(Thread.objects.all())


def test_a_members_review_counts_their_own_threads_under_the_credentials_open_to_them(
    owned, personas, make_thread, credential
):
    owner = personas["owner"]
    closed = Credential.objects.create(name="closed", api_key_encrypted="x")
    make_thread(owner=owner, credential=closed)
    closed.limited_to.add(personas["stranger"])
    threads = permissions.visible_threads(owner)
    hidden = permissions.overview_hidden_credentials(owner)
    result = ownership.review(threads, permissions.overview_owner(owner), hidden)
    assert result.total == threads.count() == 1
    assert [(row.name, row.total) for row in result.owners] == [(owner.get_username(), 1)]
    assert result.unassigned == 0 and result.failing_credentials == []


def test_an_auditor_finds_a_departed_users_threads_in_two_clicks(client, owned, personas):
    client.force_login(personas["auditor"])
    page = client.get(reverse("ownership")).content.decode()  # click 1: Ownership in the navigation
    link = f"{reverse('thread_list')}?owner={owned.pk}&amp;status=active"
    assert link in page and "Reassign in bulk" not in page
    listed = client.get(link.replace("&amp;", "&")).content.decode()  # click 2
    assert listed.count('<tr id="thread-row-') == 2


def test_admins_reassign_in_bulk_and_export_csv(client, owned, personas):
    client.force_login(personas["admin"])
    response = client.post(
        reverse("ownership_reassign"), {"from_owner": owned.pk, "to_owner": personas["owner"].pk}
    )
    assert response.status_code == 302 and not Thread.objects.filter(owner=owned).exists()
    response = client.post(reverse("ownership_reassign"), {"from_owner": "junk", "to_owner": ""})
    assert response.status_code == 400
    response = client.get(reverse("ownership_export"))
    rows = list(csv.reader(io.StringIO(b"".join(response.streaming_content).decode())))
    assert rows[0] == ownership.EXPORT_COLUMNS and len(rows) == 6
    assert client.get(reverse("ownership_export"), {"owner": "x"}).status_code == 400


def test_the_content_permission_is_the_one_the_model_declares(db):
    app_label, codename = permissions.CONTENT_PERMISSION.split(".")
    assert Permission.objects.filter(content_type__app_label=app_label, codename=codename).exists()


def test_each_change_of_the_team_is_audited_once(client, personas, make_thread):
    from threads_app.models import AuditEvent

    admin = personas["admin"]
    start = AuditEvent.objects.count()
    user = team.create_user("newbie", role="member", by=admin)
    team.set_role(user, "auditor", by=admin)
    team.set_role(user, "auditor", by=admin)  # no change: no event
    team.set_content_access(user, True, by=admin)
    team.set_content_access(user, True, by=admin)  # no change: no event
    make_thread(owner=personas["stranger"])
    make_thread(owner=personas["stranger"])
    team.deactivate(personas["stranger"], by=admin, reassign_to=personas["owner"])
    events = list(AuditEvent.objects.order_by("id").values_list("action", "actor_name", "details")[start:])
    assert [(action, actor) for action, actor, _ in events] == [
        ("user_added", "ada"),
        ("role_changed", "ada"),
        ("role_changed", "ada"),
        ("owner_changed", "ada"),
        ("user_deactivated", "ada"),
    ]
    assert events[1][2] == {"before": "member", "after": "auditor"}
    assert events[3][2] == {"before": {"sam": 2}, "after": "olga", "threads": 2}
    assert events[4][2] == {"reassigned_to": "olga", "threads_moved": 2}


def test_a_throttled_sign_in_is_audited_and_no_password_checked(client, settings, bob):
    from threads_app.models import AuditEvent

    settings.THREADSITE_SIGNIN_MAX_FAILURES = 2
    for _ in range(2):
        client.post(reverse("login"), {"username": "bob", "password": "wrong"})
    client.post(reverse("login"), {"username": "bob", "password": "bob-password"})
    actions = list(
        AuditEvent.objects.filter(actor_name="bob").order_by("id").values_list("action", flat=True)
    )
    assert actions == ["sign_in_failed", "sign_in_failed", "sign_in_throttled"]
