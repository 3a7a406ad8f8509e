"""The styled 403, 404 and 500 pages, and what a refusal leaves in the server log."""

import io
import logging

import pytest
from django.conf import settings as django_settings
from django.urls import reverse
from django.utils.log import configure_logging

from threads_app import views


@pytest.fixture
def member(client, bob):
    client.force_login(bob)
    return client


@pytest.fixture
def server_log(settings):
    """The log as `manage.py runserver` writes it in the demo (DEBUG on): every handler of the root and
    django loggers writes to one buffer, returned."""
    settings.DEBUG = True
    configure_logging(django_settings.LOGGING_CONFIG, django_settings.LOGGING)
    buffer = io.StringIO()
    for name in ("", "django", "django.request"):
        for handler in logging.getLogger(name).handlers:
            if isinstance(handler, logging.StreamHandler):
                handler.setStream(buffer)
    yield buffer
    settings.DEBUG = False
    configure_logging(django_settings.LOGGING_CONFIG, django_settings.LOGGING)


def test_a_refusal_is_one_line_in_the_log_without_traceback(member, server_log):
    response = member.get(reverse("credential_list"))
    assert response.status_code == 403
    log = server_log.getvalue()
    assert log.count("Forbidden (Permission denied): /credentials/") == 1, log
    assert "Traceback" not in log


def test_a_crash_is_logged_once_with_its_traceback(member, server_log, monkeypatch):
    def crash(*args, **kwargs):
        raise RuntimeError("boom")

    monkeypatch.setattr(views.overview, "summary", crash)
    member.raise_request_exception = False
    member.get(reverse("overview"))
    assert server_log.getvalue().count("Traceback") == 1


def test_the_403_page_is_styled_and_says_why(member):
    response = member.get(reverse("credential_list"))
    body = response.content.decode()
    assert response.status_code == 403
    assert '<link rel="stylesheet"' in body and 'aria-label="Main"' in body
    assert "Only admins and auditors can see credentials" in body and "data-problem" in body


def test_the_404_page_is_styled(member):
    response = member.get("/threads/987654/")
    body = response.content.decode()
    assert response.status_code == 404
    assert '<link rel="stylesheet"' in body and 'aria-label="Main"' in body
    assert "Page not found" in body


def test_the_500_page_is_styled_and_needs_nothing_that_could_have_failed(member, monkeypatch):
    def crash(*args, **kwargs):
        raise RuntimeError("the database went away")

    monkeypatch.setattr(views.overview, "summary", crash)
    member.raise_request_exception = False
    response = member.get(reverse("overview"))
    body = response.content.decode()
    assert response.status_code == 500
    assert '<link rel="stylesheet"' in body and "Something went wrong" in body
    assert "the database went away" not in body


def test_an_expired_form_is_explained_on_a_styled_page(bob):
    from django.test import Client

    client = Client(enforce_csrf_checks=True)
    client.force_login(bob)
    response = client.post(reverse("logout"))
    body = response.content.decode()
    assert response.status_code == 403
    assert '<link rel="stylesheet"' in body and "This form has expired" in body and "data-problem" in body
