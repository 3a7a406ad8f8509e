from django.conf import settings
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models, transaction
from django.db.models import F, Q, Value
from django.db.models.functions import Coalesce, Lower, NullIf
from django.utils import timezone

from . import encryption


class Credential(models.Model):
    """An OpenAI (or Assistants-compatible) API key, scoped to one organization and project.

    The key is stored encrypted (`encryption.py`); only its last four characters are kept in clear, so that
    list pages can show `sk-…abcd` without decrypting anything. An optional second, read-only (restricted)
    key serves browsing and checks; deletions and metadata changes always use the main (write) key.
    """

    name = models.CharField(max_length=100, unique=True)
    base_url = models.URLField(max_length=300, default=settings.OPENAI_DEFAULT_BASE_URL)
    api_key_encrypted = models.TextField(editable=False)
    api_key_last4 = models.CharField(max_length=4, editable=False)
    organization_id = models.CharField(max_length=100, blank=True)
    project_id = models.CharField(max_length=100, blank=True)
    # Azure OpenAI: set to send `api-key` and `?api-version=` instead of a bearer token.
    azure_api_version = models.CharField(max_length=40, blank=True)
    read_key_encrypted = models.TextField(editable=False, blank=True)
    read_key_last4 = models.CharField(max_length=4, editable=False, blank=True)
    # Empty: every member may see the credential (and their threads under it); else only these members.
    limited_to = models.ManyToManyField(
        settings.AUTH_USER_MODEL,
        blank=True,
        related_name="+",
        help_text="Members who may see this credential and their threads under it. None: every member.",
    )
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(default=timezone.now)
    updated_at = models.DateTimeField(auto_now=True)
    last_verified_at = models.DateTimeField(null=True, blank=True)
    last_verification_ok = models.BooleanField(null=True)
    last_verification_message = models.CharField(max_length=500, blank=True)
    # Background work (deletion jobs, checks): the project's request limit, if known (else learned from
    # the API's x-ratelimit-* headers), and how many requests one worker keeps in flight for this key.
    requests_per_minute = models.PositiveIntegerField(
        null=True,
        blank=True,
        help_text="The project's request limit per minute. Blank: learned from the API's answers.",
    )
    concurrency = models.PositiveSmallIntegerField(
        default=16,
        validators=[MinValueValidator(1), MaxValueValidator(256)],
        help_text=(
            "Requests a deletion job or check keeps in flight with this key at once, shared by the workers "
            "it runs on (1 to 256)."
        ),
    )

    class Meta:
        ordering = ["name"]

    def __str__(self):
        return f"{self.name} ({self.masked_key})"

    @property
    def api_key(self) -> str:
        return encryption.decrypt(self.api_key_encrypted)

    @api_key.setter
    def api_key(self, value: str) -> None:
        self.api_key_encrypted = encryption.encrypt(value)
        self.api_key_last4 = value[-4:]

    @property
    def masked_key(self) -> str:
        return encryption.mask(("sk-" if self.api_key_last4 else "") + self.api_key_last4)

    @property
    def read_key(self) -> str:
        return encryption.decrypt(self.read_key_encrypted) if self.read_key_encrypted else ""

    @read_key.setter
    def read_key(self, value: str) -> None:
        self.read_key_encrypted = encryption.encrypt(value) if value else ""
        self.read_key_last4 = value[-4:] if value else ""

    @property
    def masked_read_key(self) -> str:
        return encryption.mask("sk-" + self.read_key_last4) if self.read_key_last4 else ""

    def key_for(self, *, write: bool) -> str:
        """The key a request uses: the read-only key, when there is one, for anything that only reads."""
        if not write and self.read_key_encrypted:
            return self.read_key
        return self.api_key

    @property
    def scope_label(self) -> str:
        return self.project_id or self.organization_id or "default project"


def idle_at():
    """When a thread went idle: its last activity, or its creation when no activity is known. The one
    expression of the index (thread_idle_idx) and of the queries (`retention.idle_since`), so that
    PostgreSQL finds the one for the other."""
    return Coalesce("last_activity_at", "remote_created_at", output_field=models.DateTimeField())


