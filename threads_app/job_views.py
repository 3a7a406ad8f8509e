"""Bulk deletion, for admins: a selection from the thread list previewed and confirmed, the job's page
with its progress polled while it runs, its receipts and archive, and the list of jobs.

Views only read requests and render: the selection becomes a queryset through `permissions` and `listing`
(which only ever narrow it), and everything else is a call to `deletion`.
"""

from dataclasses import dataclass, field

from django.contrib import messages
from django.core.paginator import EmptyPage, PageNotAnInteger, Paginator
from django.http import Http404, StreamingHttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.template.loader import render_to_string
from django.urls import reverse
from django.utils import timezone
from django.views.decorators.http import require_GET, require_http_methods, require_POST
from django.views.decorators.vary import vary_on_headers
from django_htmx.http import HttpResponseStopPolling

from . import audit, deletion, listing, locating, ownership
from .forms import DeletionJobForm, DeletionSelectionForm, ReassignForm, ThreadFilterForm
from .models import DeletionItem, DeletionJob, RehomeRun, Thread
from .permissions import (
    access,
    admin_required,
    get_job_archive_for_user,
    get_job_for_user,
    get_rw_job_for_user,
    jobs_manager_required,
    jobs_viewer_required,
    reassigner_required,
    visible_jobs,
    visible_threads,
)
from .views import is_fragment_request, safe_next

JOBS_PER_PAGE = 50
FAILED_SHOWN = 100
# Polling stops for good once a job ends; while it runs the page asks this often.
POLL_SECONDS = 1


# --- From a selection to a job --------------------------------------------------------------------------


@dataclass
class Selection:
    """The threads a job would take, and how the job records where they came from."""

    threads: object  # a queryset of visible threads, never wider than what the list showed
    summary: str
    filters: dict
    back_url: str
    picked: int | None = None  # how many rows were ticked, when rows were
    errors: list = field(default_factory=list)


def read_selection(request) -> Selection:
    """The selection in the query string: ticked rows (`ids`) or every thread matching the filters (`all=1`).
    Errors (a 400) are listed in `errors`."""
    fallback = reverse("thread_list")
    form = DeletionSelectionForm(request.GET)
    if not form.is_valid():
        errors = [error for errors in form.errors.values() for error in errors]
        return Selection(Thread.objects.none(), "", {}, safe_next(request, fallback), errors=errors)
    pks = form.cleaned_data["ids"]
    if pks:
        # Exactly the ticked rows, and only those the admin may see; the list's filters play no part.
        n = len(pks)
        return Selection(
            threads=visible_threads(request.user).filter(pk__in=pks),
            summary=f"{n:,} thread{'s' if n != 1 else ''} picked in the list",
            filters={"picked": n},
            back_url=safe_next(request, fallback),
            picked=n,
        )
    filters = ThreadFilterForm(request.GET, user=request.user)
    if not filters.is_valid():
        errors = [
            f"{filters.fields[name].label or name.capitalize()}: {error}" if name != "__all__" else error
            for name, errors in filters.errors.items()
            for error in errors
        ]
        return Selection(Thread.objects.none(), "", {}, fallback, errors=errors)
    data = filters.cleaned_data
    params = {key: value for key, value in filters.query_params().items() if key != "sort"}
    return Selection(
        threads=listing.apply_filters(visible_threads(request.user), data, request.user),
        summary=listing.describe(data, request.user),
        filters=params,
        back_url=fallback + listing.querystring(filters.query_params()),
    )


def offers_item_deletion(preview: deletion.Preview) -> bool:
    """Whether the preview holds a kind whose items a deletion may remove first (conversations)."""
    return any(deletion.offers_item_deletion(kind) for kind in preview.kinds)


@require_http_methods(["GET", "POST"])
@jobs_manager_required
def job_new(request):
    """The preview of a selection (GET) and the job made from it once its count is typed (POST)."""
    selection = read_selection(request)
    if selection.errors:
        return render(request, "threads_app/job_new.html", {"selection": selection}, status=400)
    preview = deletion.preview(selection.threads)
    form = DeletionJobForm(request.POST if request.method == "POST" else None, count=preview.count)
    with_items = offers_item_deletion(preview)
    status = 200
    if request.method == "POST":
        status = 400
        if preview.count and form.is_valid():
            data = form.cleaned_data
            try:
                job = deletion.create_job(
                    selection.threads,
                    requested_by=request.user,
                    summary=selection.summary,
                    filters=selection.filters,
                    source=DeletionJob.Source.BROWSER,
                    # Only conversations keep items; for other kinds the option means nothing.
                    delete_items=data["delete_items"] if with_items else True,
                    archive=data["archive"],
                    verify_all=data["verify_all"],
                    expected_count=data["confirm_count"],
                )
            except deletion.NothingToDelete as refusal:
                # The selection changed between the preview and the typed count: show it as it is now.
                form.add_error(None, str(refusal))
                preview = deletion.preview(selection.threads)
                status = 409
            else:
                messages.success(request, f"Deletion job {job.pk} started: {job.total:,} threads.")
                return redirect("job_detail", pk=job.pk)
    context = {
        "selection": selection,
        "preview": preview,
        "form": form,
        "offers_item_deletion": with_items,
        # Ticked rows that are not in the preview: already deleted, waiting in another job, or not found.
        "left_out": (selection.picked - preview.count) if selection.picked else 0,
        "action": request.get_full_path(),
    }
    return render(request, "threads_app/job_new.html", context, status=status)


