"""Who ran a command: `--actor USERNAME` on every command that changes something, recorded as the actor of
what it does (the audit log, a job's "requested by"); without it, the system (`audit.SYSTEM`)."""

from django.contrib.auth import get_user_model
from django.core.management.base import CommandError


def add_actor_argument(parser) -> None:
    parser.add_argument(
        "--actor",
        metavar="USERNAME",
        help="The team member running this, recorded as the actor in the audit log (default: the system).",
    )


def resolve_actor(username: str | None):
    """The user named `username`, or None (the system) when no name is given. Called before anything is
    changed: an unknown name stops the command with nothing done."""
    if not username:
        return None
    user = get_user_model().objects.filter(username=username).first()
    if user is None:
        raise CommandError(f"No team member named {username!r} (--actor): nothing was changed.")
    if not user.is_active:
        raise CommandError(f"{username!r} is deactivated and cannot act (--actor): nothing was changed.")
    return user