class Thread(models.Model):
    """One tracked remote object of any of the three kinds; what differs per kind lives in `kinds.py`."""

    class Kind(models.TextChoices):
        ASSISTANTS = "assistants_thread", "Assistants thread"
        CONVERSATION = "conversation", "Conversation"
        CHATKIT = "chatkit_thread", "ChatKit thread"

    class Status(models.TextChoices):
        ACTIVE = "active", "Active"
        DELETED = "deleted", "Deleted"
        EXPIRED = "expired", "Expired"
        MISSING = "missing", "Missing"

    class Source(models.TextChoices):
        MANUAL = "manual", "Added by hand"
        IMPORT = "import", "Imported"
        DISCOVERY = "discovery", "Discovered"
        CAPTURE = "capture", "Captured by the proxy"
        API = "api", "Registered through the API"

    class ActivitySource(models.TextChoices):
        UNKNOWN = "", "Unknown"
        CREATED = "created", "Creation time"
        MESSAGE = "message", "Newest message"
        UPDATED = "updated", "Remote update time"
        SEEN = "seen", "Seen changed by Threadsite"
        CAPTURED = "captured", "Used through the capture proxy"

    class Check(models.TextChoices):
        UNCHECKED = "", "Not checked yet"
        OK = "ok", "Found"
        NOT_FOUND = "not_found", "Not found for this credential"
        BAD_KEY = "bad_key", "The credential's key was refused"
        FORBIDDEN = "forbidden", "The key lacks permission"
        ERROR = "error", "The API failed"

    remote_id = models.CharField(max_length=100, unique=True)
    kind = models.CharField(max_length=20, choices=Kind.choices)
    credential = models.ForeignKey(Credential, on_delete=models.PROTECT, related_name="threads")
    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="threads",
    )
    end_user = models.CharField(max_length=200, blank=True)
    title = models.CharField(max_length=300, blank=True)
    metadata = models.JSONField(default=dict, blank=True)
    message_count = models.PositiveIntegerField(null=True, blank=True)

    remote_created_at = models.DateTimeField(null=True, blank=True)
    last_activity_at = models.DateTimeField(null=True, blank=True)
    activity_source = models.CharField(max_length=10, choices=ActivitySource.choices, blank=True)
    last_synced_at = models.DateTimeField(null=True, blank=True)
    last_check = models.CharField(max_length=10, choices=Check.choices, blank=True)
    last_check_message = models.CharField(max_length=500, blank=True)
    # The newest message or item the last sync saw: a conversation's items carry no time, so a change of
    # its newest item is how activity in it is noticed (ActivitySource.SEEN).
    newest_entry_id = models.CharField(max_length=100, blank=True)
    # Exempt from every retention policy ("keep").
    pinned = models.BooleanField(default=False)

    status = models.CharField(max_length=10, choices=Status.choices, default=Status.ACTIVE)
    status_changed_at = models.DateTimeField(null=True, blank=True)
    status_changed_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )

    source = models.CharField(max_length=10, choices=Source.choices, default=Source.MANUAL)
    added_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    added_at = models.DateTimeField(default=timezone.now)
    # The API token that registered or captured it (per-token counts on the token's page).
    api_token = models.ForeignKey(
        "ApiToken", null=True, blank=True, on_delete=models.SET_NULL, related_name="threads"
    )

    class Meta:
        ordering = ["-last_activity_at", "-id"]
        indexes = [
            # The list page's default order, and keyset paging over it.
            models.Index(fields=["-last_activity_at", "-id"], name="thread_activity_idx"),
            models.Index(fields=["-added_at", "-id"], name="thread_added_idx"),
            # The list page's other sort orders (listing.SORTS), read forwards or backwards.
            models.Index(fields=["-remote_created_at", "-id"], name="thread_created_idx"),
            # By title: case-insensitive, untitled threads (NULL here) after the titled ones either way.
            models.Index(NullIf(Lower("title"), Value("")), F("id"), name="thread_title_key_idx"),
            models.Index(fields=["-owner", "-id"], name="thread_owner_sort_idx"),
            models.Index(fields=["status", "id"], name="thread_status_sort_idx"),
            models.Index(fields=["-message_count", "-id"], name="thread_messages_idx"),
            # Team members' "my threads", filtered by status, newest activity first.
            models.Index(fields=["owner", "status", "-last_activity_at"], name="thread_owner_idx"),
            models.Index(fields=["credential", "status", "-last_activity_at"], name="thread_cred_idx"),
            models.Index(fields=["kind", "status", "-last_activity_at"], name="thread_kind_idx"),
            # Expiry, retention, the sweeps and the list's "Going" filter: active threads of a kind idle
            # since a moment, one range per kind (`retention.idle_since`).
            models.Index(F("kind"), idle_at(), condition=Q(status="active"), name="thread_idle_idx"),
            # The list sorted by idle time, stalest first (listing.SORTS["idle"]).
            models.Index(idle_at(), F("id"), name="thread_idle_sort_idx"),
            # The ownership review's threads whose last check the key refused (`ownership.review`).
            models.Index(
                fields=["credential"],
                condition=Q(last_check__in=["bad_key", "forbidden"]),
                name="thread_refused_idx",
            ),
            # Background checks of freshly imported threads.
            models.Index(fields=["id"], condition=Q(last_check=""), name="thread_unchecked_idx"),
            # The overview's threads entered through API tokens per day (overview.captured_per_day).
            models.Index(
                fields=["added_at"], condition=Q(source__in=["capture", "api"]), name="thread_token_added_idx"
            ),
        ]
        # Granted to roles by `permissions.ROLE_PERMISSIONS`; a member needs none of them for the threads
        # they own.
        permissions = [
            ("view_all_threads", "Can see every thread, whoever owns it"),
            ("change_all_threads", "Can act on every thread: edit, assign owners, delete, pin"),
            ("view_message_content", "Can read the messages and exports of threads owned by others"),
        ]

    def __str__(self):
        return self.remote_id

    def set_status(self, new_status, *, by=None, reason: str = "") -> bool:
        """Move to `new_status` if nobody changed the status since this row was read; record it.

        A conditional UPDATE rather than save(): a sweep and a user's delete may race on one thread.
        """
        if new_status == self.status:
            return False
        changed = set_statuses({self.status: [self]}, new_status, by=by, reason=reason)
        if not changed:
            return False
        self.status, self.status_changed_at, self.status_changed_by = (
            new_status,
            changed[0].changed_at,
            by,
        )
        return True