# --- One job --------------------------------------------------------------------------------------------


def job_context(request, job: DeletionJob) -> dict:
    now = timezone.now()
    rights = access(request.user)
    stale = (
        job.state == DeletionJob.State.RUNNING
        and job.heartbeat_at is not None
        and job.heartbeat_at < deletion.silent_since()
    )
    failed_items = job.items.filter(state=DeletionItem.State.FAILED).order_by("-finished_at", "-id")
    return {
        "job": job,
        "progress": deletion.progress(job),
        "failed_items": list(failed_items[:FAILED_SHOWN]) if job.failed else [],
        "failed_shown": FAILED_SHOWN,
        "can_cancel": rights.manages_jobs and (job.is_unfinished or job.state == DeletionJob.State.AWAITING),
        "can_retry": rights.manages_jobs
        and not job.is_unfinished
        and job.state != DeletionJob.State.AWAITING
        and bool(job.failed or job.pending),
        "can_confirm": rights.manages_jobs and job.state == DeletionJob.State.AWAITING,
        "can_download_archive": rights.reads_all_content and job.archive,
        "polling": job.is_unfinished,
        "poll_seconds": POLL_SECONDS,
        "worker_silent": stale,
        "now": now,
    }


def progress_response(request, job: DeletionJob):
    """The progress fragment; once the job has ended, with htmx's "stop polling" status (286)."""
    context = job_context(request, job)
    if job.is_unfinished:
        return render(request, "threads_app/job_detail.html#progress", context)
    html = render_to_string("threads_app/job_detail.html#progress", context, request=request)
    return HttpResponseStopPolling(html)


@require_GET
@vary_on_headers("HX-Request")
def job_detail(request, pk):
    """The job's page; to htmx, only its progress, which polls this URL while the job runs."""
    job = get_job_for_user(request, pk)
    if is_fragment_request(request):
        return progress_response(request, job)
    return render(request, "threads_app/job_detail.html", job_context(request, job))


def after_action(request, job: DeletionJob, message: str, *, ok: bool = True, status: int = 200):
    """After cancel, retry or confirm: the refreshed progress for htmx, else the job page with a message."""
    job.refresh_from_db()
    if is_fragment_request(request):
        context = job_context(request, job)
        context.update(notice=message, notice_failed=not ok)
        return render(request, "threads_app/job_detail.html#progress", context, status=status)
    (messages.success if ok else messages.error)(request, message)
    return redirect("job_detail", pk=job.pk)


@require_POST
def job_cancel(request, pk):
    job = get_rw_job_for_user(request, pk)
    if not (job.is_unfinished or job.state == DeletionJob.State.AWAITING):
        return after_action(
            request,
            job,
            f"Job {job.pk} has already ended ({job.get_state_display().lower()}).",
            ok=False,
            status=409,
        )
    deletion.cancel_job(job, by=request.user)
    if job.state == DeletionJob.State.CANCELLING:
        return after_action(
            request, job, "Cancelling: the threads already sent finish, nothing more is sent."
        )
    return after_action(request, job, f"Job {job.pk} is cancelled.")


@require_POST
def job_retry(request, pk):
    job = get_rw_job_for_user(request, pk)
    if job.is_unfinished or job.state == DeletionJob.State.AWAITING or not (job.failed or job.pending):
        return after_action(
            request, job, "Nothing to retry: the job is still going, or nothing failed.", ok=False, status=409
        )
    # The failed and the left items, counted before the job starts again: retry_job() counts after
    # starting it, which where tasks run inline is after the job has ended again.
    count = job.failed + job.pending
    deletion.retry_job(job, by=request.user)
    return after_action(request, job, f"Trying {count:,} thread{'s' if count != 1 else ''} again.")


