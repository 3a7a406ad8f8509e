"""The API tokens pages and `manage.py api_token`: the secret shown once and stored hashed, revocation,
per-token counts, how a thread entered, and the overview's threads entered through tokens per day."""

from datetime import timedelta
from io import StringIO

import pytest
from django.core.management import CommandError, call_command
from django.utils import timezone

from tests.conftest import make_user
from threads_app import overview, tokens
from threads_app.models import ApiToken, Thread


@pytest.fixture
def admin_client(client, db):
    client.force_login(make_user("root", "admin"))
    return client


def test_an_admin_makes_a_token_and_sees_its_secret_once(admin_client, credential, alice):
    response = admin_client.post(
        "/tokens/",
        {
            "name": "support-bot",
            "scopes": ["register", "read"],
            "credential": credential.pk,
            "owner": alice.pk,
            "requests_per_minute": 600,
        },
    )
    assert response.status_code == 200
    secret = response.context["created"].secret
    assert secret.startswith("tsk_") and secret in response.content.decode()
    assert "no-cache" in response["Cache-Control"] or "no-store" in response["Cache-Control"]
    token = ApiToken.objects.get(name="support-bot")
    assert token.credential == credential and token.owner == alice and token.scopes == ["read", "register"]
    assert secret not in admin_client.get("/tokens/").content.decode()
    assert secret not in admin_client.get(f"/tokens/{token.pk}/").content.decode()
    assert tokens.authenticate(f"Bearer {secret}") == token


def test_a_bad_token_form_is_refused_with_a_message(admin_client, credential):
    response = admin_client.post("/tokens/", {"name": "x", "scopes": ["fly"], "requests_per_minute": 600})
    assert response.status_code == 400 and not ApiToken.objects.exists()
    response = admin_client.post(
        "/tokens/", {"name": "x", "scopes": ["read"], "stamp_owner": "on", "requests_per_minute": 5}
    )
    assert "needs a default owner" in response.content.decode()
    tokens.create("taken", scopes=["read"])
    response = admin_client.post("/tokens/", {"name": "taken", "scopes": ["read"], "requests_per_minute": 5})
    assert "already exists" in response.content.decode() and ApiToken.objects.count() == 1


def test_the_tokens_pages_are_for_admins(client, bob):
    made = tokens.create("t", scopes=["read"])
    client.force_login(bob)
    assert client.get("/tokens/").status_code == 403
    assert client.get(f"/tokens/{made.token.pk}/").status_code == 403
    assert client.post(f"/tokens/{made.token.pk}/revoke/").status_code == 403
    assert ApiToken.objects.get().revoked_at is None


def test_a_token_page_counts_what_entered_through_it_and_revokes(admin_client, make_thread):
    made = tokens.create("bot", scopes=["register"])
    make_thread(source=Thread.Source.CAPTURE, api_token=made.token, kind="conversation")
    make_thread(source=Thread.Source.CAPTURE, api_token=made.token, status="deleted")
    make_thread(source=Thread.Source.API, api_token=made.token)
    make_thread(source=Thread.Source.IMPORT)
    page = admin_client.get(f"/tokens/{made.token.pk}/")
    assert (page.context["token"].captured_count, page.context["token"].registered_count) == (2, 1)
    assert page.context["token"].deleted_count == 1
    assert ("Conversation", 1) in page.context["by_kind"]
    response = admin_client.post(f"/tokens/{made.token.pk}/revoke/")
    assert response.status_code == 302
    assert tokens.authenticate(f"Bearer {made.secret}") is None
    from threads_app.models import AuditEvent

    made_event, revoked_event = AuditEvent.objects.order_by("id").filter(action__startswith="token_")
    assert (made_event.action, made_event.details["name"]) == ("token_created", "bot")
    assert (revoked_event.action, revoked_event.actor_name) == ("token_revoked", "root")
    assert made.secret not in str(made_event.details) + str(revoked_event.details)


def test_a_thread_page_says_how_it_entered(admin_client, make_thread):
    made = tokens.create("bot", scopes=["register"])
    thread = make_thread(source=Thread.Source.CAPTURE, api_token=made.token)
    content = admin_client.get(f"/threads/{thread.pk}/").content.decode()
    assert "Captured by the proxy (token" in content and f"/tokens/{made.token.pk}/" in content


def test_the_overview_counts_threads_entered_through_tokens_per_day(admin_client, make_thread):
    now = timezone.now()
    for days_ago, source in (
        (0, "capture"),
        (0, "capture"),
        (0, "api"),
        (2, "capture"),
        (20, "capture"),
        (0, "import"),
    ):
        make_thread(source=source, added_at=now - timedelta(days=days_ago))
    days = overview.captured_per_day(Thread.objects.all(), now)
    assert len(days) == overview.CAPTURE_DAYS and days[-1][1:] == (2, 1) and days[-3][1:] == (1, 0)
    assert sum(c + r for _, c, r in days) == 4
    page = admin_client.get("/overview/")
    assert [bar.value for bar in page.context["captured_bars"]][-1] == 3


def test_the_command_creates_lists_and_revokes(credential, alice):
    out, err = StringIO(), StringIO()
    options = ["--scopes", "register,read", "--credential", "alpha", "--owner", "alice"]
    call_command("api_token", "create", "cli-bot", *options, stdout=out, stderr=err)
    secret = out.getvalue().strip()
    token = tokens.authenticate(f"Bearer {secret}")
    assert token.name == "cli-bot" and token.credential == credential and token.owner == alice
    listed = StringIO()
    call_command("api_token", "list", stdout=listed)
    assert (
        "cli-bot" in listed.getvalue() and secret not in listed.getvalue() and "1 tokens" in listed.getvalue()
    )
    call_command("api_token", "revoke", "cli-bot", stdout=StringIO())
    assert tokens.authenticate(f"Bearer {secret}") is None
    with pytest.raises(CommandError, match="already revoked"):
        call_command("api_token", "revoke", "cli-bot")
    with pytest.raises(CommandError, match="No credential is named"):
        call_command("api_token", "create", "x", "--scopes", "read", "--credential", "nope")
    with pytest.raises(CommandError, match="Scopes must be some of"):
        call_command("api_token", "create", "x", "--scopes", "write")
