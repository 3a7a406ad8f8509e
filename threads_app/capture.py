"""Threads that enter through API tokens: registered through the REST API (`register`), or seen by the
capture proxy in the answers it forwards (`record_exchange`).

Registration validates IDs as the Import page does (`ids.kind_of`, with its help for a `run_…` or
`resp_…` pasted by mistake) and metadata as the API would (`metadata.validate`); a batch with one bad
entry is refused whole. Registering a known ID again updates its labels: one row per remote ID, always.

The proxy records each exchange once its answer has been sent (`record_after_answer`), so the registry's
write never delays the answer, and fail-open: `record_safely` never raises. A write that fails is logged
and retried in the background (`retry_pending`, on a daemon thread) a few times; the log
names the remote ID, so that a miss that outlives its retries can still be registered by hand.
"""

import json
import logging
import re
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from datetime import UTC, datetime

from django.conf import settings
from django.contrib.auth import get_user_model
from django.db import IntegrityError, transaction
from django.utils import timezone

from . import deletion, ids, permissions
from .metadata import InvalidMetadata
from .metadata import validate as validate_metadata
from .models import ApiToken, Credential, DeletionItem, Thread

logger = logging.getLogger(__name__)

MAX_BATCH = 100
END_USER_HEADER = "X-Threadsite-End-User"
OWNER_METADATA_KEY = "threadsite_owner"


# --- Registration through the REST API -------------------------------------------------------------------


class Refused(ValueError):
    """The request cannot be carried out; nothing was written. `errors` lists every reason."""

    def __init__(self, errors: list[str], *, status: int = 400):
        self.errors = errors
        self.status = status
        super().__init__(errors[0] if len(errors) == 1 else f"{len(errors)} entries cannot be registered")


@dataclass
class Entry:
    remote_id: str
    kind: str
    credential: Credential
    owner: object = None
    labels: dict = field(default_factory=dict)  # the optional fields the entry sets: title, end_user, …


@dataclass
class Registered:
    thread: Thread
    created: bool


LABELS = {"title": 300, "end_user": 200}
FIELDS = {"id", "credential", "owner", "end_user", "title", "metadata"}


def register(token: ApiToken, entries: list) -> list[Registered]:
    """Register `entries` (dicts of the API's shape) for `token`; Refused if any entry is wrong."""
    if not isinstance(entries, list) or not entries:
        raise Refused(['Send one thread object, or {"threads": [...]} with 1 to 100 of them.'])
    if len(entries) > MAX_BATCH:
        raise Refused([f"A batch holds at most {MAX_BATCH} threads; this one has {len(entries)}."])
    credentials = {c.name: c for c in Credential.objects.all()}
    usernames = {e.get("owner") for e in entries if isinstance(e, dict) and isinstance(e.get("owner"), str)}
    owners = {u.get_username(): u for u in get_user_model().objects.filter(username__in=usernames)}
    checked, errors = [], []
    seen = set()
    for number, raw in enumerate(entries, start=1):
        where = f"Thread {number}" if len(entries) > 1 else "The thread"
        try:
            entry = _check(token, raw, credentials, owners)
        except ValueError as error:
            errors.append(f"{where}: {error}")
            continue
        if entry.remote_id in seen:
            errors.append(f"{where}: {entry.remote_id} appears twice in the batch.")
            continue
        seen.add(entry.remote_id)
        checked.append(entry)
    if errors:
        raise Refused(errors)
    reach = permissions.token_threads(token)
    existing = {
        t.remote_id: t for t in Thread.objects.filter(remote_id__in=seen).select_related("credential")
    }
    reachable = set(reach.filter(remote_id__in=seen).values_list("remote_id", flat=True))
    for entry in checked:
        thread = existing.get(entry.remote_id)
        if thread is None:
            continue
        if thread.remote_id not in reachable:
            # As for a GET of it: the token learns nothing of a thread beyond its reach.
            errors.append(f"{entry.remote_id} is tracked where this token cannot reach it.")
        elif thread.credential_id != entry.credential.pk:
            errors.append(
                f"{entry.remote_id} is already tracked under the credential {thread.credential.name}, "
                f"not {entry.credential.name}."
            )
    if errors:
        raise Refused(errors, status=409)
    results = []
    with transaction.atomic():
        for entry in checked:
            results.append(_write(token, entry, existing.get(entry.remote_id)))
    return results