def set_statuses(threads_by_status: dict, new_status: str, *, by=None, reason: str = "", **history) -> list:
    """Move threads to `new_status`, each only if its status is still the one it is listed under, and
    write one StatusChange for each that moved, in one transaction: the history never misses a change
    and never records one that did not happen. Returns the StatusChange rows written. `history` holds
    more fields of those rows (`moved_from`, `moved_to` when a thread moves to another credential).

    The one way a status changes, for one thread (`Thread.set_status`) or a batch of a deletion job.
    """
    now = timezone.now()
    written = []
    moved = []
    with transaction.atomic():
        for old_status, threads in threads_by_status.items():
            if old_status == new_status or not threads:
                continue
            by_pk = {thread.pk: thread for thread in threads}
            # Lock the rows, then move those still in `old_status`: which ones moved is then known.
            moving = list(
                Thread.objects.select_for_update()
                .filter(pk__in=by_pk, status=old_status)
                .values_list("pk", flat=True)
            )
            moved += moving
            written += [
                StatusChange(
                    thread_id=pk,
                    remote_id=by_pk[pk].remote_id,
                    old_status=old_status,
                    new_status=new_status,
                    changed_at=now,
                    changed_by=by,
                    changed_by_name=by.get_username() if by else "",
                    reason=reason[:500],
                    **history,
                )
                for pk in moving
            ]
        # One UPDATE for every old status: the overview's tallies are kept by a trigger per statement, and
        # a single statement takes its tally rows in one order, so concurrent status changes cannot deadlock.
        if moved:
            Thread.objects.filter(pk__in=moved).update(
                status=new_status, status_changed_at=now, status_changed_by=by
            )
        StatusChange.objects.bulk_create(written)
    return written


class StatusChange(models.Model):
    """The status history of a thread: one row for each transition, kept after the thread row is gone
    (the remote ID and the actor's name are copied onto it for that reason)."""

    thread = models.ForeignKey(
        Thread, null=True, blank=True, on_delete=models.SET_NULL, related_name="status_changes"
    )
    remote_id = models.CharField(max_length=100, db_index=True)
    old_status = models.CharField(max_length=10, choices=Thread.Status.choices, blank=True)
    new_status = models.CharField(max_length=10, choices=Thread.Status.choices)
    changed_at = models.DateTimeField(default=timezone.now)
    changed_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    changed_by_name = models.CharField(max_length=150, blank=True)
    reason = models.CharField(max_length=500, blank=True)
    # A thread found under another credential than the one it was filed under moves there: the names of
    # both credentials, copied (`locating.py`).
    moved_from = models.CharField(max_length=100, blank=True)
    moved_to = models.CharField(max_length=100, blank=True)

    class Meta:
        ordering = ["-changed_at", "-id"]

    def __str__(self):
        return f"{self.remote_id}: {self.old_status or '∅'} → {self.new_status}"


