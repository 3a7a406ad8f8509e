"""Hardening: sign-in limits, idle sessions, CSRF with htmx, security headers, keys encrypted at rest and
rotated, the read-only key, and no key or message content in a dump or a log line."""

import io
import logging

import pytest
import time_machine
from cryptography.fernet import Fernet
from django.core.management import call_command
from django.db import connection
from django.test import Client
from django.urls import reverse

from tests.conftest import make_user
from threads_app import deletion, sync
from threads_app.client import Client as APIClient
from threads_app.models import Credential, Thread

LOGIN = reverse("login")


@pytest.fixture
def limits(settings):
    settings.THREADSITE_SIGNIN_MAX_FAILURES = 3
    settings.THREADSITE_SIGNIN_MAX_FAILURES_PER_ADDRESS = 5
    settings.THREADSITE_SIGNIN_WINDOW_SECONDS = 900
    from django.core.cache import cache

    cache.clear()


def sign_in(client, username, password, address="10.0.0.1"):
    return client.post(LOGIN, {"username": username, "password": password}, REMOTE_ADDR=address)


def test_failed_sign_ins_are_limited_per_username(client, limits, bob):
    for _ in range(3):
        assert sign_in(client, "bob", "wrong").status_code == 200
    response = sign_in(client, "bob", "bob-password")
    assert response.status_code == 200 and "Too many failed sign-ins" in response.content.decode()
    assert "_auth_user_id" not in client.session
    # Case does not get around it; another address does not either; another account is not held up.
    assert "Too many" in sign_in(client, "BOB", "bob-password", "10.9.9.9").content.decode()
    make_user("carol", "member")
    assert sign_in(client, "carol", "carol-password").status_code == 302


def test_failed_sign_ins_are_limited_per_address(client, limits, bob):
    for n in range(5):
        sign_in(client, f"nobody{n}", "wrong")
    assert "Too many" in sign_in(client, "bob", "bob-password").content.decode()
    assert sign_in(client, "bob", "bob-password", address="10.0.0.2").status_code == 302


def test_the_limit_lifts_after_its_window(client, limits, bob):
    with time_machine.travel("2026-06-01 12:00:00Z", tick=False) as traveller:
        for _ in range(3):
            sign_in(client, "bob", "wrong")
        assert "Too many" in sign_in(client, "bob", "bob-password").content.decode()
        traveller.shift(1800)
        assert sign_in(client, "bob", "bob-password").status_code == 302


def test_an_idle_session_ends(client, settings, bob):
    settings.THREADSITE_SESSION_IDLE_MINUTES = 30
    with time_machine.travel("2026-06-01 12:00:00Z", tick=False) as traveller:
        client.force_login(bob)
        assert client.get(reverse("thread_list")).status_code == 200
        traveller.shift(29 * 60)
        assert client.get(reverse("thread_list")).status_code == 200  # activity moves the clock on
        traveller.shift(29 * 60)
        assert client.get(reverse("thread_list")).status_code == 200
        traveller.shift(31 * 60)
        response = client.get(reverse("thread_list"))
        assert response.status_code == 302 and response["Location"].startswith(LOGIN)


def test_unsafe_requests_need_the_csrf_token_which_htmx_sends_in_a_header(make_thread, bob):
    client = Client(enforce_csrf_checks=True)
    client.force_login(bob)
    thread = make_thread(owner=bob)
    page = client.get(reverse("thread_detail", args=[thread.pk])).content.decode()
    token = client.cookies["csrftoken"].value
    assert 'hx-headers=\'{"x-csrftoken": "' in page
    url = reverse("thread_edit", args=[thread.pk])
    headers = {"HX-Request": "true"}
    assert client.post(url, {"title": "x"}, headers=headers).status_code == 403
    thread.refresh_from_db()
    assert thread.title == ""
    # What htmx sends: the token of the page's hx-headers, in X-CSRFToken.
    form_token = page.split('hx-headers=\'{"x-csrftoken": "')[1].split('"')[0]
    response = client.post(url, {"title": "x"}, headers={**headers, "X-CSRFToken": form_token})
    assert response.status_code == 200 and token


def test_every_page_sends_the_security_headers(client, bob):
    client.force_login(bob)
    for url in (reverse("thread_list"), LOGIN):
        response = client.get(url)
        policy = response["Content-Security-Policy"]
        assert "script-src 'self'" in policy and "style-src 'self'" in policy
        assert "unsafe-inline" not in policy and "frame-ancestors 'none'" in policy
        assert response["X-Frame-Options"] == "DENY"
        assert response["Referrer-Policy"] == "same-origin"


