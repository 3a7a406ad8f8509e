"""Deleting threads through the API: one thread from its page, or many in a background job.

Wherever a deletion starts (the thread page, the list's selection, `manage.py delete_threads`, a sweep),
it goes through this module:
- `delete_remote()` is the API side of deleting one thread, the same for one and for a million: an
  archive of its transcript first if asked, the kind's own way of deleting (a conversation's items first),
  a 404 taken as "already gone", and a retrieve that must answer 404 to confirm a deletion;
- `delete_thread()` deletes one thread now and records it (the thread page, the REST API); a conversation
  with more items than can go while a person waits is handed to a one-thread job instead;
- `preview()` and `create_job()` turn a selection into a job whose items are fixed at creation;
- `run_job()` is what a worker runs: it joins the job in one of its `runs_wanted` slots (`JobRun.join`),
  claims items in batches by conditional UPDATE (the runs share the job's items), calls the API through
  `engine` with its slot's share of each credential's concurrency and one rate limit per project,
  records outcomes in batches, and finishes, fails or stops on cancellation. Killed, it loses nothing: an
  item left in flight is retrieved before anything else is sent for it, and `resume_unfinished()` starts
  the runs a job lacks.
"""

import csv
import io
import json
import logging
import os
import socket
import time
import uuid
from dataclasses import dataclass, field
from datetime import timedelta

from django.conf import settings
from django.core.exceptions import EmptyResultSet
from django.db import connection, transaction
from django.db.models import Count, F, Q
from django.utils import timezone

from . import audit, engine, kinds, outcomes, sync, transcripts
from .client import APIError, Client, NotFound, backoff
from .models import (
    Credential,
    DeletionArchive,
    DeletionItem,
    DeletionJob,
    DeletionRun,
    RetentionPolicy,
    Thread,
    set_statuses,
)
from .ratelimit import Cancelled

logger = logging.getLogger(__name__)

Item = DeletionItem.State
Job = DeletionJob.State

# An item is given up after this many attempts that failed in a way that might have passed.
MAX_ATTEMPTS = 8
# One deletion in this many is confirmed by a retrieve (all of them when the job asks to verify).
VERIFY_EVERY = 20
SAMPLE_SIZE = 10


# --- The API side of one deletion -----------------------------------------------------------------------


@dataclass
class Attempt:
    """What one try at deleting a thread came to."""

    state: str  # an Item state: deleted, already_gone, failed; or pending (try again later)
    message: str = ""
    outcome: outcomes.Outcome | None = None
    verified: bool | None = None
    transcript: str | None = None


def delete_remote(
    client: Client,
    thread: Thread,
    *,
    delete_items: bool = True,
    archive: bool = False,
    verify: bool = False,
    recovering: bool = False,
    until: float | None = None,
) -> Attempt:
    """Delete `thread` through the API: only API calls, nothing written here.

    `recovering`: an earlier try may have been sent without its answer recorded (its worker died), so the
    thread is looked up first and a 404 ends it as already gone, instead of a second DELETE sent blindly.
    `until`: the `time.monotonic()` moment a waiting person needs the answer by (kinds.Unfinished, raised,
    when a conversation's items cannot all go by then).
    """
    adapter = kinds.adapter_for(thread)
    transcript = None
    try:
        if recovering:
            adapter.retrieve(client, thread.remote_id)
        if archive:
            transcript = transcripts.as_json_line(
                thread, list(adapter.iter_entries(client, thread.remote_id))
            )
        # A deletion to be verified checks its conversation's items too, while they can still be listed.
        adapter.delete(client, thread.remote_id, delete_items=delete_items, until=until, confirm=verify)
    except NotFound as error:
        return Attempt(Item.ALREADY_GONE, error.message)
    except APIError as error:
        outcome = outcomes.classify(error)
        state = Item.PENDING if outcome.transient else Item.FAILED
        return Attempt(state, outcome.message, outcome=outcome)
    verified = None
    if verify:
        try:
            adapter.retrieve(client, thread.remote_id)
        except NotFound:
            verified = True
        except (APIError, Cancelled):
            # Not confirmed, not refuted (or the job was cancelled before the check could be sent): the
            # API's answer to the DELETE stands. Never Cancelled past this point: the engine would
            # release the item as unsent although its DELETE was carried out.
            pass
        else:
            return Attempt(
                Item.FAILED,
                "The API answered that it deleted this thread, but still serves it.",
                verified=False,
            )
    return Attempt(Item.DELETED, verified=verified, transcript=transcript)