class DeletionJob(models.Model):
    """Deleting a chosen set of threads through the API, in the background; its items are fixed when the
    job is created, so later changes to the registry never widen it.

    States and the transitions allowed (each made by a conditional UPDATE in `deletion.py`):
        awaiting   → queued (an admin confirmed a sweep's first preview) | cancelled (dismissed)
        queued     → running (a worker starts) | cancelled (cancelled before any worker started)
        running    → finished (every item deleted or already gone) | failed (some items failed, or the
                     job could not go on) | cancelling (someone cancelled it)
        cancelling → cancelled (the workers stopped; pending items are left as they were)
        finished, failed, cancelled → queued ("retry failed items", or resuming pending ones)
    """

    class State(models.TextChoices):
        AWAITING = "awaiting", "Awaiting confirmation"
        QUEUED = "queued", "Queued"
        RUNNING = "running", "Running"
        CANCELLING = "cancelling", "Cancelling"
        CANCELLED = "cancelled", "Cancelled"
        FINISHED = "finished", "Finished"
        FAILED = "failed", "Failed"

    class Source(models.TextChoices):
        BROWSER = "browser", "Thread list"
        THREAD = "thread", "Thread page"
        API = "api", "REST API"
        COMMAND = "command", "delete_threads command"
        SWEEP = "sweep", "Retention sweep"

    UNFINISHED = (State.QUEUED, State.RUNNING, State.CANCELLING)

    requested_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    # Copied, so that a job's receipt still names who asked after that account is removed.
    requested_by_name = models.CharField(max_length=150, blank=True)
    source = models.CharField(max_length=10, choices=Source.choices, default=Source.BROWSER)
    # The retention policy whose sweep made the job, if a sweep did.
    policy = models.ForeignKey(
        "RetentionPolicy", null=True, blank=True, on_delete=models.SET_NULL, related_name="jobs"
    )
    summary = models.CharField(max_length=1000, help_text="The selection, as people read it.")
    filters = models.JSONField(default=dict, blank=True)
    delete_items = models.BooleanField(default=True, help_text="Conversations: delete their items first.")
    archive = models.BooleanField(default=False, help_text="Store each transcript before deleting.")
    verify_all = models.BooleanField(default=False, help_text="Confirm every deletion, not a sample.")

    state = models.CharField(max_length=10, choices=State.choices, default=State.QUEUED)
    reason = models.CharField(max_length=500, blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    heartbeat_at = models.DateTimeField(null=True, blank=True)

    # Counts by item state, refreshed by the workers (deletion.refresh_counts).
    total = models.PositiveIntegerField(default=0)
    pending = models.PositiveIntegerField(default=0)
    deleted = models.PositiveIntegerField(default=0)
    already_gone = models.PositiveIntegerField(default=0)
    failed = models.PositiveIntegerField(default=0)
    verified = models.PositiveIntegerField(default=0)
    # How many worker runs share the job at once (THREADSITE_RUNS_PER_JOB when it was made): fixed with the
    # job, so that whoever starts or resumes it and every run agree on each run's share of the concurrency.
    runs_wanted = models.PositiveSmallIntegerField(default=1)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [
            # Resuming unfinished jobs when a worker or the web process starts.
            models.Index(
                fields=["state"],
                condition=Q(state__in=["queued", "running", "cancelling"]),
                name="deletionjob_unfinished_idx",
            ),
        ]

    def __str__(self):
        return f"Deletion job {self.pk}"

    @property
    def done(self) -> int:
        return self.deleted + self.already_gone + self.failed

    @property
    def is_unfinished(self) -> bool:
        return self.state in self.UNFINISHED


class DeletionRun(models.Model):
    """A worker's run of a deletion job, while it works: a job has at most `runs_wanted` at once, each
    with its share of every credential's concurrency. Its heartbeat (about once a second) says it is
    alive; a run whose heartbeat is older than the lease, or whose process is gone from this machine, is
    dead, and its slot is taken by the next run that starts."""

    job = models.ForeignKey(DeletionJob, on_delete=models.CASCADE, related_name="runs")
    # 0 … runs_wanted - 1: which share of each credential's concurrency is this run's.
    slot = models.PositiveSmallIntegerField()
    token = models.CharField(max_length=32, unique=True)
    # Where it runs: a worker started again on the same machine knows at once which runs died with it.
    host = models.CharField(max_length=255)
    pid = models.PositiveIntegerField()
    started_at = models.DateTimeField(default=timezone.now)
    heartbeat_at = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["job", "slot"], name="deletionrun_one_per_slot")]

    def __str__(self):
        return f"Run {self.slot} of deletion job {self.job_id} on {self.host} ({self.pid})"


