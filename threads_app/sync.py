"""Keeping tracked threads in step with the API: checking imported threads, verifying credentials,
refreshing what a fetched page shows, and discovering threads of the kinds that can be listed.

Views, tasks and management commands call these plain functions; nothing here knows about requests or
Celery.
"""

import logging
from dataclasses import dataclass

from django.conf import settings
from django.utils import timezone

from . import audit, engine, ids, kinds, outcomes, ratelimit
from .client import APIError, Client, NotFound
from .entries import Page, RemoteThread
from .metadata import InvalidMetadata
from .models import Credential, DiscoveryRun, Thread

logger = logging.getLogger(__name__)

# Discovery registers threads in batches so that one task never holds thousands of rows in memory.
CHECK_BATCH = 200
# A page waits at most this long for a rate limit to clear; beyond it, the person sees the wait and retries.
WEB_MAX_WAIT = 3.0


def record_remote(thread: Thread, remote=None, newest=None) -> None:
    """Store what the API just showed of `thread`: its metadata, title, end user, creation time and latest
    activity. `newest` is a page of its entries, newest first. Writes only the changed fields, with one
    UPDATE.

    A conversation's items carry no time: when its newest item is not the one the last look saw, it was
    active since, and that is recorded as activity seen now.
    """
    adapter = kinds.adapter_for(thread)
    now = timezone.now()
    changed = {"last_synced_at": now}
    if newest is not None:
        newest_id = (newest.entries[0].id if newest.entries else "")[:100]
        if newest_id != thread.newest_entry_id:
            if thread.newest_entry_id and not adapter.supports_timestamps:
                changed["last_activity_at"], changed["activity_source"] = now, Thread.ActivitySource.SEEN
            changed["newest_entry_id"] = newest_id
    if remote is not None:
        if remote.metadata != thread.metadata:
            changed["metadata"] = remote.metadata
        if remote.created_at and remote.created_at != thread.remote_created_at:
            changed["remote_created_at"] = remote.created_at
        if remote.title and remote.title != thread.title:
            changed["title"] = remote.title[:300]
        if remote.user and remote.user != thread.end_user:
            changed["end_user"] = remote.user[:200]
        activity, source = adapter.last_activity(remote, newest)
        latest = changed.get("last_activity_at", thread.last_activity_at)
        if activity and (latest is None or activity > latest):
            changed["last_activity_at"] = activity
            changed["activity_source"] = source
    for name, value in changed.items():
        setattr(thread, name, value)
    Thread.objects.filter(pk=thread.pk).update(**changed)


def record_not_found(thread: Thread, error: NotFound, *, by=None) -> None:
    """The API says the thread does not exist for this credential: mark it expired or missing."""
    new_status = kinds.adapter_for(thread).status_when_not_found(thread)
    thread.set_status(new_status, by=by, reason=f"The API answered 404: {error.message}")


@dataclass
class CheckAnswer:
    """What the API answered when asked about one thread: the thread (and its newest entry), or why not."""

    remote: object = None
    newest: object = None
    error: APIError | None = None

    @property
    def outcome(self) -> outcomes.Outcome | None:
        return outcomes.classify(self.error) if self.error is not None else None


def fetch_check(client: Client, thread: Thread) -> CheckAnswer:
    """Ask the API whether `thread` exists for its credential: API calls only, nothing written."""
    adapter = kinds.adapter_for(thread)
    try:
        remote = adapter.retrieve(client, thread.remote_id)
        newest = adapter.page(client, thread.remote_id, limit=1)
    except APIError as error:
        return CheckAnswer(error=error)
    return CheckAnswer(remote, newest)


def record_check(thread: Thread, answer: CheckAnswer) -> str:
    """Store the answer of a check on the thread; return its Thread.Check value."""
    outcome = answer.outcome
    if outcome is None:
        record_remote(thread, answer.remote, answer.newest)
        result, message = Thread.Check.OK, ""
    else:
        result, message = outcome.check, outcome.detail
        if outcome.kind == "not_found":
            record_not_found(thread, answer.error)
    Thread.objects.filter(pk=thread.pk).update(
        last_check=result, last_check_message=message[:500], last_synced_at=timezone.now()
    )
    thread.last_check, thread.last_check_message = result, message[:500]
    return result


