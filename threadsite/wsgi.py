import contextlib
import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "threadsite.settings")

application = get_wsgi_application()


def _resume_background_work():
    """On the embedded default, background tasks run inside this process: deletion jobs it left
    unfinished when it last stopped go on now. (With a broker, the workers resume them.)"""
    from django.conf import settings
    from django.db import DatabaseError

    if not settings.CELERY_TASK_ALWAYS_EAGER or not settings.THREADSITE_INPROCESS_WORKERS:
        return
    from threads_app import deletion

    with contextlib.suppress(DatabaseError):  # not migrated yet: nothing to resume
        deletion.resume_unfinished()


_resume_background_work()
