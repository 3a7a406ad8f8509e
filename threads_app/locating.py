"""Finding the credential that owns a thread.

An object belongs to the project of the key that created it: any other key gets `404 No thread found`.
With several credentials registered, Threadsite can ask each one in turn, with a read-only retrieve, and
file the thread under the first that answers 200. `locate()` does that for many IDs at once through the
background engine: every credential is a lane with its own concurrency and its project's shared rate
limit, and an ID that one credential does not find goes straight on to the next, so the lanes run side
by side rather than in rounds.

Only the credentials a caller passes are asked: a page passes those its user may use (`permissions`).
"""

from collections import deque
from dataclasses import dataclass, field

from django.db import transaction
from django.db.models import Count
from django.utils import timezone

from . import audit, engine, kinds, outcomes, sync
from .client import APIError
from .models import Credential, StatusChange, Thread, UnfoundId, set_statuses


@dataclass(eq=False)
class Search:
    """One ID's search: the credentials left to ask, in order, and what each one said."""

    remote_id: str
    kind: str
    order: list = field(default_factory=list)
    tried: list = field(default_factory=list)  # [credential name, what it said]
    found: Credential | None = None
    remote: object = None  # what the API showed of it, when found

    @property
    def summary(self) -> str:
        return "; ".join(f"{name}: {said}" for name, said in self.tried) or "no credential to ask"


def candidates(usable, *, near: Credential | None = None, exclude=()) -> list[Credential]:
    """The credentials of `usable` (a queryset the caller may use) cheapest first: those on the base URL
    and organization of `near` (a thread's own credential) first, then those holding the most threads."""
    rows = usable.exclude(pk__in=[c.pk for c in exclude]).annotate(held=Count("threads")).order_by("name")

    def cost(credential):
        close = near is not None and (credential.base_url, credential.organization_id) == (
            near.base_url,
            near.organization_id,
        )
        return (not close, -credential.held)

    return sorted(rows, key=cost)


def locate(searches: list[Search]) -> list[Search]:
    """Ask each search's credentials in order until one finds its ID; returns the searches, filled in.

    A credential whose key is refused (401, 403, out of quota) is asked no more, and the IDs waiting for
    it go on to their next candidate.
    """
    queues: dict[int, deque] = {}
    credentials: dict[int, Credential] = {}
    for search in searches:
        for credential in search.order:
            credentials[credential.pk] = credential
            queues.setdefault(credential.pk, deque())
    refused: set[int] = set()
    state = {"outstanding": len(searches)}

    def forward(search: Search) -> None:
        """Send the search to its next candidate, skipping refused ones; or end it."""
        while search.order and search.order[0].pk in refused:
            search.tried.append([search.order.pop(0).name, "not asked: its key was refused"])
        if search.order:
            queues[search.order[0].pk].append(search)
        else:
            state["outstanding"] -= 1

    def claim(credential, n):
        if state["outstanding"] == 0:
            return None
        queue = queues[credential.pk]
        return [queue.popleft() for _ in range(min(n, len(queue)))]

    def call(client, search):
        try:
            return "found", kinds.adapter_for(search.kind).retrieve(client, search.remote_id)
        except APIError as error:
            return "error", outcomes.classify(error)

    def record(credential, results) -> bool:
        stop = False
        for search, (what, detail) in results:
            search.order.pop(0)
            if what == "found":
                search.found, search.remote = credential, detail
                search.tried.append([credential.name, "found"])
                state["outstanding"] -= 1
                continue
            if detail.kind == "not_found":
                search.tried.append([credential.name, "not found"])
            elif detail.stops_credential:
                search.tried.append([credential.name, detail.message[:200]])
                stop = True
            else:
                search.tried.append([credential.name, f"could not ask: {detail.message[:200]}"])
            forward(search)
        if stop:
            refused.add(credential.pk)
            waiting, queues[credential.pk] = list(queues[credential.pk]), deque()
            for search in waiting:
                release(credential, [search])
        return stop

    def release(credential, unsent):
        for search in unsent:
            search.order.pop(0)
            search.tried.append([credential.name, "not asked: its key was refused"])
            forward(search)

    for search in searches:
        forward(search)
    engine.run(
        list(credentials.values()),
        claim=claim,
        call=call,
        record=record,
        release=release,
        stops_lane=lambda result: result[0] == "error" and result[1].stops_credential,
    )
    return searches


def record_unfound(searches: list[Search], *, added_by=None) -> int:
    """Keep the IDs that no credential found, with what was tried; returns how many."""
    now = timezone.now()
    unfound = [search for search in searches if search.found is None]
    for search in unfound:
        UnfoundId.objects.update_or_create(
            remote_id=search.remote_id,
            defaults={"kind": search.kind, "tried": search.tried, "last_tried_at": now, "added_by": added_by},
            create_defaults={
                "kind": search.kind,
                "tried": search.tried,
                "added_by": added_by,
                "first_tried_at": now,
                "last_tried_at": now,
            },
        )
    UnfoundId.objects.filter(remote_id__in=[s.remote_id for s in searches if s.found]).delete()
    return len(unfound)


