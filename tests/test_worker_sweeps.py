"""Sweeps on real Celery processes: two beats started at once, workers, PostgreSQL and Redis."""

from datetime import timedelta

import pytest
from django.utils import timezone

from tests.workers import output, wait_for
from threads_app import retention
from threads_app.models import Credential, DeletionItem, RetentionPolicy, SweepRun, Thread

pytestmark = pytest.mark.integration

EVERY_ROW_OFF = {
    "THREADSITE_RESUME_JOBS_CRON": "disable",
    "THREADSITE_EXPIRY_CRON": "disable",
    "THREADSITE_SYNC_CRON": "disable",
}


def test_two_beats_started_at_once_sweep_each_row_once(start_celery, simulator, transactional_db):
    simulator.state.add_key("sk-sim-beat-test-0001", "proj_alpha")
    credential = Credential(name="alpha", base_url=simulator.base_url, project_id="proj_alpha")
    credential.api_key = "sk-sim-beat-test-0001"
    credential.save()
    policy = retention.set_policy(credential, mode=retention.Mode.DELETE, window_days=60)
    RetentionPolicy.objects.filter(pk=policy.pk).update(confirmed_at=timezone.now())
    old = timezone.now() - timedelta(days=90)
    for _ in range(60):
        remote_id = simulator.state.create_conversation("proj_alpha", created_at=old, items=[("user", "x")])[
            "id"
        ]
        Thread.objects.create(
            remote_id=remote_id, kind="conversation", credential=credential, last_activity_at=old
        )
    env = {**EVERY_ROW_OFF, "THREADSITE_RETENTION_CRON": "every 1 second"}
    workers = [start_celery("worker", name, **env) for name in ("w1", "w2")]
    beats = [start_celery("beat", name, **env) for name in ("b1", "b2")]

    wait_for(
        lambda: (
            Thread.objects.filter(status=Thread.Status.DELETED).count() == 60
            and SweepRun.objects.filter(finished_at__isnull=False).count() >= 4
        ),
        *workers,
        *beats,
        timeout=90,
    )

    # Every thread was taken by exactly one job, and deleted by exactly one DELETE.
    assert DeletionItem.objects.count() == 60
    assert DeletionItem.objects.values("thread").distinct().count() == 60
    conversation_deletes = [
        path
        for method, path, status in simulator.state.request_log
        if method == "DELETE" and "/items/" not in path
    ]
    assert len(conversation_deletes) == len(set(conversation_deletes)) == 60
    runs = list(SweepRun.objects.order_by("started_at"))
    for earlier, later in zip(runs, runs[1:], strict=False):
        assert earlier.finished_at is None or earlier.finished_at <= later.started_at, "never two at once"
    beat_logs = [output(beat) for beat in beats]
    assert all("Scheduler: Sending due task Apply retention policies" in log for log in beat_logs)