def record_thread_statuses(pairs, *, by=None, reason: str) -> None:
    """Move the threads of finished attempts to their new status: deleted, or expired / missing for those
    the API no longer had (as their kind decides); one transaction per new status."""
    moves: dict[str, dict[str, list]] = {}
    for thread, attempt in pairs:
        if attempt.state == Item.DELETED:
            new_status = Thread.Status.DELETED
        elif attempt.state == Item.ALREADY_GONE:
            new_status = kinds.adapter_for(thread).status_when_not_found(thread)
        else:
            continue
        moves.setdefault(new_status, {}).setdefault(thread.status, []).append(thread)
    for new_status, by_status in moves.items():
        why = reason if new_status == Thread.Status.DELETED else f"{reason}: the API answered 404"
        set_statuses(by_status, new_status, by=by, reason=why)


@dataclass
class ThreadDeletion:
    """The outcome of deleting one thread from its page."""

    state: str  # deleted, already_gone, failed, not_sent; queued (finished by `job`)
    message: str
    job: DeletionJob | None = None


def delete_thread(thread: Thread, *, by, delete_items: bool = True, actor: str = "") -> ThreadDeletion:
    """Delete one thread now, as a person asked on its page (or an API token, named by `actor`; `by` is
    then the token's owner, if it has one), and record it."""
    if thread.status != Thread.Status.ACTIVE:
        return ThreadDeletion(
            "not_sent",
            f"{thread.remote_id} is already {thread.get_status_display().lower()}; nothing was sent.",
        )
    delete_items = delete_items and offers_item_deletion(thread)
    try:
        client = sync.web_client(thread.credential, write=True)
    except APIError as error:
        attempt = Attempt(Item.FAILED, outcomes.classify(error).message)
    else:
        # All within about one call's deadline: the person's page waits, and the server's worker with it.
        until = time.monotonic() + settings.OPENAI_WEB_DEADLINE
        try:
            attempt = delete_remote(client, thread, delete_items=delete_items, until=until)
        except kinds.Unfinished as unfinished:
            return _finish_in_background(thread, by=by, actor=actor, deleted=unfinished.deleted)
    how = " with its items" if delete_items else ""
    record_thread_statuses(
        [(thread, attempt)], by=by, reason=f"Deleted{how} through the API by {actor or by.get_username()}"
    )
    thread.refresh_from_db(fields=["status", "status_changed_at", "status_changed_by"])
    audit.record(
        audit.Action.THREAD_DELETED,
        actor=by,
        actor_name=actor if by is None and actor else None,
        obj=thread,
        outcome=attempt.state,
        with_items=delete_items,
        status=thread.status,
        message=attempt.message[:300],
        **({"via": actor} if actor else {}),
    )
    if attempt.state == Item.DELETED:
        return ThreadDeletion("deleted", f"Deleted {thread.remote_id}{how}.")
    if attempt.state == Item.ALREADY_GONE:
        return ThreadDeletion(
            "already_gone",
            f"The API no longer had {thread.remote_id}; it is now marked "
            f"{thread.get_status_display().lower()}.",
        )
    return ThreadDeletion("failed", f"{thread.remote_id} was not deleted. {attempt.message}")


def _finish_in_background(thread: Thread, *, by, actor: str, deleted: int) -> ThreadDeletion:
    """A conversation whose items could not all be deleted while its page waited: a job of this one thread
    deletes the rest and then the conversation, as any job does (progress, retries, receipt)."""
    waiting = actor or "its page"
    try:
        job = create_job(
            Thread.objects.filter(pk=thread.pk),
            requested_by=by,
            summary=f"{thread.remote_id}: more items than could be deleted while {waiting} waited",
            source=DeletionJob.Source.API if actor else DeletionJob.Source.THREAD,
        )
    except NothingToDelete:  # taken by another job meanwhile
        return ThreadDeletion("not_sent", f"{thread.remote_id} is already waiting in a deletion job.")
    done = f"{deleted:,} of its items were deleted; " if deleted else ""
    return ThreadDeletion(
        "queued",
        f"{thread.remote_id} has more items than can be deleted while you wait: {done}the rest, then the "
        f"conversation, are being deleted in the background (deletion job {job.pk}).",
        job=job,
    )


def offers_item_deletion(kind_or_thread) -> bool:
    """Whether the kind keeps items that a deletion may remove first (conversations)."""
    return hasattr(kinds.adapter_for(kind_or_thread), "delete_items")