class DeletionItem(models.Model):
    """One thread of a deletion job. Its remote ID, kind and credential are copied, so that the receipt
    stays whole whatever happens to the thread's row later.

    pending → in_flight (claimed by a worker) → deleted | already_gone | failed, or back to pending (a
    transient failure, retried after `not_before`; a cancelled claim). An item found in flight whose
    worker died is retrieved before anything else is sent: a 404 makes it already gone.
    """

    class State(models.TextChoices):
        PENDING = "pending", "Pending"
        IN_FLIGHT = "in_flight", "In flight"
        DELETED = "deleted", "Deleted"
        ALREADY_GONE = "already_gone", "Already gone"
        FAILED = "failed", "Failed"

    job = models.ForeignKey(DeletionJob, on_delete=models.CASCADE, related_name="items")
    thread = models.ForeignKey(Thread, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    remote_id = models.CharField(max_length=100)
    kind = models.CharField(max_length=20, choices=Thread.Kind.choices)
    credential = models.ForeignKey(
        Credential, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    credential_name = models.CharField(max_length=100)

    state = models.CharField(max_length=12, choices=State.choices, default=State.PENDING)
    attempts = models.PositiveSmallIntegerField(default=0)
    message = models.CharField(max_length=500, blank=True, help_text="The API's last word on it.")
    # The claim: which worker run holds it and until when (renewed while the worker lives).
    claimed_by = models.CharField(max_length=40, blank=True)
    lease_until = models.DateTimeField(null=True, blank=True)
    not_before = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    # True once a retrieve answered 404 after the API said it deleted the thread.
    verified = models.BooleanField(null=True)

    class Meta:
        ordering = ["id"]
        indexes = [
            # Workers claim a job's pending items of one credential in id order, and count by state.
            models.Index(fields=["job", "state", "credential", "id"], name="deletionitem_claim_idx"),
            models.Index(fields=["thread"], name="deletionitem_thread_idx"),
        ]

    def __str__(self):
        return f"{self.remote_id} ({self.state})"


class DeletionArchive(models.Model):
    """A transcript fetched and stored before its thread was deleted (jobs with `archive`)."""

    item = models.OneToOneField(DeletionItem, on_delete=models.CASCADE, related_name="archived")
    content = models.TextField(help_text="The transcript as one line of JSON.")
    created_at = models.DateTimeField(default=timezone.now)

    def __str__(self):
        return f"Transcript of item {self.item_id}"


class RetentionPolicy(models.Model):
    """How long a credential's threads are kept without activity, for the kinds the API never expires
    (conversations, ChatKit threads), and optionally for Assistants threads on compatible servers.

    Modes: off; flag (the overview and the list show the threads past the window); delete (a sweep makes
    a deletion job of them). The first sweep after a switch to delete only previews: its job awaits an
    admin's confirmation (`confirmed_at`), as careful pruning tools start with a dry run.
    """

    class Mode(models.TextChoices):
        OFF = "off", "Off"
        FLAG = "flag", "Flag only"
        DELETE = "delete", "Delete"

    credential = models.OneToOneField(Credential, on_delete=models.CASCADE, related_name="retention")
    mode = models.CharField(max_length=6, choices=Mode.choices, default=Mode.OFF)
    window_days = models.PositiveIntegerField(
        default=60,
        validators=[MinValueValidator(1), MaxValueValidator(36500)],
        help_text="Days without activity.",
    )
    include_assistants = models.BooleanField(
        default=False, help_text="Also Assistants threads (which OpenAI's own API expired after 60 days)."
    )
    exempt_owners = models.ManyToManyField(settings.AUTH_USER_MODEL, blank=True, related_name="+")
    exempt_metadata = models.JSONField(
        default=list, blank=True, help_text='Metadata pairs that exempt a thread: [["legal_hold", "true"]].'
    )
    confirmed_at = models.DateTimeField(null=True, blank=True)
    confirmed_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        verbose_name_plural = "retention policies"

    def __str__(self):
        return f"{self.credential.name}: {self.get_mode_display().lower()} after {self.window_days} days"


class SweepRun(models.Model):
    """One run of a sweep, by beat or by hand. A sweep runs only while it holds its lock (`sweeps.py`):
    two beats, or a beat and a person, never sweep the same rows at once."""

    name = models.CharField(max_length=20)
    started_at = models.DateTimeField(default=timezone.now)
    finished_at = models.DateTimeField(null=True, blank=True)
    dry_run = models.BooleanField(default=False)
    summary = models.CharField(max_length=500, blank=True)
    # Who holds the sweep's lock and until when (renewed while it runs).
    holder = models.CharField(max_length=40, blank=True)

    class Meta:
        ordering = ["-started_at", "-id"]
        indexes = [models.Index(fields=["name", "-started_at"], name="sweeprun_name_idx")]

    def __str__(self):
        return f"{self.name} at {self.started_at:%Y-%m-%d %H:%M}"


class SweepLock(models.Model):
    """One row per sweep; held by a conditional UPDATE that only succeeds when nobody holds it."""

    name = models.CharField(max_length=20, unique=True)
    holder = models.CharField(max_length=40, blank=True)
    held_until = models.DateTimeField(null=True, blank=True)

    def __str__(self):
        return self.name


class ImportRun(models.Model):
    """An import too large to parse while the page waits (THREADSITE_IMPORT_INLINE_BYTES): its text is kept
    here until a background task has parsed and registered it, then emptied; the page polls the progress.

    queued → running → finished | failed (the input was refused whole; `errors` says why)
    """

    class State(models.TextChoices):
        QUEUED = "queued", "Queued"
        RUNNING = "running", "Running"
        FINISHED = "finished", "Finished"
        FAILED = "failed", "Refused"

    # None with `auto`: each ID goes under the credential that finds it (`locating.py`).
    credential = models.ForeignKey(Credential, null=True, on_delete=models.SET_NULL, related_name="+")
    auto = models.BooleanField(default=False)
    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    added_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    text = models.TextField(blank=True)
    size = models.PositiveBigIntegerField(default=0)
    state = models.CharField(max_length=10, choices=State.choices, default=State.QUEUED)
    created_at = models.DateTimeField(default=timezone.now)
    finished_at = models.DateTimeField(null=True, blank=True)
    done = models.PositiveIntegerField(default=0)
    total = models.PositiveIntegerField(default=0)
    report = models.JSONField(default=dict, blank=True)
    errors = models.JSONField(default=list, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self):
        return f"Import {self.pk} ({self.state})"


class UnfoundId(models.Model):
    """An ID that was to be filed under whichever credential finds it, and that none did: kept with what
    was tried, rather than filed as missing under an arbitrary credential. Found later, it becomes a
    Thread and this row goes."""

    remote_id = models.CharField(max_length=100, unique=True)
    kind = models.CharField(max_length=20, choices=Thread.Kind.choices)
    tried = models.JSONField(default=list, help_text="Names of the credentials asked, and what each said.")
    added_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    first_tried_at = models.DateTimeField(default=timezone.now)
    last_tried_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["-last_tried_at", "-id"]

    def __str__(self):
        return self.remote_id


class RehomeRun(models.Model):
    """Looking for a selection of threads the API says are gone under the other credentials, in the
    background (`locating.run_rehome`); the page polls it until it ends and shows what moved.

    queued → running → finished
    """

    class State(models.TextChoices):
        QUEUED = "queued", "Queued"
        RUNNING = "running", "Running"
        FINISHED = "finished", "Finished"

    requested_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    requested_by_name = models.CharField(max_length=150, blank=True)
    summary = models.CharField(max_length=1000)
    thread_ids = models.JSONField(default=list)
    state = models.CharField(max_length=10, choices=State.choices, default=State.QUEUED)
    created_at = models.DateTimeField(default=timezone.now)
    finished_at = models.DateTimeField(null=True, blank=True)
    report = models.JSONField(default=dict, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self):
        return f"Re-homing {len(self.thread_ids)} threads ({self.state})"


class OverviewCount(models.Model):
    """How many threads there are of each owner, credential, kind and status: the overview's totals, kept
    by database triggers in the transaction of every write to the thread table (`tallies.py`).

    `owner_key` is the owner's id, 0 for unassigned threads, and -1 for the rows that count every owner,
    so that the overview for someone who sees every thread reads a few dozen rows, and a member's reads
    their own. `credential_id` is a plain number: a tally never stops a credential from being removed.
    """

    owner_key = models.IntegerField()
    credential_id = models.IntegerField()
    kind = models.CharField(max_length=20, choices=Thread.Kind.choices)
    status = models.CharField(max_length=10, choices=Thread.Status.choices)
    n = models.BigIntegerField(default=0)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["owner_key", "credential_id", "kind", "status"], name="overviewcount_key"
            )
        ]

    def __str__(self):
        return f"{self.owner_key}/{self.credential_id}/{self.kind}/{self.status}: {self.n}"


