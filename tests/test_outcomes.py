"""The one classifier of API failures: what each failure is called, how a check records it, whether waiting
can help and whether the credential must stop."""

import pytest

from threads_app import outcomes
from threads_app.client import (
    APIConnectionError,
    APIError,
    AuthenticationError,
    BadRequest,
    Conflict,
    DeadlineExceeded,
    InvalidResponse,
    NotFound,
    PermissionDenied,
    QuotaExceeded,
    RateLimited,
    ResponseTooLarge,
    ServerError,
)
from threads_app.models import Thread

Check = Thread.Check


@pytest.mark.parametrize(
    ("error", "kind", "check", "message", "detail"),
    [
        (
            NotFound("No thread found with id 'thread_abc'.", status=404),
            "not_found",
            Check.NOT_FOUND,
            "No thread found with id 'thread_abc'.",
            "No thread found with id 'thread_abc'.",
        ),
        (
            AuthenticationError("Incorrect API key provided", status=401, code="invalid_api_key"),
            "refused",
            Check.BAD_KEY,
            "The API refused the credential’s key: Incorrect API key provided (HTTP 401, invalid_api_key)",
            "Incorrect API key provided (HTTP 401, invalid_api_key)",
        ),
        (
            PermissionDenied("Missing scopes: api.threads.write", status=403),
            "refused",
            Check.FORBIDDEN,
            "The credential’s key lacks permission: Missing scopes: api.threads.write (HTTP 403)",
            "Missing scopes: api.threads.write (HTTP 403)",
        ),
        (
            QuotaExceeded("You exceeded your current quota.", status=429, retry_after=5.0),
            "quota",
            Check.ERROR,
            "The credential’s project is out of quota: You exceeded your current quota. (HTTP 429)",
            "You exceeded your current quota. (HTTP 429)",
        ),
        (
            ServerError("The server had an error", status=500),
            "unavailable",
            Check.ERROR,
            "The API could not be reached or failed: The server had an error (HTTP 500)",
            "The server had an error (HTTP 500)",
        ),
        (
            InvalidResponse("The API answered 200 with an HTML page", status=200),
            "unavailable",
            Check.ERROR,
            "The API could not be reached or failed: The API answered 200 with an HTML page (HTTP 200)",
            "The API answered 200 with an HTML page (HTTP 200)",
        ),
        (
            APIConnectionError("Could not reach api.openai.com: connection refused"),
            "unavailable",
            Check.ERROR,
            "The API could not be reached or failed: Could not reach api.openai.com: connection refused",
            "Could not reach api.openai.com: connection refused",
        ),
        (
            DeadlineExceeded("api.openai.com did not answer within 30 s"),
            "unavailable",
            Check.ERROR,
            "The API could not be reached or failed: api.openai.com did not answer within 30 s",
            "api.openai.com did not answer within 30 s",
        ),
        (
            BadRequest("Invalid 'thread_id'", status=400, code="invalid_id"),
            "invalid",
            Check.ERROR,
            "Invalid 'thread_id' (HTTP 400, invalid_id)",
            "Invalid 'thread_id' (HTTP 400, invalid_id)",
        ),
        (
            APIError("The stored key cannot be decrypted", code="key_unreadable"),
            "refused",
            Check.BAD_KEY,
            "The credential’s key cannot be used: The stored key cannot be decrypted (key_unreadable)",
            "The stored key cannot be decrypted (key_unreadable)",
        ),
        (
            BadRequest("Invalid value for 'limit'", status=400, code="integer_above_max_value"),
            "failed",
            Check.ERROR,
            "The request failed: Invalid value for 'limit' (HTTP 400, integer_above_max_value)",
            "Invalid value for 'limit' (HTTP 400, integer_above_max_value)",
        ),
        (
            Conflict("Another run is active", status=409),
            "failed",
            Check.ERROR,
            "The request failed: Another run is active (HTTP 409)",
            "Another run is active (HTTP 409)",
        ),
        (
            ResponseTooLarge("The answer is larger than 10,000,000 bytes", status=200),
            "failed",
            Check.ERROR,
            "The request failed: The answer is larger than 10,000,000 bytes (HTTP 200)",
            "The answer is larger than 10,000,000 bytes (HTTP 200)",
        ),
        (
            ValueError("the key was encrypted with another SECRET_KEY"),
            "refused",
            Check.BAD_KEY,
            "The credential’s key cannot be used: the key was encrypted with another SECRET_KEY",
            "the key was encrypted with another SECRET_KEY",
        ),
    ],
    ids=lambda value: type(value).__name__ if isinstance(value, Exception) else None,
)
def test_each_failure_is_named_recorded_and_worded_for_people(error, kind, check, message, detail):
    outcome = outcomes.classify(error)
    assert (outcome.kind, outcome.check, outcome.message, outcome.detail) == (kind, check, message, detail)
    assert outcome.retry_after is None


def test_a_rate_limit_is_passing_and_carries_the_wait_the_api_named():
    outcome = outcomes.classify(RateLimited("Rate limit reached", status=429, retry_after=7.5))
    assert outcome == outcomes.Outcome(
        "rate_limited",
        Check.ERROR,
        "The API is rate-limiting this credential: Rate limit reached (HTTP 429)",
        "Rate limit reached (HTTP 429)",
        7.5,
    )
    assert outcome.transient and not outcome.stops_credential


@pytest.mark.parametrize(
    ("error", "transient", "stops_credential"),
    [
        (RateLimited("slow down", status=429), True, False),
        (ServerError("down", status=503), True, False),
        (APIConnectionError("refused"), True, False),
        (QuotaExceeded("no credit", status=429), False, True),
        (AuthenticationError("bad key", status=401), False, True),
        (ValueError("undecryptable"), False, True),
        (PermissionDenied("no scope", status=403), False, True),
        (NotFound("gone", status=404), False, False),
        (BadRequest("no", status=400), False, False),
    ],
)
def test_only_passing_failures_are_worth_a_retry_and_only_a_key_refused_or_out_of_quota_stops_its_credential(
    error, transient, stops_credential
):
    outcome = outcomes.classify(error)
    assert (outcome.transient, outcome.stops_credential) == (transient, stops_credential)


def test_an_input_refused_before_sending_is_invalid_and_final():
    outcome = outcomes.invalid("Metadata keys must be non-empty text.")
    assert outcome == outcomes.Outcome(
        "invalid",
        Check.ERROR,
        "Metadata keys must be non-empty text.",
        "Metadata keys must be non-empty text.",
    )
    assert not outcome.transient and not outcome.stops_credential


def test_a_person_over_their_page_budget_is_told_to_wait_a_minute():
    outcome = outcomes.person_limited(12)
    message = "More than 12 requests to the API from your pages this minute: wait a moment."
    assert outcome == outcomes.Outcome("rate_limited", Check.ERROR, message, message, retry_after=60.0)
    assert outcome.transient
