"""Reading a file of IDs named on a command line (or - for standard input), for the commands that take one."""

import sys
from pathlib import Path

from django.conf import settings
from django.core.management.base import CommandError

from threads_app import importing


def read_text(file: str) -> str:
    """The text of `file` (or of standard input for -), UTF-8, within THREADSITE_IMPORT_MAX_BYTES."""
    try:
        data = sys.stdin.buffer.read() if file == "-" else Path(file).read_bytes()
    except OSError as exc:
        raise CommandError(f"Cannot read {file}: {exc.strerror}") from None
    if len(data) > settings.IMPORT_MAX_BYTES:
        raise CommandError(
            f"{file} is larger than THREADSITE_IMPORT_MAX_BYTES ({settings.IMPORT_MAX_BYTES})."
        )
    try:
        return importing.decode(data)
    except importing.ImportRefused as exc:
        raise CommandError(exc.errors[0]) from None
