"""Admin pages that bring threads into the registry: one by ID, or many from pasted text or a file."""

from django.conf import settings
from django.contrib import messages
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.views.decorators.http import require_GET, require_http_methods
from django_htmx.http import HttpResponseClientRedirect, HttpResponseStopPolling

from . import ids, importing, sync, tasks
from .client import APIError
from .forms import AddThreadForm, ImportForm
from .models import ImportRun
from .permissions import admin_required, usable_credentials


@require_http_methods(["GET", "POST"])
@admin_required
def thread_add(request):
    form = AddThreadForm(request.POST or None, user=request.user)
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        try:
            thread = importing.add_thread(
                data["remote_id"],
                credential=data["credential"],
                owner=data["owner"],
                title=data["title"],
                added_by=request.user,
                usable=usable_credentials(request.user),
            )
        except (importing.AlreadyTracked, importing.NotFoundAnywhere) as exc:
            form.add_error("remote_id", str(exc))
        except ids.InvalidId as exc:
            form.add_error("remote_id", str(exc))
        else:
            try:
                result = sync.check_thread(thread)
            except APIError as error:
                messages.warning(request, f"Added {thread.remote_id}, but could not check it yet: {error}")
            else:
                messages.add_message(request, *added_words(thread, result))
            return redirect(reverse("thread_detail", args=[thread.pk]))
    return render(request, "threads_app/thread_add.html", {"form": form})


def added_words(thread, result: str) -> tuple[int, str]:
    """(message level, sentence) for a thread just added and checked: amber unless the API found it."""
    where = f"{thread.credential.name} ({thread.credential.scope_label})"
    if result == thread.Check.OK:
        return messages.SUCCESS, f"Added {thread.remote_id}. The API finds it under {where}."
    if result == thread.Check.NOT_FOUND:
        return messages.WARNING, (
            f"Added {thread.remote_id}, but the API does not find it under {where}: it is recorded as "
            f"{thread.get_status_display().lower()}. "
            "Look under the other credentials from its page, or forget it."
        )
    detail = f": {thread.last_check_message}" if thread.last_check_message else ""
    return messages.WARNING, (
        f"Added {thread.remote_id}, but its check failed ({thread.get_last_check_display().lower()}{detail})."
    )


@require_http_methods(["GET", "POST"])
@admin_required
def thread_import(request):
    form = ImportForm(request.POST or None, request.FILES or None, user=request.user)
    report = checked = check = None
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        credential, text = data["credential"], data["content"]
        if importing.belongs_in_background(text, auto=credential is None):
            # Too large to parse (or, when each ID's credential is to be found, to look up) while the page
            # waits: kept, and imported in the background.
            run = importing.start_run(text, credential=credential, owner=data["owner"], added_by=request.user)
            url = reverse("import_run", args=[run.pk])
            return HttpResponseClientRedirect(url) if request.htmx else redirect(url)
        try:
            report = importing.import_threads(
                text,
                credential=credential,
                owner=data["owner"],
                added_by=request.user,
                usable=usable_credentials(request.user),
            )
        except importing.ImportRefused as exc:
            for error in exc.errors:
                form.add_error(None, error)
        else:
            if credential is None:
                checked = (
                    "each thread was looked up under the credentials, and filed under the one that found it"
                )
            elif report.added and report.added <= settings.IMPORT_INLINE_CHECK_LIMIT:
                try:
                    check = sync.check_unchecked(credential)
                    checked = check.summary()
                except APIError as error:
                    checked = f"could not check them yet ({error}); they stay unchecked"
            elif report.added:
                tasks.dispatch(tasks.check_threads, credential.pk)
                checked = f"checking {report.added:,} threads against the API in the background"
    template = "threads_app/import_form.html"
    if request.htmx:
        template += "#import-panel"
    context = {"form": form, "report": report, "checked": checked, "check": check}
    return render(request, template, context)


@require_GET
@admin_required
def import_run(request, pk):
    """A large import's progress, then its report; the fragment polls itself until the run ends."""
    run = get_object_or_404(ImportRun.objects.select_related("credential"), pk=pk)
    done, total = importing.run_progress(run)
    context = {
        "form": ImportForm(user=request.user),
        "run": run,
        "done": done,
        "total": total,
        "report": importing.run_report(run),
    }
    if request.htmx:
        response = render(request, "threads_app/import_form.html#import-run", context)
        if run.state in (ImportRun.State.FINISHED, ImportRun.State.FAILED):
            response.status_code = HttpResponseStopPolling.status_code
        return response
    return render(request, "threads_app/import_form.html", context)