@dataclass
class Rehoming:
    moved: bool
    message: str
    search: Search | None = None


def rehome(thread: Thread, usable, *, by=None) -> Rehoming:
    """Look for `thread` under the credentials of `usable` other than its own; move it to the first that
    finds it, with the move in its status history. One found nowhere stays as it was."""
    others = candidates(usable, near=thread.credential, exclude=[thread.credential])
    if not others:
        return Rehoming(False, "There is no other credential to look under.")
    [search] = locate([Search(thread.remote_id, thread.kind, order=others)])
    if search.found is None:
        return Rehoming(False, f"No other credential finds {thread.remote_id} ({search.summary}).", search)
    move(thread, search, by=by)
    return Rehoming(True, f"Found under {search.found.name}: {thread.remote_id} is filed there now.", search)


def move(thread: Thread, search: Search, *, by=None) -> None:
    """File `thread` under the credential that found it, active again, and say so in its history."""
    old = thread.credential
    reason = f"Found under credential {search.found.name}, moved from {old.name}"
    history = {"moved_from": old.name, "moved_to": search.found.name}
    with transaction.atomic():
        Thread.objects.filter(pk=thread.pk).update(
            credential=search.found, last_check=Thread.Check.OK, last_check_message=""
        )
        if not set_statuses({thread.status: [thread]}, Thread.Status.ACTIVE, by=by, reason=reason, **history):
            # Active already: no status changes, but the move still goes in the history.
            StatusChange.objects.create(
                thread=thread,
                remote_id=thread.remote_id,
                old_status=thread.status,
                new_status=thread.status,
                changed_by=by,
                changed_by_name=by.get_username() if by else "",
                reason=reason,
                **history,
            )
        audit.record(
            audit.Action.THREAD_MOVED,
            actor=by,
            obj=thread,
            moved_from=old.name,
            moved_to=search.found.name,
            status_before=thread.status,
        )
    thread.credential, thread.status = search.found, Thread.Status.ACTIVE
    if search.remote is not None:
        sync.record_remote(thread, search.remote)


@dataclass
class RehomeReport:
    looked_for: int = 0
    moved: dict = field(default_factory=dict)  # credential name → threads moved there
    nowhere: int = 0

    def summary(self) -> str:
        moved = ", ".join(f"{n} to {name}" for name, n in sorted(self.moved.items())) or "none moved"
        return f"{self.looked_for} looked for: {moved}; {self.nowhere} found under no other credential"


def rehome_many(threads, usable, *, by=None) -> RehomeReport:
    """`rehome` for many threads at once (a selection of missing ones): one search each, all run side by
    side through the engine, each thread's own credential left out."""
    report = RehomeReport()
    threads = list(threads.select_related("credential"))
    everyone = candidates(usable)
    searches = []
    for thread in threads:
        near = [c for c in everyone if c.pk != thread.credential_id]
        near.sort(
            key=lambda c: (
                (c.base_url, c.organization_id)
                != (thread.credential.base_url, thread.credential.organization_id)
            )
        )
        searches.append(Search(thread.remote_id, thread.kind, order=near))
    locate(searches)
    for thread, search in zip(threads, searches, strict=True):
        report.looked_for += 1
        if search.found is None:
            report.nowhere += 1
            continue
        move(thread, search, by=by)
        report.moved[search.found.name] = report.moved.get(search.found.name, 0) + 1
    return report


GONE = (Thread.Status.MISSING, Thread.Status.EXPIRED)


def start_rehome(threads, *, summary: str, by=None):
    """Look for the gone threads of a selection under the other credentials, in the background."""
    from . import tasks  # tasks imports this module
    from .models import RehomeRun

    ids = list(threads.filter(status__in=GONE).order_by("pk").values_list("pk", flat=True))
    with transaction.atomic():
        run = RehomeRun.objects.create(
            requested_by=by,
            requested_by_name=by.get_username() if by else "",
            summary=summary[:1000],
            thread_ids=ids,
        )
        tasks.dispatch(tasks.rehome_threads, run.pk)
    return run


def run_rehome(run_id: int):
    """What the background task does: `rehome_many` over the run's threads, with the credentials its
    requester may use, and the report kept on the run."""
    from .models import RehomeRun
    from .permissions import usable_credentials

    started = RehomeRun.objects.filter(pk=run_id, state=RehomeRun.State.QUEUED).update(
        state=RehomeRun.State.RUNNING
    )
    run = RehomeRun.objects.select_related("requested_by").filter(pk=run_id).first()
    if not started or run is None:
        return run
    threads = Thread.objects.filter(pk__in=run.thread_ids, status__in=GONE)
    report = rehome_many(threads, usable_credentials(run.requested_by), by=run.requested_by)
    RehomeRun.objects.filter(pk=run.pk).update(
        state=RehomeRun.State.FINISHED,
        finished_at=timezone.now(),
        report={"looked_for": report.looked_for, "moved": report.moved, "nowhere": report.nowhere},
    )
    run.refresh_from_db()
    return run