class OverviewDay(models.Model):
    """How many active threads went idle on each day, by owner, credential, kind and pin: the overview's
    ages and "going soon" figures, which are sums of these rows between day numbers, so that time moving on
    never needs the thread table read again. Kept by the same triggers as OverviewCount.

    `day` counts days since 1970-01-01 in TIME_ZONE, of the last activity (`basis` ACTIVITY), else of the
    creation (`basis` CREATED: the rule `retention` applies when no activity is known); NONE: neither known.
    A row whose `day` is `tallies.EVERY_DAY` sums every day of its owner, credential, kind, pin and basis.
    """

    class Basis(models.IntegerChoices):
        NONE = 0, "Neither known"
        CREATED = 1, "Creation time"
        ACTIVITY = 2, "Last activity"

    owner_key = models.IntegerField()
    credential_id = models.IntegerField()
    kind = models.CharField(max_length=20, choices=Thread.Kind.choices)
    pinned = models.BooleanField()
    basis = models.SmallIntegerField(choices=Basis.choices)
    day = models.IntegerField()
    n = models.BigIntegerField(default=0)

    class Meta:
        constraints = [
            # With `n` in the index (PostgreSQL), the overview sums the tallies from the index alone; with
            # `day` second, it reads one owner key's recent days as one range.
            models.UniqueConstraint(
                fields=["owner_key", "day", "credential_id", "kind", "pinned", "basis"],
                include=["n"],
                name="overviewday_key",
            )
        ]

    def __str__(self):
        return f"{self.owner_key}/{self.credential_id}/{self.kind}/{self.day}: {self.n}"


class OverviewCountChange(models.Model):
    """A change to OverviewCount not folded into it yet: on PostgreSQL the triggers append here, never
    updating a shared row, so that writers in concurrent transactions never wait for or deadlock on each
    other; `tallies.fold()` (beat, every minute) moves these into OverviewCount. Readers add both."""

    owner_key = models.IntegerField()
    credential_id = models.IntegerField()
    kind = models.CharField(max_length=20, choices=Thread.Kind.choices)
    status = models.CharField(max_length=10, choices=Thread.Status.choices)
    n = models.BigIntegerField(default=0)

    def __str__(self):
        return f"{self.owner_key}/{self.credential_id}/{self.kind}/{self.status}: {self.n:+}"


