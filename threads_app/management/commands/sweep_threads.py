import time

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from threads_app import sweeps, tasks
from threads_app.management.actors import add_actor_argument, resolve_actor
from threads_app.models import DeletionJob


class Command(BaseCommand):
    help = (
        "Run the sweeps that beat runs on its schedule: the expiry check of Assistants threads past their "
        "window, the credentials' retention policies, and the sync of recently active threads."
    )

    def add_arguments(self, parser):
        parser.add_argument("--only", choices=sweeps.NAMES, action="append", help="Run only this sweep.")
        parser.add_argument("--dry-run", action="store_true", help="Say what each sweep would do.")
        parser.add_argument(
            "--wait", action="store_true", help="Wait for the deletion jobs the sweeps start to end."
        )
        add_actor_argument(parser)

    def handle(self, *args, only, dry_run, wait, actor, **options):
        by = resolve_actor(actor)
        summaries, jobs = [], []
        for name in only or sweeps.NAMES:
            try:
                result = sweeps.run(name, dry_run=dry_run, by=by)
            except sweeps.SweepBusy as busy:
                raise CommandError(f"{busy} Nothing was swept twice; try again when it ends.") from None
            summaries.append(f"{name}: {result.summary}")
            jobs += result.jobs
        started = [job for job in jobs if job.state == DeletionJob.State.QUEUED]
        if started and settings.CELERY_TASK_ALWAYS_EAGER:
            # No task queue: a job started in this process would end with it, so it runs here, now.
            for job in started:
                tasks.run_deletion_job.apply(args=(job.pk,), throw=True)
        elif started and wait:
            while DeletionJob.objects.filter(
                pk__in=[job.pk for job in started], state__in=DeletionJob.UNFINISHED
            ).exists():
                time.sleep(0.5)
        for job in jobs:
            job.refresh_from_db()
            summaries.append(f"job {job.pk} {job.get_state_display().lower()}")
        self.stdout.write(("Dry run. " if dry_run else "") + "; ".join(summaries))
