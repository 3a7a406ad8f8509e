from django.core.management.base import BaseCommand, CommandError

from threads_app import sync
from threads_app.client import APIError
from threads_app.management.actors import add_actor_argument, resolve_actor
from threads_app.models import Credential


class Command(BaseCommand):
    help = "List the threads of the kinds that can be listed (ChatKit) and register the new ones."

    def add_arguments(self, parser):
        parser.add_argument("--credential", default="", help="Only this credential (default: all).")
        add_actor_argument(parser)

    def handle(self, *args, credential, actor, **options):
        by = resolve_actor(actor)
        credentials = Credential.objects.all()
        if credential:
            credentials = credentials.filter(name=credential)
            if not credentials:
                raise CommandError(f"No credential named {credential!r}.")
        seen = added = failed = 0
        for credential_obj in credentials:
            try:
                report = sync.discover(credential_obj, added_by=by)
            except APIError as error:
                failed += 1
                self.stderr.write(f"{credential_obj.name}: {error}")
                continue
            seen, added = seen + report.seen, added + report.added
            self.stdout.write(f"{credential_obj.name}: {report.summary()}")
        self.stdout.write(f"Discovered {added} new threads among {seen} listed; {failed} credentials failed.")