def test_no_template_holds_an_inline_script_or_style(settings):
    from pathlib import Path

    roots = [Path(settings.BASE_DIR) / "templates", Path(settings.BASE_DIR) / "threads_app" / "templates"]
    for root in roots:
        for path in root.rglob("*.html"):
            text = path.read_text()
            assert "<style" not in text and ' style="' not in text, path
            for chunk in text.split("<script")[1:]:
                assert chunk.split(">")[0].strip().startswith("src="), path


# --- Keys at rest ---------------------------------------------------------------------------------------

MAIN_KEY = "sk-test-main-key-Zq81"
READ_KEY = "sk-test-read-key-Wy55"


@pytest.fixture
def keyed(db):
    credential = Credential(name="keyed", base_url="http://127.0.0.1:9/v1")
    credential.api_key = MAIN_KEY
    credential.read_key = READ_KEY
    credential.save()
    return credential


def test_a_dump_of_the_database_holds_no_plaintext_key(keyed):
    out = io.StringIO()
    call_command("dumpdata", stdout=out)
    dump = out.getvalue()
    assert keyed.api_key_encrypted in dump
    # The raw rows of every table, as the database holds them (on PostgreSQL in CI, SQLite here).
    raw = []
    with connection.cursor() as cursor:
        for table in connection.introspection.table_names():
            cursor.execute(f"SELECT * FROM {connection.ops.quote_name(table)}")  # noqa: S608 (table names)
            raw.append(repr(cursor.fetchall()))
    for secret in (MAIN_KEY, READ_KEY, MAIN_KEY[3:], READ_KEY[3:]):
        assert secret not in dump and secret not in "".join(raw)


def test_keys_rotate_to_a_new_encryption_key(keyed, settings):
    old, new = Fernet.generate_key().decode(), Fernet.generate_key().decode()
    settings.ENCRYPTION_KEYS = [old]
    keyed.api_key, keyed.read_key = MAIN_KEY, READ_KEY
    keyed.save()
    settings.ENCRYPTION_KEYS = [new, old]
    out = io.StringIO()
    call_command("rotate_keys", stdout=out)
    assert "Rotated 2 stored keys" in out.getvalue()
    settings.ENCRYPTION_KEYS = [new]
    keyed.refresh_from_db()
    assert (keyed.api_key, keyed.read_key) == (MAIN_KEY, READ_KEY)


def test_rotation_without_the_old_key_changes_nothing(keyed, settings):
    from django.core.management.base import CommandError

    before = Credential.objects.values_list("api_key_encrypted", flat=True).get()
    settings.ENCRYPTION_KEYS = [Fernet.generate_key().decode()]
    with pytest.raises(CommandError, match="Nothing was changed"):
        call_command("rotate_keys", stdout=io.StringIO())
    assert Credential.objects.values_list("api_key_encrypted", flat=True).get() == before


def test_the_read_only_key_browses_and_the_main_key_deletes(keyed):
    assert APIClient.for_credential(keyed)._auth.api_key == READ_KEY
    assert sync.web_client(keyed)._auth.api_key == READ_KEY
    assert sync.web_client(keyed, write=True)._auth.api_key == MAIN_KEY
    keyed.read_key = ""
    assert APIClient.for_credential(keyed)._auth.api_key == MAIN_KEY


def test_a_deletion_and_a_metadata_edit_use_the_main_key_and_reading_the_read_key(
    simulator, sim_credential, sim_key, alice, caplog
):
    read_key = simulator.add_key("sk-sim-readonly-0042", "proj_alpha")
    sim_credential.read_key = read_key
    sim_credential.save()
    used = []
    key_for = simulator.state.key_for
    simulator.state.key_for = lambda api_key: used.append(api_key) or key_for(api_key)
    remote = simulator.state.create_thread("proj_alpha", messages=[("user", "a secret recipe for scones")])
    thread = Thread.objects.create(
        remote_id=remote["id"], kind=Thread.Kind.ASSISTANTS, credential=sim_credential
    )
    caplog.set_level(logging.DEBUG)
    assert sync.read_messages(thread, None, by=alice).error == ""
    assert set(used) == {read_key}
    used.clear()
    assert sync.update_metadata(thread, {"topic": "baking"}) is None
    assert deletion.delete_thread(thread, by=alice).state == "deleted"
    assert set(used) == {sim_key("proj_alpha")}
    # No key and no message content in any log line.
    for secret in (read_key, sim_key("proj_alpha"), "secret recipe"):
        assert secret not in caplog.text
