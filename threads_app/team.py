"""The team: creating people, their roles, reading message content, deactivating them and reassigning
their threads. Plain functions, called by the Team and Ownership pages, Django's admin and tests alike."""

from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group, Permission
from django.contrib.auth.tokens import default_token_generator
from django.db import transaction
from django.urls import reverse
from django.utils.encoding import force_bytes
from django.utils.http import urlsafe_base64_encode

from . import audit, ownership
from .models import Thread
from .permissions import ADMIN, CONTENT_PERMISSION, ROLES, role_of

ROLE_NAMES = [name for name, _ in ROLES]


class TeamError(ValueError):
    """A change of the team that is refused, with the reason people read."""


def _forget_access(user) -> None:
    for name in ("_threadsite_access", "_perm_cache", "_user_perm_cache", "_group_perm_cache"):
        user.__dict__.pop(name, None)


@transaction.atomic
def create_user(username: str, *, role: str, email: str = "", password: str = "", by=None):
    """A new active user in `role`. Without a password they cannot sign in until they follow a
    set-password link (`set_password_link`)."""
    User = get_user_model()
    if User.objects.filter(username__iexact=username).exists():
        raise TeamError(f"There is already a user named {username}.")
    user = User(username=username, email=email)
    if password:
        user.set_password(password)
    else:
        user.set_unusable_password()
    user.save()
    audit.record(audit.Action.USER_ADDED, actor=by, obj=user, role=role, with_password=bool(password))
    set_role(user, role, by=by, recorded=False)
    return user


@transaction.atomic
def set_role(user, role: str, *, by=None, recorded: bool = True) -> str:
    """Put `user` in exactly one role's group; returns the role they had. Admins get Django's admin site
    (is_staff); the others lose it. A superuser stays a superuser (and so an admin) whatever the group."""
    if role not in ROLE_NAMES:
        raise TeamError(f"Choose a role among {', '.join(ROLE_NAMES)}.")
    previous = role_of(user)
    if by is not None and user.pk == by.pk and role != ADMIN:
        raise TeamError("You cannot take the admin role from yourself; ask another admin.")
    user.groups.remove(*Group.objects.filter(name__in=ROLE_NAMES).exclude(name=role))
    user.groups.add(Group.objects.get_or_create(name=role)[0])
    if user.is_staff != (role == ADMIN):
        user.is_staff = role == ADMIN
        user.save(update_fields=["is_staff"])
    _forget_access(user)
    if recorded and previous != role:
        audit.record(audit.Action.ROLE_CHANGED, actor=by, obj=user, before=previous, after=role)
    return previous


def set_content_access(user, allowed: bool, *, by=None) -> None:
    """Grant or withdraw reading the messages and exports of others' threads (auditors' extra permission;
    admins have it through their role)."""
    app_label, codename = CONTENT_PERMISSION.split(".")
    permission = Permission.objects.get(content_type__app_label=app_label, codename=codename)
    if allowed == has_content_access(user):
        return
    if allowed:
        user.user_permissions.add(permission)
    else:
        user.user_permissions.remove(permission)
    _forget_access(user)
    audit.record(audit.Action.ROLE_CHANGED, actor=by, obj=user, content_access=allowed)


def has_content_access(user) -> bool:
    return user.user_permissions.filter(codename=CONTENT_PERMISSION.split(".")[1]).exists()


@transaction.atomic
def deactivate(user, *, by=None, reassign_to=None) -> int:
    """Stop `user` signing in (their sessions end with their next request); hand their threads to
    `reassign_to` if given. Returns how many threads moved."""
    if by is not None and user.pk == by.pk:
        raise TeamError("You cannot deactivate yourself; ask another admin.")
    if reassign_to is not None and (reassign_to.pk == user.pk or not reassign_to.is_active):
        raise TeamError("Reassign the threads to another, active user.")
    moved = ownership.reassign(Thread.objects.filter(owner=user), reassign_to, by=by) if reassign_to else 0
    if user.is_active:
        user.is_active = False
        user.save(update_fields=["is_active"])
        audit.record(
            audit.Action.USER_DEACTIVATED,
            actor=by,
            obj=user,
            reassigned_to=reassign_to.get_username() if reassign_to else "",
            threads_moved=moved,
        )
    return moved


def reactivate(user, *, by=None) -> None:
    if not user.is_active:
        user.is_active = True
        user.save(update_fields=["is_active"])
        audit.record(audit.Action.ROLE_CHANGED, actor=by, obj=user, reactivated=True)


def set_password_link(request, user) -> str:
    """A one-time link for `user` to choose a password (Django's password reset token: it stops working
    once the password is set, or after PASSWORD_RESET_TIMEOUT). Shown once to the admin; never stored."""
    uid = urlsafe_base64_encode(force_bytes(user.pk))
    token = default_token_generator.make_token(user)
    return request.build_absolute_uri(reverse("password_reset_confirm", args=[uid, token]))