def _check(token: ApiToken, raw, credentials: dict, owners: dict) -> Entry:
    if not isinstance(raw, dict):
        raise ValueError("each thread is a JSON object.")
    unknown = sorted(set(raw) - FIELDS)
    if unknown:
        raise ValueError(f"unknown field {', '.join(unknown)} (fields: {', '.join(sorted(FIELDS))}).")
    remote_id = raw.get("id")
    if not isinstance(remote_id, str) or not remote_id.strip():
        raise ValueError("`id` is required: the ID of a thread_…, conv_… or cthr_….")
    remote_id = remote_id.strip()
    kind = ids.kind_of(remote_id)  # InvalidId is a ValueError, with the Import page's help
    name = raw.get("credential")
    if name is None:
        if token.credential is None:
            raise ValueError("name its `credential`: this token is not bound to one.")
        credential = token.credential
    elif not isinstance(name, str) or name not in credentials:
        raise ValueError(f"no credential is named “{name}”.")
    else:
        credential = credentials[name]
    if not permissions.token_may_use_credential(token, credential):
        raise ValueError(f"this token cannot file threads under the credential {credential.name}.")
    owner = token.owner
    if raw.get("owner") is not None:
        if raw["owner"] not in owners:
            raise ValueError(f"no team member is named “{raw['owner']}”.")
        owner = owners[raw["owner"]]
        if token.owner_id and owner.pk != token.owner_id:
            raise ValueError(f"this token registers threads for {token.owner.get_username()} only.")
    labels = {}
    for name, limit in LABELS.items():
        if name in raw:
            if not isinstance(raw[name], str) or len(raw[name]) > limit:
                raise ValueError(f"`{name}` must be text of at most {limit} characters.")
            labels[name] = raw[name].strip()
    if "metadata" in raw:
        try:
            labels["metadata"] = validate_metadata(raw["metadata"])
        except InvalidMetadata as error:
            raise ValueError(str(error)) from None
    if "owner" in raw:
        labels["owner"] = owner
    return Entry(remote_id, kind, credential, owner, labels)


def _write(token: ApiToken, entry: Entry, thread: Thread | None) -> Registered:
    if thread is not None:
        for name, value in entry.labels.items():
            setattr(thread, name, value)
        if entry.labels:
            thread.save(update_fields=[*entry.labels])
        return Registered(thread, created=False)
    try:
        with transaction.atomic():
            thread = Thread.objects.create(
                remote_id=entry.remote_id,
                kind=entry.kind,
                credential=entry.credential,
                owner=entry.owner,
                source=Thread.Source.API,
                api_token=token,
                **{k: v for k, v in entry.labels.items() if k != "owner"},
            )
    except IntegrityError:  # registered by another request since it was looked up
        thread = Thread.objects.get(remote_id=entry.remote_id)
        return _write(token, entry, thread)
    return Registered(thread, created=True)


# --- What the capture proxy records ------------------------------------------------------------------------

# Paths under /v1/ as the proxy sees them: what each POST or DELETE tells the registry.
ID = r"(?P<id>[A-Za-z0-9_-]{1,100})"
CREATES = {
    "threads": ("id", Thread.Kind.ASSISTANTS),
    "threads/runs": ("thread_id", Thread.Kind.ASSISTANTS),
    "conversations": ("id", Thread.Kind.CONVERSATION),
}
ACTIVITY = re.compile(
    rf"(?:threads|conversations)/{ID}/(?:messages|runs|runs/[^/]+/submit_tool_outputs|items)"
)
DELETES = re.compile(rf"(threads|conversations)/{ID}")
# A path naming a thread or conversation, for the reach check made before anything is forwarded.
NAMED = re.compile(r"(?:threads|conversations|chatkit/threads)/(?P<id>(?:thread|conv|cthr)_[A-Za-z0-9]+)")


def named_id(path: str) -> str | None:
    match = NAMED.match(path)
    return match.group("id") if match else None


_reach: dict[tuple[str, str], tuple[float, bool]] = {}
_reach_lock = threading.Lock()
MAX_REACH_ENTRIES = 10_000
_clock = time.monotonic


def outside_reach(token: ApiToken, remote_id: str) -> bool:
    """Whether a tracked thread is beyond the token's reach (an untracked ID is not: the application may
    use objects created before it used the proxy).

    An application names the same conversation in request after request (items, responses, pages), so
    the answer is kept for THREADSITE_TOKEN_CACHE_SECONDS, as the token itself is: building the query
    costs the proxy more CPU than forwarding the request does.
    """
    key = (token.token_hash, remote_id)
    now = _clock()
    with _reach_lock:
        kept = _reach.get(key)
    if kept is not None and kept[0] > now:
        return kept[1]
    # One query: tracked, and not in reach.
    reachable = permissions.token_threads(token).filter(remote_id=remote_id).values("pk")
    outside = Thread.objects.filter(remote_id=remote_id).exclude(pk__in=reachable).exists()
    ttl = settings.THREADSITE_TOKEN_CACHE_SECONDS
    if ttl:
        with _reach_lock:
            if len(_reach) >= MAX_REACH_ENTRIES:
                _reach.clear()
            _reach[key] = (now + ttl, outside)
    return outside


