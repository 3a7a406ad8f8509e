"""Filters of the server log (settings.LOGGING)."""

import logging

from django.core.exceptions import PermissionDenied
from django.http import Http404


class RefusalsWithoutTraceback(logging.Filter):
    """A 403 or 404 is an answer, not a failure: its one line ("Forbidden (Permission denied): /path")
    says all, and the traceback Django attaches to it would bury the real crashes."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.exc_info and isinstance(record.exc_info[1], PermissionDenied | Http404):
            record.exc_info = None
            record.exc_text = None
        return True
