import contextlib
import re
from urllib.parse import urlencode

from django import forms
from django.conf import settings
from django.contrib.auth import get_user_model
from django.core import signing
from django.core.validators import RegexValidator

from . import ids, importing, listing, retention
from . import metadata as metadata_rules
from .models import ApiToken, AuditEvent, Credential, RetentionPolicy, Thread
from .permissions import access, owner_choices, usable_credentials, visible_credentials

# --- Intake: credentials, adding and importing threads ------------------------------------------------


class OwnerChoiceField(forms.ModelChoiceField):
    def label_from_instance(self, user):
        full_name = user.get_full_name()
        return f"{user.get_username()} ({full_name})" if full_name else user.get_username()


def owner_field(**kwargs):
    return OwnerChoiceField(
        queryset=get_user_model().objects.filter(is_active=True).order_by("username"),
        required=False,
        empty_label="Unassigned",
        **kwargs,
    )


# Sent in a header with every request: letters, digits and - _ . : only, so that nothing can break the
# header or the request line (a line break, a non-ASCII character).
HEADER_VALUE = re.compile(r"[A-Za-z0-9_.:-]*")
MAX_KEY_LENGTH = 512


def header_value(value: str, what: str) -> str:
    value = value.strip()
    if not HEADER_VALUE.fullmatch(value):
        raise forms.ValidationError(f"{what} hold only letters, digits and - _ . :")
    return value


class CredentialForm(forms.ModelForm):
    """Create or edit a credential. The key is write-only: never rendered back, blank on edit keeps it."""

    name = forms.CharField(
        max_length=100,
        validators=[
            RegexValidator(r"^[\w.-]+$", "Use letters, digits, dots, dashes and underscores (no spaces).")
        ],
    )
    api_key = forms.CharField(
        label="API key",
        strip=True,
        widget=forms.PasswordInput(render_value=False, attrs={"autocomplete": "off"}),
        help_text="Stored encrypted; shown only as its last four characters.",
    )
    read_key = forms.CharField(
        label="Read-only API key (optional)",
        required=False,
        strip=True,
        widget=forms.PasswordInput(render_value=False, attrs={"autocomplete": "off"}),
        help_text="A restricted key for browsing and checks; deletions and metadata edits use the key above.",
    )
    clear_read_key = forms.BooleanField(label="Remove the read-only key", required=False)
    limited_to = forms.ModelMultipleChoiceField(
        # Members only: admins and auditors see every credential whatever this says.
        queryset=get_user_model()
        .objects.filter(is_active=True, is_superuser=False)
        .exclude(groups__name__in=["admin", "auditor"])
        .order_by("username"),
        required=False,
        label="Only for these members",
        widget=forms.CheckboxSelectMultiple,
        help_text="None ticked: every member sees it (and their threads under it). Admins and auditors "
        "always do.",
    )

    class Meta:
        model = Credential
        fields = [
            "name",
            "base_url",
            "organization_id",
            "project_id",
            "azure_api_version",
            "requests_per_minute",
            "concurrency",
            "limited_to",
        ]
        labels = {
            "requests_per_minute": "Request limit (per minute)",
            "concurrency": "Requests in flight at once",
            "base_url": "API base URL",
            "organization_id": "Organization ID",
            "project_id": "Project ID",
            "azure_api_version": "Azure api-version",
        }
        help_texts = {
            "base_url": "OpenAI's, or any Assistants-compatible server's.",
            "azure_api_version": "Only for Azure OpenAI: sends the key as an api-key header.",
        }

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["concurrency"].required = False  # blank: the default
        if self.instance.pk:
            self.fields["api_key"].required = False
            self.fields[
                "api_key"
            ].help_text = (
                f"Now {self.instance.masked_key}. Leave blank to keep it; type a new key to replace it."
            )
        if self.instance.read_key_last4:
            self.fields[
                "read_key"
            ].help_text = (
                f"Now {self.instance.masked_read_key}. Leave blank to keep it; type a new one to replace it."
            )
        else:
            del self.fields["clear_read_key"]

    def clean_concurrency(self):
        value = self.cleaned_data.get("concurrency")
        return Credential._meta.get_field("concurrency").default if value is None else value

    def clean_base_url(self):
        url = self.cleaned_data["base_url"].rstrip("/")
        if not url.startswith(("https://", "http://")):
            raise forms.ValidationError(
                "The base URL must start with https:// (or http:// for a local server)."
            )
        return url

    def clean_api_key(self):
        return self.check_key(self.cleaned_data["api_key"])

    def clean_read_key(self):
        return self.check_key(self.cleaned_data["read_key"])

    @staticmethod
    def check_key(key):
        if key and (len(key) < 8 or any(ch.isspace() for ch in key)):
            raise forms.ValidationError("That does not look like an API key (too short, or has spaces).")
        if key and (len(key) > MAX_KEY_LENGTH or not key.isascii() or not key.isprintable()):
            raise forms.ValidationError(
                f"That does not look like an API key (at most {MAX_KEY_LENGTH} plain ASCII characters)."
            )
        return key

    def clean_organization_id(self):
        value = header_value(self.cleaned_data["organization_id"], "Organization IDs")
        if value and not value.startswith("org-"):
            raise forms.ValidationError("Organization IDs start with org-.")
        return value

    def clean_project_id(self):
        return header_value(self.cleaned_data["project_id"], "Project IDs")

    def clean_azure_api_version(self):
        return header_value(self.cleaned_data["azure_api_version"], "API versions")

    def save(self, commit=True):
        credential = super().save(commit=False)
        if self.cleaned_data.get("api_key"):
            credential.api_key = self.cleaned_data["api_key"]
        if self.cleaned_data.get("read_key"):
            credential.read_key = self.cleaned_data["read_key"]
        elif self.cleaned_data.get("clear_read_key"):
            credential.read_key = ""
        if commit:
            credential.save()
            self.save_m2m()
        return credential


