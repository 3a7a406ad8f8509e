"""Celery application.

The broker is Redis when REDIS_URL is set. Without it (the embedded default) tasks run in-process;
see CELERY_TASK_ALWAYS_EAGER in settings. Messages are JSON carrying primary keys only: pickle on a
reachable broker would allow remote code execution.
"""

import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "threadsite.settings")

app = Celery("threadsite")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()
