"""Who may see and change which threads: the one place access is decided.

Views get their querysets and objects only through these functions, so that scoping by role (a later
issue) changes this module and nothing else — templates and fragments never check permissions themselves.
"""

from functools import wraps

from django.core.exceptions import PermissionDenied
from django.shortcuts import get_object_or_404

from .models import Credential, Thread


def visible_threads(user):
    """The threads `user` may see. Until roles arrive, every signed-in user sees every thread."""
    return Thread.objects.all()


def visibility_key(user) -> str:
    """Users with the same key see the same threads, so caches of what they see may be shared."""
    return "all"


def visible_credentials(user):
    """The credentials `user` may filter by and sees on thread pages."""
    return Credential.objects.all()


def get_thread_for_user(request, pk) -> Thread:
    """The thread `pk` if the user may see it, else 404 (not 403: don't confirm that it exists)."""
    queryset = visible_threads(request.user).select_related("credential", "owner")
    return get_object_or_404(queryset, pk=pk)


def get_rw_thread_for_user(request, pk) -> Thread:
    """The thread `pk` if the user may change it (edit, delete). Same as reading, for now."""
    return get_thread_for_user(request, pk)


def admin_required(view):
    """Registering credentials and importing threads is for admins (staff); others get 403."""

    @wraps(view)
    def wrapper(request, *args, **kwargs):
        if not request.user.is_staff:
            raise PermissionDenied("Only admins can manage credentials and import threads.")
        return view(request, *args, **kwargs)

    return wrapper
