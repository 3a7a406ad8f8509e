"""Browsing tracked threads: the list, one thread with its live message history, editing, deleting,
exporting, and the overview.

Every page is one template whose fragments (`{% partialdef %}`) are rendered alone for HTMX requests, so a
fragment and its full page never drift apart; every HTMX link has an href that renders the full page.
Objects come only from `permissions`, which decides who sees what.
"""

from urllib.parse import quote, urlsplit

from django.contrib import messages
from django.http import Http404, HttpResponse, StreamingHttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils import timezone
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.http import require_GET, require_http_methods, require_POST
from django.views.decorators.vary import vary_on_headers
from django_htmx.http import (
    HttpResponseClientRedirect,
    HttpResponseClientRefresh,
    push_url,
    trigger_client_event,
)

from . import (
    audit,
    deletion,
    editing,
    importing,
    kinds,
    list_export,
    listing,
    locating,
    overview,
    retention,
    sync,
    transcripts,
)
from .forms import DeleteThreadForm, MessagePageForm, MetadataForm, ThreadEditForm, ThreadFilterForm
from .models import AuditEvent, Thread
from .permissions import (
    can_delete_in_bulk,
    can_forget,
    can_read_audit_log,
    can_reassign_in_bulk,
    get_thread_for_action,
    get_thread_for_user,
    get_thread_to_forget,
    list_exporter_required,
    overview_hidden_credentials,
    overview_owner,
    owner_choices,
    require,
    thread_flags,
    usable_credentials,
    visible_jobs,
    visible_threads,
)


def is_fragment_request(request) -> bool:
    # A history restore asks for the whole page even though htmx sent it.
    return bool(request.htmx) and not request.htmx.history_restore_request


def safe_next(request, fallback: str) -> str:
    target = request.POST.get("next") or request.GET.get("next") or ""
    # Only a path of this site: redirect() would take any other word for the name of a URL pattern.
    if target.startswith("/") and url_has_allowed_host_and_scheme(
        target, allowed_hosts={request.get_host()}, require_https=False
    ):
        return target
    return fallback


# --- The list -------------------------------------------------------------------------------------------

# Sortable columns: (column label, sort name, first direction when clicked).
SORTABLE = {
    "ID": ("id", ""),
    "Title": ("title", ""),
    "Owner": ("owner", ""),
    "Created": ("created", "-"),
    "Active": ("activity", "-"),
    "Status": ("status", ""),
    "Msgs": ("messages", "-"),
}
# (label, CSS class of the column): the class sets its width, so that every row is one line at 1280 px.
COLUMNS = [
    ("ID", "col-id"),
    ("Kind", "col-kind"),
    ("Title", "col-title"),
    ("Owner", "col-owner"),
    ("Credential", "col-credential"),
    ("Active", "col-age col-active"),
    ("Created", "col-age col-created"),
    ("Status", "col-status"),
    ("Msgs", "col-num"),
    ("", "col-actions"),
]


def list_url(params: dict, **overrides) -> str:
    return reverse("thread_list") + listing.querystring(params, **overrides)


def table_columns(params: dict, sort: str, default_sort: str) -> list[dict]:
    current_key, current_desc = sort.lstrip("-"), sort.startswith("-")
    columns = []
    for label, css in COLUMNS:
        column = {"label": label, "css": css, "url": "", "sorted": ""}
        if label in SORTABLE:
            name, first = SORTABLE[label]
            if name == current_key:
                column["sorted"] = "descending" if current_desc else "ascending"
                new_sort = name if current_desc else f"-{name}"
            else:
                new_sort = f"{first}{name}"
            column["url"] = list_url(params, sort=None if new_sort == default_sort else new_sort)
        columns.append(column)
    return columns