def check_thread(thread: Thread, client: Client | None = None) -> str:
    """Ask the API whether `thread` exists for its credential, and record the answer (a Thread.Check value).

    Rate limits and server failures that outlast the client's retries propagate, so that the caller can
    try again later; the other answers are recorded on the thread.
    """
    answer = fetch_check(client or Client.for_credential(thread.credential), thread)
    if answer.outcome is not None and answer.outcome.transient:
        raise answer.error
    return record_check(thread, answer)


@dataclass
class CheckReport:
    checked: int = 0
    found: int = 0
    not_found: int = 0
    failed: int = 0
    stopped: str = ""  # why the run stopped early, e.g. the key was refused
    transient: APIError | None = None  # the last failure that a later run may get past

    def summary(self) -> str:
        text = f"{self.checked} checked: {self.found} found, {self.not_found} not found, {self.failed} failed"
        return f"{text}; stopped: {self.stopped}" if self.stopped else text


def check_unchecked(credential: Credential, *, limit: int | None = None) -> CheckReport:
    """Check the threads of `credential` that were never checked (newly imported or added)."""
    return check_many(credential, Thread.objects.filter(last_check=""), limit=limit)


def check_many(credential: Credential, threads, *, limit: int | None = None) -> CheckReport:
    """Check `credential`'s threads among `threads` (a queryset), many at once within the project's rate
    limit (`engine`), each once, in id order: what the API shows is stored, a 404 marks them expired or
    missing (as their kind decides).

    A refused key stops the run: every other thread would fail the same way, and is reported as a bad key
    on the credential rather than as a thousand missing threads. Threads whose check met a rate limit or a
    server failure stay unchecked, and the last such error is raised at the end, so that the task retries.
    """
    report = CheckReport()
    position = {"after": 0, "claimed": 0}

    def claim(credential, n):
        if limit is not None:
            n = min(n, limit - position["claimed"])
            if n <= 0:
                return None
        batch = list(
            threads.filter(credential=credential, pk__gt=position["after"])
            .select_related("credential")
            .order_by("id")[:n]
        )
        if not batch:
            return None
        position["after"], position["claimed"] = batch[-1].pk, position["claimed"] + len(batch)
        return batch

    def record(credential, results) -> bool:
        for thread, answer in results:
            report.checked += 1
            outcome = answer.outcome
            if outcome is not None and outcome.transient:
                report.failed += 1
                report.transient = answer.error
                continue
            result = record_check(thread, answer)
            if result == Thread.Check.OK:
                report.found += 1
            elif result == Thread.Check.NOT_FOUND:
                report.not_found += 1
            else:
                report.failed += 1
            if outcome is not None and outcome.stops_credential:
                record_verification(credential, False, outcome.message)
                report.stopped = outcome.message
                return True
        return False

    engine.run(
        [credential],
        claim=claim,
        call=fetch_check,
        record=record,
        stops_lane=lambda answer: answer.outcome is not None and answer.outcome.stops_credential,
    )
    if report.transient is not None and not report.stopped:
        raise report.transient
    return report


def record_verification(credential: Credential, ok: bool, message: str) -> None:
    now = timezone.now()
    Credential.objects.filter(pk=credential.pk).update(
        last_verified_at=now, last_verification_ok=ok, last_verification_message=message[:500]
    )
    credential.last_verified_at, credential.last_verification_ok = now, ok
    credential.last_verification_message = message[:500]


# An ID that cannot exist: asking for it tells whether the key is accepted without touching any data
# (the API authenticates before it looks the object up, so 404 means the key works).
PROBE_ID = "conv_threadsiteverificationprobe"


def verify_credential(credential: Credential) -> tuple[bool, str]:
    """Check that the API accepts the credential's key, and its read-only key if it has one; record and
    return (ok, message)."""
    ok, message = _probe(credential, write=True)
    if ok and credential.read_key_encrypted:
        read_ok, read_message = _probe(credential, write=False)
        ok, message = read_ok, f"{message} Read-only key: {read_message}"
    record_verification(credential, ok, message)
    return ok, message


