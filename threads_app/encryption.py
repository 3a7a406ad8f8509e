"""Encryption at rest for API keys (Fernet: AES-128-CBC with HMAC-SHA256)."""

import base64
import hashlib
from functools import cache

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from django.conf import settings
from django.core.signals import setting_changed
from django.dispatch import receiver


@cache
def _fernet() -> MultiFernet:
    keys = list(settings.ENCRYPTION_KEYS)
    if not keys:
        digest = hashlib.sha256(("threadsite-api-keys:" + settings.SECRET_KEY).encode()).digest()
        keys = [base64.urlsafe_b64encode(digest).decode()]
    return MultiFernet([Fernet(key) for key in keys])


@receiver(setting_changed)
def _forget_keys(*, setting, **kwargs):
    if setting in ("ENCRYPTION_KEYS", "SECRET_KEY"):
        _fernet.cache_clear()


def encrypt(plaintext: str) -> str:
    return _fernet().encrypt(plaintext.encode()).decode()


def decrypt(token: str) -> str:
    try:
        return _fernet().decrypt(token.encode()).decode()
    except InvalidToken:
        raise ValueError(
            "The stored API key cannot be decrypted: THREADSITE_ENCRYPTION_KEYS or SECRET_KEY changed"
        ) from None


def rotate(token: str) -> str:
    """The same secret encrypted again with the first key of THREADSITE_ENCRYPTION_KEYS (any listed key
    may have encrypted `token`)."""
    try:
        return _fernet().rotate(token.encode()).decode()
    except InvalidToken:
        raise ValueError(
            "A stored API key cannot be decrypted with any of THREADSITE_ENCRYPTION_KEYS: keep the old key "
            "in the list until rotate_keys has run"
        ) from None


def mask(key: str) -> str:
    """`sk-…abcd`: enough to tell keys apart, never enough to use one."""
    if not key:
        return ""
    prefix = "sk-" if key.startswith("sk-") else ""
    return f"{prefix}…{key[-4:]}"
