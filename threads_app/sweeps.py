"""Sweeps: the work beat runs on a schedule, and a person by hand (`manage.py sweep_threads`).

- `expiry`: Assistants threads past their kind's window (`retention.removed_by`) are looked up through the
  jobs' engine and rate limiter: a 404 makes them expired; a thread still served has its activity
  refreshed, so one someone kept using is never marked expired.
- `retention`: each credential's policy. "flag" only counts; "delete" makes a deletion job of the threads
  past the window (exemptions aside) through `deletion.create_job`, after looking each one up so that
  activity since the last look (a conversation's new item) spares it. The first run after a policy is
  switched to "delete" makes a job that awaits an admin's confirmation.
- `sync`: threads active in the last days are looked up, so their metadata and activity stay current;
  then ChatKit discovery.

Each sweep runs only while it holds its lock (a conditional UPDATE on its SweepLock row): two beats, or a
beat and a person, never sweep at once; a second run finds the rows the first one handled already done.
"""

import logging
import uuid
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import timedelta

from django.db.models import Q
from django.utils import timezone

from . import audit, deletion, retention, sync
from .client import APIError
from .models import Credential, DeletionJob, RetentionPolicy, SweepLock, SweepRun, Thread

logger = logging.getLogger(__name__)

NAMES = ("expiry", "retention", "sync")
# A sweep's lock lapses this long after it was taken, in case its process died; runs are far shorter.
LOCK_SECONDS = 3600
# A thread looked up this recently is not looked up again by a sweep.
RECHECK_AFTER = timedelta(hours=20)
# "Recently active", for the sync sweep.
RECENT = timedelta(days=7)


class SweepBusy(Exception):
    """Another run of the same sweep holds its lock."""


@contextmanager
def lock(name: str):
    """Hold the sweep's lock for the block, or raise SweepBusy at once."""
    SweepLock.objects.get_or_create(name=name)
    token, now = uuid.uuid4().hex, timezone.now()
    free = Q(held_until__isnull=True) | Q(held_until__lt=now)
    taken = SweepLock.objects.filter(free, name=name).update(
        holder=token, held_until=now + timedelta(seconds=LOCK_SECONDS)
    )
    if not taken:
        raise SweepBusy(f"The {name} sweep is already running.")
    try:
        yield token
    finally:
        SweepLock.objects.filter(name=name, holder=token).update(holder="", held_until=None)


@dataclass
class SweepResult:
    name: str
    summary: str
    jobs: list  # DeletionJobs it made


def run(name: str, *, dry_run: bool = False, by=None) -> SweepResult:
    """Run one sweep under its lock and record the run; raises SweepBusy if it is running elsewhere.
    `by`: who ran it by hand (None for beat)."""
    if name not in NAMES:
        raise ValueError(f"Unknown sweep {name!r}: one of {', '.join(NAMES)}")
    with lock(name) as token:
        record = SweepRun.objects.create(name=name, dry_run=dry_run, holder=token)
        result = {"expiry": expiry, "retention": apply_policies, "sync": sync_recent}[name](dry_run=dry_run)
        SweepRun.objects.filter(pk=record.pk).update(finished_at=timezone.now(), summary=result.summary[:500])
        audit.record(
            audit.Action.SWEEP_RUN,
            actor=by,
            sweep=name,
            dry_run=dry_run,
            summary=result.summary[:500],
            jobs=[job.pk for job in result.jobs],
        )
    logger.info("Sweep %s%s: %s", name, " (dry run)" if dry_run else "", result.summary)
    return result


def _credentials_of(threads):
    return Credential.objects.filter(pk__in=threads.order_by().values("credential_id").distinct())


def _not_recently_checked(now):
    return Q(last_synced_at__isnull=True) | Q(last_synced_at__lt=now - RECHECK_AFTER)


