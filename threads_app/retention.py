"""When a tracked thread goes, and why: the one rule, asked of the kind adapter (the API's own expiry) and of
the credential's retention policy (Threadsite's deletion, or a flag).

Every date or count of "expiring" or "removed within N days" comes from here: `removal()` for one thread
(the list and the thread page), `removed_by()` for a queryset (the list's filter, the overview, the
sweeps). Both say the same thing, and a test holds them to it.
"""

from dataclasses import dataclass
from datetime import datetime, timedelta

from django.db.models import Q
from django.db.models.fields.json import KeyTextTransform
from django.db.models.lookups import Exact
from django.utils import timezone

from . import audit, kinds
from .models import Credential, DeletionJob, RetentionPolicy, Thread

Mode = RetentionPolicy.Mode


@dataclass(frozen=True)
class Removal:
    at: datetime | None  # when; None when the thread's activity is unknown
    how: str  # "expires" (the API removes it), "sunset" (gone with its API), "deleted" (a policy deletes it),
    # "flagged" (a policy only flags it)
    exempt: str = ""  # why a policy spares it: "pinned", "owner alice", "metadata legal_hold=true"
    window_days: int = 0

    @property
    def is_past(self) -> bool:
        return self.at is not None and self.at <= timezone.now()


def policy_of(credential: Credential) -> RetentionPolicy | None:
    try:
        return credential.retention
    except RetentionPolicy.DoesNotExist:
        return None


def applies(policy: RetentionPolicy | None, kind: str) -> bool:
    """Whether `policy` governs threads of `kind`: the kinds the API never expires, and Assistants threads
    when the policy says so."""
    if policy is None or policy.mode == Mode.OFF:
        return False
    return kinds.adapter_for(kind).expires_after is None or policy.include_assistants


def exemption(policy: RetentionPolicy, thread: Thread, exempt_owner_ids=None) -> str:
    """Why `policy` spares `thread`, or ""."""
    if thread.pinned:
        return "pinned"
    if exempt_owner_ids is None:
        exempt_owner_ids = {user.pk for user in policy.exempt_owners.all()}
    if thread.owner_id and thread.owner_id in exempt_owner_ids:
        return f"owner {thread.owner.get_username()}"
    for key, value in exempt_pairs(policy):
        if str(thread.metadata.get(key, "")) == value and key in thread.metadata:
            return f"metadata {key}={value}"
    return ""


def exempt_pairs(policy: RetentionPolicy) -> list[tuple[str, str]]:
    pairs = []
    for pair in policy.exempt_metadata or []:
        if isinstance(pair, list | tuple) and len(pair) == 2:
            pairs.append((str(pair[0]), str(pair[1])))
    return pairs


def removal(thread: Thread, policy: RetentionPolicy | None = None) -> Removal | None:
    """When `thread` goes and how; None if nothing removes it (an active thread only)."""
    if thread.status != Thread.Status.ACTIVE:
        return None
    adapter = kinds.adapter_for(thread)
    expires = adapter.expiry(thread)
    candidates = (
        [Removal(expires, "expires", window_days=getattr(adapter.expires_after, "days", 0))]
        if expires
        else []
    )
    policy = policy if policy is not None else policy_of(thread.credential)
    if applies(policy, thread.kind):
        last = thread.last_activity_at or thread.remote_created_at
        at = last + timedelta(days=policy.window_days) if last else None
        how = "deleted" if policy.mode == Mode.DELETE else "flagged"
        reason = exemption(policy, thread)
        if reason:
            if not candidates:
                return Removal(at, how, exempt=reason, window_days=policy.window_days)
        else:
            candidates.append(Removal(at, how, window_days=policy.window_days))
    if not candidates:
        return None
    known = [c for c in candidates if c.at is not None]
    return min(known, key=lambda c: c.at) if known else candidates[0]


def _idle_since(moment) -> Q:
    """Threads last active (or created, when no activity is known) at or before `moment`."""
    return Q(last_activity_at__lte=moment) | Q(last_activity_at__isnull=True, remote_created_at__lte=moment)


def exempt_condition(policy: RetentionPolicy) -> Q:
    condition = Q(pinned=True)
    owner_ids = list(policy.exempt_owners.values_list("pk", flat=True))
    if owner_ids:
        condition |= Q(owner_id__in=owner_ids)
    for key, value in exempt_pairs(policy):
        # has_key first: a missing key must make the pair false, not NULL (NOT NULL would drop the row).
        condition |= Q(metadata__has_key=key) & Q(Exact(KeyTextTransform(key, "metadata"), value))
    return condition


