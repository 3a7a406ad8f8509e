"""Admin pages that bring threads into the registry: one by ID, or many from pasted text or a file."""

from django.conf import settings
from django.contrib import messages
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_http_methods

from . import ids, importing, sync, tasks
from .client import APIError
from .forms import AddThreadForm, ImportForm
from .permissions import admin_required


@require_http_methods(["GET", "POST"])
@admin_required
def thread_add(request):
    form = AddThreadForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        try:
            thread = importing.add_thread(
                data["remote_id"],
                credential=data["credential"],
                owner=data["owner"],
                title=data["title"],
                added_by=request.user,
            )
        except importing.AlreadyTracked as exc:
            form.add_error("remote_id", str(exc))
        except ids.InvalidId as exc:
            form.add_error("remote_id", str(exc))
        else:
            try:
                result = sync.check_thread(thread)
            except APIError as error:
                messages.warning(request, f"Added {thread.remote_id}, but could not check it yet: {error}")
            else:
                label = thread.get_last_check_display()
                level = messages.SUCCESS if result == thread.Check.OK else messages.WARNING
                messages.add_message(request, level, f"Added {thread.remote_id}. API check: {label}.")
            return redirect(reverse("thread_detail", args=[thread.pk]))
    return render(request, "threads_app/thread_add.html", {"form": form})


@require_http_methods(["GET", "POST"])
@admin_required
def thread_import(request):
    form = ImportForm(request.POST or None, request.FILES or None)
    report = checked = None
    if request.method == "POST" and form.is_valid():
        credential = form.cleaned_data["credential"]
        try:
            report = importing.import_threads(
                form.cleaned_data["content"],
                credential=credential,
                owner=form.cleaned_data["owner"],
                added_by=request.user,
            )
        except importing.ImportRefused as exc:
            for error in exc.errors:
                form.add_error(None, error)
        else:
            if report.added and report.added <= settings.IMPORT_INLINE_CHECK_LIMIT:
                try:
                    checked = sync.check_unchecked(credential).summary()
                except APIError as error:
                    checked = f"could not check them yet ({error}); they stay unchecked"
            elif report.added:
                tasks.dispatch(tasks.check_threads, credential.pk)
                checked = f"checking {report.added:,} threads against the API in the background"
    template = "threads_app/import_form.html"
    if request.htmx:
        template += "#import-panel"
    return render(request, template, {"form": form, "report": report, "checked": checked})
