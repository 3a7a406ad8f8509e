from django.core.management.base import BaseCommand, CommandError
from django.db import transaction

from threads_app import encryption
from threads_app.models import Credential

# Every encrypted column: (model, field names).
ENCRYPTED = [(Credential, ["api_key_encrypted", "read_key_encrypted"])]


class Command(BaseCommand):
    help = (
        "Encrypt every stored API key again with the first key of THREADSITE_ENCRYPTION_KEYS. Rotation: put "
        "the new key first in the list (keeping the old ones after it), restart, run this, then drop the old "
        "keys from the list."
    )

    def handle(self, *args, **options):
        rotated = 0
        try:
            with transaction.atomic():
                for model, fields in ENCRYPTED:
                    for row in model.objects.select_for_update().only("pk", *fields):
                        changed = [name for name in fields if getattr(row, name)]
                        for name in changed:
                            setattr(row, name, encryption.rotate(getattr(row, name)))
                        if changed:
                            row.save(update_fields=changed)
                            rotated += len(changed)
        except ValueError as error:
            raise CommandError(f"{error}. Nothing was changed.") from None
        self.stdout.write(f"Rotated {rotated} stored keys to the first encryption key.")