# --- Making a job from a selection ----------------------------------------------------------------------


def deletable(threads):
    """The threads of a selection that a deletion job takes: every one not already deleted, nor waiting
    in another job that has not ended."""
    queued = DeletionItem.objects.filter(
        job__state__in=[Job.AWAITING, *DeletionJob.UNFINISHED],
        state__in=[Item.PENDING, Item.IN_FLIGHT],
        thread__isnull=False,
    ).values("thread_id")
    return threads.exclude(status=Thread.Status.DELETED).exclude(pk__in=queued)


@dataclass
class Preview:
    """What a job made from a selection would delete, before anything is."""

    count: int
    by_credential: list = field(default_factory=list)  # (name, count), largest first
    by_owner: list = field(default_factory=list)  # (username or "", count)
    by_kind: list = field(default_factory=list)  # (kind label, count)
    kinds: set = field(default_factory=set)  # the Thread.Kind values present
    sample: list = field(default_factory=list)  # Thread objects

    def lines(self) -> list[str]:
        """The preview as lines of text (the command prints them)."""
        lines = [f"{self.count:,} threads would be deleted"]
        for title, rows in (
            ("credential", self.by_credential),
            ("owner", self.by_owner),
            ("kind", self.by_kind),
        ):
            shown = ", ".join(f"{name or 'unassigned'} {n:,}" for name, n in rows)
            lines.append(f"  by {title}: {shown or '—'}")
        for thread in self.sample:
            lines.append(f"  e.g. {thread.remote_id}  {thread.title or ''}".rstrip())
        return lines


def preview(threads) -> Preview:
    threads = deletable(threads).order_by()

    def grouped(name):
        return [
            (value, n) for value, n in threads.values_list(name).annotate(n=Count("pk")).order_by("-n", name)
        ]

    labels = dict(Thread.Kind.choices)
    kind_counts = grouped("kind")
    by_kind = [(labels.get(kind, kind), n) for kind, n in kind_counts]
    return Preview(
        count=sum(n for _, n in by_kind),
        kinds={kind for kind, _ in kind_counts},
        by_credential=grouped("credential__name"),
        by_owner=[(name or "", n) for name, n in grouped("owner__username")],
        by_kind=by_kind,
        sample=list(threads.select_related("credential").order_by("-last_activity_at", "-id")[:SAMPLE_SIZE]),
    )


class NothingToDelete(ValueError):
    pass


def create_job(
    threads,
    *,
    requested_by=None,
    summary: str,
    filters: dict | None = None,
    source: str = DeletionJob.Source.BROWSER,
    delete_items: bool = True,
    archive: bool = False,
    verify_all: bool = False,
    expected_count: int | None = None,
    start: bool = True,
    policy=None,
    awaiting: bool = False,
) -> DeletionJob:
    """Make a job of the selected threads (not already deleted), fixed now: one item for each, copied in
    one INSERT … SELECT. `expected_count` is the count a person confirmed: if the selection has changed
    since, nothing is made (ValueError). Starts it in the background unless `start=False` or `awaiting`
    (a sweep's first preview, which waits for an admin's `confirm_job`)."""
    with transaction.atomic():
        job = DeletionJob.objects.create(
            requested_by=requested_by,
            requested_by_name=requested_by.get_username() if requested_by else "",
            source=source,
            policy=policy,
            state=DeletionJob.State.AWAITING if awaiting else DeletionJob.State.QUEUED,
            summary=summary[:1000],
            filters=filters or {},
            delete_items=delete_items,
            archive=archive,
            verify_all=verify_all,
            runs_wanted=settings.THREADSITE_RUNS_PER_JOB,
        )
        # In the threads' order, so that items, receipts and archives list them as they were selected.
        selected = (
            deletable(threads)
            .order_by("pk")
            .values_list("pk", "remote_id", "kind", "credential_id", "credential__name")
        )
        try:
            select_sql, params = selected.query.sql_with_params()
        except EmptyResultSet:
            raise NothingToDelete("No thread of the selection is left to delete.") from None
        table = connection.ops.quote_name(DeletionItem._meta.db_table)
        columns = ", ".join(
            connection.ops.quote_name(DeletionItem._meta.get_field(name).column)
            for name in ("thread", "remote_id", "kind", "credential", "credential_name", "job")
            + ("state", "attempts", "message", "claimed_by")
        )
        with connection.cursor() as cursor:
            # Identifiers come from the models; every value is a parameter.
            cursor.execute(
                f"INSERT INTO {table} ({columns}) SELECT s.*, %s, %s, 0, '', '' FROM ({select_sql}) s",  # noqa: S608
                (job.pk, Item.PENDING, *params),
            )
            total = cursor.rowcount
        if not total:
            raise NothingToDelete("No thread of the selection is left to delete.")
        if expected_count is not None and total != expected_count:
            raise NothingToDelete(
                f"The selection now holds {total:,} threads, not the {expected_count:,} you confirmed: "
                "look at the preview again."
            )
        DeletionJob.objects.filter(pk=job.pk).update(total=total, pending=total)
        job.total = job.pending = total
        audit.record(
            audit.Action.JOB_CREATED,
            actor=requested_by,
            obj=job,
            threads=total,
            source=source,
            selection=job.summary,
            delete_items=delete_items,
            archive=archive,
            verify_all=verify_all,
            awaiting_confirmation=awaiting,
            policy=policy.pk if policy else None,
        )
        if start and not awaiting:
            start_job(job)
    logger.info("Deletion job %s made by %s: %s threads (%s)", job.pk, job.requested_by_name, total, summary)
    return job


