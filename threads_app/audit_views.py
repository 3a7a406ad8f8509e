"""The audit log, for those `permissions.can_read_audit_log` lets in: filtered by who, what, which thread and
when, paged by keyset (newest first), and downloadable as CSV. Read-only: no page changes an event."""

import csv
import io
import json

from django.http import StreamingHttpResponse
from django.shortcuts import render
from django.urls import reverse
from django.utils import timezone
from django.views.decorators.http import require_GET
from django.views.decorators.vary import vary_on_headers
from django_htmx.http import push_url

from . import audit, listing
from .forms import AuditFilterForm
from .models import AuditEvent
from .permissions import audit_log_required
from .views import is_fragment_request

LABELS = dict(AuditEvent.Action.choices)
TYPES = dict(AuditEvent.ObjectType.choices)

CSV_FIELDS = ["at", "actor", "action", "object_type", "object_pk", "remote_id", "address", "details"]


def log_url(params: dict, **overrides) -> str:
    return reverse("audit_log") + listing.querystring(params, **overrides)


def filtered(data: dict):
    """The events the cleaned filters select, and the deletion items of the thread searched for."""
    items = audit.jobs_holding(data["object"]) if data.get("object") else []
    data = {**data, "job_ids": [item.job_id for item in items]}
    return audit.apply_filters(AuditEvent.objects.all(), data), items


def _text(value) -> str:
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, list):
        return ", ".join(_text(v) for v in value) or "none"
    if isinstance(value, dict):
        return "; ".join(f"{k} {_text(v)}" for k, v in value.items()) or "—"
    if value in (None, ""):
        return "—"
    return str(value)


def detail_pairs(details) -> list[tuple[str, str]]:
    """An event's details as (label, text) pairs for a compact list (escaped by the template)."""
    if not isinstance(details, dict):
        return []
    return [(key.replace("_", " "), _text(value)) for key, value in details.items()]


def present(events: list) -> list:
    """Give each event of a page what its row shows, worked out here once: the template's date filter,
    get_FOO_display() and {% url %} cost far more per row, and a page is fifty rows."""
    job_url, receipt_url = reverse("job_detail", args=[0]), reverse("job_receipt_csv", args=[0])
    thread_url = reverse("thread_detail", args=[0])
    for event in events:
        local = timezone.localtime(event.at)
        event.when, event.when_iso = local.strftime("%Y-%m-%d %H:%M:%S"), local.isoformat()
        event.label = LABELS.get(event.action, event.action)
        event.type_label = TYPES.get(event.object_type, event.object_type)
        event.pairs = detail_pairs(event.details)
        event.link = event.receipt = ""
        if event.object_pk is not None and event.object_type == AuditEvent.ObjectType.JOB:
            event.link = job_url.replace("/0/", f"/{event.object_pk}/")
            event.receipt = receipt_url.replace("/0/", f"/{event.object_pk}/")
        elif event.object_pk is not None and event.object_type == AuditEvent.ObjectType.THREAD:
            event.link = thread_url.replace("/0/", f"/{event.object_pk}/")
    return events


@require_GET
@vary_on_headers("HX-Request")
@audit_log_required
def audit_log(request):
    form = AuditFilterForm(request.GET)
    fragment = is_fragment_request(request)
    template = "threads_app/audit_log.html#events" if fragment else "threads_app/audit_log.html"
    if not form.is_valid():
        return render(request, template, {"form": form}, status=400)
    data = form.cleaned_data
    events, items = filtered(data)
    page = listing.keyset_page(
        events,
        audit.SORT,
        after=data["after_position"],
        before=data["before_position"],
        size=audit.PAGE_SIZE,
        sorts=audit.SORTS,
    )
    present(page.rows)
    params = form.query_params()
    here = log_url(params, after=data["after"] or None, before=data["before"] or None)
    context = {
        "form": form,
        "page": page,
        "items": items,
        "searched": data.get("object", ""),
        "is_filtered": bool(params),
        "first_url": log_url(params) if not page.is_first else "",
        "next_url": log_url(params, after=page.next_cursor) if page.next_cursor else "",
        "previous_url": log_url(params, before=page.previous_cursor) if page.previous_cursor else "",
        "export_url": reverse("audit_export") + listing.querystring(params),
    }
    response = render(request, template, context)
    return push_url(response, here) if fragment else response


def _cell(value) -> str:
    """A CSV cell that a spreadsheet shows as text: a leading =, +, - or @ would make it a formula, and a
    failed sign-in's name is whatever a stranger typed."""
    text = "" if value is None else str(value)
    return "'" + text if text[:1] in ("=", "+", "-", "@", "\t", "\r") else text


def csv_chunks(events):
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(CSV_FIELDS)
    rows = events.values_list(
        "at", "actor_name", "action", "object_type", "object_pk", "remote_id", "address", "details"
    )
    for n, (at, actor, action, object_type, object_pk, remote_id, address, details) in enumerate(
        rows.iterator(chunk_size=2000)
    ):
        writer.writerow(
            [
                at.isoformat(),
                _cell(actor),
                action,
                object_type,
                object_pk if object_pk is not None else "",
                _cell(remote_id),
                address or "",
                _cell(json.dumps(details, ensure_ascii=False, sort_keys=True)),
            ]
        )
        if n % 1000 == 999:
            yield buffer.getvalue()
            buffer.seek(0)
            buffer.truncate()
    yield buffer.getvalue()


@require_GET
@audit_log_required
def audit_export(request):
    """Every event the filters select, newest first, as CSV, streamed: the log may hold millions."""
    form = AuditFilterForm(request.GET)
    if not form.is_valid():
        return render(request, "threads_app/audit_log.html", {"form": form}, status=400)
    params = form.query_params()
    events, _ = filtered(form.cleaned_data)
    audit.record(audit.Action.AUDIT_EXPORTED, actor=request.user, request=request, filters=params)
    response = StreamingHttpResponse(
        csv_chunks(events.order_by("-at", "-id")), content_type="text/csv; charset=utf-8"
    )
    response["Content-Disposition"] = 'attachment; filename="audit-log.csv"'
    return response
