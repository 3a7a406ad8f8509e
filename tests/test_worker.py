"""Background work on a real Celery worker process, with Redis as the broker and PostgreSQL as the
database (the integration layer; `scripts/test` provides both)."""

import pytest
from django.conf import settings as django_settings

from tests.workers import output, wait_for
from threads_app import importing, tasks
from threads_app.models import Credential, Thread

pytestmark = pytest.mark.integration


def test_a_large_import_is_checked_by_the_worker(worker, simulator, settings):
    assert not django_settings.CELERY_TASK_ALWAYS_EAGER
    simulator.state.add_key("sk-sim-worker-key-0001", "proj_alpha")
    credential = Credential(name="alpha", base_url=simulator.base_url, project_id="proj_alpha")
    credential.api_key = "sk-sim-worker-key-0001"
    credential.save()
    real = [simulator.state.create_thread("proj_alpha")["id"] for _ in range(30)]
    report = importing.import_threads("\n".join([*real, "thread_gone000001"]), credential=credential)
    assert report.added == 31

    tasks.dispatch(tasks.check_threads, credential.pk)

    wait_for(lambda: not Thread.objects.filter(last_check="").exists(), worker)
    assert Thread.objects.filter(last_check=Thread.Check.OK).count() == 30
    gone = Thread.objects.get(remote_id="thread_gone000001")
    assert (gone.last_check, gone.status) == (Thread.Check.NOT_FOUND, Thread.Status.MISSING)
    assert "threads_app.tasks.check_threads" in output(worker), "the worker, not this process, ran it"


def test_discovery_runs_on_the_worker(worker, simulator):
    simulator.state.add_key("sk-sim-worker-key-0002", "proj_alpha")
    credential = Credential(name="alpha", base_url=simulator.base_url, project_id="proj_alpha")
    credential.api_key = "sk-sim-worker-key-0002"
    credential.save()
    for n in range(5):
        simulator.state.create_chatkit_thread("proj_alpha", user=f"customer-{n}", title=f"Chat {n}")

    tasks.dispatch(tasks.discover_all)

    wait_for(lambda: Thread.objects.filter(source=Thread.Source.DISCOVERY).count() == 5, worker)
    assert set(Thread.objects.values_list("end_user", flat=True)) == {f"customer-{n}" for n in range(5)}
    assert "threads_app.tasks.discover_threads" in output(worker)