def start_job(job: DeletionJob, *, runs: int | None = None) -> None:
    """Start the job's runs in the background: as many as it wants, or `runs` (those it lacks)."""
    from . import tasks  # tasks imports this module

    for _ in range(runs or job.runs_wanted):
        tasks.dispatch(tasks.run_deletion_job, job.pk)


# --- Running a job --------------------------------------------------------------------------------------


def lease_seconds() -> int:
    return settings.THREADSITE_DELETION_LEASE_SECONDS


def silent_since():
    """A worker or run whose last heartbeat is older than this is taken for dead (a lease ago)."""
    return timezone.now() - timedelta(seconds=lease_seconds())


HOST = socket.gethostname()


def _process_gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)  # signal 0: only asks whether the process exists
    except ProcessLookupError:
        return True
    except PermissionError:  # someone else's process: it exists
        pass
    return False


def live_runs(job: DeletionJob):
    """The job's runs that are alive, once the dead ones are removed: those with no heartbeat within the
    lease, and those of processes of this machine that are gone (a worker started again after a crash
    takes their slots at once rather than a lease later)."""
    cutoff = silent_since()
    here = job.runs.filter(host=HOST, heartbeat_at__gte=cutoff).exclude(pid=os.getpid())
    gone = [pk for pk, pid in here.values_list("pk", "pid") if _process_gone(pid)]
    job.runs.filter(Q(heartbeat_at__lt=cutoff) | Q(pk__in=gone)).delete()
    return job.runs.all()


def share(concurrency: int, runs: int, slot: int) -> int:
    """Run `slot`'s part of a credential's concurrency when `runs` runs share it: the parts add up to the
    concurrency (at least 1), and a run may get none."""
    concurrency = max(1, concurrency)
    return concurrency // runs + (1 if slot < concurrency % runs else 0)


def refresh_counts(job: DeletionJob) -> DeletionJob:
    """Count the job's items by state (one GROUP BY over the job's index) and store the counts."""
    rows = (
        job.items.order_by()
        .values_list("state")
        .annotate(n=Count("pk"), v=Count("pk", filter=Q(verified=True)))
    )
    counts = {state: n for state, n, _ in rows}
    values = {
        "pending": counts.get(Item.PENDING, 0) + counts.get(Item.IN_FLIGHT, 0),
        "deleted": counts.get(Item.DELETED, 0),
        "already_gone": counts.get(Item.ALREADY_GONE, 0),
        "failed": counts.get(Item.FAILED, 0),
        "verified": sum(verified for _, _, verified in rows),
    }
    DeletionJob.objects.filter(pk=job.pk).update(**values)
    for name, value in values.items():
        setattr(job, name, value)
    return job


