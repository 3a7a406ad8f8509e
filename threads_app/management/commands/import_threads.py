from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError

from threads_app import importing, tasks
from threads_app.management.actors import add_actor_argument, resolve_actor
from threads_app.management.input_files import read_text
from threads_app.models import Credential


class Command(BaseCommand):
    help = (
        "Import thread and conversation IDs from a file (or - for standard input): free text, CSV with an "
        "id column, or JSON Lines. Duplicates are reported, never doubled; IDs of other objects are refused."
    )

    def add_arguments(self, parser):
        parser.add_argument("file", help="Path to read, or - for standard input.")
        parser.add_argument(
            "--credential",
            required=True,
            help="Name of the credential the IDs belong to, or 'auto': ask each credential, cheapest first, "
            "and file each ID under the one that finds it.",
        )
        parser.add_argument("--owner", default="", help="Username of the team member who owns them.")
        parser.add_argument(
            "--no-check", action="store_true", help="Do not ask the API whether the threads exist."
        )
        add_actor_argument(parser)

    def handle(self, *args, file, credential, owner, no_check, actor, **options):
        by = resolve_actor(actor)
        try:
            credential_obj = None if credential == "auto" else Credential.objects.get(name=credential)
        except Credential.DoesNotExist:
            known = ", ".join(Credential.objects.values_list("name", flat=True)) or "none yet"
            raise CommandError(f"No credential named {credential!r} (known: {known}).") from None
        owner_obj = None
        if owner:
            owner_obj = get_user_model().objects.filter(username=owner).first()
            if owner_obj is None:
                raise CommandError(f"No team member named {owner!r}.")
        text = read_text(file)
        try:
            report = importing.import_threads(text, credential=credential_obj, owner=owner_obj, added_by=by)
        except importing.ImportRefused as exc:
            raise CommandError("Nothing imported:\n  " + "\n  ".join(exc.errors)) from None

        for line, message in report.refused:
            self.stderr.write(f"line {line}: {message}")
        for remote_id, other in report.tracked_elsewhere:
            self.stderr.write(f"{remote_id} is already tracked under credential {other}; left as it is.")
        for remote_id, tried in report.unfound_sample:
            self.stderr.write(f"{remote_id} is not found under any credential ({tried}).")
        if report.added and not no_check and credential_obj is not None:
            if report.added <= settings.IMPORT_INLINE_CHECK_LIMIT:
                tasks.check_threads.apply(args=(credential_obj.pk,), throw=True)
            else:
                tasks.dispatch(tasks.check_threads, credential_obj.pk)
                self.stdout.write(f"Checking {report.added} threads against the API in the background.")
        self.stdout.write(f"Imported: {report.summary()}.")
