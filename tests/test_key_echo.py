"""A server that quotes the API key back in its answers (2xx or error, not JSON) never gets the key onto a
page, into a database row or into a log line: every path that builds a message from an answer is run."""

import io
import logging

import pytest
from django.core.management import call_command
from django.db import connection
from django.urls import reverse

from tests.hostile import echo_authorization
from threads_app import deletion, sync
from threads_app.models import Credential, Thread

KEY = "sk-echoed-secret-key-0123456789"
pytestmark = pytest.mark.usefixtures("no_retries")


def every_text_in_the_database() -> str:
    texts = []
    with connection.cursor() as cursor:
        for table in connection.introspection.table_names():
            cursor.execute(f"SELECT * FROM {connection.ops.quote_name(table)}")  # noqa: S608 (names only)
            texts.extend(str(row) for row in cursor.fetchall())
    return "\n".join(texts)


@pytest.mark.parametrize("status", [200, 500, 401])
def test_an_echoed_key_reaches_no_page_row_or_log(admin_client, hostile, status, caplog, monkeypatch):
    caplog.set_level(logging.DEBUG)
    monkeypatch.setattr(deletion, "backoff", lambda attempt: 0.0)  # the job's retries come due at once
    api = hostile(echo_authorization(status))
    credential = Credential(name="echo", base_url=api.base_url, project_id="proj_e")
    credential.api_key = KEY
    credential.save()
    thread = Thread.objects.create(
        remote_id="thread_echoed000001", kind="assistants_thread", credential=credential
    )
    pages = []

    sync.verify_credential(credential)
    pages.append(admin_client.get(reverse("credential_list")).content)
    pages.append(
        admin_client.post(
            reverse("thread_add"),
            {"remote_id": "thread_echoed000002", "credential": credential.pk},
            follow=True,
        ).content
    )
    pages.append(
        admin_client.post(
            reverse("thread_import"),
            {"credential": credential.pk, "text": "thread_echoed000003"},
            follow=True,
        ).content
    )
    for name in ("thread_messages", "thread_detail"):
        pages.append(
            admin_client.get(
                reverse(name, args=[thread.pk]), {"show": "messages"}, headers={"HX-Request": "true"}
            ).content
        )
    pages.append(
        admin_client.post(reverse("thread_refresh", args=[thread.pk]), headers={"HX-Request": "true"}).content
    )
    pages.append(
        admin_client.post(
            reverse("thread_metadata", args=[thread.pk]), {"key_0": "a", "value_0": "b"}
        ).content
    )
    pages.append(admin_client.get(reverse("thread_export", args=[thread.pk, "json"]), follow=True).content)
    pages.append(admin_client.post(reverse("thread_delete", args=[thread.pk]), follow=True).content)
    pages.append(admin_client.get(reverse("thread_detail", args=[thread.pk])).content)
    job = deletion.create_job(Thread.objects.filter(pk=thread.pk), summary="echo", start=False)
    if job.total:
        deletion.run_job(job.pk)
        pages.append("".join(deletion.receipt_csv(job)).encode())
    out = io.StringIO()
    call_command("sweep_threads", stdout=out, stderr=out)
    pages.append(out.getvalue().encode())

    assert api.answered > 5, "the echoing server was asked"
    assert all(KEY.encode() not in page for page in pages)
    assert KEY not in every_text_in_the_database()
    assert KEY not in caplog.text
