from django.core.management.base import BaseCommand, CommandError

from threads_app import locating
from threads_app.management.actors import add_actor_argument, resolve_actor
from threads_app.models import Credential, Thread


class Command(BaseCommand):
    help = (
        "Look for threads under the other credentials (missing ones by default) and move each to the "
        "credential whose key finds it: the fix for IDs filed under the wrong project."
    )

    def add_arguments(self, parser):
        parser.add_argument("--status", choices=Thread.Status.values, default=Thread.Status.MISSING)
        parser.add_argument("--credential", help="Only threads filed under this credential.")
        add_actor_argument(parser)

    def handle(self, *args, status, credential, actor, **options):
        by = resolve_actor(actor)
        threads = Thread.objects.filter(status=status)
        if credential:
            found = Credential.objects.filter(name=credential).first()
            if found is None:
                raise CommandError(f"No credential named {credential!r}.")
            threads = threads.filter(credential=found)
        report = locating.rehome_many(threads, Credential.objects.all(), by=by)
        self.stdout.write(report.summary())
