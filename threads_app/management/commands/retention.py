from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError

from threads_app import retention
from threads_app.management.actors import add_actor_argument, resolve_actor
from threads_app.metadata import MAX_KEY, MAX_VALUE
from threads_app.models import Credential, RetentionPolicy


class Command(BaseCommand):
    help = (
        "Set a credential's retention policy: how many days without activity its conversations and ChatKit "
        "threads are kept, and whether a sweep only flags or deletes them. Without options, show it."
    )

    def add_arguments(self, parser):
        parser.add_argument("credential", help="Name of the credential.")
        parser.add_argument("--days", type=int, help="Days without activity (1 to 36500).")
        parser.add_argument("--mode", choices=RetentionPolicy.Mode.values)
        parser.add_argument("--include-assistants", action="store_true", help="Also Assistants threads.")
        parser.add_argument(
            "--exempt-metadata", action="append", default=[], metavar="KEY=VALUE", help="Never remove these."
        )
        parser.add_argument("--exempt-owner", action="append", default=[], metavar="USERNAME")
        add_actor_argument(parser)

    def handle(
        self, *args, credential, days, mode, include_assistants, exempt_metadata, exempt_owner, actor, **_
    ):
        by = resolve_actor(actor)
        found = Credential.objects.filter(name=credential).first()
        if found is None:
            known = ", ".join(Credential.objects.values_list("name", flat=True)) or "none yet"
            raise CommandError(f"No credential named {credential!r} (known: {known}).")
        policy = retention.policy_of(found)
        if days is None and mode is None and not exempt_metadata and not exempt_owner:
            self.stdout.write(describe(policy) if policy else f"{found.name}: no retention policy (off).")
            return
        if days is not None and not 1 <= days <= 36500:
            raise CommandError("--days must be between 1 and 36500.")
        pairs = []
        for pair in exempt_metadata:
            key, sep, value = pair.partition("=")
            if not sep or not key.strip() or len(key) > MAX_KEY or len(value) > MAX_VALUE:
                raise CommandError(
                    f"--exempt-metadata takes KEY=VALUE (key ≤ {MAX_KEY}, value ≤ {MAX_VALUE})."
                )
            pairs.append((key.strip(), value))
        users = list(get_user_model().objects.filter(username__in=exempt_owner))
        unknown = set(exempt_owner) - {user.get_username() for user in users}
        if unknown:
            raise CommandError(f"No team member named {', '.join(sorted(unknown))}.")
        policy = retention.set_policy(
            found,
            mode=mode or (policy.mode if policy else RetentionPolicy.Mode.FLAG),
            window_days=days or (policy.window_days if policy else 60),
            include_assistants=include_assistants,
            exempt_owners=users or (list(policy.exempt_owners.all()) if policy else []),
            exempt_metadata=pairs or (retention.exempt_pairs(policy) if policy else []),
            by=by,
        )
        self.stdout.write(describe(policy))


def describe(policy) -> str:
    exempt = [f"{k}={v}" for k, v in retention.exempt_pairs(policy)]
    exempt += [f"owner {user.get_username()}" for user in policy.exempt_owners.all()]
    text = f"{policy.credential.name}: {policy.get_mode_display().lower()} after {policy.window_days} days"
    if policy.include_assistants:
        text += ", Assistants threads included"
    if exempt:
        text += f"; exempt: {', '.join(exempt)} and pinned threads"
    if policy.mode == RetentionPolicy.Mode.DELETE and policy.confirmed_at is None:
        text += "; the next sweep's preview awaits confirmation"
    return text
