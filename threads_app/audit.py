"""The audit trail: `record()` writes one event for each thing someone (or the system) did, and the queries
of the audit log read them back. Nothing here, nor anywhere else in the project, changes or deletes an event;
`purge()` removes those past AUDIT_RETENTION_DAYS, when that is set (kept forever by default).

`record()` is called once per action, from the plain function where the action happens (`deletion`,
`importing`, `sync`, `retention`, `sweeps`, `locating`, `credentials`, `editing`), and from views only for
what exists only in views (reading messages, downloads). The address a web request came from reaches those
functions through `AddressMiddleware`, so that they need no request. Details never hold a key, a token or
what a message said.
"""

import contextvars
import ipaddress
from datetime import timedelta

from django.conf import settings
from django.contrib.auth import get_user_model, user_logged_in, user_login_failed
from django.db import connection, transaction
from django.db import models as db_models
from django.db.models import Q
from django.dispatch import receiver
from django.utils import timezone

from .listing import SortKey, day_start
from .models import AuditEvent, DeletionItem, Thread

Action = AuditEvent.Action
ObjectType = AuditEvent.ObjectType

# The actor's name on events nobody signed in asked for (beat's sweeps, a command run without --actor).
# Parentheses cannot occur in a username, so it is never taken for someone's.
SYSTEM = "(system)"

_address = contextvars.ContextVar("threadsite_audit_address", default=None)


def client_address(request) -> str | None:
    """The address a request came from: REMOTE_ADDR, or, behind THREADSITE_TRUSTED_PROXIES proxies that each
    append to X-Forwarded-For, the entry the nearest of them appended for its client. Entries further left
    were written by the client and prove nothing. None when no valid address is found."""
    address = request.META.get("REMOTE_ADDR", "")
    proxies = settings.TRUSTED_PROXIES
    if proxies:
        forwarded = [part.strip() for part in request.META.get("HTTP_X_FORWARDED_FOR", "").split(",")]
        forwarded = [part for part in forwarded if part]
        if len(forwarded) >= proxies:
            address = forwarded[-proxies]
    try:
        return str(ipaddress.ip_address(address))
    except ValueError:
        return None


class AddressMiddleware:
    """Makes the request's address known to `record()` calls made while the request is served."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        token = _address.set(client_address(request))
        try:
            return self.get_response(request)
        finally:
            _address.reset(token)


def _object_fields(obj) -> dict:
    if obj is None:
        return {}
    if isinstance(obj, Thread):
        return {"object_type": ObjectType.THREAD, "object_pk": obj.pk, "remote_id": obj.remote_id}
    from .models import Credential, DeletionJob, RetentionPolicy

    types = {
        DeletionJob: ObjectType.JOB,
        Credential: ObjectType.CREDENTIAL,
        RetentionPolicy: ObjectType.POLICY,
        get_user_model(): ObjectType.USER,
    }
    for model, object_type in types.items():
        if isinstance(obj, model):
            return {"object_type": object_type, "object_pk": obj.pk}
    raise TypeError(f"No audit object type for {type(obj).__name__}")


def record(action: str, *, actor, request=None, obj=None, remote_id: str = "", actor_name=None, **details):
    """Write one audit event and return it. `actor` is a user or None (the system); `obj` a Thread,
    DeletionJob, Credential, RetentionPolicy or user, whose type, pk and remote ID are copied; the address
    is the request's (or that of the request being served). `details` must be JSON: counts, names, the
    fields that changed — never a key, a token or a message's content."""
    if actor is not None and not actor.is_authenticated:
        actor = None
    fields = _object_fields(obj)
    if remote_id:
        fields["remote_id"] = remote_id
    if actor_name is None:
        actor_name = actor.get_username() if actor is not None else SYSTEM
    return AuditEvent.objects.create(
        actor=actor,
        actor_name=actor_name[:150],
        action=action,
        address=client_address(request) if request is not None else _address.get(),
        details=details,
        **fields,
    )


# --- Signing in -----------------------------------------------------------------------------------------


