from django.conf import settings
from django.db import models
from django.db.models import Q
from django.utils import timezone

from . import encryption


class Credential(models.Model):
    """An OpenAI (or Assistants-compatible) API key, scoped to one organization and project.

    The key is stored encrypted (`encryption.py`); only its last four characters are kept in clear, so that
    list pages can show `sk-…abcd` without decrypting anything.
    """

    name = models.CharField(max_length=100, unique=True)
    base_url = models.URLField(max_length=300, default=settings.OPENAI_DEFAULT_BASE_URL)
    api_key_encrypted = models.TextField(editable=False)
    api_key_last4 = models.CharField(max_length=4, editable=False)
    organization_id = models.CharField(max_length=100, blank=True)
    project_id = models.CharField(max_length=100, blank=True)
    # Azure OpenAI: set to send `api-key` and `?api-version=` instead of a bearer token.
    azure_api_version = models.CharField(max_length=40, blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(default=timezone.now)
    updated_at = models.DateTimeField(auto_now=True)
    last_verified_at = models.DateTimeField(null=True, blank=True)
    last_verification_ok = models.BooleanField(null=True)
    last_verification_message = models.CharField(max_length=500, blank=True)

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
    def scope_label(self) -> str:
        return self.project_id or self.organization_id or "default project"


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
        CAPTURE = "capture", "Captured"

    class ActivitySource(models.TextChoices):
        UNKNOWN = "", "Unknown"
        CREATED = "created", "Creation time"
        MESSAGE = "message", "Newest message"
        UPDATED = "updated", "Remote update time"
        SEEN = "seen", "Seen changed by Threadsite"

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

    class Meta:
        ordering = ["-last_activity_at", "-id"]
        indexes = [
            # The list page's default order, and keyset paging over it.
            models.Index(fields=["-last_activity_at", "-id"], name="thread_activity_idx"),
            models.Index(fields=["-added_at", "-id"], name="thread_added_idx"),
            # The list page's other sort orders (listing.SORTS), read forwards or backwards.
            models.Index(fields=["-remote_created_at", "-id"], name="thread_created_idx"),
            models.Index(fields=["title", "id"], name="thread_title_idx"),
            # Team members' "my threads", filtered by status, newest activity first.
            models.Index(fields=["owner", "status", "-last_activity_at"], name="thread_owner_idx"),
            models.Index(fields=["credential", "status", "-last_activity_at"], name="thread_cred_idx"),
            models.Index(fields=["kind", "status", "-last_activity_at"], name="thread_kind_idx"),
            # Expiry sweeps: active threads whose last activity is past the window.
            models.Index(
                fields=["last_activity_at"],
                condition=Q(status="active"),
                name="thread_sweep_idx",
            ),
            # Background checks of freshly imported threads.
            models.Index(fields=["id"], condition=Q(last_check=""), name="thread_unchecked_idx"),
        ]

    def __str__(self):
        return self.remote_id

    def set_status(self, new_status, *, by=None, reason: str = "") -> bool:
        """Move to `new_status` if nobody changed the status since this row was read; record it.

        A conditional UPDATE rather than save(): a sweep and a user's delete may race on one thread.
        """
        old_status = self.status
        if new_status == old_status:
            return False
        now = timezone.now()
        changed = Thread.objects.filter(pk=self.pk, status=old_status).update(
            status=new_status, status_changed_at=now, status_changed_by=by
        )
        if changed != 1:
            return False
        StatusChange.objects.create(
            thread=self,
            old_status=old_status,
            new_status=new_status,
            changed_at=now,
            changed_by=by,
            reason=reason[:500],
        )
        self.status, self.status_changed_at, self.status_changed_by = new_status, now, by
        return True


class StatusChange(models.Model):
    """The status history of a thread: one row for each transition, kept after the thread is gone."""

    thread = models.ForeignKey(Thread, on_delete=models.CASCADE, related_name="status_changes")
    old_status = models.CharField(max_length=10, choices=Thread.Status.choices, blank=True)
    new_status = models.CharField(max_length=10, choices=Thread.Status.choices)
    changed_at = models.DateTimeField(default=timezone.now)
    changed_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    reason = models.CharField(max_length=500, blank=True)

    class Meta:
        ordering = ["-changed_at", "-id"]

    def __str__(self):
        return f"{self.thread_id}: {self.old_status or '∅'} → {self.new_status}"