class OverviewDayChange(models.Model):
    """A change to OverviewDay not folded into it yet (see OverviewCountChange)."""

    owner_key = models.IntegerField()
    credential_id = models.IntegerField()
    kind = models.CharField(max_length=20, choices=Thread.Kind.choices)
    pinned = models.BooleanField()
    basis = models.SmallIntegerField(choices=OverviewDay.Basis.choices)
    day = models.IntegerField()
    n = models.BigIntegerField(default=0)

    def __str__(self):
        return f"{self.owner_key}/{self.credential_id}/{self.kind}/{self.day}: {self.n:+}"


class ApiToken(models.Model):
    """A bearer token for the REST API (`/api/v1/`) and the capture proxy (`/proxy/v1/`), made by an admin
    for an application or a person. Only a SHA-256 of the secret is stored (the secret is 256 random
    bits, so a fast hash loses nothing to guessing); the secret is shown once, when it is made.

    Its reach (`permissions.token_threads`): the threads of its credential if it is bound to one, and of
    those, what its owner may see if it has an owner.
    """

    class Scope(models.TextChoices):
        REGISTER = "register", "Register threads (and use the capture proxy)"
        READ = "read", "Read the registry"
        DELETE = "delete", "Delete threads"

    PREFIX = "tsk_"

    name = models.CharField(max_length=100, unique=True)
    token_hash = models.CharField(max_length=64, unique=True, editable=False)
    # The first characters of the secret, kept so that a token can be recognised: `tsk_AbCd…`.
    token_prefix = models.CharField(max_length=12, editable=False)
    scopes = models.JSONField(default=list, help_text="Some of: register, read, delete.")
    credential = models.ForeignKey(
        Credential, null=True, blank=True, on_delete=models.CASCADE, related_name="api_tokens"
    )
    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="api_tokens"
    )
    stamp_owner = models.BooleanField(
        default=False,
        help_text="The proxy adds metadata.threadsite_owner to the threads and conversations it creates.",
    )
    requests_per_minute = models.PositiveIntegerField(
        default=600, validators=[MinValueValidator(1), MaxValueValidator(1_000_000)]
    )
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(default=timezone.now)
    last_used_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["name"]

    def __str__(self):
        return self.name

    @property
    def masked(self) -> str:
        return f"{self.token_prefix}…"

    @property
    def is_active(self) -> bool:
        return self.revoked_at is None

    def has_scope(self, scope: str) -> bool:
        return scope in self.scopes


class AuditRefused(Exception):
    """An audit event was to be changed or deleted: the log only grows (`audit.purge` aside)."""


class AuditQuerySet(models.QuerySet):
    """Events are added, never changed or deleted through the project's code. Removing a user still sets
    the `actor` of their events to NULL: Django's collector does that through the base manager, and the
    copied name keeps saying who it was. The retention purge (`audit.purge`) is the one deletion."""

    def update(self, **kwargs):
        raise AuditRefused("Audit events cannot be changed.")

    def delete(self):
        raise AuditRefused("Audit events cannot be deleted (only audit.purge removes expired ones).")

    def bulk_update(self, objs, fields, batch_size=None):
        raise AuditRefused("Audit events cannot be changed.")

    def update_or_create(self, *args, **kwargs):
        raise AuditRefused("Audit events cannot be changed.")