@dataclass
class JobRun:
    """One worker's share of one job; several may run the same job at once."""

    job: DeletionJob
    slot: int
    token: str = field(default_factory=lambda: uuid.uuid4().hex)
    stopped_credentials: set = field(default_factory=set)

    @classmethod
    def join(cls, job: DeletionJob) -> "JobRun | None":
        """A new run of the job in a free slot, or None when the job has all the runs it wants alive."""
        with transaction.atomic():
            # One run joins at a time: the job's row is locked (PostgreSQL; SQLite has one writer at a time).
            DeletionJob.objects.select_for_update().filter(pk=job.pk).values_list("pk").first()
            taken = set(live_runs(job).values_list("slot", flat=True))
            free = [slot for slot in range(job.runs_wanted) if slot not in taken]
            if not free:
                return None
            run = cls(job, free[0])
            DeletionRun.objects.create(job=job, slot=run.slot, token=run.token, host=HOST, pid=os.getpid())
            return run

    def capacity(self, credential: Credential) -> int:
        return share(credential.concurrency, self.job.runs_wanted, self.slot)

    @property
    def actor(self):
        return self.job.requested_by

    @property
    def reason(self) -> str:
        who = self.job.requested_by_name or "the system"
        how = " with its items" if self.job.delete_items else ""
        return f"Deleted{how} through the API by deletion job {self.job.pk} ({who})"

    def claim(self, credential: Credential, n: int):
        now = timezone.now()
        lease = now + timedelta(seconds=lease_seconds())
        mine = DeletionItem.objects.filter(job=self.job, credential=credential)
        # Items whose worker died while they were in flight: taken over, and looked up before any DELETE.
        stale = list(mine.filter(state=Item.IN_FLIGHT, lease_until__lt=now).values_list("pk", flat=True)[:n])
        if stale:
            mine.filter(pk__in=stale, state=Item.IN_FLIGHT, lease_until__lt=now).update(
                claimed_by=self.token, lease_until=lease, attempts=F("attempts") + 1
            )
        ready = Q(not_before__isnull=True) | Q(not_before__lte=now)
        with transaction.atomic():
            # Rows another run is claiming at this moment are skipped, not waited for (PostgreSQL; SQLite
            # has one writer at a time): runs sharing a job would otherwise pick the same first items,
            # and all but one would come away with nothing.
            fresh = list(
                mine.filter(ready, state=Item.PENDING)
                .select_for_update(skip_locked=True, of=("self",))
                .order_by("id")
                .values_list("pk", flat=True)[: n - len(stale)]
            )
            if fresh:
                mine.filter(pk__in=fresh, state=Item.PENDING).update(
                    state=Item.IN_FLIGHT, claimed_by=self.token, lease_until=lease, attempts=F("attempts") + 1
                )
        # The thread's owner is read only to archive it, and its credential is the lane's: neither is joined
        # and built for every item of a job that does not need it.
        claimed = list(
            DeletionItem.objects.filter(pk__in=stale + fresh, claimed_by=self.token, state=Item.IN_FLIGHT)
            .select_related("thread__owner" if self.job.archive else "thread")
            .order_by("id")
        )
        for item in claimed:
            item.recovering = item.pk in stale
            if item.thread is not None and item.thread.credential_id == credential.pk:
                item.thread.credential = credential
        if claimed:
            return claimed
        if mine.filter(state__in=[Item.PENDING, Item.IN_FLIGHT]).exists():
            return []  # retries not yet due, or items other workers hold
        return None

    def call(self, client: Client, item: DeletionItem) -> Attempt:
        if item.thread is None:
            return Attempt(Item.FAILED, "The thread's record was removed from the registry.")
        try:
            return delete_remote(
                client,
                item.thread,
                delete_items=self.job.delete_items,
                archive=self.job.archive,
                verify=self.job.verify_all or item.pk % VERIFY_EVERY == 0,
                recovering=item.recovering,
            )
        except Cancelled:
            raise  # the engine releases the item: nothing was sent
        except Exception as error:  # a defect must not lose the claim: the item is retried, then failed
            logger.exception("Deleting %s failed unexpectedly", item.remote_id)
            return Attempt(Item.PENDING, f"Unexpected error: {type(error).__name__}")

    def record(self, credential: Credential, results) -> bool:
        """Write a batch of outcomes; True when the credential was refused and its part must stop."""
        now = timezone.now()
        final: dict[tuple, list[int]] = {}
        retries, stop, archives, finished = [], None, [], []
        for item, attempt in results:
            state, message = attempt.state, attempt.message
            if stops_credential(attempt):
                stop, state = attempt.outcome, Item.FAILED
            elif state == Item.PENDING:
                if item.attempts >= MAX_ATTEMPTS:
                    state, message = Item.FAILED, f"Gave up after {item.attempts} attempts. {message}"
                else:
                    wait = attempt.outcome.retry_after if attempt.outcome else None
                    retries.append((item, message, now + timedelta(seconds=wait or backoff(item.attempts))))
                    continue
            final.setdefault((state, message[:500], attempt.verified), []).append(item.pk)
            if attempt.transcript is not None:
                archives.append(DeletionArchive(item_id=item.pk, content=attempt.transcript))
            if item.thread is not None:
                finished.append((item.thread, attempt))
        with transaction.atomic():
            for (state, message, verified), pks in final.items():
                self._items(pks).update(
                    state=state,
                    message=message,
                    verified=verified,
                    finished_at=now,
                    claimed_by="",
                    lease_until=None,
                )
            for item, message, not_before in retries:
                self._items([item.pk]).update(
                    state=Item.PENDING,
                    message=message[:500],
                    not_before=not_before,
                    claimed_by="",
                    lease_until=None,
                )
            DeletionArchive.objects.bulk_create(archives, ignore_conflicts=True)
            record_thread_statuses(finished, by=self.actor, reason=self.reason)
            if stop is not None:
                self.stop_credential(credential, stop)
        return stop is not None

    def stop_credential(self, credential: Credential, outcome: outcomes.Outcome) -> None:
        """The API refused the credential: fail its pending items with the reason, rather than send each."""
        self.stopped_credentials.add(credential.pk)
        DeletionItem.objects.filter(job=self.job, credential=credential, state=Item.PENDING).update(
            state=Item.FAILED,
            message=f"Not attempted: {outcome.message}"[:500],
            finished_at=timezone.now(),
        )
        if outcome.kind == "refused":
            sync.record_verification(credential, False, outcome.message)

    def release(self, credential: Credential, items) -> None:
        """Items claimed but never sent (the job was cancelled): pending again, their attempt not counted."""
        self._items([item.pk for item in items]).update(
            state=Item.PENDING, claimed_by="", lease_until=None, attempts=F("attempts") - 1
        )

    def tick(self) -> bool:
        """About once a second: the heartbeat, the leases, the counts; False once the job is cancelled, or
        when this run was taken for dead (its slot may be another's now)."""
        now = timezone.now()
        DeletionJob.objects.filter(pk=self.job.pk).update(heartbeat_at=now)
        if not DeletionRun.objects.filter(token=self.token).update(heartbeat_at=now):
            logger.warning("Deletion job %s: run %s was taken for dead; it stops", self.job.pk, self.token)
            return False
        DeletionItem.objects.filter(job=self.job, state=Item.IN_FLIGHT, claimed_by=self.token).update(
            lease_until=now + timedelta(seconds=lease_seconds())
        )
        refresh_counts(self.job)
        self.job.state = DeletionJob.objects.values_list("state", flat=True).get(pk=self.job.pk)
        return self.job.state == Job.RUNNING

    def _items(self, pks):
        # Only while this run holds the claim: a worker that lost its lease must not overwrite another's.
        return DeletionItem.objects.filter(pk__in=pks, claimed_by=self.token, state=Item.IN_FLIGHT)


