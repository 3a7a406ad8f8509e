"""Getting threads into the registry: by hand, or many at once from text, CSV or JSON Lines.

The page, the `import_threads` command and the tests all call `import_threads()`. Parsing is separate from
registering so that a bad input is refused whole before anything is written.

Accepted input, detected line by line:
- free text (log lines, notes, a list of IDs): every ID-shaped token is picked out of it;
- CSV with a header row naming an ID column (`id`, `thread_id`, `conversation_id`, `remote_id`), and optional
  `title`, `owner`, `end_user` (or `user`) and `metadata` (a JSON object) columns;
- JSON Lines: one object a line with an ID field like the CSV's and the same optional fields.
"""

import csv
import json
from dataclasses import asdict, dataclass, field

from django.contrib.auth import get_user_model
from django.db import IntegrityError, connection, transaction
from django.utils import timezone

from . import audit, ids
from .metadata import InvalidMetadata
from .metadata import validate as validate_metadata
from .models import Credential, Thread

ID_FIELDS = ("id", "thread_id", "conversation_id", "remote_id")
SAMPLE_SIZE = 20
# Rows are looked up and written in batches: SQLite allows at most 32766 bound parameters, and 1000-row
# INSERTs are where both backends stop getting faster.
BATCH = 1000


class ImportRefused(ValueError):
    """The input as a whole cannot be imported; nothing was written. `errors` lists every reason."""

    def __init__(self, errors):
        self.errors = list(errors)
        super().__init__("; ".join(self.errors[:5]))


@dataclass
class Row:
    remote_id: str
    kind: str
    line: int
    title: str = ""
    owner: str = ""
    end_user: str = ""
    metadata: dict = field(default_factory=dict)


@dataclass
class Parsed:
    rows: dict = field(default_factory=dict)  # remote_id -> Row, first occurrence wins
    duplicates: list = field(default_factory=list)  # remote IDs repeated in the input
    refused: list = field(default_factory=list)  # (line, message) for IDs of other objects
    errors: list = field(default_factory=list)  # problems that refuse the whole input


@dataclass
class ImportReport:
    added: int = 0
    added_sample: list = field(default_factory=list)
    already_tracked: int = 0
    already_tracked_sample: list = field(default_factory=list)
    tracked_elsewhere: list = field(default_factory=list)  # (remote_id, credential name)
    duplicates: int = 0
    duplicates_sample: list = field(default_factory=list)
    refused: list = field(default_factory=list)  # (line, message), at most SAMPLE_SIZE
    refused_count: int = 0
    # Imports that find each ID's credential: how many went under each, and those none found.
    located: dict = field(default_factory=dict)
    unfound: int = 0
    unfound_sample: list = field(default_factory=list)  # (remote_id, what was tried)

    def summary(self) -> str:
        parts = [f"{self.added} added", f"{self.already_tracked} already tracked"]
        if self.tracked_elsewhere:
            parts.append(f"{len(self.tracked_elsewhere)} tracked under another credential")
        parts.append(f"{self.duplicates} duplicates in the input")
        parts.append(f"{self.refused_count} refused")
        if self.located or self.unfound:
            placed = ", ".join(f"{n} under {name}" for name, n in sorted(self.located.items()))
            parts.append(f"found {placed or 'none'}; {self.unfound} not found under any credential")
        return ", ".join(parts)


def decode(data: bytes) -> str:
    """Uploaded bytes as text: UTF-8 (with or without BOM), else a clear refusal."""
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise ImportRefused([f"The file is not UTF-8 text (byte {exc.start} cannot be read)."]) from None


def parse(text: str) -> Parsed:
    parsed = Parsed()
    if "\x00" in text:
        parsed.errors.append("The input contains NUL bytes: it looks like a binary file, not text.")
        return parsed
    lines = text.splitlines()
    header = _csv_header(lines)
    if header is not None:
        _parse_csv(lines, header, parsed)
    else:
        for number, line in enumerate(lines, start=1):
            stripped = line.strip()
            if stripped.startswith("{") and stripped.endswith("}"):
                record = _json_record(stripped)
                if record is not None:
                    _add_record(parsed, record, number)
                    continue
            _scan(parsed, line, number)
    if not parsed.rows and not parsed.errors:
        if parsed.refused:
            parsed.errors.append("The input holds no thread IDs, only IDs of other objects (listed below).")
        else:
            parsed.errors.append(f"The input holds no thread IDs. {ids.ACCEPTED_HELP}")
    return parsed


