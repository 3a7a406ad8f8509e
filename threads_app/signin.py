"""Signing in: failed attempts limited per username and per address, and sessions that end after a time
without activity.

Counters live in the cache (Redis when REDIS_URL is set, shared by every web process; LocMem otherwise),
in fixed windows: simple, no new dependency, and a burst against one account or from one address is
stopped after THREADSITE_SIGNIN_MAX_FAILURES(_PER_ADDRESS) failures for THREADSITE_SIGNIN_WINDOW_SECONDS.
Keys hold a hash of the username, never the name itself. The address is the one the audit log records
(`audit.client_address`, THREADSITE_TRUSTED_PROXIES).
"""

import hashlib
import time

from django import forms
from django.conf import settings
from django.contrib.auth import logout
from django.contrib.auth.forms import AuthenticationForm
from django.contrib.auth.signals import user_logged_in
from django.core.cache import cache
from django.dispatch import receiver

from . import audit


def _keys(username: str, address: str) -> tuple[str, str]:
    digest = hashlib.sha256(username.strip().lower().encode()).hexdigest()[:32]
    window = int(time.time()) // settings.THREADSITE_SIGNIN_WINDOW_SECONDS
    return f"threadsite:signin:user:{digest}:{window}", f"threadsite:signin:addr:{address}:{window}"


def is_limited(username: str, address: str) -> bool:
    user_key, address_key = _keys(username, address)
    counts = cache.get_many([user_key, address_key])
    return (
        counts.get(user_key, 0) >= settings.THREADSITE_SIGNIN_MAX_FAILURES
        or counts.get(address_key, 0) >= settings.THREADSITE_SIGNIN_MAX_FAILURES_PER_ADDRESS
    )


def record_failure(username: str, address: str) -> None:
    for key in _keys(username, address):
        # add() then incr(): atomic on Redis, so concurrent failures are all counted.
        cache.add(key, 0, timeout=settings.THREADSITE_SIGNIN_WINDOW_SECONDS * 2)
        try:
            cache.incr(key)
        except ValueError:  # expired between add() and incr()
            cache.set(key, 1, timeout=settings.THREADSITE_SIGNIN_WINDOW_SECONDS * 2)


def limited_message() -> str:
    minutes = max(1, settings.THREADSITE_SIGNIN_WINDOW_SECONDS // 60)
    return (
        "Too many failed sign-ins for this username or from this address. "
        f"Wait {minutes} minutes and try again, or ask an admin for a set-password link."
    )


class LimitedAuthenticationForm(AuthenticationForm):
    """Django's sign-in form, refusing to even check a password once the limit is reached."""

    def clean(self):
        username = self.cleaned_data.get("username") or ""
        address = (audit.client_address(self.request) if self.request else None) or "unknown"
        if is_limited(username, address):
            # The password is not even checked, so Django's "sign-in failed" is not recorded: this is.
            audit.record(
                audit.Action.SIGN_IN_THROTTLED, actor=None, actor_name=username[:150], request=self.request
            )
            raise forms.ValidationError(limited_message(), code="rate_limited")
        try:
            return super().clean()
        except forms.ValidationError:
            record_failure(username, address)
            raise


# --- Idle sessions ----------------------------------------------------------------------------------------

LAST_SEEN = "threadsite_last_seen"
# The session is written again at most this often by the idle clock, so polling pages do not write it
# on every request.
TOUCH_SECONDS = 60


@receiver(user_logged_in)
def start_idle_clock(sender, request, user, **kwargs):
    # Set while the session is written at sign-in anyway, so that the first page does not write it again.
    if request is not None and hasattr(request, "session"):
        request.session[LAST_SEEN] = int(time.time())
        request.session.set_expiry(settings.THREADSITE_SESSION_IDLE_MINUTES * 60)


class IdleSessionMiddleware:
    """Sign out a session left idle for THREADSITE_SESSION_IDLE_MINUTES. Each request moves the session's
    expiry forward (written at most once a minute); a request after the idle time finds it signed out."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        user = getattr(request, "user", None)
        if user is not None and user.is_authenticated:
            idle = settings.THREADSITE_SESSION_IDLE_MINUTES * 60
            now = int(time.time())
            last_seen = request.session.get(LAST_SEEN)
            if last_seen is not None and now - last_seen > idle:
                logout(request)
            elif last_seen is None or now - last_seen >= TOUCH_SECONDS:
                request.session[LAST_SEEN] = now
                request.session.set_expiry(idle)
        return self.get_response(request)
