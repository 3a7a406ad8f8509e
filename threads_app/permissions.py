"""Who may see and change what: the one place access is decided.

Three roles, each a Django group (created by migration 0008_roles, given its permissions by
`sync_role_permissions` after every migrate):
- member: sees and acts on the threads they own (under the credentials open to them), nothing else;
- admin: everything (a superuser counts as an admin);
- auditor: reads everything — ownership, status, history, jobs and receipts — and changes nothing; reading
  what was said (messages, exports, archives) takes the extra permission `view_message_content`.
A signed-in user in no group is treated as a member.

Views get their querysets, objects and the flags their templates show only from here: templates never
decide. An object the user may not see is a 404 (its existence is not confirmed); an action the user may
not take on an object they can see is a 403 with a message that says why.
"""

from dataclasses import dataclass
from functools import cache, wraps

from django.core.exceptions import PermissionDenied
from django.db import connection
from django.db.models import Exists, OuterRef, Q
from django.shortcuts import get_object_or_404
from django.utils.functional import SimpleLazyObject

from .models import Credential, DeletionJob, Thread

MEMBER, ADMIN, AUDITOR = "member", "admin", "auditor"
ROLES = [(MEMBER, "Member"), (ADMIN, "Admin"), (AUDITOR, "Auditor")]

CONTENT_PERMISSION = "threads_app.view_message_content"

# Each role's permissions ("app_label.codename"): the one table. Applied to the groups after every migrate
# (permissions do not exist yet while data migrations run), so editing a line here and migrating is all a
# change of a role takes. A member needs no permission for the threads they own.
# What admins and auditors both read: one line here gives a new page to both.
READ_EVERYTHING = [
    "threads_app.view_all_threads",
    "threads_app.view_thread",
    "threads_app.view_credential",
    "threads_app.view_deletionjob",
    "threads_app.view_retentionpolicy",
    "threads_app.view_statuschange",
    "threads_app.view_auditevent",
    "auth.view_user",
]
ROLE_PERMISSIONS = {
    MEMBER: [],
    ADMIN: [
        *READ_EVERYTHING,
        "threads_app.change_all_threads",
        CONTENT_PERMISSION,
        "threads_app.add_thread",
        "threads_app.change_thread",
        "threads_app.delete_thread",
        "threads_app.add_credential",
        "threads_app.change_credential",
        "threads_app.delete_credential",
        "threads_app.add_deletionjob",
        "threads_app.change_deletionjob",
        "threads_app.change_retentionpolicy",
        "auth.add_user",
        "auth.change_user",
        "auth.view_group",
    ],
    AUDITOR: READ_EVERYTHING,
}


def sync_role_permissions(**kwargs) -> None:
    """Give each role's group exactly the permissions of ROLE_PERMISSIONS (a post_migrate handler)."""
    from django.contrib.auth.models import Group, Permission

    for role, names in ROLE_PERMISSIONS.items():
        group, _ = Group.objects.get_or_create(name=role)
        wanted = Q(pk__in=[])
        for name in names:
            app_label, codename = name.split(".")
            wanted |= Q(content_type__app_label=app_label, codename=codename)
        group.permissions.set(Permission.objects.filter(wanted))


# --- Who the user is --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Access:
    """What one user may do, computed once per request (`access(user)`); templates read these flags."""

    role: str  # "" for anonymous
    sees_all_threads: bool
    acts_on_all_threads: bool
    reads_all_content: bool
    manages_intake: bool  # credentials, adding and importing threads, re-homing
    views_credentials: bool
    views_jobs: bool
    manages_jobs: bool  # bulk deletion: previews, jobs, cancel, retry, confirm
    manages_team: bool
    reviews_ownership: bool
    reads_audit_log: bool
    exports_list: bool  # the thread list's CSV, of the threads `visible_threads` gives them


ANONYMOUS = Access("", *([False] * 11))


def role_of(user) -> str:
    """admin, auditor or member ("" when not signed in). Admin outranks auditor; a superuser is an admin."""
    if not user.is_authenticated:
        return ""
    if user.is_superuser:
        return ADMIN
    names = {group.name for group in user.groups.all()}
    for role in (ADMIN, AUDITOR, MEMBER):
        if role in names:
            return role
    return MEMBER