@require_GET
@vary_on_headers("HX-Request")
def thread_list(request):
    form = ThreadFilterForm(request.GET, user=request.user)
    fragment = is_fragment_request(request)
    if not fragment:
        form.load_options()
    context = {"form": form}
    if not form.is_valid():
        template = "threads_app/thread_list.html#table" if fragment else "threads_app/thread_list.html"
        return render(request, template, context, status=400)

    data = form.cleaned_data
    threads = listing.apply_filters(visible_threads(request.user), data, request.user)
    size = data["size"] or listing.PAGE_SIZE
    page = listing.keyset_page(
        threads.select_related(*listing.ROW_RELATIONS),
        data["sort"],
        after=data["after_position"],
        before=data["before_position"],
        size=size,
    )
    listing.with_removals(page.threads)  # each row says when it goes, as the thread page does
    for thread in page.threads:
        thread.flags = thread_flags(request.user, thread)
    count, count_precision = listing.count_matches(threads, page, text_search=listing.is_text_search(data))
    params = form.query_params()
    # Where the page starts is carried in its links (`start`), as keyset pages have no offset to count
    # from; it is only ever shown, so a wrong one misleads nobody for longer than a click to the start.
    start = 1 if page.is_first else data["start"] or 1
    end = start + len(page.threads) - 1
    here = list_url(
        params, after=data["after"] or None, before=data["before"] or None, start=start if start > 1 else None
    )
    # A bulk action takes the threads the filters match, in whatever order and page size they are shown.
    selection_filters = {key: value for key, value in params.items() if key not in ("sort", "size")}
    can_bulk_delete = can_delete_in_bulk(request.user)
    can_bulk_reassign = can_reassign_in_bulk(request.user)
    context.update(
        page=page,
        count=max(count, end) if count_precision != "exact" else count,
        count_precision=count_precision,
        start=start,
        end=end,
        columns=table_columns(params, data["sort"], listing.default_sort(data)),
        sort_value=data["sort"] if data["sort"] != listing.default_sort(data) else "",
        first_url=list_url(params) if not page.is_first else "",
        next_url=list_url(params, after=page.next_cursor, start=end + 1) if page.next_cursor else "",
        previous_url=(
            list_url(params, before=page.previous_cursor, start=max(1, start - size))
            if page.previous_cursor
            else ""
        ),
        export_url=reverse("thread_list_csv") + listing.querystring(params, sort=None, size=None),
        here=here,
        here_quoted=quote(here, safe="/"),
        # Admins tick rows to act on them in bulk, or take every thread the filters match (all=1).
        can_bulk_delete=can_bulk_delete,
        can_bulk_reassign=can_bulk_reassign,
        can_select=can_bulk_delete or can_bulk_reassign,
        selection_params=list(selection_filters.items()),
        select_all_url=reverse("job_new") + listing.querystring(selection_filters, all=1),
        reassign_all_url=reverse("reassign_new") + listing.querystring(selection_filters, all=1),
        now=timezone.now(),
    )
    if fragment:
        response = render(request, "threads_app/thread_list.html#table", context)
        # The server names the URL to push: the canonical one, without the empty fields a form sends.
        return push_url(response, context["here"])
    return render(request, "threads_app/thread_list.html", context)


@require_GET
@list_exporter_required
def thread_list_csv(request):
    """Every thread the list's filters match, of those the user may see, as CSV, streamed (`list_export`)."""
    form = ThreadFilterForm(request.GET, user=request.user)
    if not form.is_valid():
        errors = "; ".join(f"{name}: {' '.join(errors)}" for name, errors in form.errors.items())
        return HttpResponse(
            f"These filters cannot be used: {errors}\n", status=400, content_type="text/plain"
        )
    threads = listing.apply_filters(visible_threads(request.user), form.cleaned_data, request.user)
    response = StreamingHttpResponse(list_export.rows(threads), content_type="text/csv; charset=utf-8")
    stamp = timezone.now().strftime("%Y%m%d-%H%M")
    response["Content-Disposition"] = f'attachment; filename="threads-{stamp}.csv"'
    return response


# --- One thread -----------------------------------------------------------------------------------------


def detail_context(request, thread: Thread, **extra) -> dict:
    adapter = kinds.adapter_for(thread)
    context = {
        "thread": thread,
        "flags": thread_flags(request.user, thread),
        "adapter": adapter,
        "status_changes": thread.status_changes.select_related("changed_by")[:50],
        "now": timezone.now(),
        "removal": retention.removal(thread),
        "can_forget": can_forget(request.user, thread),
    }
    context.update(extra)
    result = context.get("result")
    if result is not None and result.older_cursor:
        context["older_query"] = MessagePageForm.older_query(
            thread, result.older_cursor, result.seen, result.order
        )
    return context