def stamp_owner(token: ApiToken, path: str, body: dict | None) -> bool:
    """Add metadata.threadsite_owner to a create's body if the token asks for it and there is room
    (the API allows 16 pairs). Returns whether the body changed."""
    if not token.stamp_owner or token.owner is None or not isinstance(body, dict) or path not in CREATES:
        return False
    target = body
    if path == "threads/runs":
        target = body.setdefault("thread", {})
        if not isinstance(target, dict):
            return False
    metadata = target.get("metadata")
    if metadata is None:
        metadata = target["metadata"] = {}
    if not isinstance(metadata, dict) or OWNER_METADATA_KEY in metadata or len(metadata) >= 16:
        return False
    metadata[OWNER_METADATA_KEY] = token.owner.get_username()
    return True


def end_user_of(header: str, body: dict | None) -> str:
    """Who the application acts for: its header, else the request's `user`, `safety_identifier`, or an
    `end_user` / `user` / `user_id` metadata value."""
    if header.strip():
        return header.strip()[:200]
    if not isinstance(body, dict):
        return ""
    candidates = [body.get("safety_identifier"), body.get("user")]
    for holder in (body, body.get("thread") if isinstance(body.get("thread"), dict) else {}):
        metadata = holder.get("metadata")
        if isinstance(metadata, dict):
            candidates += [metadata.get(k) for k in ("end_user", "user", "user_id")]
    return next((c.strip()[:200] for c in candidates if isinstance(c, str) and c.strip()), "")


@dataclass
class Exchange:
    """One forwarded request and what came back, reduced to what recording needs (primitives only, so
    that a retry can hold it)."""

    token_id: int
    method: str
    path: str
    status: int
    request: dict | None
    answer: dict | None
    end_user: str = ""


def record_exchange(exchange: Exchange, token: ApiToken | None = None) -> None:
    """Record what a forwarded request did: a thread created, activity in one, a deletion. `token` is the
    exchange's token as the proxy already holds it (a retry reads it again)."""
    if not 200 <= exchange.status < 300:
        return
    if token is None:
        token = ApiToken.objects.select_related("credential", "owner").filter(pk=exchange.token_id).first()
    if token is None or token.credential is None:
        return
    method, path, body, answer = exchange.method, exchange.path, exchange.request, exchange.answer
    if method == "POST" and path in CREATES and isinstance(answer, dict):
        field_name, kind = CREATES[path]
        if answer.get("object") == "thread":  # a streamed thread-and-run opens with its thread
            field_name = "id"
        remote_id = answer.get(field_name)
        if isinstance(remote_id, str) and remote_id:
            _record_created(token, remote_id, kind, answer if field_name == "id" else {}, exchange.end_user)
            if path == "threads/runs":
                _record_activity(token, remote_id)
        return
    if method == "POST":
        match = ACTIVITY.fullmatch(path)
        remote_id = match.group("id") if match else None
        if path == "responses" and isinstance(body, dict):
            conversation = body.get("conversation")
            remote_id = conversation.get("id") if isinstance(conversation, dict) else conversation
        if isinstance(remote_id, str) and remote_id:
            _record_activity(token, remote_id)
        return
    if method == "DELETE":
        match = DELETES.fullmatch(path)
        if match:
            _record_deleted(token, match.group("id"))


def first_event(opening: bytes) -> dict | None:
    """The JSON object of the first complete `data:` line of a server-sent event stream, once it has
    arrived (None until then, or if it is not an object)."""
    for line in opening.split(b"\n")[:-1]:  # the last piece may be a line still arriving
        if line.startswith(b"data:"):
            try:
                event = json.loads(line[5:])
            except (ValueError, RecursionError):
                return None
            return event if isinstance(event, dict) else None
    return None


def _created_at(answer: dict):
    value = answer.get("created_at")
    if isinstance(value, int | float) and not isinstance(value, bool) and 0 < value < 2**33:
        return datetime.fromtimestamp(value, tz=UTC)
    return None


def _record_created(token: ApiToken, remote_id: str, kind: str, answer: dict, end_user: str) -> None:
    try:
        if ids.kind_of(remote_id) != kind:
            return
    except ids.InvalidId:
        logger.warning("The capture proxy saw a created object with a malformed ID; not recorded")
        return
    created = _created_at(answer) or timezone.now()
    metadata = answer.get("metadata")
    try:
        metadata = validate_metadata(metadata) if metadata else {}
    except InvalidMetadata:
        metadata = {}
    # One INSERT … ON CONFLICT DO NOTHING: a retry of a recording that did land adds nothing.
    Thread.objects.bulk_create(
        [
            Thread(
                remote_id=remote_id,
                kind=kind,
                credential=token.credential,
                owner=token.owner,
                end_user=end_user,
                metadata=metadata,
                remote_created_at=created,
                last_activity_at=created,
                activity_source=Thread.ActivitySource.CREATED,
                last_check=Thread.Check.OK,
                last_synced_at=timezone.now(),
                source=Thread.Source.CAPTURE,
                api_token=token,
            )
        ],
        ignore_conflicts=True,
    )


