"""Changing a thread's local fields (title, end-user label, owner): what Threadsite knows that the API
does not hold. One UPDATE of the fields that changed, and one audit event per kind of change: an owner
change (ownership) apart from the labels."""

from django.db import transaction

from . import audit
from .models import Thread

LABELS = ("title", "end_user")


def edit(thread: Thread, changes: dict, *, by=None) -> None:
    """Write `changes` ({field: new value}) to `thread`. The old values are read from the row, locked, as
    `thread` may already carry the new ones (a bound ModelForm sets them)."""
    if not changes:
        return
    with transaction.atomic():
        stored = Thread.objects.select_for_update(of=("self",)).select_related("owner").get(pk=thread.pk)
        before = {name: getattr(stored, name) for name in changes}
        changes = {name: value for name, value in changes.items() if before[name] != value}
        if not changes:
            return
        Thread.objects.filter(pk=thread.pk).update(**changes)
        if "owner" in changes:
            old, new = before["owner"], changes["owner"]
            audit.record(
                audit.Action.OWNER_CHANGED,
                actor=by,
                obj=thread,
                before=old.get_username() if old is not None else "",
                after=new.get_username() if new is not None else "",
            )
        labels = [name for name in LABELS if name in changes]
        if labels:
            audit.record(
                audit.Action.THREAD_EDITED,
                actor=by,
                obj=thread,
                before={name: before[name] for name in labels},
                after={name: changes[name] for name in labels},
            )
    for name, value in changes.items():
        setattr(thread, name, value)