MESSAGE_ORDER_KEY = "threadsite:message-order"


def message_order(request, form) -> str:
    """The reading order of messages: the one asked for, which is then remembered (in the session) for
    every thread, else the one remembered, else newest first."""
    order = form.cleaned_data.get("order")
    if order:
        if request.session.get(MESSAGE_ORDER_KEY) != order:
            request.session[MESSAGE_ORDER_KEY] = order
        return order
    return request.session.get(MESSAGE_ORDER_KEY, "desc")


# The thread page shows this many of its newest audit events; the audit log has the rest.
THREAD_EVENTS = 20


def history_context(request, thread: Thread) -> dict:
    """The history panel's own context: its status changes (in `detail_context`, read when rendered) and
    the thread's newest audit events (its own and its deletion jobs'), for those who may read the log."""
    context = {"history_shown": True}
    if can_read_audit_log(request.user):
        events = audit.events_for(AuditEvent.objects.all(), thread.remote_id)
        context["audit_events"] = list(events.order_by("-at", "-id")[:THREAD_EVENTS])
        context["audit_url"] = reverse("audit_log") + listing.querystring({"object": thread.remote_id})
    return context


def read_messages(
    request, thread: Thread, after: str | None, *, seen: int | None = None, order: str = "desc"
):
    """A page of the thread's messages for the person asking, recorded in the audit log when one came."""
    result = sync.read_messages(thread, after, seen=seen, by=request.user, order=order)
    if result.page is not None:
        audit.record(
            audit.Action.MESSAGES_VIEWED,
            actor=request.user,
            request=request,
            obj=thread,
            page="older" if after else "newest",
            messages=len(result.page.entries),
        )
    return result


@require_GET
def thread_detail(request, pk):
    thread = get_thread_for_user(request, pk)
    form = MessagePageForm(request.GET, thread=thread)
    if not form.is_valid():
        return render(
            request,
            "threads_app/thread_detail.html",
            detail_context(request, thread, page_form=form),
            status=400,
        )
    result = None
    order = message_order(request, form)
    # The history panel asks for itself once the page is shown (`thread_panel`), as the messages do.
    # Without JavaScript, "Show the history", "Show messages" and "Load older" come back here and render
    # the page inline, history included.
    show = request.GET.get("show")
    if show == "messages":
        require(request.user, thread, "can_read_messages")
        data = form.cleaned_data
        result = read_messages(request, thread, data["after"] or None, seen=data["seen"], order=order)
    history = history_context(request, thread) if show in ("messages", "history") else {}
    return render(
        request,
        "threads_app/thread_detail.html",
        detail_context(request, thread, result=result, order=order, **history),
    )


@require_GET
def thread_messages(request, pk):
    """A page of messages, for HTMX: the first on load, older ones on "Load older"."""
    thread = get_thread_for_action(request, pk, "can_read_messages")
    if not is_fragment_request(request):
        query = request.GET.copy()
        query["show"] = "messages"
        return redirect(reverse("thread_detail", args=[thread.pk]) + "?" + query.urlencode() + "#messages")
    form = MessagePageForm(request.GET, thread=thread)
    if not form.is_valid():
        return render(
            request,
            "threads_app/thread_detail.html#message-error",
            {"thread": thread, "page_form": form},
            status=400,
        )
    data = form.cleaned_data
    after = data["after"] or None
    order = message_order(request, form)
    result = read_messages(request, thread, after, seen=data["seen"], order=order)
    # The first page comes with the reading-order toggle around it; a later one joins the pages above it.
    # A page that counted the thread also puts the new count in the details panel (out of band).
    fragment = "messages" if after else "message-list"
    context = detail_context(request, thread, result=result, order=order, count_oob=result.counted)
    return render(request, f"threads_app/thread_detail.html#{fragment}", context)


@require_GET
def thread_facts(request, pk):
    """The thread's stored facts (the panel that edit forms replace), for HTMX "Cancel"."""
    thread = get_thread_for_user(request, pk)
    if not is_fragment_request(request):
        return redirect("thread_detail", pk=thread.pk)
    return render(request, "threads_app/thread_detail.html#facts", detail_context(request, thread))


