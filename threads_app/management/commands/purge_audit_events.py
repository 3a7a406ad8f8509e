from django.conf import settings
from django.core.management.base import BaseCommand

from threads_app import audit
from threads_app.management.actors import add_actor_argument, resolve_actor


class Command(BaseCommand):
    help = (
        "Remove the audit events older than THREADSITE_AUDIT_RETENTION_DAYS (what beat does each night). "
        "With it at 0, the default, every event is kept and nothing is removed."
    )

    def add_arguments(self, parser):
        add_actor_argument(parser)

    def handle(self, *args, actor, **options):
        by = resolve_actor(actor)
        days = settings.AUDIT_RETENTION_DAYS
        if not days:
            self.stdout.write(
                "Audit events are kept forever (THREADSITE_AUDIT_RETENTION_DAYS=0): none removed."
            )
            return
        removed = audit.purge(by=by)
        self.stdout.write(f"Removed {removed:,} audit events older than {days} days.")
