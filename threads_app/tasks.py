"""Celery tasks: thin wrappers that take primary keys, re-fetch their rows and call plain functions.

`dispatch()` is how the rest of the code starts one. With a broker (REDIS_URL) it queues the task once the
current transaction commits; in the embedded default it runs the task on a small pool of threads inside
this process, so the dashboard never waits on the API for background work.
"""

import logging
from concurrent.futures import ThreadPoolExecutor
from functools import cache

from celery import shared_task
from celery.signals import worker_ready
from django.conf import settings
from django.db import connections, transaction

from . import deletion, importing, locating, sweeps, sync
from .client import APIConnectionError, RateLimited, ServerError
from .models import Credential

logger = logging.getLogger(__name__)

TRANSIENT = (RateLimited, ServerError, APIConnectionError)
RETRY = {
    "autoretry_for": TRANSIENT,
    "retry_backoff": 30,
    "retry_backoff_max": 15 * 60,
    "retry_jitter": True,
    "max_retries": 8,
}


@cache
def _executor() -> ThreadPoolExecutor:
    return ThreadPoolExecutor(
        max_workers=settings.THREADSITE_INPROCESS_WORKERS, thread_name_prefix="threadsite-task"
    )


def _run_inprocess(task, args):
    try:
        task.apply(args=args, throw=True)
    except Exception:
        logger.exception("Background task %s%r failed", task.name, args)
    finally:
        # This thread's connections would otherwise stay open, idle, until the process ends.
        connections.close_all()


def dispatch(task, *args) -> None:
    """Start `task(*args)` in the background once the current transaction has committed."""
    if not settings.CELERY_TASK_ALWAYS_EAGER:
        transaction.on_commit(lambda: task.delay(*args))
    elif settings.THREADSITE_INPROCESS_WORKERS:
        transaction.on_commit(lambda: _executor().submit(_run_inprocess, task, args))
    else:
        transaction.on_commit(lambda: task.apply(args=args, throw=True))


def _for_credential(credential_id: int, work, what: str) -> str:
    credential = Credential.objects.filter(pk=credential_id).first()
    if credential is None:
        return "credential gone"
    summary = work(credential).summary()
    logger.info("%s for credential %s: %s", what, credential.name, summary)
    return summary


@shared_task(**RETRY)
def check_threads(credential_id: int) -> str:
    return _for_credential(credential_id, sync.check_unchecked, "Checked new threads")


@shared_task(**RETRY)
def discover_threads(credential_id: int, user_id: int | None = None) -> str:
    """List the credential's threads of the kinds that can be listed; `user_id` is who asked."""
    from django.contrib.auth import get_user_model

    by = get_user_model().objects.filter(pk=user_id).first() if user_id else None
    return _for_credential(
        credential_id, lambda credential: sync.discover(credential, added_by=by), "Discovery"
    )


@shared_task
def run_discovery(run_id: int) -> str:
    """A discovery run started from the credentials page; its row records what the listing found. No
    retries: a failed listing is reported on the page, where the admin can start another."""
    run = sync.run_discovery(run_id)
    return run.state if run else "run gone"


@shared_task
def discover_all() -> int:
    credential_ids = list(Credential.objects.values_list("pk", flat=True))
    for credential_id in credential_ids:
        dispatch(discover_threads, credential_id)
    return len(credential_ids)


@shared_task
def run_deletion_job(job_id: int) -> str:
    """Work on a deletion job; no retries of its own: the job retries its items, and resumes after a crash
    (`resume_deletion_jobs`)."""
    return deletion.run_job(job_id)


@shared_task
def resume_deletion_jobs() -> int:
    """Start a run of every unfinished deletion job: when a worker starts, and on beat's schedule, so that
    a job whose worker died goes on."""
    return len(deletion.resume_unfinished())


@worker_ready.connect
def _resume_on_worker_start(**kwargs):
    resume_deletion_jobs.delay()


@shared_task
def run_sweep(name: str) -> str:
    """One sweep (expiry, retention or sync) under its lock; a run that finds it held does nothing."""
    try:
        return sweeps.run(name).summary
    except sweeps.SweepBusy as busy:
        logger.info("%s", busy)
        return str(busy)


@shared_task
def run_import(run_id: int) -> str:
    """Parse and register a large import kept by the Import page."""
    run = importing.run_import(run_id)
    return run.state if run else "import gone"


@shared_task
def rehome_threads(run_id: int) -> str:
    """Look for a selection of gone threads under the other credentials (`locating.run_rehome`)."""
    run = locating.run_rehome(run_id)
    return run.state if run else "run gone"


@shared_task
def fold_tallies() -> bool:
    """Move the overview's appended changes into its tallies (`tallies.fold`)."""
    from . import tallies

    return tallies.fold()


@shared_task
def purge_audit_events() -> int:
    """Remove the audit events past AUDIT_RETENTION_DAYS (none while it is 0, the default)."""
    from . import audit

    return audit.purge()