# Sent (HX-Trigger) after an action changed a thread: the page's other panels (its header, details,
# status history and messages) listen for it and fetch themselves again through `thread_panel`, so that
# nothing on the page is stale and nothing reloads; the panel the action answered is swapped by the
# answer itself.
THREAD_CHANGED = "threadChanged"


@require_GET
def thread_panel(request, pk, name):
    """One panel of the thread page as stored now (`name` comes from the URL pattern: header, history or
    messages-panel), for HTMX, when an action changed the thread (threadChanged); the page for anyone
    else."""
    thread = get_thread_for_user(request, pk)
    if not is_fragment_request(request):
        return redirect("thread_detail", pk=thread.pk)
    if name == "messages-panel" and request.GET.get("shown") == thread.status:
        # The messages shown (and the pages loaded) still hold for this status: keep them, ask no API.
        return HttpResponse(status=204)
    extra = history_context(request, thread) if name == "history" else {}
    return render(request, f"threads_app/thread_detail.html#{name}", detail_context(request, thread, **extra))


@require_POST
def thread_refresh(request, pk):
    """Ask the API for the thread (one request), store what changed and show the refreshed facts.

    A POST, although it only records what the API says: a GET that writes could be set off by another
    site's link (SameSite=Lax cookies go with top-level GETs)."""
    thread = get_thread_for_user(request, pk)
    before = (thread.title, thread.status)
    outcome = sync.refresh(thread, by=request.user)
    # The first page of messages, asked for at the same time, may have counted the thread meanwhile: the
    # panel sent back shows that count, not the one read before the API answered.
    thread.refresh_from_db(fields=["message_count"])
    refresh_error = ""
    if outcome is not None:
        refresh_error = (
            "The API no longer finds this thread." if outcome.kind == "not_found" else outcome.message
        )
    if not is_fragment_request(request):
        if refresh_error:
            messages.error(request, refresh_error)
        return redirect("thread_detail", pk=thread.pk)
    response = render(
        request,
        "threads_app/thread_detail.html#facts",
        detail_context(request, thread, refresh_error=refresh_error),
    )
    if (thread.title, thread.status) != before:
        trigger_client_event(response, THREAD_CHANGED)
    return response


@require_POST
def thread_mark_missing(request, pk):
    thread = get_thread_for_action(request, pk, "can_mark_missing")
    if thread.status == Thread.Status.ACTIVE:
        thread.set_status(
            Thread.Status.MISSING,
            by=request.user,
            reason=f"Marked missing by {request.user.get_username()}: the API answered 404",
        )
        messages.success(request, f"{thread.remote_id} is now marked missing.")
    if request.htmx:
        return HttpResponseClientRefresh()
    return redirect("thread_detail", pk=thread.pk)


@require_POST
def thread_rehome(request, pk):
    """Look for the thread under the other credentials the user may use; move it to the one that finds it."""
    thread = get_thread_for_action(request, pk, "can_rehome")
    result = locating.rehome(thread, usable_credentials(request.user), by=request.user)
    (messages.success if result.moved else messages.warning)(request, result.message)
    if request.htmx:
        return HttpResponseClientRefresh()
    return redirect("thread_detail", pk=thread.pk)


@require_POST
def thread_pin(request, pk):
    """Pin (keep) the thread, exempting it from every retention policy, or unpin it (`pinned=0`)."""
    thread = get_thread_for_action(request, pk, "can_pin")
    pinned = request.POST.get("pinned", "1") != "0"
    retention.set_pinned(thread, pinned, by=request.user)
    return saved(request, thread, "Pinned: no retention policy removes it." if pinned else "Unpinned.")


def saved(request, thread: Thread, message: str):
    """After an edit: the refreshed facts panel for HTMX on the thread page, else back to the thread page
    with a message (from the edit pages themselves too: their panel alone would be a dead end)."""
    thread_page = reverse("thread_detail", args=[thread.pk])
    if is_fragment_request(request):
        here = urlsplit(request.htmx.current_url_abs_path or thread_page).path
        if here == thread_page:
            response = render(
                request, "threads_app/thread_detail.html#facts", detail_context(request, thread, saved=True)
            )
            return trigger_client_event(response, THREAD_CHANGED)
        messages.success(request, message)
        return HttpResponseClientRedirect(thread_page)
    messages.success(request, message)
    return redirect(thread_page)