def stops_credential(attempt: Attempt) -> bool:
    return attempt.outcome is not None and attempt.outcome.stops_credential


def run_job(job_id: int) -> str:
    """Work on a job until nothing is left for this worker: what a worker task runs. Safe to run on any
    number of workers at once, and again after a crash."""
    now = timezone.now()
    started = DeletionJob.objects.filter(pk=job_id, state=Job.QUEUED).update(
        state=Job.RUNNING, started_at=now, heartbeat_at=now, reason=""
    )
    job = DeletionJob.objects.select_related("requested_by").filter(pk=job_id).first()
    if job is None:
        return "job gone"
    if started:  # of several workers, the one that moved it
        audit.record(
            audit.Action.JOB_STARTED,
            actor=job.requested_by,
            actor_name=job.requested_by_name or audit.SYSTEM,
            obj=job,
            pending=job.pending,
        )
    if job.state == Job.RUNNING:
        run = JobRun.join(job)
        if run is None:
            logger.info("Deletion job %s has the %d runs it wants alive", job.pk, job.runs_wanted)
            return job.state
        try:
            _work(job, run, now)
        finally:
            DeletionRun.objects.filter(token=run.token).delete()
    return finish(job).state


def _work(job: DeletionJob, run: JobRun, now) -> None:
    """The run's work on the job: every credential with items left, each a lane of the engine with this
    run's share of its concurrency."""
    orphans = job.items.filter(state=Item.PENDING, credential__isnull=True)
    orphans.update(state=Item.FAILED, message="The credential was removed.", finished_at=now)
    credential_ids = (
        job.items.filter(state__in=[Item.PENDING, Item.IN_FLIGHT]).order_by().values("credential").distinct()
    )
    credentials = list(Credential.objects.filter(pk__in=credential_ids))
    logger.info("Deletion job %s: working on %d credentials (run %s)", job.pk, len(credentials), run.token)
    engine.run(
        credentials,
        claim=run.claim,
        call=run.call,
        record=run.record,
        tick=run.tick,
        release=run.release,
        stops_lane=stops_credential,
        client_options={"write": True},
        capacity=run.capacity,
    )