@receiver(user_logged_in, dispatch_uid="threadsite_audit_sign_in")
def _signed_in(sender, request, user, **kwargs):
    record(Action.SIGN_IN, actor=user, request=request, obj=user)


@receiver(user_login_failed, dispatch_uid="threadsite_audit_sign_in_failed")
def _sign_in_failed(sender, credentials, request=None, **kwargs):
    """The name that was tried (the account's, when there is one), never the password."""
    username = str(credentials.get("username") or "")[:150]
    user = get_user_model().objects.filter(username=username).first() if username else None
    record(
        Action.SIGN_IN_FAILED,
        actor=None,
        actor_name=username,
        request=request,
        obj=user,
        known_user=user is not None,
    )


# --- Reading the log ------------------------------------------------------------------------------------

# The log reads newest first, by keyset over auditevent_at_idx (listing.keyset_page).
SORTS = {"time": SortKey("at", "Time", is_datetime=True)}
SORT = "-time"
PAGE_SIZE = 50


# The most jobs that the log and the thread page name as having held one thread.
JOBS_SHOWN = 50


def items_holding(remote_id: str):
    """The deletion items of the thread `remote_id`, newest job first (through the unique remote ID and the
    items' thread index)."""
    return DeletionItem.objects.filter(thread__remote_id=remote_id).order_by("-job_id")


def jobs_holding(remote_id: str) -> list:
    """The deletion items of the thread `remote_id` with their jobs: how an auditor finds which job deleted
    a thread."""
    return list(items_holding(remote_id).select_related("job")[:JOBS_SHOWN])


def events_for(events, remote_id: str, job_ids=None):
    """The events about the thread `remote_id`: its own, and those of the deletion jobs that held it."""
    if job_ids is None:
        job_ids = list(items_holding(remote_id).values_list("job_id", flat=True)[:JOBS_SHOWN])
    condition = Q(remote_id=remote_id)
    if job_ids:
        condition |= Q(object_type=ObjectType.JOB, object_pk__in=job_ids)
    return events.filter(condition)


def apply_filters(events, data: dict):
    """Narrow `events` by the cleaned data of AuditFilterForm."""
    if data.get("actor"):
        events = events.filter(actor_name=data["actor"])
    if data.get("action"):
        events = events.filter(action=data["action"])
    if data.get("object"):
        events = events_for(events, data["object"], data.get("job_ids"))
    if data.get("since"):
        events = events.filter(at__gte=day_start(data["since"]))
    if data.get("until"):
        events = events.filter(at__lt=day_start(data["until"] + timedelta(days=1)))
    return events


# --- Retention ------------------------------------------------------------------------------------------

PURGE_BATCH = 10_000


def purge(*, now=None, by=None) -> int:
    """Remove the events older than AUDIT_RETENTION_DAYS (none when it is 0: kept forever), in batches so
    that no statement holds a million rows; records the purge itself. Returns how many were removed.

    The one deletion of audit events in the project: it goes around AuditQuerySet's refusal on purpose."""
    days = settings.AUDIT_RETENTION_DAYS
    if not days:
        return 0
    cutoff = (now or timezone.now()) - timedelta(days=days)
    removed = 0
    while True:
        batch = list(
            AuditEvent.objects.filter(at__lt=cutoff)
            .order_by("at", "id")
            .values_list("pk", flat=True)[:PURGE_BATCH]
        )
        if not batch:
            break
        with transaction.atomic():
            if connection.vendor == "postgresql":
                # The table's trigger lets a DELETE through only with this set (migration 0009).
                with connection.cursor() as cursor:
                    cursor.execute("SET LOCAL threadsite.audit_purge = 'on'")
            # A plain QuerySet, not AuditEvent.objects: the purge is the deletion AuditQuerySet refuses.
            deleted, _ = db_models.QuerySet(AuditEvent).filter(pk__in=batch).delete()
        removed += deleted
    if removed:
        record(
            Action.AUDIT_PURGED,
            actor=by,
            removed=removed,
            before=cutoff.isoformat(),
            retention_days=days,
        )
    return removed