class RetentionPolicyForm(forms.Form):
    """A credential's retention policy (`retention.set_policy`)."""

    mode = forms.ChoiceField(
        choices=RetentionPolicy.Mode.choices,
        widget=forms.RadioSelect,
        help_text="Delete: the first sweep after switching only previews, and waits for your confirmation.",
    )
    window_days = forms.IntegerField(label="Days without activity", min_value=1, max_value=36500, initial=60)
    include_assistants = forms.BooleanField(
        label="Also Assistants threads (on servers that do not expire them)", required=False
    )
    exempt_owners = forms.ModelMultipleChoiceField(
        queryset=get_user_model().objects.filter(is_active=True).order_by("username"),
        required=False,
        label="Owners whose threads are kept",
        widget=forms.CheckboxSelectMultiple,
    )
    exempt_metadata = forms.CharField(
        label="Metadata that keeps a thread",
        required=False,
        widget=forms.Textarea(attrs={"rows": 3, "placeholder": "legal_hold=true"}),
        help_text="One KEY=VALUE a line. Pinned threads are always kept.",
    )

    def clean_exempt_metadata(self):
        pairs = []
        for number, line in enumerate(self.cleaned_data["exempt_metadata"].splitlines(), start=1):
            if not line.strip():
                continue
            key, sep, value = line.partition("=")
            key = key.strip()
            if not sep or not key:
                raise forms.ValidationError(f"Line {number}: write KEY=VALUE.")
            if len(key) > metadata_rules.MAX_KEY or len(value) > metadata_rules.MAX_VALUE:
                raise forms.ValidationError(
                    f"Line {number}: keys hold at most {metadata_rules.MAX_KEY} characters, values "
                    f"{metadata_rules.MAX_VALUE}."
                )
            pairs.append((key, value.strip()))
        return pairs

    @classmethod
    def initial_for(cls, policy) -> dict:
        if policy is None:
            return {"mode": RetentionPolicy.Mode.OFF, "window_days": 60}
        return {
            "mode": policy.mode,
            "window_days": policy.window_days,
            "include_assistants": policy.include_assistants,
            "exempt_owners": list(policy.exempt_owners.all()),
            "exempt_metadata": "\n".join(f"{k}={v}" for k, v in policy.exempt_metadata or []),
        }


class CredentialChoiceField(forms.ModelChoiceField):
    def label_from_instance(self, credential):
        # A key the API refused at its last check is named as such, so that nobody picks it unknowingly.
        refused = " · key refused" if credential.last_verification_ok is False else ""
        return f"{credential.name}{refused} ({credential.scope_label})"


def credential_or_auto_field():
    """A credential, or none (the default): Threadsite asks each credential the user may use, and files the
    thread under the one that finds it (`locating`)."""
    return CredentialChoiceField(
        queryset=Credential.objects.all(),
        required=False,
        empty_label="Let Threadsite find it (ask each credential)",
        help_text="A thread can only be read with a key of the project that created it.",
    )