@cache
def permissions_sql() -> str:
    """The query of `user_permissions`, written once per process from the models' table and column names
    (only those are written into the text; the user's id is a parameter)."""
    from django.contrib.auth import get_user_model
    from django.contrib.auth.models import Group, Permission
    from django.contrib.contenttypes.models import ContentType

    def table(model):
        return connection.ops.quote_name(model._meta.db_table)

    def column(model, field):
        return connection.ops.quote_name(model._meta.get_field(field).column)

    user_model = get_user_model()
    direct, granted, member = (
        user_model.user_permissions.through,
        Group.permissions.through,
        user_model.groups.through,
    )
    return (
        f"SELECT ct.app_label, p.codename FROM {table(Permission)} AS p "  # noqa: S608
        f"JOIN {table(ContentType)} AS ct ON ct.id = p.{column(Permission, 'content_type')} "
        f"WHERE p.id IN (SELECT {column(direct, 'permission')} FROM {table(direct)} "
        f"WHERE {column(direct, 'user')} = %s) "
        f"OR p.id IN (SELECT g.{column(granted, 'permission')} FROM {table(granted)} AS g "
        f"JOIN {table(member)} AS m ON m.{column(member, 'group')} = g.{column(granted, 'group')} "
        f"WHERE m.{column(member, 'user')} = %s)"
    )


def user_permissions(user) -> frozenset:
    """Every "app_label.codename" the user holds, through a role's group or granted alone: one query, on
    every page. Written in SQL: the ORM spent several times the query's own time building its joins."""
    with connection.cursor() as cursor:
        cursor.execute(permissions_sql(), [user.pk, user.pk])
        return frozenset(f"{app_label}.{codename}" for app_label, codename in cursor.fetchall())


def access(user) -> Access:
    """The user's Access, remembered on the user object for the rest of the request. Decided by the
    permissions the user holds (one query; none for a superuser), so that what a group grants is what
    counts; the role shown is read from them too."""
    if not user.is_authenticated or not user.is_active:
        return ANONYMOUS
    cached = getattr(user, "_threadsite_access", None)
    if cached is not None:
        return cached
    perms = frozenset() if user.is_superuser else user_permissions(user)

    def has(name):
        return user.is_superuser or name in perms

    acts = has("threads_app.change_all_threads")
    sees = has("threads_app.view_all_threads")
    result = Access(
        role=ADMIN if acts else AUDITOR if sees else MEMBER,
        sees_all_threads=sees,
        acts_on_all_threads=acts,
        reads_all_content=has(CONTENT_PERMISSION),
        manages_intake=has("threads_app.add_thread") and has("threads_app.change_credential"),
        views_credentials=has("threads_app.view_credential"),
        views_jobs=has("threads_app.view_deletionjob"),
        manages_jobs=has("threads_app.add_deletionjob") and has("threads_app.change_deletionjob"),
        manages_team=has("auth.change_user") and has("auth.add_user"),
        reviews_ownership=sees,
        reads_audit_log=has("threads_app.view_auditevent"),
        exports_list=True,
    )
    user._threadsite_access = result
    return result


def navigation(request) -> dict:
    """Context processor: the signed-in user's flags, as `access`, for the navigation and every page.
    Lazy: a fragment that shows no navigation reads no permissions."""
    user = getattr(request, "user", None)
    if user is None or not user.is_authenticated:
        return {"access": ANONYMOUS}
    return {
        "access": SimpleLazyObject(lambda: access(user)),
        "can_read_audit_log": SimpleLazyObject(lambda: access(user).reads_audit_log),
    }


# --- Threads and credentials ------------------------------------------------------------------------------


def closed_credential_ids(user) -> list[int]:
    """Credentials limited to some members, and not to `user`: few rows, read once per request."""
    cached = getattr(user, "_threadsite_closed_credentials", None)
    if cached is None:
        cached = list(
            Credential.objects.filter(limited_to__isnull=False)
            .exclude(limited_to=user)
            .values_list("pk", flat=True)
            .distinct()
        )
        user._threadsite_closed_credentials = cached
    return cached


def visible_threads(user):
    """The threads `user` may see: every one for admins and auditors; a member's own, under the
    credentials open to them (the owner index serves that filter)."""
    if access(user).sees_all_threads:
        return Thread.objects.all()
    if not user.is_authenticated:
        return Thread.objects.none()
    threads = Thread.objects.filter(owner=user)
    closed = closed_credential_ids(user)
    return threads.exclude(credential_id__in=closed) if closed else threads