class AuditEvent(models.Model):
    """One thing someone (or the system) did: who, what, to which object, when, from where. Append-only:
    recorded by `audit.record()`, never changed or deleted by anything the project offers, and outliving
    what it names (the actor's username and the object's remote ID are copied).

    Deletion jobs are recorded as jobs (created, started, cancelled, finished), not one event per thread:
    their items are the receipt, and the audit log finds the jobs that held a thread (`audit.events_for`).
    """

    class Action(models.TextChoices):
        SIGN_IN = "sign_in", "Signed in"
        SIGN_IN_FAILED = "sign_in_failed", "Sign-in failed"
        CREDENTIAL_ADDED = "credential_added", "Credential added"
        CREDENTIAL_CHANGED = "credential_changed", "Credential changed"
        CREDENTIAL_REMOVED = "credential_removed", "Credential removed"
        THREAD_ADDED = "thread_added", "Thread added"
        THREADS_IMPORTED = "threads_imported", "Threads imported"
        THREADS_DISCOVERED = "threads_discovered", "Threads discovered"
        OWNER_CHANGED = "owner_changed", "Owner changed"
        THREAD_EDITED = "thread_edited", "Title or end user edited"
        METADATA_EDITED = "metadata_edited", "Metadata edited"
        THREAD_PINNED = "thread_pinned", "Pinned or unpinned"
        THREAD_MOVED = "thread_moved", "Moved to another credential"
        MESSAGES_VIEWED = "messages_viewed", "Messages viewed"
        THREAD_EXPORTED = "thread_exported", "Transcript exported"
        JOB_DOWNLOADED = "job_downloaded", "Job receipt or archive downloaded"
        THREAD_DELETED = "thread_deleted", "Thread deleted"
        THREAD_FORGOTTEN = "thread_forgotten", "Removed from the registry"
        JOB_CREATED = "job_created", "Deletion job created"
        JOB_CONFIRMED = "job_confirmed", "Deletion job confirmed"
        JOB_STARTED = "job_started", "Deletion job started"
        JOB_CANCELLED = "job_cancelled", "Deletion job cancelled"
        JOB_RETRIED = "job_retried", "Deletion job retried"
        JOB_FINISHED = "job_finished", "Deletion job ended"
        SWEEP_RUN = "sweep_run", "Sweep run"
        POLICY_CHANGED = "policy_changed", "Retention policy changed"
        # Recorded by the team's and the sign-in limit's code (issue 9's roles and hardening).
        SIGN_IN_THROTTLED = "sign_in_throttled", "Sign-in refused: too many attempts"
        USER_ADDED = "user_added", "Team member added"
        USER_DEACTIVATED = "user_deactivated", "Team member deactivated"
        ROLE_CHANGED = "role_changed", "Role changed"
        AUDIT_EXPORTED = "audit_exported", "Audit log exported"
        AUDIT_PURGED = "audit_purged", "Old audit events purged"
        # Recorded by tokens.py (issue 12's API tokens).
        TOKEN_CREATED = "token_created", "API token made"
        TOKEN_REVOKED = "token_revoked", "API token revoked"

    class ObjectType(models.TextChoices):
        NONE = "", "—"
        THREAD = "thread", "Thread"
        JOB = "job", "Deletion job"
        CREDENTIAL = "credential", "Credential"
        POLICY = "policy", "Retention policy"
        SWEEP = "sweep", "Sweep"
        IMPORT = "import", "Import"
        USER = "user", "User"
        AUDIT_LOG = "audit_log", "Audit log"

    at = models.DateTimeField(default=timezone.now)
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    # Copied, so that the event still names who acted after that account is removed; "(system)" for work
    # nobody signed in asked for (beat's sweeps, a command run without --actor).
    actor_name = models.CharField(max_length=150, blank=True)
    action = models.CharField(max_length=30, choices=Action.choices)
    object_type = models.CharField(max_length=20, choices=ObjectType.choices, blank=True)
    # The object's primary key (a job's, a credential's, a thread's), and a thread's remote ID, copied.
    object_pk = models.BigIntegerField(null=True, blank=True)
    remote_id = models.CharField(max_length=100, blank=True)
    address = models.GenericIPAddressField(null=True, blank=True)
    details = models.JSONField(default=dict, blank=True)

    objects = AuditQuerySet.as_manager()

    class Meta:
        ordering = ["-at", "-id"]
        indexes = [
            # The audit log's order, and keyset paging over it (listing.keyset_page).
            models.Index(fields=["-at", "-id"], name="auditevent_at_idx"),
            # Its filters, each read in that same order from where the filter starts.
            models.Index(fields=["actor_name", "-at", "-id"], name="auditevent_actor_idx"),
            models.Index(fields=["action", "-at", "-id"], name="auditevent_action_idx"),
            models.Index(fields=["remote_id", "-at", "-id"], name="auditevent_remote_idx"),
            models.Index(fields=["object_type", "object_pk"], name="auditevent_object_idx"),
        ]

    def __str__(self):
        return f"{self.at:%Y-%m-%d %H:%M:%S} {self.actor_name} {self.action}"

    def save(self, *args, **kwargs):
        if not self._state.adding:
            raise AuditRefused("Audit events cannot be changed.")
        super().save(*args, **kwargs)

    def delete(self, *args, **kwargs):
        raise AuditRefused("Audit events cannot be deleted (only audit.purge removes expired ones).")


class DiscoveryRun(models.Model):
    """Listing a credential's threads in the background (`sync.run_discovery`), so that the credentials
    page can say what the listing found once it ends, rather than only that it started.

    queued → running → finished | failed (`message` says why)
    """

    class State(models.TextChoices):
        QUEUED = "queued", "Queued"
        RUNNING = "running", "Running"
        FINISHED = "finished", "Finished"
        FAILED = "failed", "Failed"

    credential = models.ForeignKey(Credential, on_delete=models.CASCADE, related_name="discovery_runs")
    requested_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    state = models.CharField(max_length=10, choices=State.choices, default=State.QUEUED)
    created_at = models.DateTimeField(default=timezone.now)
    finished_at = models.DateTimeField(null=True, blank=True)
    seen = models.PositiveIntegerField(default=0)
    added = models.PositiveIntegerField(default=0)
    message = models.CharField(max_length=500, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [models.Index(fields=["credential", "-created_at"], name="discovery_latest_idx")]

    def __str__(self):
        return f"Discovery {self.pk} of {self.credential_id} ({self.state})"

    @property
    def is_running(self) -> bool:
        return self.state in (self.State.QUEUED, self.State.RUNNING)
