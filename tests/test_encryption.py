"""API keys at rest: encrypted, masked, rotatable."""

import pytest
from cryptography.fernet import Fernet
from django.db import connection

from threads_app import encryption
from threads_app.models import Credential


def test_the_key_is_stored_encrypted_and_read_back(credential):
    with connection.cursor() as cursor:
        cursor.execute("SELECT api_key_encrypted, api_key_last4 FROM threads_app_credential")
        stored, last4 = cursor.fetchone()
    assert "sk-test-alpha-key-1234" not in stored
    assert last4 == "1234"
    assert Credential.objects.get().api_key == "sk-test-alpha-key-1234"


def test_the_key_is_shown_masked_everywhere(credential):
    assert credential.masked_key == "sk-…1234"
    assert str(credential) == "alpha (sk-…1234)"
    assert "sk-test" not in repr(credential)


@pytest.mark.parametrize(
    ("key", "masked"), [("sk-proj-abcdefgh", "sk-…efgh"), ("azurekey1234", "…1234"), ("", "")]
)
def test_mask(key, masked):
    assert encryption.mask(key) == masked


def test_keys_rotate_new_first_old_still_decrypts(settings, credential):
    old, new = Fernet.generate_key().decode(), Fernet.generate_key().decode()
    settings.ENCRYPTION_KEYS = [old]
    credential.api_key = "sk-rotate-me-0001"
    credential.save()
    settings.ENCRYPTION_KEYS = [new, old]
    assert Credential.objects.get().api_key == "sk-rotate-me-0001"


def test_a_lost_encryption_key_is_a_clear_error(settings, credential):
    settings.ENCRYPTION_KEYS = [Fernet.generate_key().decode()]
    with pytest.raises(ValueError, match="cannot be decrypted"):
        Credential.objects.get().api_key  # noqa: B018