def overview_owner(user):
    """Whose threads the overview counts for `user`: None for every thread, else one owner's pk (the
    overview then reads that owner's tallies). With `overview_hidden_credentials`, says what
    `visible_threads` says."""
    return None if access(user).sees_all_threads else user.pk


def overview_hidden_credentials(user) -> set:
    """Credentials whose tallies the overview leaves out for `user` (a member's closed credentials)."""
    return set() if access(user).sees_all_threads else set(closed_credential_ids(user))


def visible_credentials(user):
    """The credentials `user` may filter by and sees on thread pages."""
    if access(user).sees_all_threads:
        return Credential.objects.all()
    if not user.is_authenticated:
        return Credential.objects.none()
    limits = Credential.limited_to.through.objects.filter(credential=OuterRef("pk"))
    return Credential.objects.filter(~Exists(limits) | Exists(limits.filter(user=user)))


def usable_credentials(user):
    """The credentials whose keys may be used on `user`'s behalf to look for a thread (re-homing, imports
    that find each ID's credential): only those of people who manage intake."""
    return visible_credentials(user) if access(user).manages_intake else Credential.objects.none()


def owner_choices(user):
    """The people a thread may be assigned to (forms' owner choices): active users, for admins only."""
    from django.contrib.auth import get_user_model

    users = get_user_model().objects.filter(is_active=True).order_by("username")
    return users if access(user).acts_on_all_threads else users.none()


@dataclass(frozen=True)
class ThreadFlags:
    """What a user may do with one thread they can see: the buttons its pages show."""

    can_edit: bool  # title and end-user label
    can_assign_owner: bool
    can_edit_metadata: bool
    can_delete: bool
    can_export: bool
    can_read_messages: bool
    can_pin: bool
    can_mark_missing: bool
    can_rehome: bool


def owns(user, thread: Thread) -> bool:
    return user.is_authenticated and thread.owner_id == user.pk


def thread_flags(user, thread: Thread) -> ThreadFlags:
    rights = access(user)
    acts = rights.acts_on_all_threads or owns(user, thread)
    reads = rights.reads_all_content or owns(user, thread)
    return ThreadFlags(
        can_edit=acts,
        can_assign_owner=rights.acts_on_all_threads,
        can_edit_metadata=acts,
        can_delete=acts,
        can_export=reads,
        can_read_messages=reads,
        can_pin=rights.acts_on_all_threads,
        can_mark_missing=rights.acts_on_all_threads,
        can_rehome=rights.manages_intake,
    )


def get_thread_for_user(request, pk) -> Thread:
    """The thread `pk` if the user may see it, else 404 (not 403: don't confirm that it exists)."""
    # The credential's retention policy comes in the same query: the page says when the thread goes.
    queryset = visible_threads(request.user).select_related("credential__retention", "owner")
    return get_object_or_404(queryset, pk=pk)


REFUSALS = {
    "can_edit": "Only the thread's owner or an admin can edit it.",
    "can_assign_owner": "Only admins can assign threads to owners.",
    "can_edit_metadata": "Only the thread's owner or an admin can edit its metadata.",
    "can_delete": "Only the thread's owner or an admin can delete it.",
    "can_export": "Your role shows this thread's facts and history, not what was said: reading messages "
    "and exports of others' threads needs the “read message content” permission, which an admin grants.",
    "can_read_messages": "Your role shows this thread's facts and history, not what was said: reading "
    "messages of others' threads needs the “read message content” permission, which an admin grants.",
    "can_pin": "Only admins can pin threads (exempt them from retention).",
    "can_mark_missing": "Only admins can mark threads missing.",
    "can_rehome": "Only admins can look for a thread under the other credentials.",
}


def require(user, thread: Thread, action: str) -> Thread:
    """`thread` if `user` may take `action` on it, a ThreadFlags field (else 403 with the reason)."""
    if not getattr(thread_flags(user, thread), action):
        raise PermissionDenied(REFUSALS[action])
    return thread


def get_thread_for_action(request, pk, action: str) -> Thread:
    """The thread `pk` if the user may see it (else 404) and take `action`, a ThreadFlags field (else
    403 with the reason)."""
    return require(request.user, get_thread_for_user(request, pk), action)


def can_forget(user, thread: Thread) -> bool:
    """Whether the thread page offers `user` to remove `thread` from the registry: admins, for a thread
    that is no longer active."""
    return access(user).acts_on_all_threads and thread.status != Thread.Status.ACTIVE