@require_POST
def job_confirm(request, pk):
    """Start a job awaiting confirmation (a retention sweep's first preview)."""
    job = get_rw_job_for_user(request, pk)
    if not deletion.confirm_job(job, by=request.user):
        return after_action(request, job, "This job was not awaiting confirmation.", ok=False, status=409)
    return after_action(request, job, f"Job {job.pk} confirmed and started.")


# --- Downloads ------------------------------------------------------------------------------------------

DOWNLOADS = {
    "csv": (deletion.receipt_csv, "text/csv; charset=utf-8", "receipt.csv"),
    "json": (deletion.receipt_json, "application/json", "receipt.json"),
    "jsonl": (deletion.archive_lines, "application/jsonl; charset=utf-8", "transcripts.jsonl"),
}


@require_GET
def job_download(request, pk, fmt):
    """The receipt (CSV or JSON) or the archived transcripts (JSON Lines), streamed: a job may hold a
    million items."""
    job = get_job_archive_for_user(request, pk) if fmt == "jsonl" else get_job_for_user(request, pk)
    if fmt not in DOWNLOADS or (fmt == "jsonl" and not job.archive):
        raise Http404("This job has no such download.")
    produce, content_type, name = DOWNLOADS[fmt]
    audit.record(audit.Action.JOB_DOWNLOADED, actor=request.user, request=request, obj=job, download=name)
    response = StreamingHttpResponse(produce(job), content_type=content_type)
    response["Content-Disposition"] = f'attachment; filename="deletion-job-{job.pk}-{name}"'
    return response


# --- The list of jobs -----------------------------------------------------------------------------------


@require_GET
@vary_on_headers("HX-Request")
@jobs_viewer_required
def job_list(request):
    paginator = Paginator(visible_jobs(request.user).select_related("policy__credential"), JOBS_PER_PAGE)
    try:
        page = paginator.page(request.GET.get("page") or 1)
    except PageNotAnInteger:
        return render(
            request,
            "threads_app/job_list.html",
            {"error": "The page number is not a number. Start again from the first page."},
            status=400,
        )
    except EmptyPage:
        raise Http404("There is no such page of jobs.") from None
    template = "threads_app/job_list.html"
    if is_fragment_request(request):
        template += "#job-table"
    return render(request, template, {"page": page})


# --- Looking for a selection of gone threads under the other credentials --------------------------------


@require_http_methods(["GET", "POST"])
@admin_required
def rehome_new(request):
    """How many threads of a selection are gone (GET), and the background search for them (POST)."""
    selection = read_selection(request)
    if selection.errors:
        return render(request, "threads_app/rehome.html", {"selection": selection}, status=400)
    gone = selection.threads.filter(status__in=locating.GONE).count()
    if request.method == "POST":
        if not gone:
            messages.error(
                request, "None of these threads is missing or expired: there is nothing to look for."
            )
            return redirect(selection.back_url)
        run = locating.start_rehome(selection.threads, summary=selection.summary, by=request.user)
        return redirect("rehome_run", pk=run.pk)
    context = {"selection": selection, "gone": gone, "action": request.get_full_path()}
    return render(request, "threads_app/rehome.html", context)


@require_GET
@admin_required
def rehome_run(request, pk):
    """The search's page; to htmx, its progress fragment, which polls until the search ends."""
    run = get_object_or_404(RehomeRun, pk=pk)
    context = {"run": run, "looking_for": len(run.thread_ids)}
    if is_fragment_request(request):
        response = render(request, "threads_app/rehome.html#run", context)
        if run.state == RehomeRun.State.FINISHED:
            response.status_code = HttpResponseStopPolling.status_code
        return response
    return render(request, "threads_app/rehome.html", context)


# --- Reassigning a selection ----------------------------------------------------------------------------


@require_http_methods(["GET", "POST"])
@reassigner_required
def reassign_new(request):
    """How many threads a selection holds and whom to give them to (GET); the reassignment (POST)."""
    selection = read_selection(request)
    if selection.errors:
        return render(request, "threads_app/reassign.html", {"selection": selection}, status=400)
    form = ReassignForm(request.POST if request.method == "POST" else None)
    if request.method == "POST" and form.is_valid():
        owner = form.cleaned_data["owner"]
        changed = ownership.reassign(selection.threads, owner, by=request.user, summary=selection.summary)
        name = owner.get_username() if owner else "nobody (unassigned)"
        messages.success(request, f"{changed:,} thread{'s' if changed != 1 else ''} now owned by {name}.")
        return redirect(selection.back_url)
    context = {
        "selection": selection,
        "count": selection.threads.count(),
        "form": form,
        "action": request.get_full_path(),
    }
    return render(request, "threads_app/reassign.html", context, status=400 if form.errors else 200)