@require_http_methods(["GET", "POST"])
def thread_edit(request, pk):
    """Edit the thread's local fields: title, end-user label, and (admins) the owner."""
    thread = get_thread_for_action(request, pk, "can_edit")
    form = ThreadEditForm(
        request.POST if request.method == "POST" else None,
        instance=thread,
        owners=owner_choices(request.user) if thread_flags(request.user, thread).can_assign_owner else None,
    )
    if request.method == "POST":
        if form.is_valid():
            # The form already set the new values on `thread`; write only the fields that changed.
            editing.edit(
                thread, {name: form.cleaned_data[name] for name in form.changed_data}, by=request.user
            )
            return saved(request, thread, "Saved.")
        thread.refresh_from_db()
    fragment = is_fragment_request(request)
    template = "threads_app/thread_edit.html#form" if fragment else "threads_app/thread_edit.html"
    context = {"thread": thread, "form": form, "standalone": not fragment}
    return render(request, template, context, status=400 if form.errors else 200)


@require_http_methods(["GET", "POST"])
def thread_metadata(request, pk):
    """Edit the remote metadata, sent to the API (`sync.update_metadata`)."""
    thread = get_thread_for_action(request, pk, "can_edit_metadata")
    adapter = kinds.adapter_for(thread)
    form = MetadataForm(request.POST if request.method == "POST" else None, initial_metadata=thread.metadata)
    status, api_error = 200, ""
    if request.method == "POST" and "add_row" in request.POST:
        form = MetadataForm.with_another_row(request.POST)
    elif request.method == "POST" and adapter.supports_metadata:
        if form.is_valid():
            problem = sync.update_metadata(thread, form.cleaned_data["metadata"], by=request.user)
            if problem is None:
                return saved(request, thread, "Metadata saved.")
            status = 400 if problem.kind in ("invalid", "not_found") else 502
            api_error = problem.message
        else:
            status = 400
    elif request.method == "POST":
        status = 400
    fragment = is_fragment_request(request)
    template = "threads_app/thread_metadata.html#form" if fragment else "threads_app/thread_metadata.html"
    context = {
        "thread": thread,
        "adapter": adapter,
        "form": form,
        "api_error": api_error,
        "standalone": not fragment,
    }
    return render(request, template, context, status=status)


@require_http_methods(["GET", "POST"])
def thread_delete(request, pk):
    """Delete the thread through the API, behind a confirmation that names it."""
    thread = get_thread_for_action(request, pk, "can_delete")
    thread.flags = thread_flags(request.user, thread)  # the list's row, sent back, keeps its buttons
    adapter = kinds.adapter_for(thread)
    fallback = reverse("thread_detail", args=[thread.pk])
    context = {
        "thread": thread,
        "adapter": adapter,
        "offers_item_deletion": deletion.offers_item_deletion(thread),
        "next": safe_next(request, fallback),
        "here_quoted": quote(safe_next(request, fallback), safe="/"),
        # The list's row, sent back, keeps its checkbox.
        "can_select": can_delete_in_bulk(request.user) or can_reassign_in_bulk(request.user),
        "flags": thread.flags,
        "origin": request.POST.get("origin") or request.GET.get("origin") or "",
        "form": DeleteThreadForm(request.POST if request.method == "POST" else None),
    }
    fragment = is_fragment_request(request)
    if request.method == "GET":
        template = "threads_app/thread_delete.html#dialog" if fragment else "threads_app/thread_delete.html"
        return render(request, template, context)

    form = context["form"]
    form.is_valid()
    result = deletion.delete_thread(
        thread, by=request.user, delete_items=bool(form.cleaned_data.get("delete_items"))
    )
    status = {"deleted": 200, "already_gone": 200, "queued": 202, "not_sent": 409}.get(result.state, 502)
    outcome = result.message
    if fragment:
        # A job that finishes the deletion is linked for those who may follow jobs.
        job = result.job
        if job is not None and not visible_jobs(request.user).filter(pk=job.pk).exists():
            job = None
        context.update(outcome=outcome, failed=status >= 400, job=job, now=timezone.now())
        if context["origin"] == "list":
            thread.removal = retention.removal(thread)  # the row sent back says what the list's rows say
        response = render(request, "threads_app/thread_delete.html#result", context, status=status)
        # The thread page's panels (header, details, history, messages) ask for themselves again.
        return trigger_client_event(response, THREAD_CHANGED) if status == 200 else response
    (messages.success if status < 400 else messages.error)(request, outcome)
    return redirect(context["next"])