def finish(job: DeletionJob) -> DeletionJob:
    """End the job if nothing is left in flight: cancelled if it was being cancelled, else finished, or
    failed when some items failed. Conditional, so that of several workers only one ends it."""
    refresh_counts(job)
    if job.items.filter(state=Item.IN_FLIGHT).exists():
        job.refresh_from_db()
        return job
    now = timezone.now()
    left = job.pending
    done = f"{job.deleted:,} deleted, {job.already_gone:,} already gone, {job.failed:,} failed"
    ended = DeletionJob.objects.filter(pk=job.pk, state=Job.CANCELLING).update(
        state=Job.CANCELLED, finished_at=now, reason=f"Cancelled: {done}; {left:,} left untouched."
    )
    if not left:
        state = Job.FAILED if job.failed else Job.FINISHED
        reason = f"{job.failed:,} of {job.total:,} threads could not be deleted." if job.failed else ""
        ended += DeletionJob.objects.filter(pk=job.pk, state=Job.RUNNING).update(
            state=state, finished_at=now, reason=reason
        )
    job.refresh_from_db()
    if ended:  # of several workers, the one that ended it
        record_ended(job)
    if not job.is_unfinished:
        logger.info("Deletion job %s %s: %s", job.pk, job.state, done)
    return job


def record_ended(job: DeletionJob) -> None:
    audit.record(
        audit.Action.JOB_FINISHED,
        actor=job.requested_by,
        actor_name=job.requested_by_name or audit.SYSTEM,
        obj=job,
        state=job.state,
        total=job.total,
        deleted=job.deleted,
        already_gone=job.already_gone,
        failed=job.failed,
        left=job.pending,
        verified=job.verified,
    )


def confirm_job(job: DeletionJob, *, by) -> bool:
    """An admin confirms a job awaiting confirmation (a sweep's first preview): it starts, and the policy
    that made it deletes without asking from now on. False if the job was not awaiting."""
    with transaction.atomic():
        moved = DeletionJob.objects.filter(pk=job.pk, state=Job.AWAITING).update(state=Job.QUEUED)
        if moved:
            if job.policy_id:
                RetentionPolicy.objects.filter(pk=job.policy_id, confirmed_at__isnull=True).update(
                    confirmed_at=timezone.now(), confirmed_by=by
                )
            audit.record(audit.Action.JOB_CONFIRMED, actor=by, obj=job, threads=job.total)
            start_job(job)
    job.refresh_from_db()
    return bool(moved)


def cancel_job(job: DeletionJob, *, by=None) -> DeletionJob:
    """Ask the job to stop: at once if no worker has started it, else within a second or two."""
    now = timezone.now()
    reason = "Cancelled before it started; nothing was sent."
    at_once = DeletionJob.objects.filter(pk=job.pk, state__in=[Job.QUEUED, Job.AWAITING]).update(
        state=Job.CANCELLED, finished_at=now, reason=reason
    )
    stopping = DeletionJob.objects.filter(pk=job.pk, state=Job.RUNNING).update(state=Job.CANCELLING)
    job.refresh_from_db()
    if at_once or stopping:
        audit.record(
            audit.Action.JOB_CANCELLED,
            actor=by,
            obj=job,
            before_start=bool(at_once),
            deleted_so_far=job.deleted,
            pending=job.pending,
        )
    if job.state == Job.CANCELLING and (job.heartbeat_at is None or job.heartbeat_at < silent_since()):
        finish(job)  # No worker is alive to end it.
    return job


