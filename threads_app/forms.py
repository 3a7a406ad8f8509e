from django import forms
from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.validators import RegexValidator

from . import ids, importing
from .models import Credential

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

    class Meta:
        model = Credential
        fields = ["name", "base_url", "organization_id", "project_id", "azure_api_version"]
        labels = {
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
        if self.instance.pk:
            self.fields["api_key"].required = False
            self.fields[
                "api_key"
            ].help_text = (
                f"Now {self.instance.masked_key}. Leave blank to keep it; type a new key to replace it."
            )

    def clean_base_url(self):
        url = self.cleaned_data["base_url"].rstrip("/")
        if not url.startswith(("https://", "http://")):
            raise forms.ValidationError(
                "The base URL must start with https:// (or http:// for a local server)."
            )
        return url

    def clean_api_key(self):
        key = self.cleaned_data["api_key"]
        if key and (len(key) < 8 or any(ch.isspace() for ch in key)):
            raise forms.ValidationError("That does not look like an API key (too short, or has spaces).")
        return key

    def clean_organization_id(self):
        value = self.cleaned_data["organization_id"].strip()
        if value and not value.startswith("org-"):
            raise forms.ValidationError("Organization IDs start with org-.")
        return value

    def save(self, commit=True):
        credential = super().save(commit=False)
        if self.cleaned_data.get("api_key"):
            credential.api_key = self.cleaned_data["api_key"]
        if commit:
            credential.save()
        return credential


class AddThreadForm(forms.Form):
    remote_id = forms.CharField(
        label="Thread or conversation ID",
        max_length=100,
        widget=forms.TextInput(attrs={"placeholder": "thread_…, conv_… or cthr_…", "autocomplete": "off"}),
    )
    credential = forms.ModelChoiceField(queryset=Credential.objects.all(), empty_label=None)
    owner = owner_field()
    title = forms.CharField(max_length=300, required=False)

    def clean_remote_id(self):
        remote_id = self.cleaned_data["remote_id"].strip()
        try:
            ids.kind_of(remote_id)
        except ids.InvalidId as exc:
            raise forms.ValidationError(str(exc)) from None
        return remote_id


class ImportForm(forms.Form):
    credential = forms.ModelChoiceField(queryset=Credential.objects.all(), empty_label=None)
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