def _probe(credential: Credential, *, write: bool) -> tuple[bool, str]:
    try:
        web_client(credential, write=write).get(f"/conversations/{PROBE_ID}")
    except APIError as error:
        outcome = outcomes.classify(error)
        if outcome.kind == "not_found":
            return True, "The API accepted the key."
        if outcome.kind == "refused":
            return False, outcome.message
        return False, f"Could not verify the key. {outcome.message}"
    return True, "The API accepted the key."


def web_client(credential: Credential, *, max_wait: float = WEB_MAX_WAIT, write: bool = False) -> Client:
    """A client for a request a person waits on: it waits at most a few seconds for a rate limit, and
    every call ends within OPENAI_WEB_DEADLINE. `write`: the work changes or deletes something, so it
    needs the main key rather than the read-only one."""
    try:
        return Client.for_credential(
            credential, write=write, max_wait=max_wait, deadline=settings.OPENAI_WEB_DEADLINE
        )
    except ValueError as error:  # the stored key cannot be decrypted (the encryption keys changed)
        raise APIError(str(error), code="key_unreadable") from None


# --- What a person's page asks of the API --------------------------------------------------------------

MESSAGES_PER_PAGE = 20


@dataclass
class MessageResult:
    """What the API answered for one page of a thread's messages: a page, or why there is none."""

    page: Page | None = None
    after: str = ""
    error: str = ""  # an Outcome kind: not_found, refused, quota, rate_limited, unavailable, failed
    message: str = ""
    retry_after: float | None = None
    order: str = "desc"  # "asc": oldest first, and the cursor leads to newer messages
    # How many entries the pages shown so far hold, this one included; None when the pages before it
    # were not counted (a link from elsewhere).
    seen: int | None = None
    counted: bool = False  # this page reached the end, and the thread's message count was recorded
    retryable: bool = False  # asking again later may succeed (a rate limit, a failing server)

    @property
    def older_cursor(self) -> str:
        return (self.page.next_cursor or "") if self.page else ""


def stored_remote(thread: Thread) -> RemoteThread:
    """The thread as last seen, for dating activity from a page of messages without another request."""
    return RemoteThread(
        id=thread.remote_id,
        kind=thread.kind,
        created_at=thread.remote_created_at,
        metadata=thread.metadata,
        title=thread.title,
        user=thread.end_user,
    )


def person_limit(by) -> outcomes.Outcome | None:
    """None while the person `by` may still call the API from a page this minute, else why not."""
    if by is None or ratelimit.person_may_call_api(by):
        return None
    return outcomes.person_limited(settings.THREADSITE_PAGE_API_CALLS_PER_MINUTE)


def read_messages(
    thread: Thread, after: str | None, *, seen: int | None = None, by=None, order: str = "desc"
) -> MessageResult:
    """One page of messages, newest first (or oldest first with `order="asc"`): one API request. The first
    page newest first also dates the last activity. `seen` is how many entries the pages before `after`
    held: the page that reaches the thread's far end then knows the thread's length, and records it.

    A page asks this on a GET. It writes only what the API said (activity, the message count), the same
    whoever asks and however often, and `by`'s calls are limited per minute.
    """
    adapter = kinds.adapter_for(thread)
    outcome = person_limit(by)
    if outcome is None:
        try:
            page = adapter.page(
                web_client(thread.credential),
                thread.remote_id,
                limit=MESSAGES_PER_PAGE,
                after=after,
                order=order,
            )
        except APIError as error:
            outcome = outcomes.classify(error)
    if outcome is not None:
        return MessageResult(
            after=after or "",
            error=outcome.kind,
            message=outcome.message,
            retry_after=outcome.retry_after,
            retryable=outcome.transient,
            order=order,
        )
    if after is None:
        if order == "desc":  # the newest entry comes first only then
            record_remote(thread, stored_remote(thread), page)
        seen = 0
    total = seen + len(page.entries) if seen is not None else None
    counted = total is not None and not page.has_more
    if counted:
        record_message_count(thread, total)
    elif page.has_more and thread.message_count is not None and thread.message_count <= len(page.entries):
        record_message_count(thread, None)  # more than it says: stale, until a reading reaches the end
    return MessageResult(page=page, after=after or "", seen=total, counted=counted, order=order)


