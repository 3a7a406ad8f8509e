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
from django.db.models.lookups import Exact, GreaterThan, LessThanOrEqual
from django.utils import timezone

from . import audit, kinds
from .models import Credential, DeletionJob, RetentionPolicy, Thread, idle_at

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


def idle_since(moment, after=None) -> Q:
    """Threads last active (or created, when no activity is known) at or before `moment`, and after
    `after` if given: one range of the idle index (thread_idle_idx) for each kind."""
    condition = Q(LessThanOrEqual(idle_at(), moment))
    return condition if after is None else condition & Q(GreaterThan(idle_at(), after))


def exempt_condition(policy: RetentionPolicy) -> Q:
    condition = Q(pinned=True)
    owner_ids = list(policy.exempt_owners.values_list("pk", flat=True))
    if owner_ids:
        condition |= Q(owner_id__in=owner_ids)
    metadata = metadata_exemption(policy)
    if metadata is not None:
        condition |= metadata
    return condition


def metadata_exemption(policy: RetentionPolicy) -> Q | None:
    """The threads `policy` spares by one of its metadata pairs; None when it names none."""
    condition = None
    for key, value in exempt_pairs(policy):
        # has_key first: a missing key must make the pair false, not NULL (NOT NULL would drop the row).
        pair = Q(metadata__has_key=key) & Q(Exact(KeyTextTransform(key, "metadata"), value))
        condition = pair if condition is None else condition | pair
    return condition


def removed_by(moment, *, modes=(Mode.DELETE, Mode.FLAG), expiry: bool = True, after=None) -> Q:
    """The condition "active, and gone by `moment`": by the API's expiry (unless `expiry=False`) or by a
    policy in one of `modes`, exemptions excluded. Built per kind and per policy, so that each part is an
    index range on when it went idle (thread_idle_idx). With `after`: gone by `moment` but not by `after`,
    each part then a range bounded on both sides."""
    if after is not None:
        since = removed_by(moment, modes=modes, expiry=expiry, after=None)
        return (
            removed_by_ranges(moment, after, modes, expiry)
            & since
            & ~removed_by(after, modes=modes, expiry=expiry)
        )
    parts = Q(pk__in=[])
    if expiry:
        openai_credentials = [
            c.pk for c in Credential.objects.only("base_url") if kinds.is_openai(c.base_url)
        ]
        for kind, adapter in kinds.ADAPTERS.items():
            if adapter.expires_after is not None:
                parts |= Q(kind=kind) & idle_since(moment - adapter.expires_after)
            if adapter.sunset is not None and moment >= adapter.sunset and openai_credentials:
                parts |= Q(kind=kind, credential_id__in=openai_credentials)
    policies = RetentionPolicy.objects.filter(mode__in=modes).prefetch_related("exempt_owners")
    for policy in policies:
        governed = [kind for kind in kinds.ADAPTERS if applies(policy, kind)]
        window = idle_since(moment - timedelta(days=policy.window_days))
        parts |= Q(credential_id=policy.credential_id, kind__in=governed) & window & ~exempt_condition(policy)
    return Q(status=Thread.Status.ACTIVE) & parts


def end_of_day(day) -> datetime:
    """The last moment of `day` in the current time zone."""
    start = timezone.make_aware(datetime.combine(day + timedelta(days=1), datetime.min.time()))
    return start - timedelta(microseconds=1)


# What the overview's "going soon" figures count and the list's "expiring" filter shows, by whole days, so
# that a figure and the list it links to always agree: a thread "goes by day D" when it is gone by the end
# of D (`removed_by`). (label, days from today to the start of the span, to its end; None: no start).
EXPIRING = {
    "past": ("Past their window", None, 0),
    "7": ("Within 7 days", 0, 7),
    "30": ("Within 30 days", 0, 30),
}


def expiring(choice: str, today, **kwargs) -> Q:
    """Active threads that go after `today + start` and by the end of `today + end` days (EXPIRING)."""
    _, start, end = EXPIRING[choice]
    after = end_of_day(today + timedelta(days=start)) if start is not None else None
    return removed_by(end_of_day(today + timedelta(days=end)), after=after, **kwargs)


def removed_by_ranges(moment, after, modes, expiry) -> Q:
    """The parts of `removed_by(moment)` narrowed to what each part reaches after `after`: a superset of the
    threads gone between the two moments, written as bounded ranges so that an index drives the query."""
    parts = Q(pk__in=[])
    if expiry:
        for kind, adapter in kinds.ADAPTERS.items():
            if adapter.expires_after is not None:
                window = adapter.expires_after
                parts |= Q(kind=kind) & idle_since(moment - window, after - window)
            if adapter.sunset is not None and after < adapter.sunset <= moment:
                parts |= Q(kind=kind)
    for policy in RetentionPolicy.objects.filter(mode__in=modes):
        governed = [kind for kind in kinds.ADAPTERS if applies(policy, kind)]
        window = timedelta(days=policy.window_days)
        parts |= Q(credential_id=policy.credential_id, kind__in=governed) & idle_since(
            moment - window, after - window
        )
    return parts


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
    window = idle_since(now - timedelta(days=policy.window_days))
    past_all = threads.filter(window, status=Thread.Status.ACTIVE, kind__in=governed)
    past = past_all.exclude(exempt_condition(policy)).count()
    soon = (
        threads.filter(
            idle_since(now + timedelta(days=7) - timedelta(days=policy.window_days)),
            status=Thread.Status.ACTIVE,
            kind__in=governed,
        )
        .exclude(exempt_condition(policy))
        .count()
    )
    awaiting = DeletionJob.objects.filter(policy=policy, state=DeletionJob.State.AWAITING).first()
    return PolicyPreview(past, soon - past, past_all.count() - past, awaiting)
