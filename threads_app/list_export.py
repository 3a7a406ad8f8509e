"""The thread list as CSV: every thread the list's filters match, streamed row by row.

Rows are read in chunks by keyset on the primary key (`id > last` in id order, the primary key's index),
so a million rows cost a thousand short queries rather than one result held in memory or an OFFSET that
grows with each chunk; nothing is held beyond one chunk. The credential is named, never its key.
"""

import csv

CHUNK = 2000
COLUMNS = [
    ("id", "remote_id"),
    ("kind", "kind"),
    ("title", "title"),
    ("end_user", "end_user"),
    ("owner", "owner__username"),
    ("credential", "credential__name"),
    ("project", "credential__project_id"),
    ("status", "status"),
    ("messages", "message_count"),
    ("created_at", "remote_created_at"),
    ("last_activity_at", "last_activity_at"),
    ("added_at", "added_at"),
    ("pinned", "pinned"),
]
# A cell starting with one of these is read as a formula by spreadsheets: titles and end users come from
# people and from the API, so such a cell is prefixed with an apostrophe (OWASP's CSV injection advice).
FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


class _Echo:
    """A file whose write() returns what it is given, so that csv.writer yields lines to stream."""

    def write(self, value):
        return value


def cell(value) -> str:
    if value is None:
        return ""
    if hasattr(value, "isoformat"):
        return value.isoformat()
    text = str(value)
    return "'" + text if text.startswith(FORMULA_START) else text


def rows(threads, chunk: int = CHUNK):
    """The CSV lines (header first) of the queryset `threads`, in order of registration."""
    writer = csv.writer(_Echo())
    yield writer.writerow([name for name, _ in COLUMNS])
    fields = [field for _, field in COLUMNS]
    threads = threads.order_by("pk")
    last = 0
    while True:
        batch = list(threads.filter(pk__gt=last).values_list("pk", *fields)[:chunk])
        # One piece per chunk, not per row: each piece the server sends costs more than a row's CSV.
        yield "".join(writer.writerow([cell(value) for value in row[1:]]) for row in batch)
        if len(batch) < chunk:
            return
        last = batch[-1][0]