def _csv_header(lines):
    first = next((line for line in lines if line.strip()), "")
    if "," not in first and "\t" not in first and ";" not in first:
        return None
    # The header row alone decides the delimiter; quoting follows the CSV standard (RFC 4180).
    delimiter = max(",;\t", key=first.count)
    try:
        names = [name.strip().lower() for name in next(csv.reader([first], delimiter=delimiter))]
    except csv.Error:  # a field past the csv module's limit: not a header row
        return None
    if not any(name in ID_FIELDS for name in names):
        return None
    return names, delimiter


def _parse_csv(lines, header, parsed):
    names, delimiter = header
    start = next(i for i, line in enumerate(lines) if line.strip())
    reader = csv.reader(lines[start + 1 :], delimiter=delimiter)
    for offset, values in enumerate(_rows(reader, parsed, start)):
        number = start + 2 + offset
        if not any(value.strip() for value in values):
            continue
        record = dict(zip(names, (value.strip() for value in values), strict=False))
        if "metadata" in record and record["metadata"]:
            try:
                record["metadata"] = json.loads(record["metadata"])
            except (json.JSONDecodeError, RecursionError):
                parsed.errors.append(f"Line {number}: the metadata column is not a JSON object.")
                continue
        _add_record(parsed, record, number)


def _rows(reader, parsed, start):
    """The reader's rows, until one it cannot read (a field past the csv module's limit): that refuses
    the input with the line's number."""
    while True:
        try:
            yield next(reader)
        except StopIteration:
            return
        except csv.Error as error:
            parsed.errors.append(f"Line {start + 1 + reader.line_num}: {error}.")
            return


def _json_record(text):
    try:
        record = json.loads(text)
    except (json.JSONDecodeError, RecursionError):  # not JSON, or nested past Python's limit
        return None
    if not isinstance(record, dict) or not any(isinstance(record.get(f), str) for f in ID_FIELDS):
        return None
    return record


def _add_record(parsed, record, number):
    remote_id = next(str(record[f]).strip() for f in ID_FIELDS if record.get(f))
    try:
        kind = ids.kind_of(remote_id)
    except ids.InvalidId as exc:
        parsed.refused.append((number, str(exc)))
        return
    metadata = record.get("metadata") or {}
    try:
        validate_metadata(metadata)
    except InvalidMetadata as exc:
        parsed.errors.append(f"Line {number} ({remote_id}): {exc}")
        return
    row = Row(
        remote_id=remote_id,
        kind=kind,
        line=number,
        title=_text(record.get("title"), 300),
        owner=_text(record.get("owner"), 150),
        end_user=_text(record.get("end_user") or record.get("user"), 200),
        metadata=metadata,
    )
    _keep(parsed, row)


def _text(value, limit):
    return str(value).strip()[:limit] if value is not None else ""


def _scan(parsed, line, number):
    for remote_id, kind, refusal in ids.find_ids(line):
        if refusal:
            parsed.refused.append((number, refusal))
        else:
            _keep(parsed, Row(remote_id=remote_id, kind=kind, line=number))


def _keep(parsed, row):
    if row.remote_id in parsed.rows:
        parsed.duplicates.append(row.remote_id)
    else:
        parsed.rows[row.remote_id] = row