def _record_activity(token: ApiToken, remote_id: str) -> None:
    now = timezone.now()
    permissions.token_threads(token).filter(remote_id=remote_id, status=Thread.Status.ACTIVE).update(
        last_activity_at=now, activity_source=Thread.ActivitySource.CAPTURED
    )


def _record_deleted(token: ApiToken, remote_id: str) -> None:
    thread = permissions.token_threads(token).filter(remote_id=remote_id).first()
    if thread is None or thread.status == Thread.Status.DELETED:
        return
    deletion.record_thread_statuses(
        [(thread, deletion.Attempt(DeletionItem.State.DELETED))],
        by=token.owner,
        reason=f"Deleted through the capture proxy (token {token.name})",
    )


# --- Fail-open recording --------------------------------------------------------------------------------

RETRY_DELAYS = (1.0, 5.0, 30.0, 120.0, 600.0)
_pending: deque = deque()  # (due monotonic time, attempt number, Exchange)
_pending_lock = threading.Condition()
_retrier: threading.Thread | None = None


def record_safely(exchange: Exchange, token: ApiToken | None = None) -> None:
    """Record an exchange, never raising: a failure is logged and queued for `retry_pending`."""
    try:
        record_exchange(exchange, token)
    except Exception as error:
        try:
            _schedule(exchange, 0, error)
        except Exception:
            logger.exception("Capture: %s was not recorded", _described(exchange))


_outstanding = 0  # recordings promised to answers not yet closed
_outstanding_changed = threading.Condition()


def record_after_answer(exchange: Exchange, token: ApiToken | None = None):
    """A callable that records `exchange` (fail-open), for a response to call once it has been sent. It
    counts as outstanding from now, before the answer can reach anyone: `wait_recorded` waits for it."""
    global _outstanding
    with _outstanding_changed:
        _outstanding += 1
    done = False

    def record() -> None:
        global _outstanding
        nonlocal done
        if done:
            return
        done = True
        try:
            record_safely(exchange, token)
        finally:
            with _outstanding_changed:
                _outstanding -= 1
                _outstanding_changed.notify_all()

    return record


def wait_recorded(timeout: float = 10.0) -> bool:
    """Wait until every answer sent has been recorded (tests, or a clean shutdown); False on timeout."""
    with _outstanding_changed:
        return _outstanding_changed.wait_for(lambda: _outstanding == 0, timeout)


def _described(exchange: Exchange) -> str:
    """`POST conversations (conv_…)`: the request, and the ID it created when the answer names one."""
    answer = exchange.answer if isinstance(exchange.answer, dict) else {}
    created = answer.get("thread_id") or answer.get("id") if exchange.path in CREATES else None
    shown = f" ({created[:100]})" if isinstance(created, str) else ""
    return f"{exchange.method} {exchange.path}{shown}"


def _schedule(exchange: Exchange, attempt: int, error: Exception) -> None:
    global _retrier
    if attempt >= len(RETRY_DELAYS):
        logger.error(
            "Capture: %s was not recorded after %d tries (%s); register it through the API",
            _described(exchange),
            attempt + 1,
            type(error).__name__,
        )
        return
    logger.warning(
        "Capture: recording %s failed (%s); retry %d in %.0f s",
        _described(exchange),
        type(error).__name__,
        attempt + 1,
        RETRY_DELAYS[attempt],
    )
    with _pending_lock:
        _pending.append((time.monotonic() + RETRY_DELAYS[attempt], attempt + 1, exchange))
        if _retrier is None or not _retrier.is_alive():
            _retrier = threading.Thread(target=_retry_forever, name="threadsite-capture-retry", daemon=True)
            _retrier.start()
        _pending_lock.notify()


def retry_pending(*, now: float | None = None) -> int:
    """Try again every queued recording that is due; returns how many were recorded."""
    from django.db import connection

    now = time.monotonic() if now is None else now
    with _pending_lock:
        due = [entry for entry in _pending if entry[0] <= now]
        for entry in due:
            _pending.remove(entry)
    recorded = 0
    for _, attempt, exchange in due:
        try:
            record_exchange(exchange)
            recorded += 1
        except Exception as error:
            connection.close()  # a broken connection must not fail the next try too
            _schedule(exchange, attempt, error)
    return recorded


def pending_count() -> int:
    with _pending_lock:
        return len(_pending)


def _retry_forever() -> None:
    while True:
        with _pending_lock:
            while not _pending:
                _pending_lock.wait()
            wait = min(entry[0] for entry in _pending) - time.monotonic()
            if wait > 0:
                _pending_lock.wait(wait)
                continue
        retry_pending()
