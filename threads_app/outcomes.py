"""The one translation of API failures into what a caller records or shows.

Checks, pages, verification and deletion items all ask `classify(error)`; none of them reads the client's
error classes itself. An Outcome says what happened in the words a person reads, how a thread check
records it, whether trying again later can help, and whether the credential itself is refused.
"""

from dataclasses import dataclass

from .client import (
    APIConnectionError,
    APIError,
    AuthenticationError,
    NotFound,
    PermissionDenied,
    QuotaExceeded,
    RateLimited,
    ServerError,
)
from .models import Thread


@dataclass(frozen=True)
class Outcome:
    kind: str  # not_found, refused, quota, rate_limited, unavailable, failed; invalid (never sent)
    check: str  # the Thread.Check value a check of a thread records
    message: str  # a sentence for people, with the API's own words
    detail: str  # the API's own words alone
    retry_after: float | None = None

    @property
    def transient(self) -> bool:
        """Trying again later may succeed (rate limits, server failures, lost connections)."""
        return self.kind in ("rate_limited", "unavailable")

    @property
    def stops_credential(self) -> bool:
        """Every request with this credential would fail the same way: stop using it."""
        return self.kind in ("refused", "quota")


def invalid(message: str) -> Outcome:
    """A request refused before it was sent: the input breaks the API's rules, or the kind cannot do it."""
    return Outcome("invalid", Thread.Check.ERROR, message, message)


def person_limited(per_minute: int) -> Outcome:
    """A person's pages asked the API more often than THREADSITE_PAGE_API_CALLS_PER_MINUTE allows."""
    message = f"More than {per_minute} requests to the API from your pages this minute: wait a moment."
    return Outcome("rate_limited", Thread.Check.ERROR, message, message, retry_after=60.0)


def classify(error: Exception) -> Outcome:
    """The outcome of an API error (or of a stored key that can no longer be decrypted: a ValueError)."""
    if not isinstance(error, APIError):
        detail = str(error)
        return Outcome(
            "refused", Thread.Check.BAD_KEY, f"The credential’s key cannot be used: {detail}", detail
        )
    detail = str(error)
    retry_after = getattr(error, "retry_after", None)
    if isinstance(error, NotFound):
        return Outcome("not_found", Thread.Check.NOT_FOUND, error.message, error.message)
    if isinstance(error, AuthenticationError):
        return Outcome(
            "refused", Thread.Check.BAD_KEY, f"The API refused the credential’s key: {detail}", detail
        )
    if isinstance(error, PermissionDenied):
        return Outcome(
            "refused", Thread.Check.FORBIDDEN, f"The credential’s key lacks permission: {detail}", detail
        )
    if isinstance(error, QuotaExceeded):
        return Outcome(
            "quota", Thread.Check.ERROR, f"The credential’s project is out of quota: {detail}", detail
        )
    if isinstance(error, RateLimited):
        return Outcome(
            "rate_limited",
            Thread.Check.ERROR,
            f"The API is rate-limiting this credential: {detail}",
            detail,
            retry_after,
        )
    if isinstance(error, ServerError | APIConnectionError):
        return Outcome(
            "unavailable", Thread.Check.ERROR, f"The API could not be reached or failed: {detail}", detail
        )
    if error.code == "invalid_id":
        return invalid(detail)
    if error.code == "key_unreadable":
        return Outcome(
            "refused", Thread.Check.BAD_KEY, f"The credential’s key cannot be used: {detail}", detail
        )
    return Outcome("failed", Thread.Check.ERROR, f"The request failed: {detail}", detail)