def retry_job(job: DeletionJob, *, failed: bool = True, by=None) -> int:
    """Put the failed items (and any left pending) of an ended job back in the queue and start it again.
    Returns how many items will be tried."""
    with transaction.atomic():
        if failed:
            job.items.filter(state=Item.FAILED).update(
                state=Item.PENDING, attempts=0, not_before=None, finished_at=None
            )
        moved = DeletionJob.objects.filter(
            pk=job.pk, state__in=[Job.FINISHED, Job.FAILED, Job.CANCELLED]
        ).update(state=Job.QUEUED, finished_at=None, reason="")
        refresh_counts(job)
        count = job.pending  # counted now: a job started inline has ended again by the time it returns
        if moved:
            audit.record(audit.Action.JOB_RETRIED, actor=by, obj=job, threads=count, failed_only=failed)
            start_job(job)
    job.refresh_from_db()
    return count if moved else 0


def resume_unfinished() -> list[int]:
    """Start the runs that unfinished jobs lack (after a restart, or when a worker died): none for a job
    whose runs are alive. Returns the jobs given runs."""
    resumed = []
    for job in DeletionJob.objects.filter(state__in=DeletionJob.UNFINISHED).order_by("pk"):
        missing = job.runs_wanted - live_runs(job).count()
        if missing > 0:
            start_job(job, runs=missing)
            resumed.append(job.pk)
    return resumed


# --- Receipts -------------------------------------------------------------------------------------------

RECEIPT_FIELDS = ["id", "kind", "credential", "outcome", "finished_at", "attempts", "message", "requested_by"]


def receipt_rows(job: DeletionJob):
    """One dict per item, in a stable order, for the CSV and JSON receipts."""
    for item in job.items.order_by("id").iterator(chunk_size=2000):
        yield {
            "id": item.remote_id,
            "kind": item.kind,
            "credential": item.credential_name,
            "outcome": item.state,
            "finished_at": item.finished_at.isoformat() if item.finished_at else None,
            "attempts": item.attempts,
            "message": item.message,
            "requested_by": job.requested_by_name,
        }


def receipt_csv(job: DeletionJob):
    """The receipt as CSV text, produced in chunks (for a streaming response)."""
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=RECEIPT_FIELDS)
    writer.writeheader()
    for n, row in enumerate(receipt_rows(job)):
        writer.writerow(row)
        if n % 1000 == 999:
            yield buffer.getvalue()
            buffer.seek(0)
            buffer.truncate()
    yield buffer.getvalue()


def receipt_json(job: DeletionJob):
    """The receipt as one JSON document: the job, then every item; produced in chunks."""
    header = {
        "job": job.pk,
        "requested_by": job.requested_by_name,
        "source": job.source,
        "selection": job.summary,
        "created_at": job.created_at.isoformat(),
        "finished_at": job.finished_at.isoformat() if job.finished_at else None,
        "state": job.state,
        "counts": {
            "total": job.total,
            "deleted": job.deleted,
            "already_gone": job.already_gone,
            "failed": job.failed,
            "left": job.pending,
        },
    }
    yield json.dumps(header, ensure_ascii=False)[:-1] + ', "items": ['
    for n, row in enumerate(receipt_rows(job)):
        yield ("," if n else "") + "\n" + json.dumps(row, ensure_ascii=False)
    yield "\n]}\n"


def archive_lines(job: DeletionJob):
    """The job's stored transcripts as JSON Lines."""
    archives = DeletionArchive.objects.filter(item__job=job).order_by("item_id")
    for content in archives.values_list("content", flat=True).iterator(chunk_size=200):
        yield content + "\n"


# --- Progress -------------------------------------------------------------------------------------------


@dataclass
class Progress:
    percent: int
    rate: float | None  # threads finished per second, since the job started
    seconds_left: float | None
    limits: list  # (credential name, requests per minute in force, or None when unknown)
    runs: int = 0  # worker runs alive on it (a heartbeat within the lease)


def progress(job: DeletionJob) -> Progress:
    """What the job page shows beside the counts: how far, how fast, how long still, and the rate limit."""
    from .ratelimit import Throttle

    percent = int(100 * job.done / job.total) if job.total else 100
    rate = seconds_left = None
    if job.started_at and job.done:
        end = job.finished_at or timezone.now()
        elapsed = max((end - job.started_at).total_seconds(), 0.001)
        rate = job.done / elapsed
        if job.is_unfinished and job.pending:
            seconds_left = job.pending / rate
    credential_ids = job.items.order_by().values("credential").distinct()
    limits = [
        (credential.name, Throttle(credential).per_minute)
        for credential in Credential.objects.filter(pk__in=credential_ids)
    ]
    runs = job.runs.filter(heartbeat_at__gte=silent_since()).count() if job.is_unfinished else 0
    return Progress(percent, rate, seconds_left, limits, runs)