def removed_by(moment, *, modes=(Mode.DELETE, Mode.FLAG), expiry: bool = True) -> Q:
    """The condition "active, and gone by `moment`": by the API's expiry (unless `expiry=False`) or by a
    policy in one of `modes`, exemptions excluded. Built per kind and per policy, so that each part is an
    index range on last activity (thread_sweep_idx)."""
    parts = Q(pk__in=[])
    if expiry:
        openai_credentials = [
            c.pk for c in Credential.objects.only("base_url") if kinds.is_openai(c.base_url)
        ]
        for kind, adapter in kinds.ADAPTERS.items():
            if adapter.expires_after is not None:
                parts |= Q(kind=kind) & _idle_since(moment - adapter.expires_after)
            if adapter.sunset is not None and moment >= adapter.sunset and openai_credentials:
                parts |= Q(kind=kind, credential_id__in=openai_credentials)
    policies = RetentionPolicy.objects.filter(mode__in=modes).prefetch_related("exempt_owners")
    for policy in policies:
        governed = [kind for kind in kinds.ADAPTERS if applies(policy, kind)]
        window = _idle_since(moment - timedelta(days=policy.window_days))
        parts |= Q(credential_id=policy.credential_id, kind__in=governed) & window & ~exempt_condition(policy)
    return Q(status=Thread.Status.ACTIVE) & parts


def set_policy(
    credential: Credential,
    *,
    mode: str,
    window_days: int,
    include_assistants: bool = False,
    exempt_owners=(),
    exempt_metadata=(),
    by=None,
) -> RetentionPolicy:
    """Save `credential`'s policy. Switching it to delete, or shortening the window of a policy that
    deletes, asks for an admin's confirmation of the next sweep's preview again."""
    policy = RetentionPolicy.objects.filter(credential=credential).first() or RetentionPolicy(
        credential=credential
    )
    before = _policy_facts(policy) if policy.pk else None
    stricter = mode == Mode.DELETE and (policy.mode != Mode.DELETE or window_days < policy.window_days)
    policy.mode, policy.window_days, policy.include_assistants = mode, window_days, include_assistants
    policy.exempt_metadata = [[str(key), str(value)] for key, value in exempt_metadata]
    if stricter or policy.pk is None:
        policy.confirmed_at, policy.confirmed_by = None, None
    policy.save()
    policy.exempt_owners.set(exempt_owners)
    after = _policy_facts(policy)
    if after != before:
        audit.record(
            audit.Action.POLICY_CHANGED,
            actor=by,
            obj=policy,
            credential=credential.name,
            before=before,
            after=after,
            needs_confirmation=policy.mode == Mode.DELETE and policy.confirmed_at is None,
        )
    return policy


def _policy_facts(policy: RetentionPolicy) -> dict:
    """What a policy says, as the audit log records it before and after a change."""
    return {
        "mode": policy.mode,
        "window_days": policy.window_days,
        "include_assistants": policy.include_assistants,
        "exempt_owners": sorted(user.get_username() for user in policy.exempt_owners.all()),
        "exempt_metadata": [list(pair) for pair in exempt_pairs(policy)],
    }


def set_pinned(thread: Thread, pinned: bool, *, by=None) -> None:
    """Pin (keep) a thread, which exempts it from every retention policy, or unpin it."""
    changed = Thread.objects.filter(pk=thread.pk).exclude(pinned=pinned).update(pinned=pinned)
    thread.pinned = pinned
    if changed:
        audit.record(audit.Action.THREAD_PINNED, actor=by, obj=thread, pinned=pinned)


@dataclass
class PolicyPreview:
    past_window: int  # threads a sweep would delete (or flag) now
    within_week: int  # and within the next seven days
    exempt: int  # past the window but spared
    awaiting_job: object  # the sweep's first preview, if it awaits confirmation


def preview(policy: RetentionPolicy) -> PolicyPreview:
    """What the policy means today, for its credential's page."""
    now = timezone.now()
    threads = Thread.objects.filter(credential_id=policy.credential_id)
    governed = [kind for kind in kinds.ADAPTERS if applies(policy, kind)] if policy.mode != Mode.OFF else []
    window = _idle_since(now - timedelta(days=policy.window_days))
    past_all = threads.filter(window, status=Thread.Status.ACTIVE, kind__in=governed)
    past = past_all.exclude(exempt_condition(policy)).count()
    soon = (
        threads.filter(
            _idle_since(now + timedelta(days=7) - timedelta(days=policy.window_days)),
            status=Thread.Status.ACTIVE,
            kind__in=governed,
        )
        .exclude(exempt_condition(policy))
        .count()
    )
    awaiting = DeletionJob.objects.filter(policy=policy, state=DeletionJob.State.AWAITING).first()
    return PolicyPreview(past, soon - past, past_all.count() - past, awaiting)