def record_message_count(thread: Thread, count: int | None) -> None:
    if thread.message_count != count:
        thread.message_count = count
        Thread.objects.filter(pk=thread.pk).update(message_count=count)


def refresh(thread: Thread, *, by=None) -> outcomes.Outcome | None:
    """Ask the API for the thread (one request) and store what changed; the outcome if it failed."""
    if limited := person_limit(by):
        return limited
    try:
        remote = kinds.adapter_for(thread).retrieve(web_client(thread.credential), thread.remote_id)
    except APIError as error:
        return outcomes.classify(error)
    record_remote(thread, remote)
    return None


def update_metadata(thread: Thread, metadata: dict, *, by=None) -> outcomes.Outcome | None:
    """Replace the thread's remote metadata through the API and store it; the outcome if it failed."""
    before = dict(thread.metadata or {})
    try:
        remote = kinds.adapter_for(thread).update_metadata(
            web_client(thread.credential, write=True), thread.remote_id, metadata
        )
    except (kinds.NotSupported, InvalidMetadata) as error:
        return outcomes.invalid(str(error))
    except APIError as error:
        outcome = outcomes.classify(error)
        if outcome.kind == "not_found":
            message = "The API no longer finds this thread, so its metadata cannot be changed."
            return outcomes.Outcome("not_found", outcome.check, message, outcome.detail)
        return outcome
    record_remote(thread, remote)
    after = thread.metadata or {}
    # The keys, not the values: a value may hold anything a customer's app put there.
    audit.record(
        audit.Action.METADATA_EDITED,
        actor=by,
        obj=thread,
        added=sorted(after.keys() - before.keys()),
        removed=sorted(before.keys() - after.keys()),
        changed=sorted(key for key in after.keys() & before.keys() if after[key] != before[key]),
    )
    return None


def read_transcript(thread: Thread, *, by=None) -> tuple[list, outcomes.Outcome | None]:
    """Every entry of the thread, oldest first (for exports); or the outcome that stopped the reading."""
    if limited := person_limit(by):
        return [], limited
    try:
        entries = list(
            kinds.adapter_for(thread).iter_entries(web_client(thread.credential), thread.remote_id)
        )
    except APIError as error:
        return [], outcomes.classify(error)
    record_message_count(thread, len(entries))
    return entries, None


# --- Discovery ------------------------------------------------------------------------------------------


@dataclass
class DiscoveryReport:
    seen: int = 0
    added: int = 0

    def summary(self) -> str:
        return f"{self.seen} threads listed, {self.added} new"


def discover(credential: Credential, *, added_by=None) -> DiscoveryReport:
    """Register the threads that the API lists for `credential` (the kinds that have a list endpoint)."""
    report = DiscoveryReport()
    client = Client.for_credential(credential)
    now = timezone.now()
    for adapter in kinds.ADAPTERS.values():
        if not adapter.supports_discovery:
            continue
        batch = []
        for remote in adapter.discover(client):
            report.seen += 1
            batch.append(remote)
            if len(batch) >= CHECK_BATCH:
                report.added += _register_discovered(adapter, credential, batch, now, added_by)
                batch = []
        report.added += _register_discovered(adapter, credential, batch, now, added_by)
    if added_by is None and not report.added:
        return report  # beat's sync sweep lists every credential each quarter hour: only finds are news
    audit.record(
        audit.Action.THREADS_DISCOVERED,
        actor=added_by,
        obj=credential,
        credential=credential.name,
        listed=report.seen,
        added=report.added,
    )
    return report