def expiry(*, dry_run: bool = False) -> SweepResult:
    now = timezone.now()
    candidates = Thread.objects.filter(retention.removed_by(now, modes=())).filter(_not_recently_checked(now))
    if dry_run:
        return SweepResult("expiry", f"{candidates.count():,} threads past their expiry would be checked", [])
    checked = expired = alive = 0
    for credential in _credentials_of(candidates):
        report = _check(credential, candidates)
        checked += report.checked
        expired += report.not_found
        alive += report.found
    return SweepResult("expiry", f"{checked:,} checked: {expired:,} expired, {alive:,} still there", [])


def _check(credential, threads) -> sync.CheckReport:
    try:
        return sync.check_many(credential, threads)
    except APIError as error:  # a transient failure: the threads left stay for the next run
        logger.warning("Sweep checks of %s stopped: %s", credential.name, error)
        return sync.CheckReport(stopped=str(error))


def _past_window(policy: RetentionPolicy, now):
    return Thread.objects.filter(credential=policy.credential_id).filter(
        retention.removed_by(now, modes=(policy.mode,), expiry=False)
    )


def apply_policies(*, dry_run: bool = False) -> SweepResult:
    now = timezone.now()
    lines, jobs = [], []
    policies = RetentionPolicy.objects.filter(
        mode__in=[RetentionPolicy.Mode.FLAG, RetentionPolicy.Mode.DELETE]
    )
    for policy in policies.select_related("credential").order_by("credential__name"):
        name = policy.credential.name
        if policy.mode == RetentionPolicy.Mode.FLAG:
            lines.append(f"{name}: {_past_window(policy, now).count():,} past the window (flag only)")
            continue
        if DeletionJob.objects.filter(policy=policy, state=DeletionJob.State.AWAITING).exists():
            lines.append(f"{name}: its first preview awaits confirmation")
            continue
        if dry_run:
            lines.append(
                f"{name}: {deletion.deletable(_past_window(policy, now)).count():,} would be deleted"
            )
            continue
        # Look each candidate up first: activity since the last look (a conversation's new item) spares it.
        candidates = deletion.deletable(_past_window(policy, now)).filter(_not_recently_checked(now))
        _check(policy.credential, candidates)
        selection = deletion.deletable(_past_window(policy, now))
        summary = f"Retention: {name}, {policy.window_days} days without activity"
        try:
            job = deletion.create_job(
                selection,
                summary=summary,
                filters={"policy": policy.pk, "window_days": policy.window_days},
                source=DeletionJob.Source.SWEEP,
                policy=policy,
                awaiting=policy.confirmed_at is None,
            )
        except deletion.NothingToDelete:
            lines.append(f"{name}: nothing past the window")
            continue
        jobs.append(job)
        if job.state == DeletionJob.State.AWAITING:
            lines.append(f"{name}: job {job.pk} previews {job.total:,} threads and awaits confirmation")
        else:
            lines.append(f"{name}: job {job.pk} deletes {job.total:,} threads")
    return SweepResult("retention", "; ".join(lines) or "no policy deletes or flags anything", jobs)


def sync_recent(*, dry_run: bool = False) -> SweepResult:
    now = timezone.now()
    recent = Thread.objects.filter(status=Thread.Status.ACTIVE, last_activity_at__gte=now - RECENT).filter(
        Q(last_synced_at__isnull=True) | Q(last_synced_at__lt=now - timedelta(minutes=10))
    )
    if dry_run:
        return SweepResult("sync", f"{recent.count():,} recently active threads would be looked up", [])
    checked = added = 0
    for credential in _credentials_of(recent):
        checked += _check(credential, recent).checked
    for credential in Credential.objects.all():
        try:
            added += sync.discover(credential).added
        except APIError as error:  # one credential's failure must not stop the others
            logger.warning("Discovery for %s failed: %s", credential.name, error)
    return SweepResult("sync", f"{checked:,} recent threads looked up, {added:,} ChatKit threads found", [])