class IntakeChoices:
    """Credential and owner choices asked of the gate for the user filling the form in."""

    def __init__(self, *args, user, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["credential"].queryset = usable_credentials(user)
        self.fields["owner"].queryset = owner_choices(user)


class AddThreadForm(IntakeChoices, forms.Form):
    remote_id = forms.CharField(
        label="Thread or conversation ID",
        max_length=100,
        widget=forms.TextInput(attrs={"placeholder": "thread_…, conv_… or cthr_…", "autocomplete": "off"}),
    )
    credential = credential_or_auto_field()
    owner = owner_field()
    title = forms.CharField(max_length=300, required=False)

    def clean_remote_id(self):
        remote_id = self.cleaned_data["remote_id"].strip()
        try:
            ids.kind_of(remote_id)
        except ids.InvalidId as exc:
            raise forms.ValidationError(str(exc)) from None
        return remote_id


class ImportForm(IntakeChoices, forms.Form):
    credential = credential_or_auto_field()
    owner = owner_field(help_text="Owner of every imported thread, unless a row names its own.")
    text = forms.CharField(
        label="Paste IDs",
        required=False,
        strip=False,
        widget=forms.Textarea(attrs={"rows": 8, "placeholder": "IDs, log lines, CSV or JSON Lines"}),
    )
    file = forms.FileField(label="…or upload a file", required=False, help_text="Text, CSV or JSON Lines.")

    def clean(self):
        cleaned = super().clean()
        upload, text = cleaned.get("file"), cleaned.get("text") or ""
        if upload and text.strip():
            raise forms.ValidationError("Paste IDs or upload a file, not both.")
        if upload:
            if upload.size > settings.IMPORT_MAX_BYTES:
                raise forms.ValidationError(
                    f"The file is {upload.size:,} bytes; at most {settings.IMPORT_MAX_BYTES:,} are accepted."
                )
            try:
                text = importing.decode(upload.read())
            except importing.ImportRefused as exc:
                raise forms.ValidationError(exc.errors) from None
        elif not text.strip():
            raise forms.ValidationError("Paste some IDs or choose a file.")
        cleaned["content"] = text
        return cleaned


# --- Browse: the thread list's filters, message pages, editing and deleting one thread -----------------


def owner_filter_options(user) -> list[tuple[str, str]]:
    """Everyone for those who see every thread; a member sees only their own, so has nothing to pick."""
    if not access(user).sees_all_threads:
        return [("", "Me")]
    users = get_user_model().objects.order_by("-is_active", "username")
    return [("", "Anyone"), ("me", "Me"), ("none", "Unassigned")] + [
        (str(u.pk), u.get_username() if u.is_active else f"{u.get_username()} (deactivated)") for u in users
    ]


def credential_filter_options(user) -> list[tuple[str, str]]:
    return [("", "Any credential")] + [
        (str(c.pk), f"{c.name} · {c.scope_label}") for c in visible_credentials(user)
    ]


def project_filter_options(user) -> list[tuple[str, str]]:
    projects = visible_credentials(user).exclude(project_id="").values_list("project_id", flat=True)
    return [("", "Any project")] + [(p, p) for p in sorted(set(projects))]


class DateInput(forms.DateInput):
    input_type = "date"


class ThreadFilterForm(forms.Form):
    """The thread list's query string: filters, sort order and page cursor. Invalid → 400, never a 500."""

    q = forms.CharField(
        label="Search",
        max_length=200,
        required=False,
        widget=forms.SearchInput(
            attrs={"placeholder": "ID, title, end user or metadata", "autocomplete": "off"}
        ),
    )
    owner = forms.CharField(required=False, max_length=20)
    credential = forms.CharField(required=False, max_length=20)
    project = forms.CharField(required=False, max_length=100)
    kind = forms.ChoiceField(choices=[("", "Any kind"), *Thread.Kind.choices], required=False)
    status = forms.ChoiceField(choices=[("", "Any status"), *Thread.Status.choices], required=False)
    created_from = forms.DateField(label="Created from", required=False, widget=DateInput)
    created_to = forms.DateField(label="Created to", required=False, widget=DateInput)
    active_from = forms.DateField(label="Active from", required=False, widget=DateInput)
    active_to = forms.DateField(label="Active to", required=False, widget=DateInput)
    inactive_days = forms.IntegerField(
        label="Inactive for more than",
        required=False,
        min_value=0,
        max_value=36500,
        widget=forms.NumberInput(attrs={"placeholder": "days"}),
    )
    removal_days = forms.IntegerField(
        label="Removed within",
        required=False,
        min_value=0,
        max_value=36500,
        widget=forms.NumberInput(attrs={"placeholder": "days"}),
        help_text="By the API's expiry or a retention policy.",
    )
    expiring = forms.ChoiceField(
        label="Going",
        choices=[("", "Any time")] + [(key, label) for key, (label, _, _) in retention.EXPIRING.items()],
        required=False,
        help_text="Active threads the API's expiry or a retention policy removes, by whole days.",
    )
    sort = forms.ChoiceField(choices=listing.SORT_CHOICES, required=False)
    size = forms.TypedChoiceField(
        label="Per page",
        choices=[(str(n), str(n)) for n in listing.PAGE_SIZES],
        coerce=int,
        required=False,
        empty_value=None,
    )
    after = forms.CharField(required=False, max_length=1000)
    before = forms.CharField(required=False, max_length=1000)
    # The position of the page's first row, carried by page links only to say "51–100 of …".
    start = forms.IntegerField(required=False, min_value=1, max_value=10**12, widget=forms.HiddenInput)

    def __init__(self, *args, user=None, **kwargs):
        super().__init__(*args, **kwargs)
        self.user = user
        if (
            self.is_bound
            and not self.data.get("size")
            and str(listing.PAGE_SIZE) in dict(self.fields["size"].choices)
        ):
            # The page-size select shows the size the page has, not its first choice.
            self.data = self.data.copy()
            self.data["size"] = str(listing.PAGE_SIZE)

    def load_options(self) -> None:
        """Give the owner, credential and project selects their options: three queries that only the
        full page needs, as an HTMX request for the table validates these fields by their shape alone."""
        self.fields["owner"].widget = forms.Select(choices=owner_filter_options(self.user))
        self.fields["credential"].widget = forms.Select(choices=credential_filter_options(self.user))
        self.fields["project"].widget = forms.Select(choices=project_filter_options(self.user))

    def clean_q(self):
        return " ".join(self.cleaned_data["q"].split())

    def clean_owner(self):
        owner = self.cleaned_data["owner"]
        if owner not in ("", "me", "none") and not owner.isdigit():
            raise forms.ValidationError("Choose an owner from the list (or “me” or “unassigned”).")
        return owner

    def clean_credential(self):
        credential = self.cleaned_data["credential"]
        if credential and not credential.isdigit():
            raise forms.ValidationError("Choose a credential from the list.")
        return credential

    def clean(self):
        cleaned = super().clean()
        for start, end, what in (
            ("created_from", "created_to", "Created"),
            ("active_from", "active_to", "Active"),
        ):
            if cleaned.get(start) and cleaned.get(end) and cleaned[start] > cleaned[end]:
                self.add_error(end, f"“{what} to” is before “{what} from”.")
        if cleaned.get("after") and cleaned.get("before"):
            raise forms.ValidationError("A page link has either `after` or `before`, not both.")
        sort = cleaned.get("sort") or listing.default_sort(cleaned)
        if "sort" in cleaned:
            cleaned["sort"] = sort
        sort_key, _ = listing.parse_sort(sort)
        for name in ("after", "before"):
            token = cleaned.get(name)
            cleaned[f"{name}_position"] = None
            if token:
                try:
                    cleaned[f"{name}_position"] = listing.decode_cursor(sort_key, token)
                except listing.BadCursor as exc:
                    self.add_error(
                        name,
                        f"This page link is broken or belongs to another sort order ({exc}). "
                        "Start again from the first page.",
                    )
        return cleaned

    def query_params(self) -> dict:
        """The non-empty filters and sort as they belong in a link (no cursor): shareable and canonical."""
        params = {}
        for name in self.fields:
            if name in ("after", "before", "start"):
                continue
            value = self.cleaned_data.get(name)
            if value in (None, "") or (name == "sort" and value == listing.default_sort(self.cleaned_data)):
                continue
            if name == "size" and value == listing.PAGE_SIZE:
                continue
            params[name] = value.isoformat() if hasattr(value, "isoformat") else value
        return params

    @property
    def is_filtered(self) -> bool:
        return any(key not in ("sort", "size") for key in self.query_params())


class MessagePageForm(forms.Form):
    """The `after` cursor of a page of messages: the ID of the last entry shown, as the API gave it; the
    reading `order` (none: the one remembered); and `seen`, how many entries the pages before the cursor
    held, signed for this thread, cursor and order by `older_query` (a forged one would record a wrong
    message count; a bad one is ignored, the page still shows)."""

    after = forms.RegexField(
        regex=r"^[A-Za-z0-9_.:-]{1,200}$",
        required=False,
        error_messages={"invalid": "The “load older” link is broken: its cursor is not a message ID."},
    )
    order = forms.ChoiceField(
        choices=[("desc", "Newest first"), ("asc", "Oldest first")],
        required=False,
        error_messages={"invalid_choice": "Messages are shown newest first (desc) or oldest first (asc)."},
    )
    seen = forms.CharField(required=False, max_length=200)

    def __init__(self, *args, thread=None, **kwargs):
        super().__init__(*args, **kwargs)
        self.thread = thread

    @staticmethod
    def signer(thread, after: str, order: str) -> signing.Signer:
        return signing.Signer(salt=f"threadsite.messages.seen:{thread.pk}:{after}:{order}")

    @classmethod
    def older_query(cls, thread, after: str, seen: int | None, order: str = "desc") -> str:
        """The query string of the "Load older" (or, oldest first, "Load newer") link that continues after
        `after`."""
        query = {"after": after, "order": order}
        if seen is not None:
            query["seen"] = cls.signer(thread, after, order).sign(str(seen))
        return urlencode(query)

    def clean(self):
        cleaned = super().clean()
        token, after, order = cleaned.get("seen"), cleaned.get("after"), cleaned.get("order")
        cleaned["seen"] = None
        if token and after and order and self.thread is not None:
            with contextlib.suppress(signing.BadSignature, ValueError):  # a bad count is only not recorded
                cleaned["seen"] = int(self.signer(self.thread, after, order).unsign(token))
        return cleaned


class ThreadEditForm(forms.ModelForm):
    """The thread's local fields: what Threadsite knows that the API does not hold."""

    owner = owner_field()

    class Meta:
        model = Thread
        fields = ["title", "owner", "end_user"]
        labels = {"end_user": "End-user label"}
        help_texts = {
            "title": "Shown in lists and searches; kept here, not sent to the API.",
            "end_user": "Who the thread serves (a customer, an account): searchable.",
        }

    def __init__(self, *args, owners=None, **kwargs):
        """`owners`: the people the user may assign the thread to (`permissions.owner_choices`); None
        leaves the owner out of the form, as for members editing their own threads."""
        super().__init__(*args, **kwargs)
        if owners is None:
            del self.fields["owner"]
        else:
            self.fields["owner"].queryset = owners


class MetadataForm(forms.Form):
    """The remote metadata, as up to 16 key-value pairs, checked against the API's limits before sending.

    It shows the filled rows and one blank one; "Add a row" (`add_row`) gives another, up to 16, carrying
    how many are shown in `rows`."""

    rows = forms.IntegerField(
        required=False, min_value=1, max_value=metadata_rules.MAX_PAIRS, widget=forms.HiddenInput
    )

    def __init__(self, *args, initial_metadata=None, shown_rows=None, **kwargs):
        initial = kwargs.pop("initial", None) or {}
        for index, (key, value) in enumerate((initial_metadata or {}).items()):
            initial[f"key_{index}"], initial[f"value_{index}"] = key, value
        super().__init__(*args, initial=initial, **kwargs)
        for index in range(metadata_rules.MAX_PAIRS):
            self.fields[f"key_{index}"] = forms.CharField(
                label=f"Key {index + 1}", required=False, max_length=metadata_rules.MAX_KEY
            )
            self.fields[f"value_{index}"] = forms.CharField(
                label=f"Value {index + 1}",
                required=False,
                max_length=metadata_rules.MAX_VALUE,
                strip=False,
            )
        filled = [
            i for i in range(metadata_rules.MAX_PAIRS) if self._raw(f"key_{i}") or self._raw(f"value_{i}")
        ]
        asked = shown_rows or 0
        if self.is_bound:
            raw_rows = self.data.get("rows") or ""
            asked = int(raw_rows) if raw_rows.isdigit() else 0
        self.shown_rows = min(metadata_rules.MAX_PAIRS, max(asked, (max(filled) + 1) if filled else 0, 1))
        self.filled_count = len([i for i in filled if self._raw(f"key_{i}")])
        self.initial["rows"] = self.shown_rows

    def _raw(self, name) -> str:
        source = self.data if self.is_bound else self.initial
        return (source.get(name) or "").strip()

    @classmethod
    def with_another_row(cls, data):
        """The form as posted, unchecked, with one more blank row (for "Add a row")."""
        posted = cls(data)
        initial = {
            name: data.get(name, "")
            for index in range(metadata_rules.MAX_PAIRS)
            for name in (f"key_{index}", f"value_{index}")
        }
        return cls(initial=initial, shown_rows=min(metadata_rules.MAX_PAIRS, posted.shown_rows + 1))

    @property
    def can_add_row(self) -> bool:
        return self.shown_rows < metadata_rules.MAX_PAIRS

    @property
    def max_pairs(self) -> int:
        return metadata_rules.MAX_PAIRS

    def rows_shown(self):
        """(key, value) bound fields of the rows to show."""
        return [(self[f"key_{i}"], self[f"value_{i}"]) for i in range(self.shown_rows)]

    def clean(self):
        cleaned = super().clean()
        metadata = {}
        for index in range(metadata_rules.MAX_PAIRS):
            key = (cleaned.get(f"key_{index}") or "").strip()
            value = cleaned.get(f"value_{index}") or ""
            if not key:
                if value:
                    self.add_error(f"key_{index}", "A value needs a key.")
                continue
            if key in metadata:
                self.add_error(f"key_{index}", f"The key “{key}” appears twice.")
                continue
            metadata[key] = value
        try:
            cleaned["metadata"] = metadata_rules.validate(metadata)
        except metadata_rules.InvalidMetadata as exc:
            raise forms.ValidationError(str(exc)) from None
        return cleaned


class DeleteThreadForm(forms.Form):
    delete_items = forms.BooleanField(
        label="Also delete its items",
        required=False,
        initial=True,
        help_text=(
            "The API keeps a conversation’s items (messages, tool calls and their outputs) after the "
            "conversation itself is deleted. With this on, every item is deleted first, so nothing of it "
            "stays stored; it costs one request per item."
        ),
    )


# --- Bulk deletion: a selection from the list, and the options a job is made with ------------------------

# Ticked rows travel in the query string, one `ids=` each. A page holds 50 rows; more than this many picks
# is not a list someone ticked, and Django refuses more than DATA_UPLOAD_MAX_NUMBER_FIELDS (1,000) anyway.
MAX_PICKED_IDS = 500


class PickedIdsField(forms.Field):
    """Thread primary keys, `ids=1&ids=2…`: positive integers, duplicates dropped, order kept."""

    widget = forms.MultipleHiddenInput

    def to_python(self, value):
        if not value:
            return []
        if isinstance(value, str):
            value = [value]
        pks = []
        for raw in value:
            raw = raw.strip()
            if not (raw.isascii() and raw.isdecimal()) or len(raw) > 18 or int(raw) < 1:
                raise forms.ValidationError("The ticked threads are not a list of row numbers (ids=…).")
            pks.append(int(raw))
        return list(dict.fromkeys(pks))

    def validate(self, value):
        super().validate(value)
        if len(value) > MAX_PICKED_IDS:
            raise forms.ValidationError(
                f"{len(value):,} threads were ticked; at most {MAX_PICKED_IDS:,} can be picked one by one. "
                "Use “Select all matching this filter” instead."
            )


class DeletionSelectionForm(forms.Form):
    """What a deletion job is to take: ticked rows (`ids`), or everything matching the list's filters
    (`all=1`, the filters read by ThreadFilterForm from the same query string)."""

    ids = PickedIdsField(required=False)
    all = forms.CharField(required=False, max_length=10)

    def clean(self):
        cleaned = super().clean()
        if self.errors:
            return cleaned
        ids, everything = cleaned.get("ids") or [], cleaned.get("all")
        if everything not in ("", "1"):
            raise forms.ValidationError(
                "“all” takes every thread matching the filters: all=1, or leave it out."
            )
        if ids and everything:
            raise forms.ValidationError("Tick threads or take every thread matching the filters, not both.")
        if not ids and not everything:
            raise forms.ValidationError(
                "Nothing is selected: tick threads in the list, or use “Select all matching this filter”."
            )
        return cleaned


class ReassignForm(forms.Form):
    """The new owner of a selection of threads (`ownership.reassign`)."""

    owner = owner_field(label="New owner")


def parse_count(text: str) -> int | None:
    """A count as people type it: digits, perhaps grouped by commas, spaces or underscores."""
    digits = "".join(text.split()).replace(",", "").replace("_", "")
    if not digits or not (digits.isascii() and digits.isdecimal()) or len(digits) > 12:
        return None
    return int(digits)


class DeletionJobForm(forms.Form):
    """The options of a deletion job, and the count the admin types to start it."""

    delete_items = forms.BooleanField(
        label="Also delete conversations’ items",
        required=False,
        initial=True,
        help_text=(
            "The API keeps a conversation’s items after the conversation is deleted; with this on, each item "
            "is deleted first (one request per item)."
        ),
    )
    archive = forms.BooleanField(
        label="Archive each transcript before deleting",
        required=False,
        help_text="Reads every message first and keeps it here, downloadable as JSON Lines. Slower.",
    )
    verify_all = forms.BooleanField(
        label="Confirm every deletion with a lookup (slower)",
        required=False,
        help_text="Otherwise one deletion in 20 is confirmed by asking for the thread again.",
    )
    confirm_count = forms.CharField(
        label="Number of threads to delete",
        max_length=30,
        required=False,
        widget=forms.TextInput(attrs={"inputmode": "numeric", "autocomplete": "off", "size": 10}),
    )

    def __init__(self, *args, count: int, **kwargs):
        super().__init__(*args, **kwargs)
        self.count = count

    def clean_confirm_count(self):
        text = self.cleaned_data["confirm_count"]
        if not text.strip():
            raise forms.ValidationError(f"Type the number of threads, {self.count:,}, to start.")
        typed = parse_count(text)
        if typed is None:
            raise forms.ValidationError(f"Type the number as digits: {self.count:,}.")
        if typed != self.count:
            raise forms.ValidationError(
                f"You typed {typed:,}, but the selection holds {self.count:,} threads. "
                f"Type {self.count:,} to delete them."
            )
        return typed


# --- The team and the ownership review -------------------------------------------------------------------

ROLE_CHOICES = [
    ("member", "Member — sees and acts on the threads they own"),
    ("auditor", "Auditor — reads everything, changes nothing"),
    ("admin", "Admin — everything"),
]


class TeamAddForm(forms.Form):
    username = forms.CharField(
        max_length=150,
        validators=[RegexValidator(r"^[\w.@+-]+$", "Letters, digits and @ . + - _ only.")],
    )
    email = forms.EmailField(required=False)
    role = forms.ChoiceField(choices=ROLE_CHOICES, initial="member", widget=forms.RadioSelect)
    content_access = forms.BooleanField(
        label="May read message content of others' threads (auditors)", required=False
    )
    password = forms.CharField(
        required=False,
        strip=False,
        widget=forms.PasswordInput(render_value=False, attrs={"autocomplete": "new-password"}),
        help_text="Leave blank to get a one-time link with which they choose their own.",
    )

    def clean_username(self):
        username = self.cleaned_data["username"]
        if get_user_model().objects.filter(username__iexact=username).exists():
            raise forms.ValidationError(f"There is already a user named {username}.")
        return username

    def clean(self):
        cleaned = super().clean()
        password = cleaned.get("password")
        if password:
            from django.contrib.auth import password_validation

            user = get_user_model()(username=cleaned.get("username", ""), email=cleaned.get("email", ""))
            try:
                password_validation.validate_password(password, user)
            except forms.ValidationError as error:
                self.add_error("password", error)
        return cleaned


class TeamMemberForm(forms.Form):
    role = forms.ChoiceField(choices=ROLE_CHOICES, widget=forms.RadioSelect)
    content_access = forms.BooleanField(
        label="May read message content of others' threads (auditors; admins always may)", required=False
    )


class DeactivateForm(forms.Form):
    reassign_to = OwnerChoiceField(
        queryset=get_user_model().objects.none(),
        required=False,
        empty_label="Keep them as they are (still owned by the deactivated user)",
        label="Reassign their threads to",
    )

    def __init__(self, *args, owners, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["reassign_to"].queryset = owners


class BulkReassignForm(forms.Form):
    """Every thread of one owner (or the unassigned ones), perhaps only under one credential, to someone."""

    from_owner = forms.CharField(max_length=20, label="Threads of")
    credential = forms.ModelChoiceField(
        queryset=Credential.objects.none(), required=False, empty_label="Any credential"
    )
    to_owner = OwnerChoiceField(queryset=get_user_model().objects.none(), label="Give them to")

    def __init__(self, *args, owners, credentials, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["to_owner"].queryset = owners
        self.fields["credential"].queryset = credentials

    def clean_from_owner(self):
        value = self.cleaned_data["from_owner"]
        if value == "none":
            return None
        if not value.isdigit() or not get_user_model().objects.filter(pk=int(value)).exists():
            raise forms.ValidationError("Choose whose threads to reassign.")
        return get_user_model().objects.get(pk=int(value))


class ApiTokenForm(forms.Form):
    """A new API token: its name, scopes, and optionally the one credential and default owner it is for."""

    name = forms.CharField(max_length=100, help_text="The application or person it is for.")
    scopes = forms.MultipleChoiceField(
        choices=ApiToken.Scope.choices,
        widget=forms.CheckboxSelectMultiple,
        initial=[ApiToken.Scope.REGISTER, ApiToken.Scope.READ],
    )
    credential = forms.ModelChoiceField(
        queryset=Credential.objects.all(),
        required=False,
        empty_label="Any (REST API only)",
        help_text="Bound to one credential, it reaches only that credential's threads; the capture proxy "
        "needs one to forward to.",
    )
    owner = forms.ModelChoiceField(
        queryset=get_user_model().objects.order_by("username"),
        required=False,
        empty_label="None",
        help_text="What it registers or captures goes to this person; it reaches only what they see.",
    )
    stamp_owner = forms.BooleanField(
        required=False, label="Stamp metadata.threadsite_owner on threads the proxy creates"
    )
    requests_per_minute = forms.IntegerField(min_value=1, max_value=1_000_000, initial=600)

    def clean(self):
        cleaned = super().clean()
        if cleaned.get("stamp_owner") and not cleaned.get("owner"):
            self.add_error("stamp_owner", "Stamping the owner needs a default owner.")
        return cleaned


class AuditFilterForm(forms.Form):
    """The audit log's query string: filters and page cursor. Invalid → 400, never a 500."""

    actor = forms.CharField(
        label="Who",
        max_length=150,
        required=False,
        widget=forms.TextInput(attrs={"placeholder": "username or (system)", "autocomplete": "off"}),
    )
    action = forms.ChoiceField(
        label="What", choices=[("", "Any action"), *AuditEvent.Action.choices], required=False
    )
    object = forms.CharField(
        label="Thread",
        max_length=100,
        required=False,
        widget=forms.SearchInput(attrs={"placeholder": "thread_…, conv_…, cthr_…", "autocomplete": "off"}),
        help_text="A remote ID: the thread's events and those of the deletion jobs that held it.",
    )
    since = forms.DateField(label="From", required=False, widget=DateInput)
    until = forms.DateField(label="To", required=False, widget=DateInput)
    after = forms.CharField(required=False, max_length=1000)
    before = forms.CharField(required=False, max_length=1000)

    def clean_actor(self):
        return self.cleaned_data["actor"].strip()

    def clean_object(self):
        return self.cleaned_data["object"].strip()

    def clean(self):
        from . import audit

        cleaned = super().clean()
        if cleaned.get("since") and cleaned.get("until") and cleaned["since"] > cleaned["until"]:
            self.add_error("until", "“To” is before “From”.")
        if cleaned.get("after") and cleaned.get("before"):
            raise forms.ValidationError("A page link has either `after` or `before`, not both.")
        sort_key, _ = listing.parse_sort(audit.SORT, audit.SORTS)
        for name in ("after", "before"):
            token = cleaned.get(name)
            cleaned[f"{name}_position"] = None
            if token:
                try:
                    cleaned[f"{name}_position"] = listing.decode_cursor(sort_key, token)
                except listing.BadCursor as exc:
                    self.add_error(
                        name, f"This page link is broken ({exc}). Start again from the first page."
                    )
        return cleaned

    def query_params(self) -> dict:
        """The non-empty filters as they belong in a link (no cursor)."""
        params = {}
        for name in ("actor", "action", "object", "since", "until"):
            value = self.cleaned_data.get(name)
            if value not in (None, ""):
                params[name] = value.isoformat() if hasattr(value, "isoformat") else value
        return params
