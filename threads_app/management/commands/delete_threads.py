import sys
import time

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError
from django.http import QueryDict

from threads_app import deletion, importing, listing, tasks
from threads_app.forms import ThreadFilterForm
from threads_app.management.actors import resolve_actor
from threads_app.management.input_files import read_text
from threads_app.models import Credential, DeletionJob, Thread

# The IDs of one --ids file are matched in one query; SQLite takes at most 32,766 values in it.
MAX_IDS = 30_000


class Command(BaseCommand):
    help = (
        "Delete tracked threads through the API in a background job: those matching the filters (the "
        "thread list's), or the IDs in a file. Shows a preview first and asks to confirm the count."
    )

    def add_arguments(self, parser):
        parser.add_argument("--credential", help="Name of a credential: only its threads.")
        parser.add_argument("--owner", help="Username of the owner (or 'none' for unassigned threads).")
        parser.add_argument("--kind", choices=Thread.Kind.values)
        parser.add_argument("--status", choices=Thread.Status.values)
        parser.add_argument("--inactive-days", type=int, help="Only threads inactive for more than N days.")
        parser.add_argument("--ids", metavar="FILE", help="A file of thread IDs (or - for standard input).")
        parser.add_argument("--dry-run", action="store_true", help="Print the preview; change nothing.")
        parser.add_argument("--archive", action="store_true", help="Store each transcript before deleting.")
        parser.add_argument(
            "--keep-items", action="store_true", help="Conversations: leave their items (not recommended)."
        )
        parser.add_argument("--verify-all", action="store_true", help="Confirm every deletion by a lookup.")
        parser.add_argument("--yes", action="store_true", help="Do not ask for confirmation.")
        parser.add_argument(
            "--wait", action="store_true", help="Follow the job; exit 1 if any thread could not be deleted."
        )
        parser.add_argument(
            "--actor",
            "--as",
            dest="actor",
            metavar="USERNAME",
            help="The team member running this, recorded as the one who asked (default: the system).",
        )

    def handle(self, *args, **options):
        by = resolve_actor(options["actor"])
        threads, data = self.selection(options)
        summary = listing.describe(data)
        if options["ids"]:
            summary = f"IDs from {options['ids']}" + ("" if summary == "Every thread" else f" · {summary}")
        preview = deletion.preview(threads)
        for line in preview.lines():
            self.stdout.write(line)
        if not preview.count:
            self.stdout.write("Nothing to delete.")
            return
        if options["dry_run"]:
            self.stdout.write("Dry run: nothing was deleted.")
            return
        if not options["yes"]:
            self.confirm(preview.count)
        try:
            job = deletion.create_job(
                threads,
                requested_by=by,
                summary=summary,
                filters={key: str(value) for key, value in data.items() if value not in (None, "")},
                source=DeletionJob.Source.COMMAND,
                delete_items=not options["keep_items"],
                archive=options["archive"],
                verify_all=options["verify_all"],
                expected_count=preview.count,
                start=False,
            )
        except deletion.NothingToDelete as error:
            raise CommandError(str(error)) from None
        if settings.CELERY_TASK_ALWAYS_EAGER:
            # No task queue: a job started in this process would end with it, so it runs here, now.
            self.stdout.write(f"Job {job.pk}: no task queue (REDIS_URL unset), so it runs here.")
            tasks.run_deletion_job.apply(args=(job.pk,), throw=True)
        else:
            deletion.start_job(job)
            if not options["wait"]:
                self.stdout.write(f"Job {job.pk} queued")
                return
        self.follow(job)

    def selection(self, options):
        query = QueryDict(mutable=True)
        if options["credential"]:
            credential = Credential.objects.filter(name=options["credential"]).first()
            if credential is None:
                known = ", ".join(Credential.objects.values_list("name", flat=True)) or "none yet"
                raise CommandError(f"No credential named {options['credential']!r} (known: {known}).")
            query["credential"] = str(credential.pk)
        if options["owner"]:
            if options["owner"] == "none":
                query["owner"] = "none"
            else:
                owner = get_user_model().objects.filter(username=options["owner"]).first()
                if owner is None:
                    raise CommandError(f"No team member named {options['owner']!r}.")
                query["owner"] = str(owner.pk)
        for name in ("kind", "status", "inactive_days"):
            if options[name] is not None:
                query[name] = str(options[name])
        form = ThreadFilterForm(query)
        if not form.is_valid():
            problems = [f"{name}: {' '.join(errors)}" for name, errors in form.errors.items()]
            raise CommandError("These filters cannot be used: " + "; ".join(problems))
        data = {key: value for key, value in form.cleaned_data.items() if key in query}
        threads = listing.apply_filters(Thread.objects.all(), data, None)
        if options["ids"]:
            threads = threads.filter(remote_id__in=self.read_ids(options["ids"]))
        return threads, data

    def read_ids(self, file) -> list[str]:
        try:
            parsed = importing.parse(read_text(file))
        except importing.ImportRefused as error:
            raise CommandError(str(error)) from None
        for line, message in parsed.refused[:20]:
            self.stderr.write(f"line {line}: {message}")
        if parsed.errors:
            raise CommandError("Nothing deleted: " + "; ".join(parsed.errors))
        remote_ids = list(parsed.rows)
        if len(remote_ids) > MAX_IDS:
            raise CommandError(f"{file} holds {len(remote_ids):,} IDs; give at most {MAX_IDS:,} at a time.")
        tracked = set(Thread.objects.filter(remote_id__in=remote_ids).values_list("remote_id", flat=True))
        untracked = [remote_id for remote_id in remote_ids if remote_id not in tracked]
        if untracked:
            self.stderr.write(
                f"{len(untracked):,} IDs are not tracked and are left out (e.g. {', '.join(untracked[:3])})."
            )
        return remote_ids

    def confirm(self, count: int) -> None:
        if not sys.stdin.isatty():
            raise CommandError("Nothing deleted: confirm with --yes when there is no terminal to ask at.")
        answer = input(f"Type the number of threads ({count}) to delete them: ").strip().replace(",", "")
        if answer != str(count):
            raise CommandError("Nothing deleted: the number typed was not the count.")

    def follow(self, job: DeletionJob) -> None:
        """Show the job's progress until it ends; exit 1 if any thread could not be deleted."""
        bar_width = 30
        shown = ""
        while True:
            job.refresh_from_db()
            filled = int(bar_width * job.done / job.total) if job.total else bar_width
            line = (
                f"[{'#' * filled}{'.' * (bar_width - filled)}] {job.done:,}/{job.total:,}  "
                f"deleted {job.deleted:,}  already gone {job.already_gone:,}  failed {job.failed:,}"
            )
            if line != shown:
                self.stdout.write(("\r" if self.stdout.isatty() else "") + line, ending="")
                if not self.stdout.isatty():
                    self.stdout.write("")
                shown = line
            if not job.is_unfinished:
                break
            time.sleep(0.5)
        self.stdout.write("")
        self.stdout.write(f"Job {job.pk} {job.get_state_display().lower()}. {job.reason}".rstrip())
        if job.state != DeletionJob.State.FINISHED:
            for item in job.items.filter(state="failed")[:20]:
                self.stderr.write(f"{item.remote_id}: {item.message}")
            raise CommandError(f"Job {job.pk} ended {job.get_state_display().lower()}.", returncode=1)