def import_threads(
    text: str,
    *,
    credential: Credential | None,
    owner=None,
    added_by=None,
    source: str = Thread.Source.IMPORT,
    progress=None,
    usable=None,
) -> ImportReport:
    """Register every thread ID found in `text` under `credential`. Refuses the whole input (ImportRefused)
    when it has no IDs or a row is invalid; otherwise adds the new IDs and reports the rest.
    `progress(done, total)` is called as rows are looked up and written.

    With `credential=None`, each new ID is filed under the credential that finds it, among `usable` (the
    credentials the person importing may use; `locating`); those none finds are kept apart (UnfoundId)."""
    parsed = parse(text)
    owners = _resolve_owners(parsed)
    if parsed.errors:
        raise ImportRefused(parsed.errors + [message for _, message in parsed.refused[:SAMPLE_SIZE]])

    report = ImportReport(
        duplicates=len(parsed.duplicates),
        duplicates_sample=parsed.duplicates[:SAMPLE_SIZE],
        refused=parsed.refused[:SAMPLE_SIZE],
        refused_count=len(parsed.refused),
    )
    remote_ids = list(parsed.rows)
    existing = {}
    for start in range(0, len(remote_ids), BATCH):
        chunk = remote_ids[start : start + BATCH]
        existing.update(
            Thread.objects.filter(remote_id__in=chunk).values_list("remote_id", "credential__name")
        )
        if progress is not None:
            progress((start + len(chunk)) // 2, len(remote_ids))
    for remote_id, credential_name in existing.items():
        if credential is None or credential_name == credential.name:
            report.already_tracked += 1
            if len(report.already_tracked_sample) < SAMPLE_SIZE:
                report.already_tracked_sample.append(remote_id)
        elif len(report.tracked_elsewhere) < SAMPLE_SIZE:
            report.tracked_elsewhere.append((remote_id, credential_name))
    new = [row for row in parsed.rows.values() if row.remote_id not in existing]
    template = Thread(owner=owner, source=source, added_by=added_by, added_at=timezone.now())
    if credential is not None:
        template.credential = credential
        insert_rows(template, new, owners)
    else:
        new = _insert_where_found(template, new, owners, usable, report)
    if progress is not None:
        progress(len(remote_ids), len(remote_ids))
    report.added = len(new)
    report.added_sample = [row.remote_id for row in new[:SAMPLE_SIZE]]
    audit.record(
        audit.Action.THREADS_IMPORTED,
        actor=added_by,
        credential=credential.name if credential is not None else "(each ID's own)",
        owner=owner.get_username() if owner is not None else "",
        added=report.added,
        already_tracked=report.already_tracked,
        tracked_elsewhere=len(report.tracked_elsewhere),
        duplicates=report.duplicates,
        refused=report.refused_count,
        located=report.located,
        unfound=report.unfound,
    )
    return report


def _insert_where_found(template: Thread, rows: list[Row], owners: dict, usable, report) -> list[Row]:
    """Find the credential of each row (`locating`), insert the found rows under theirs and keep the
    others apart; returns the rows inserted."""
    from . import locating, sync

    order = locating.candidates(usable if usable is not None else Credential.objects.all())
    searches = locating.locate([locating.Search(row.remote_id, row.kind, order=list(order)) for row in rows])
    found_by_credential: dict = {}
    for row, search in zip(rows, searches, strict=True):
        if search.found is not None:
            found_by_credential.setdefault(search.found, []).append((row, search))
    inserted = []
    template.last_check = Thread.Check.OK  # each was just found by a retrieve
    for found, pairs in found_by_credential.items():
        template.credential = found
        insert_rows(template, [row for row, _ in pairs], owners)
        inserted += [row for row, _ in pairs]
        report.located[found.name] = len(pairs)
        threads = {
            t.remote_id: t for t in Thread.objects.filter(remote_id__in=[r.remote_id for r, _ in pairs])
        }
        for row, search in pairs:
            sync.record_remote(threads[row.remote_id], search.remote)
    report.unfound = locating.record_unfound(searches, added_by=template.added_by)
    report.unfound_sample = [(s.remote_id, s.summary) for s in searches if s.found is None][:SAMPLE_SIZE]
    return inserted


def insert_rows(template: Thread, rows: list[Row], owners: dict) -> None:
    """INSERT the rows, skipping any remote ID that another import added meanwhile. The columns that differ
    from row to row come from the rows; every other one takes the template thread's value.

    Not bulk_create(): building a model instance and compiling SQL for each of 100,000 rows costs the ORM
    about 15 s. The column values still come from the model's fields, so a new field with a default needs
    no change here. PostgreSQL gets the rows through COPY into a temporary table (COPY cannot skip
    conflicts itself); SQLite through one prepared statement executed for each row.
    """
    fields = [field for field in Thread._meta.concrete_fields if not field.primary_key]
    prepared = {
        field.attname: field.get_db_prep_save(field.pre_save(template, add=True), connection)
        for field in fields
    }
    metadata_field = Thread._meta.get_field("metadata")
    empty_metadata = prepared["metadata"]
    default_owner = prepared["owner_id"]

    def values():
        for row in rows:
            owner = owners.get(row.owner)
            prepared.update(
                remote_id=row.remote_id,
                kind=row.kind,
                owner_id=owner.pk if owner else default_owner,
                title=row.title,
                end_user=row.end_user,
                metadata=metadata_field.get_db_prep_save(row.metadata, connection)
                if row.metadata
                else empty_metadata,
            )
            yield [prepared[field.attname] for field in fields]

    # Only the model's own table and column names go into the SQL text; every value is a parameter.
    quote = connection.ops.quote_name
    table = quote(Thread._meta.db_table)
    columns = ", ".join(quote(field.column) for field in fields)
    with transaction.atomic(), connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            create = f"CREATE TEMPORARY TABLE import_rows AS SELECT {columns} FROM {table} WITH NO DATA"  # noqa: S608
            cursor.execute(create)
            with cursor.copy(f"COPY import_rows ({columns}) FROM STDIN") as copy:
                for row in values():
                    copy.write_row(row)
            insert = f"INSERT INTO {table} ({columns}) SELECT {columns} FROM import_rows"  # noqa: S608
            cursor.execute(insert + " ON CONFLICT (remote_id) DO NOTHING")
            cursor.execute("DROP TABLE import_rows")
        else:
            placeholders = ", ".join(["%s"] * len(fields))
            insert = f"INSERT INTO {table} ({columns}) VALUES ({placeholders})"  # noqa: S608
            cursor.executemany(insert + " ON CONFLICT (remote_id) DO NOTHING", values())


def _resolve_owners(parsed) -> dict:
    names = {row.owner for row in parsed.rows.values() if row.owner}
    if not names:
        return {}
    users = {user.get_username(): user for user in get_user_model().objects.filter(username__in=names)}
    for name in sorted(names - users.keys()):
        lines = [str(row.line) for row in parsed.rows.values() if row.owner == name][:5]
        parsed.errors.append(
            f"Unknown owner “{name}” (line {', '.join(lines)}): no team member has that name."
        )
    return users


class AlreadyTracked(ValueError):
    def __init__(self, thread):
        self.thread = thread
        super().__init__(f"{thread.remote_id} is already tracked (credential {thread.credential.name}).")


class NotFoundAnywhere(ValueError):
    """No credential that may be used finds the ID."""


def add_thread(
    remote_id: str,
    *,
    credential: Credential | None,
    owner=None,
    title="",
    end_user="",
    added_by=None,
    usable=None,
) -> Thread:
    """Register one thread by hand. Raises ids.InvalidId or AlreadyTracked, writing nothing. With
    `credential=None`, the credentials of `usable` are asked in turn (`locating`) and the thread goes under
    the first that finds it; NotFoundAnywhere (and the ID kept apart) if none does."""
    remote_id = remote_id.strip()
    kind = ids.kind_of(remote_id)
    existing = Thread.objects.select_related("credential").filter(remote_id=remote_id).first()
    if existing is not None:
        raise AlreadyTracked(existing)
    if credential is None:
        from . import locating

        order = locating.candidates(usable if usable is not None else Credential.objects.all())
        [search] = locating.locate([locating.Search(remote_id, kind, order=list(order))])
        locating.record_unfound([search], added_by=added_by)
        if search.found is None:
            raise NotFoundAnywhere(f"No credential finds {remote_id}: {search.summary}.")
        credential = search.found
    try:
        with transaction.atomic():
            thread = Thread.objects.create(
                remote_id=remote_id,
                kind=kind,
                credential=credential,
                owner=owner,
                title=title,
                end_user=end_user,
                source=Thread.Source.MANUAL,
                added_by=added_by,
            )
            audit.record(
                audit.Action.THREAD_ADDED,
                actor=added_by,
                obj=thread,
                credential=credential.name,
                owner=owner.get_username() if owner is not None else "",
            )
            return thread
    except IntegrityError:
        # Someone added it between the lookup and the insert.
        raise AlreadyTracked(Thread.objects.select_related("credential").get(remote_id=remote_id)) from None


class ForgetRefused(ValueError):
    """Only a thread that is no longer active may leave the registry."""


def forget_thread(thread: Thread, *, by=None) -> str:
    """Remove a thread that is no longer active (deleted, missing, expired) from the registry, and return
    its ID. The API is not asked; the status history and deletion receipts keep its ID. An active thread
    is refused (ForgetRefused): what the API still holds never drops out of sight unnoticed. The
    conditional DELETE also refuses a thread that became active again meanwhile."""
    deleted, _ = Thread.objects.filter(pk=thread.pk).exclude(status=Thread.Status.ACTIVE).delete()
    if not deleted:
        raise ForgetRefused(
            f"{thread.remote_id} is active: delete it, or mark it missing, "
            "before removing it from the registry."
        )
    return thread.remote_id


# --- Large imports, in the background ----------------------------------------------------------------


def progress_key(run_id: int) -> str:
    return f"threadsite:import-progress:{run_id}"


def belongs_in_background(text: str, *, auto: bool) -> bool:
    """Whether an import is too large to do while a page waits: past THREADSITE_IMPORT_INLINE_BYTES, or,
    when each ID's credential is to be found (a request per ID and credential), past
    THREADSITE_IMPORT_INLINE_CHECK_LIMIT IDs."""
    from django.conf import settings

    if len(text) > settings.IMPORT_INLINE_BYTES:
        return True
    return auto and len(parse(text).rows) > settings.IMPORT_INLINE_CHECK_LIMIT


def start_run(text: str, *, credential: Credential | None, owner=None, added_by=None):
    """Keep a large input for a background task to import (`run_import`), and start it. Without a
    credential, each ID goes under the credential that finds it."""
    from . import tasks  # tasks imports this module
    from .models import ImportRun

    with transaction.atomic():
        run = ImportRun.objects.create(
            credential=credential,
            auto=credential is None,
            owner=owner,
            added_by=added_by,
            text=text,
            size=len(text.encode()),
        )
        tasks.dispatch(tasks.run_import, run.pk)
    return run


def run_import(run_id: int):
    """Import a kept input: what the background task does. Its progress goes to the cache (the rows are
    written in one transaction, which no progress row could be seen through), its report to the run."""
    from django.core.cache import cache

    from .models import ImportRun

    started = ImportRun.objects.filter(pk=run_id, state=ImportRun.State.QUEUED).update(
        state=ImportRun.State.RUNNING
    )
    run = ImportRun.objects.select_related("credential", "owner", "added_by").filter(pk=run_id).first()
    if not started or run is None or (run.credential is None and not run.auto):
        return run
    from .permissions import usable_credentials

    def progress(done, total):
        cache.set(progress_key(run.pk), (done, total), timeout=3600)

    try:
        report = import_threads(
            run.text,
            credential=run.credential,
            owner=run.owner,
            added_by=run.added_by,
            progress=progress,
            usable=usable_credentials(run.added_by),
        )
    except ImportRefused as refused:
        values = {"state": ImportRun.State.FAILED, "errors": refused.errors[:50]}
    else:
        values = {"state": ImportRun.State.FINISHED, "report": asdict(report)}
        values["done"] = values["total"] = (
            report.added + report.already_tracked + len(report.tracked_elsewhere)
        )
    ImportRun.objects.filter(pk=run.pk).update(text="", finished_at=timezone.now(), **values)
    cache.delete(progress_key(run.pk))
    run.refresh_from_db()
    if run.state == ImportRun.State.FINISHED and run.report.get("added") and run.credential_id:
        from . import tasks

        tasks.dispatch(tasks.check_threads, run.credential_id)
    return run


def run_progress(run) -> tuple[int, int]:
    """(done, total) of a run: from the cache while it runs, from the run once it has ended."""
    from django.core.cache import cache

    if run.state in ("queued", "running"):
        return cache.get(progress_key(run.pk)) or (0, 0)
    return run.done, run.total


def run_report(run) -> ImportReport | None:
    return ImportReport(**run.report) if run.report else None
