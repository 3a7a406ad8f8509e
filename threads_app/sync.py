"""Keeping tracked threads in step with the API: checking imported threads, verifying credentials,
refreshing what a fetched page shows, and discovering threads of the kinds that can be listed.

Views, tasks and management commands call these plain functions; nothing here knows about requests or
Celery.
"""

import logging
from dataclasses import dataclass

from django.utils import timezone

from . import kinds
from .client import (
    APIConnectionError,
    APIError,
    AuthenticationError,
    Client,
    NotFound,
    PermissionDenied,
    RateLimited,
    ServerError,
)
from .models import Credential, Thread

logger = logging.getLogger(__name__)

# Checks run in batches so that one task never holds thousands of rows in memory.
CHECK_BATCH = 200


def record_remote(thread: Thread, remote=None, newest=None) -> None:
    """Store what the API just showed of `thread`: its metadata, title, end user, creation time and latest
    activity. Writes only the changed fields, with one UPDATE."""
    adapter = kinds.adapter_for(thread)
    changed = {"last_synced_at": timezone.now()}
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
        if activity and (thread.last_activity_at is None or activity > thread.last_activity_at):
            changed["last_activity_at"] = activity
            changed["activity_source"] = source
    for name, value in changed.items():
        setattr(thread, name, value)
    Thread.objects.filter(pk=thread.pk).update(**changed)


def record_not_found(thread: Thread, error: NotFound, *, by=None) -> None:
    """The API says the thread does not exist for this credential: mark it expired or missing."""
    new_status = kinds.adapter_for(thread).status_when_not_found(thread)
    thread.set_status(new_status, by=by, reason=f"The API answered 404: {error.message}")


def check_thread(thread: Thread, client: Client | None = None) -> str:
    """Ask the API whether `thread` exists for its credential, and record the answer (a Thread.Check value).

    Rate limits and server failures that outlast the client's retries propagate, so that the calling task
    retries later; the other answers are recorded on the thread.
    """
    adapter = kinds.adapter_for(thread)
    client = client or Client.for_credential(thread.credential)
    try:
        remote = adapter.retrieve(client, thread.remote_id)
        newest = adapter.page(client, thread.remote_id, limit=1) if adapter.supports_timestamps else None
    except NotFound as error:
        result, message = Thread.Check.NOT_FOUND, error.message
        record_not_found(thread, error)
    except AuthenticationError as error:
        result, message = Thread.Check.BAD_KEY, error.message
    except PermissionDenied as error:
        result, message = Thread.Check.FORBIDDEN, error.message
    except (RateLimited, ServerError, APIConnectionError):
        raise
    except APIError as error:
        result, message = Thread.Check.ERROR, str(error)
    else:
        record_remote(thread, remote, newest)
        result, message = Thread.Check.OK, ""
    Thread.objects.filter(pk=thread.pk).update(
        last_check=result, last_check_message=message[:500], last_synced_at=timezone.now()
    )
    thread.last_check, thread.last_check_message = result, message[:500]
    return result


@dataclass
class CheckReport:
    checked: int = 0
    found: int = 0
    not_found: int = 0
    failed: int = 0
    stopped: str = ""  # why the run stopped early, e.g. the key was refused

    def summary(self) -> str:
        text = f"{self.checked} checked: {self.found} found, {self.not_found} not found, {self.failed} failed"
        return f"{text}; stopped: {self.stopped}" if self.stopped else text


def check_unchecked(credential: Credential, *, limit: int | None = None) -> CheckReport:
    """Check the threads of `credential` that were never checked (newly imported or added).

    A refused key stops the run: every other thread would fail the same way, and is reported as a bad key
    on the credential rather than as a thousand missing threads.
    """
    report = CheckReport()
    client = Client.for_credential(credential)
    while limit is None or report.checked < limit:
        batch = list(Thread.objects.filter(credential=credential, last_check="").order_by("id")[:CHECK_BATCH])
        if not batch:
            break
        for thread in batch:
            result = check_thread(thread, client)
            report.checked += 1
            if result == Thread.Check.OK:
                report.found += 1
            elif result == Thread.Check.NOT_FOUND:
                report.not_found += 1
            else:
                report.failed += 1
            if result in (Thread.Check.BAD_KEY, Thread.Check.FORBIDDEN):
                record_verification(credential, False, thread.last_check_message)
                report.stopped = f"the API refused the credential's key: {thread.last_check_message}"
                return report
            if limit is not None and report.checked >= limit:
                break
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
    """Check that the API accepts the credential's key; record and return (ok, message)."""
    client = Client.for_credential(credential)
    try:
        client.get(f"/conversations/{PROBE_ID}")
    except NotFound:
        ok, message = True, "The API accepted the key."
    except (AuthenticationError, PermissionDenied) as error:
        ok, message = False, f"The API refused the key: {error.message}"
    except APIError as error:
        ok, message = False, f"Could not verify the key: {error}"
    else:
        ok, message = True, "The API accepted the key."
    record_verification(credential, ok, message)
    return ok, message


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
    return report


def _register_discovered(adapter, credential, remotes, now, added_by) -> int:
    if not remotes:
        return 0
    known = set(
        Thread.objects.filter(remote_id__in=[r.id for r in remotes]).values_list("remote_id", flat=True)
    )
    new = []
    for remote in remotes:
        if remote.id in known:
            continue
        activity, source = adapter.last_activity(remote, None)
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
                last_synced_at=now,
                last_check=Thread.Check.OK,
                source=Thread.Source.DISCOVERY,
                added_by=added_by,
                added_at=now,
            )
        )
    Thread.objects.bulk_create(new, ignore_conflicts=True)
    return len(new)