def start_discovery(credential: Credential, *, by=None) -> DiscoveryRun:
    """A discovery run of `credential`, queued for `run_discovery`; the one already queued or running if
    there is one, so that pressing Discover twice lists the threads once."""
    running = credential.discovery_runs.filter(
        state__in=[DiscoveryRun.State.QUEUED, DiscoveryRun.State.RUNNING]
    ).first()
    return running or DiscoveryRun.objects.create(credential=credential, requested_by=by)


def run_discovery(run_id: int) -> DiscoveryRun | None:
    """Carry out a queued discovery run and record what it found (or why it failed) on the run."""
    # Claimed by a conditional UPDATE: a task delivered twice runs the listing once.
    if not DiscoveryRun.objects.filter(pk=run_id, state=DiscoveryRun.State.QUEUED).update(
        state=DiscoveryRun.State.RUNNING
    ):
        return DiscoveryRun.objects.filter(pk=run_id).first()
    run = DiscoveryRun.objects.select_related("credential", "requested_by").get(pk=run_id)
    try:
        report = discover(run.credential, added_by=run.requested_by)
    except APIError as error:
        run.state, run.message = DiscoveryRun.State.FAILED, outcomes.classify(error).message[:500]
    except Exception:
        # Anything else would leave the run "running" and its page polling for ever.
        logger.exception("Discovery run %s failed", run_id)
        run.state, run.message = DiscoveryRun.State.FAILED, "It stopped on an unexpected error (see the log)."
    else:
        run.state, run.seen, run.added = DiscoveryRun.State.FINISHED, report.seen, report.added
    run.finished_at = timezone.now()
    run.save(update_fields=["state", "seen", "added", "message", "finished_at"])
    return run


def _is_id_of(remote_id: str, kind: str) -> bool:
    """Whether a listed ID passes the same check as a typed one (a server may list anything)."""
    try:
        return ids.kind_of(remote_id) == kind and remote_id == remote_id.strip()
    except ids.InvalidId:
        logger.warning("Discovery skipped a malformed ID %r", remote_id[:120])
        return False


def _register_discovered(adapter, credential, remotes, now, added_by) -> int:
    if not remotes:
        return 0
    known = set(
        Thread.objects.filter(remote_id__in=[r.id for r in remotes]).values_list("remote_id", flat=True)
    )
    fresh = [r for r in remotes if r.id not in known and _is_id_of(r.id, adapter.kind)]
    newest = _newest_entries(adapter, credential, fresh)
    new = []
    for remote in fresh:
        page = newest.get(remote.id)
        activity, source = adapter.last_activity(remote, page)
        new.append(
            Thread(
                remote_id=remote.id,
                kind=adapter.kind,
                credential=credential,
                title=remote.title[:300],
                end_user=remote.user[:200],
                metadata=remote.metadata,
                remote_created_at=remote.created_at,
                last_activity_at=activity,
                activity_source=source,
                newest_entry_id=(page.entries[0].id if page and page.entries else "")[:100],
                last_synced_at=now,
                last_check=Thread.Check.OK,
                source=Thread.Source.DISCOVERY,
                added_by=added_by,
                added_at=now,
            )
        )
    Thread.objects.bulk_create(new, ignore_conflicts=True)
    return len(new)


def _newest_entries(adapter, credential, remotes) -> dict[str, Page]:
    """The newest entry of each listed thread (one request each, many at once within the project's rate
    limit), by remote ID: a listed thread shows only when it was created, while its newest item dates its
    last activity. Kinds whose entries carry no time are not asked; a thread whose page cannot be read
    keeps its creation time until a check or a visit dates it."""
    if not adapter.supports_timestamps or not remotes:
        return {}
    pending, found = list(remotes), {}

    def claim(credential, n):
        units = pending[:n]
        del pending[:n]
        return units or None

    def call(client, remote):
        try:
            return adapter.page(client, remote.id, limit=1)
        except APIError as error:
            logger.info("Discovery could not read the newest entry of %s: %s", remote.id, error)
            return None

    def record(credential, results) -> bool:
        found.update((remote.id, page) for remote, page in results if isinstance(page, Page))
        return False

    engine.run([credential], claim=claim, call=call, record=record)
    return found
