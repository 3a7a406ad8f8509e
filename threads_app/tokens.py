"""API tokens: made, recognised, revoked, and their request rate.

The secret is `tsk_` and 43 URL-safe characters (256 random bits). Only its SHA-256 is stored: a token is
found by the hash of what a request presents (one unique-index lookup), so no comparison of secrets
happens in Python at all, and a stolen database holds nothing that can be presented.
"""

import hashlib
import secrets
import threading
import time
from dataclasses import dataclass
from datetime import timedelta

from django.conf import settings
from django.contrib.auth import get_user_model
from django.db import IntegrityError, transaction
from django.utils import timezone

from . import audit, ratelimit
from .models import ApiToken, Credential

# last_used_at is written at most this often per token, so that a busy application's requests do not
# each cost an UPDATE.
LAST_USED_RESOLUTION = timedelta(seconds=60)
# A token may run this many seconds of its rate ahead at once: an application pages a long list, or
# replays a queue after an outage, in bursts.
TOKEN_BURST_SECONDS = 10.0
SCOPES = [scope.value for scope in ApiToken.Scope]


class TokenError(ValueError):
    pass


def hash_secret(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


@dataclass
class NewToken:
    token: ApiToken
    secret: str  # shown once, never stored


def create(
    name: str,
    *,
    scopes,
    credential: Credential | None = None,
    owner=None,
    created_by=None,
    stamp_owner: bool = False,
    requests_per_minute: int | None = None,
) -> NewToken:
    """Make a token; TokenError with a message a person can act on if the name or scopes are wrong."""
    name = (name or "").strip()
    if not name or len(name) > 100:
        raise TokenError("A token needs a name of 1 to 100 characters.")
    scopes = sorted(set(scopes))
    unknown = [scope for scope in scopes if scope not in SCOPES]
    if unknown or not scopes:
        raise TokenError(f"Scopes must be some of {', '.join(SCOPES)} (got {', '.join(unknown) or 'none'}).")
    if stamp_owner and owner is None:
        raise TokenError("Stamping the owner needs a token with a default owner.")
    secret = ApiToken.PREFIX + secrets.token_urlsafe(32)
    token = ApiToken(
        name=name,
        token_hash=hash_secret(secret),
        token_prefix=secret[:8],
        scopes=scopes,
        credential=credential,
        owner=owner,
        created_by=created_by,
        stamp_owner=stamp_owner,
    )
    if requests_per_minute:
        token.requests_per_minute = requests_per_minute
    try:
        with transaction.atomic():
            token.save()
            audit.record(
                audit.Action.TOKEN_CREATED,
                actor=created_by,
                name=name,
                scopes=scopes,
                credential=credential.name if credential else None,
                owner=owner.get_username() if owner else None,
            )
    except IntegrityError:
        raise TokenError(f"A token named “{name}” already exists.") from None
    return NewToken(token, secret)


def resolve_names(*, credential: str = "", owner: str = "") -> tuple[Credential | None, object]:
    """The credential and user named, or TokenError."""
    found_credential = found_owner = None
    if credential:
        found_credential = Credential.objects.filter(name=credential).first()
        if found_credential is None:
            raise TokenError(f"No credential is named “{credential}”.")
    if owner:
        found_owner = get_user_model().objects.filter(username=owner).first()
        if found_owner is None:
            raise TokenError(f"No team member is named “{owner}”.")
    return found_credential, found_owner


# Tokens found recently, by hash: the capture proxy's every request would otherwise wait on a query.
_recent: dict[str, tuple[float, ApiToken]] = {}
_recent_lock = threading.Lock()
MAX_RECENT = 1000
_clock = time.monotonic


def authenticate(header: str) -> ApiToken | None:
    """The active token an `Authorization: Bearer …` header presents, or None.

    A token found is kept in this process for THREADSITE_TOKEN_CACHE_SECONDS (5 s by default; 0: never):
    a revocation takes effect at once in the process that revokes, and within that time in the others.
    """
    scheme, _, secret = (header or "").partition(" ")
    secret = secret.strip()
    if scheme.lower() != "bearer" or not secret.startswith(ApiToken.PREFIX) or len(secret) > 200:
        return None
    digest = hash_secret(secret)
    ttl = settings.THREADSITE_TOKEN_CACHE_SECONDS
    clock = _clock()
    with _recent_lock:
        kept = _recent.get(digest)
    if kept is not None and kept[0] > clock:
        token = kept[1]
    else:
        token = (
            ApiToken.objects.select_related("credential", "owner")
            .filter(token_hash=digest, revoked_at__isnull=True)
            .first()
        )
        if token is None:
            return None
        if ttl:
            with _recent_lock:
                if len(_recent) >= MAX_RECENT:
                    _recent.clear()
                _recent[digest] = (clock + ttl, token)
    now = timezone.now()
    if token.last_used_at is None or token.last_used_at < now - LAST_USED_RESOLUTION:
        ApiToken.objects.filter(pk=token.pk).update(last_used_at=now)
        token.last_used_at = now
    return token


def revoke(token: ApiToken, *, by=None) -> bool:
    """Revoke a token (for good); False if it already was."""
    changed = ApiToken.objects.filter(pk=token.pk, revoked_at__isnull=True).update(revoked_at=timezone.now())
    if changed:
        audit.record(audit.Action.TOKEN_REVOKED, actor=by, name=token.name)
    with _recent_lock:
        _recent.pop(token.token_hash, None)
    token.refresh_from_db(fields=["revoked_at"])
    return bool(changed)


def rate_wait(token: ApiToken) -> float:
    """0 if the token may make a request now (and that request is counted), else the seconds until it
    may: the GCRA limiter that paces background work, keyed by the token, refusing rather than waiting."""
    key = f"token:{token.pk}:{token.token_prefix}"
    return ratelimit.limiter().take(key, token.requests_per_minute, burst_seconds=TOKEN_BURST_SECONDS)
