"""Registering, changing and removing API credentials: the page and the `credential` command both call
these, so that each change is recorded once (`audit`), naming the fields that changed, never the key."""

from django.db import transaction
from django.db.models import ProtectedError

from . import audit
from .models import Credential


def save(form, *, by=None) -> tuple[Credential, bool]:
    """Save a valid CredentialForm; returns (credential, whether it is new)."""
    is_new = form.instance.pk is None
    with transaction.atomic():
        credential = form.save(commit=False)
        if is_new:
            credential.created_by = by
        credential.save()
        form.save_m2m()  # the members it is limited to
        audit.record(
            audit.Action.CREDENTIAL_ADDED if is_new else audit.Action.CREDENTIAL_CHANGED,
            actor=by,
            obj=credential,
            name=credential.name,
            # The names of the fields, "api_key" among them when the key was replaced: never a value of it.
            fields=sorted(form.changed_data),
        )
    return credential, is_new


class StillTracking(ValueError):
    def __init__(self, credential: Credential, count: int):
        self.count = count
        super().__init__(
            f"{credential.name} still tracks {count} threads; delete or reassign them before removing it."
        )


def remove(credential: Credential, *, by=None) -> None:
    """Remove a credential that tracks no thread (StillTracking otherwise, nothing changed)."""
    name, pk = credential.name, credential.pk
    try:
        with transaction.atomic():
            credential.delete()
            audit.record(audit.Action.CREDENTIAL_REMOVED, actor=by, name=name, credential_pk=pk)
    except ProtectedError:
        raise StillTracking(credential, credential.threads.count()) from None
