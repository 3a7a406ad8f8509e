"""Who may see and change which threads: the one place access is decided.

Views get their querysets and objects only through these functions, so that scoping by role (a later
issue) changes this module and nothing else — templates and fragments never check permissions themselves.
"""

from functools import wraps

from django.core.exceptions import PermissionDenied
from django.shortcuts import get_object_or_404
from django.utils.functional import SimpleLazyObject

from .models import Credential, DeletionJob, Thread


def visible_threads(user):
    """The threads `user` may see. Until roles arrive, every signed-in user sees every thread."""
    return Thread.objects.all()


def visibility_key(user) -> str:
    """Users with the same key see the same threads, so caches of what they see may be shared."""
    return "all"


def visible_credentials(user):
    """The credentials `user` may filter by and sees on thread pages."""
    return Credential.objects.all()


def usable_credentials(user):
    """The credentials whose keys may be used on `user`'s behalf: asked when Threadsite looks for the
    credential that owns a thread. No other credential is ever tried for them."""
    return visible_credentials(user)


def get_thread_for_user(request, pk) -> Thread:
    """The thread `pk` if the user may see it, else 404 (not 403: don't confirm that it exists)."""
    queryset = visible_threads(request.user).select_related("credential", "owner")
    return get_object_or_404(queryset, pk=pk)


def get_rw_thread_for_user(request, pk) -> Thread:
    """The thread `pk` if the user may change it (edit, delete). Same as reading, for now."""
    return get_thread_for_user(request, pk)


def can_forget(user, thread: Thread) -> bool:
    """Whether the thread page offers `user` to remove `thread` from the registry: admins, for a thread
    that is no longer active."""
    return is_admin(user) and thread.status != Thread.Status.ACTIVE


def get_thread_to_forget(request, pk) -> Thread:
    """The thread `pk` for an admin (403 for anyone else, before looking), else 404."""
    if not is_admin(request.user):
        raise PermissionDenied("Only admins can remove threads from the registry.")
    return get_thread_for_user(request, pk)


def is_admin(user) -> bool:
    return user.is_authenticated and user.is_staff


def admin_required(view):
    """Registering credentials, importing threads and deleting in bulk are for admins (staff); others get
    403."""

    @wraps(view)
    def wrapper(request, *args, **kwargs):
        if not is_admin(request.user):
            raise PermissionDenied("Only admins can manage credentials, import threads and delete in bulk.")
        return view(request, *args, **kwargs)

    return wrapper


def can_delete_in_bulk(user) -> bool:
    """Whether the thread list offers `user` its checkboxes and the deletion jobs' pages."""
    return is_admin(user)


def can_reassign_in_bulk(user) -> bool:
    """Whether the thread list offers `user` the bulk "Reassign owner" of its selection."""
    return is_admin(user)


def visible_jobs(user):
    """The deletion jobs `user` may see: every job for admins, none for anyone else."""
    return DeletionJob.objects.all() if is_admin(user) else DeletionJob.objects.none()


def get_job_for_user(request, pk) -> DeletionJob:
    """The deletion job `pk` for an admin (403 for anyone else, before looking), else 404."""
    if not can_delete_in_bulk(request.user):
        raise PermissionDenied("Only admins can see and manage deletion jobs.")
    return get_object_or_404(visible_jobs(request.user).select_related("requested_by", "policy"), pk=pk)


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
    owner may use, if it has an owner; else any."""
    if token.credential_id:
        return credential.pk == token.credential_id
    if token.owner_id:
        return usable_credentials(token.owner).filter(pk=credential.pk).exists()
    return True


def can_read_audit_log(user) -> bool:
    """Whether `user` may read the audit log (its page, its CSV, a thread page's events): those granted
    `view_auditevent` (admins and auditors, through their groups), and superusers."""
    return user.is_authenticated and user.has_perm("threads_app.view_auditevent")


def audit_log_required(view):
    """The audit log's pages: 403 for those who may not read it."""

    @wraps(view)
    def wrapper(request, *args, **kwargs):
        if not can_read_audit_log(request.user):
            raise PermissionDenied("Only admins and auditors can read the audit log.")
        return view(request, *args, **kwargs)

    return wrapper


def navigation(request) -> dict:
    """Template context: which links the navigation shows, decided here rather than in templates."""
    user = getattr(request, "user", None)
    if user is None or not user.is_authenticated:
        return {}
    # Lazy: a fragment that shows no navigation reads no permissions.
    return {"can_read_audit_log": SimpleLazyObject(lambda: can_read_audit_log(user))}