@require_http_methods(["GET", "POST"])
def thread_forget(request, pk):
    """Remove a thread that is no longer active from the registry (admins), behind a confirmation."""
    thread = get_thread_to_forget(request, pk)
    # The confirmation names the thread: a POST that does not (a stray or forged one) only shows it.
    confirmed = request.method == "POST" and request.POST.get("remote_id") == thread.remote_id
    if not confirmed:
        fragment = is_fragment_request(request)
        template = "threads_app/thread_forget.html#dialog" if fragment else "threads_app/thread_forget.html"
        return render(request, template, {"thread": thread}, status=400 if request.method == "POST" else 200)
    try:
        remote_id = importing.forget_thread(thread, by=request.user)
    except importing.ForgetRefused as exc:
        messages.error(request, str(exc))
        return redirect("thread_detail", pk=thread.pk)
    messages.success(request, f"Forgot {remote_id}: it is no longer in the registry. The API was not asked.")
    return redirect("thread_list")


@require_GET
def thread_export(request, pk, fmt):
    """The whole transcript as a download: every page, oldest first."""
    thread = get_thread_for_action(request, pk, "can_export")
    if fmt not in ("json", "md"):
        raise Http404("Transcripts download as .json or .md.")
    entries, problem = sync.read_transcript(thread, by=request.user)
    if problem is not None:
        message = problem.message
        if problem.kind == "not_found":
            message = "The API no longer finds this thread, so there is nothing to export."
        messages.error(request, f"Export failed. {message}")
        return redirect("thread_detail", pk=thread.pk)
    audit.record(
        audit.Action.THREAD_EXPORTED,
        actor=request.user,
        request=request,
        obj=thread,
        format=fmt,
        entries=len(entries),
    )
    if fmt == "json":
        body, content_type = transcripts.as_json(thread, entries), "application/json"
    else:
        body, content_type = transcripts.as_markdown(thread, entries), "text/markdown; charset=utf-8"
    response = HttpResponse(body, content_type=content_type)
    response["Content-Disposition"] = f'attachment; filename="{thread.remote_id}.{fmt}"'
    return response


# --- Overview -------------------------------------------------------------------------------------------


@require_GET
def overview_page(request):
    # Read from the tallies the database keeps with every write: current, and cheap at any size.
    now = timezone.now()
    figures = overview.summary(
        overview_owner(request.user), now, hidden=overview_hidden_credentials(request.user)
    )
    # Captures per day come from the threads captured in the last days (a bounded range, `overview`).
    figures["captured_per_day"] = overview.captured_per_day(visible_threads(request.user), now)
    context = {
        "figures": figures,
        "counted_at": now,
        "status_bars": overview.bars(
            (label, n, listing.querystring({"status": status})) for status, label, n in figures["by_status"]
        ),
        "kind_bars": overview.bars(
            (label, n, listing.querystring({"kind": kind})) for kind, label, n in figures["by_kind"]
        ),
        "owner_bars": overview.bars(
            (name, n, listing.querystring({"owner": pk or "none"})) for pk, name, n in figures["by_owner"]
        ),
        "credential_bars": overview.bars(
            (label, n, listing.querystring({"credential": pk})) for pk, label, n in figures["by_credential"]
        ),
        "age_bars": overview.bars(
            (label, n, overview.age_link(newer, older, figures["today"]))
            for label, n, newer, older in figures["ages"]
        ),
        "captured_bars": overview.bars(
            (day.strftime("%-d"), captured + registered, "")
            for day, captured, registered in figures.get("captured_per_day", [])
        ),
        "captured_days": [day for day, _, _ in figures.get("captured_per_day", [])],
    }
    return render(request, "threads_app/overview.html", context)