def get_thread_to_forget(request, pk) -> Thread:
    """The thread `pk` for an admin (403 for anyone else, before looking), else 404."""
    if not access(request.user).acts_on_all_threads:
        raise PermissionDenied("Only admins can remove threads from the registry.")
    return get_thread_for_user(request, pk)


# --- Pages by role ----------------------------------------------------------------------------------------


def requires(flag: str, message: str):
    """A view decorator: 403 with `message` unless the user's Access has `flag`."""

    def decorator(view):
        @wraps(view)
        def wrapper(request, *args, **kwargs):
            if not getattr(access(request.user), flag):
                raise PermissionDenied(message)
            return view(request, *args, **kwargs)

        return wrapper

    return decorator


admin_required = requires(
    "manages_intake", "Only admins can manage credentials, import threads and look for threads."
)
credentials_viewer_required = requires("views_credentials", "Only admins and auditors can see credentials.")
jobs_viewer_required = requires("views_jobs", "Only admins and auditors can see deletion jobs.")
jobs_manager_required = requires("manages_jobs", "Only admins can delete in bulk.")
team_manager_required = requires("manages_team", "Only admins can manage the team.")
ownership_reviewer_required = requires(
    "reviews_ownership", "Only admins and auditors can review who owns which threads."
)


def can_delete_in_bulk(user) -> bool:
    """Whether the thread list offers `user` its checkboxes and the deletion jobs' pages."""
    return access(user).manages_jobs


list_exporter_required = requires("exports_list", "Sign in to export the thread list.")


def can_reassign_in_bulk(user) -> bool:
    """Whether `user` may give threads to another owner in bulk: the list's "Reassign owner" of its
    selection and the ownership page's form. Admins only (`ownership.reassign` asks `check_may_reassign`)."""
    return access(user).acts_on_all_threads


REASSIGN_REFUSAL = "Only admins can reassign threads."


def check_may_reassign(user) -> None:
    """PermissionDenied unless `user` may reassign threads in bulk."""
    if not can_reassign_in_bulk(user):
        raise PermissionDenied(REASSIGN_REFUSAL)


reassigner_required = requires("acts_on_all_threads", REASSIGN_REFUSAL)


def visible_jobs(user):
    """The deletion jobs `user` may see: every job for admins and auditors, none for anyone else."""
    return DeletionJob.objects.all() if access(user).views_jobs else DeletionJob.objects.none()


def get_job_for_user(request, pk) -> DeletionJob:
    """The deletion job `pk` for those who may see jobs, else 404 (members never learn a job exists)."""
    return get_object_or_404(visible_jobs(request.user).select_related("requested_by", "policy"), pk=pk)


def get_rw_job_for_user(request, pk) -> DeletionJob:
    """The deletion job `pk` if the user may act on it (cancel, retry, confirm): 404 or 403 otherwise."""
    job = get_job_for_user(request, pk)
    if not access(request.user).manages_jobs:
        raise PermissionDenied("Only admins can cancel, retry or confirm deletion jobs.")
    return job


def get_job_archive_for_user(request, pk) -> DeletionJob:
    """A job whose archived transcripts the user may download: they hold what was said."""
    job = get_job_for_user(request, pk)
    if not access(request.user).reads_all_content:
        raise PermissionDenied(
            "The archive holds what was said in the threads: downloading it needs the “read message "
            "content” permission, which an admin grants."
        )
    return job


def token_threads(token):
    """The threads an API token reaches: its credential's, if it is bound to one; and of those, what its
    owner may see, if it has an owner (the owner's own gate, `visible_threads`). A token with neither
    reaches every thread: such tokens are for admins' own scripts."""
    threads = visible_threads(token.owner) if token.owner_id else Thread.objects.all()
    if token.credential_id:
        threads = threads.filter(credential_id=token.credential_id)
    return threads


def token_may_use_credential(token, credential) -> bool:
    """Whether a token may file threads under `credential`: its own if it is bound to one; else one its
    owner may see (a member's token files under the credentials open to them), if it has an owner; else
    any."""
    if token.credential_id:
        return credential.pk == token.credential_id
    if token.owner_id:
        return visible_credentials(token.owner).filter(pk=credential.pk).exists()
    return True


def can_read_audit_log(user) -> bool:
    """Whether `user` may read the audit log (its page, its CSV, a thread page's events): those granted
    `view_auditevent` (admins and auditors, through their groups), and superusers."""
    return access(user).reads_audit_log


audit_log_required = requires("reads_audit_log", "Only admins and auditors can read the audit log.")
