"""The product against the simulator's hostile fault modes (threads_app/simulator/hostile.py): every page
ends within its deadline or its caps, reads at most its limit, never shows the key and stores no malformed
ID. tests/test_client_hostile.py meets the same answers below HTTP, from a raw socket server."""

import logging
import time

import pytest
from django.urls import reverse

from threads_app import kinds, sync
from threads_app.entries import follow_pages
from threads_app.models import Thread

pytestmark = pytest.mark.usefixtures("no_retries")
DEADLINE = 1


@pytest.fixture
def thread(sim_credential):
    return Thread.objects.create(
        remote_id="thread_hostile000001", kind=Thread.Kind.ASSISTANTS, credential=sim_credential
    )


def messages_page(client, thread) -> str:
    answer = client.get(reverse("thread_messages", args=[thread.pk]), headers={"HX-Request": "true"})
    assert answer.status_code == 200
    return answer.content.decode()


def export(client, thread) -> str:
    return client.get(reverse("thread_export", args=[thread.pk, "json"]), follow=True).content.decode()


@pytest.mark.parametrize("fault", ["slow_body", "no_headers"])
def test_a_thread_page_ends_at_its_deadline(admin_client, simulator, thread, settings, fault):
    settings.OPENAI_WEB_DEADLINE = DEADLINE
    simulator.state.enqueue_faults(fault)

    page = messages_page(admin_client, thread)

    assert f"did not answer within {DEADLINE} s" in page
    assert simulator.state.request_log[0].status == (200 if fault == "slow_body" else None)


def test_a_dripped_page_ends_at_the_deadline_even_on_a_closing_connection(
    admin_client, simulator, thread, settings
):
    settings.OPENAI_WEB_DEADLINE = DEADLINE
    simulator.state.enqueue_faults("slow_body")  # its answer says "Connection: close"
    started = time.monotonic()
    messages_page(admin_client, thread)
    assert time.monotonic() - started < DEADLINE + 0.5


def test_the_export_of_an_endless_thread_stops_at_the_cap(admin_client, simulator, thread, monkeypatch):
    # The real caps (1,000 pages of 100) hold too, in seconds more; a cap of 20 pages shows the same end.
    monkeypatch.setattr(
        kinds, "follow_pages", lambda fetch, **caps: follow_pages(fetch, max_pages=20, **caps)
    )
    simulator.state.enqueue_faults("endless_list")

    page = export(admin_client, thread)

    assert "Export failed." in page and "still listing after 20 pages (2,000 entries)" in page
    assert len(simulator.state.request_log) == 20


def test_a_huge_answer_is_refused_with_a_clear_message(admin_client, simulator, thread):
    simulator.state.enqueue_faults("huge_body")

    page = messages_page(admin_client, thread)

    assert "larger than 20,971,520 bytes" in page


def test_an_echoed_key_never_reaches_a_page_or_the_log(admin_client, simulator, thread, sim_key, caplog):
    caplog.set_level(logging.DEBUG)
    key = sim_key("proj_alpha")
    simulator.state.enqueue_faults("echo_key", "echo_key")

    pages = [messages_page(admin_client, thread), export(admin_client, thread)]

    assert [entry.status for entry in simulator.state.request_log] == [200, 200]
    for page in pages:
        assert key not in page
        assert key[-4:] in page  # masked, not silently dropped
    assert key not in caplog.text


def test_discovery_stores_only_the_valid_id_of_a_list_full_of_bad_ones(simulator, sim_credential):
    good = simulator.state.create_chatkit_thread("proj_alpha", user="customer", title="Good")
    simulator.state.enqueue_faults("bad_ids")

    report = sync.discover(sim_credential)

    assert (report.seen, report.added) == (6, 1)
    stored = Thread.objects.get()
    assert stored.remote_id == good["id"]
    assert len(stored.metadata) == 16 and all(len(value) <= 512 for value in stored.metadata.values())
