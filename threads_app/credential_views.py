"""Admin pages for API credentials. Keys go in through a password field and never come back out."""

from django.contrib import messages
from django.db.models import Count, OuterRef, Q, Subquery
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_GET, require_http_methods, require_POST
from django_htmx.http import HttpResponseStopPolling

from . import credentials, retention, sync, tasks
from .forms import CredentialForm, RetentionPolicyForm
from .models import Credential, DiscoveryRun, StatusChange, Thread
from .permissions import admin_required, credentials_viewer_required


@require_GET
@credentials_viewer_required
def credential_list(request):
    """Every credential with its reach: admins manage them here, auditors read it."""
    credentials = list(with_reach(Credential.objects.select_related("created_by")))
    return render(request, "threads_app/credential_list.html", {"credentials": credentials})


def with_reach(credentials):
    """Each credential's reach: its threads, how many its key found, how many are missing, and how many
    were re-homed to it or away from it (a key filed under the wrong project shows as a pattern)."""
    credentials = list(
        credentials.annotate(
            thread_count=Count("threads"),
            found_count=Count("threads", filter=Q(threads__last_check=Thread.Check.OK)),
            missing_count=Count("threads", filter=Q(threads__status=Thread.Status.MISSING)),
        )
    )
    limits = Credential.limited_to.through.objects.filter(credential__in=credentials)
    limited = {}
    for credential_id, username in limits.values_list("credential_id", "user__username").order_by(
        "user__username"
    ):
        limited.setdefault(credential_id, []).append(username)
    moves = StatusChange.objects.exclude(moved_to="").order_by()
    moved_in = dict(moves.values_list("moved_to").annotate(n=Count("pk")))
    moved_out = dict(moves.values_list("moved_from").annotate(n=Count("pk")))
    latest = DiscoveryRun.objects.filter(credential=OuterRef("pk")).order_by("-created_at", "-id")
    run_ids = Credential.objects.filter(pk__in=[c.pk for c in credentials]).annotate(
        run_id=Subquery(latest.values("pk")[:1])
    )
    runs = DiscoveryRun.objects.in_bulk([pk for pk in run_ids.values_list("run_id", flat=True) if pk])
    run_of = {run.credential_id: run for run in runs.values()}
    for credential in credentials:
        credential.limited_names = limited.get(credential.pk, [])
        credential.moved_in, credential.moved_out = (
            moved_in.get(credential.name, 0),
            moved_out.get(credential.name, 0),
        )
        credential.discovery = run_of.get(credential.pk)
    return credentials


@require_http_methods(["GET", "POST"])
@admin_required
def credential_form(request, pk=None):
    credential = get_object_or_404(Credential, pk=pk) if pk else None
    form = CredentialForm(request.POST or None, instance=credential)
    if request.method == "POST" and form.is_valid():
        credential, is_new = credentials.save(form, by=request.user)
        ok, message = sync.verify_credential(credential)
        if ok and not is_new and form.cleaned_data.get("api_key"):
            # Threads whose check the old key failed get checked again with the new one.
            rechecks = credential.threads.filter(
                last_check__in=[Thread.Check.BAD_KEY, Thread.Check.FORBIDDEN]
            )
            if rechecks.update(last_check=""):
                tasks.dispatch(tasks.check_threads, credential.pk)
        level = messages.SUCCESS if ok else messages.WARNING
        messages.add_message(request, level, f"{'Added' if is_new else 'Saved'} {credential.name}. {message}")
        return redirect("credential_list")
    context = {"form": form, "credential": credential}
    if credential is not None and credential.pk:
        context.update(retention_context(credential))
    return render(request, "threads_app/credential_form.html", context)


def retention_context(credential, form=None) -> dict:
    policy = retention.policy_of(credential)
    return {
        "policy": policy,
        "policy_form": form or RetentionPolicyForm(initial=RetentionPolicyForm.initial_for(policy)),
        "policy_preview": retention.preview(policy) if policy else None,
    }


@require_POST
@admin_required
def credential_retention(request, pk):
    credential = get_object_or_404(Credential, pk=pk)
    form = RetentionPolicyForm(request.POST)
    if not form.is_valid():
        context = {"form": CredentialForm(instance=credential), "credential": credential}
        context.update(retention_context(credential, form))
        return render(request, "threads_app/credential_form.html", context, status=400)
    data = form.cleaned_data
    policy = retention.set_policy(
        credential,
        mode=data["mode"],
        window_days=data["window_days"],
        include_assistants=data["include_assistants"],
        exempt_owners=data["exempt_owners"],
        exempt_metadata=data["exempt_metadata"],
        by=request.user,
    )
    note = ""
    if policy.mode == policy.Mode.DELETE and policy.confirmed_at is None:
        note = (
            " The next sweep previews what it would delete and waits for your confirmation on the job's page."
        )
    messages.success(request, f"Retention policy of {credential.name}: {policy}.{note}")
    return redirect("credential_edit", pk=credential.pk)


@require_POST
@admin_required
def credential_verify(request, pk):
    credential = get_object_or_404(Credential, pk=pk)
    ok, message = sync.verify_credential(credential)
    if request.htmx:
        return render(
            request,
            "threads_app/credential_list.html#credential-row",
            {"credential": with_reach(Credential.objects.filter(pk=pk))[0]},
        )
    messages.add_message(
        request, messages.SUCCESS if ok else messages.WARNING, f"{credential.name}: {message}"
    )
    return redirect("credential_list")


@require_POST
@admin_required
def credential_discover(request, pk):
    """Start listing the credential's threads in the background; its row on the credentials page polls
    the run and says what it found."""
    credential = get_object_or_404(Credential, pk=pk)
    run = sync.start_discovery(credential, by=request.user)
    if run.state == DiscoveryRun.State.QUEUED:
        tasks.dispatch(tasks.run_discovery, run.pk)
    if request.htmx:
        return render(
            request,
            "threads_app/credential_list.html#discovery",
            {"credential": credential, "run": run},
        )
    messages.info(
        request,
        f"Listing the ChatKit threads of {credential.name} in the background: its row says what it finds.",
    )
    return redirect("credential_list")


@require_GET
@credentials_viewer_required
def credential_discovery(request, pk):
    """The latest discovery run of a credential, for its row to poll until the run ends."""
    credential = get_object_or_404(Credential, pk=pk)
    run = credential.discovery_runs.order_by("-created_at", "-id").first()
    response = render(
        request, "threads_app/credential_list.html#discovery", {"credential": credential, "run": run}
    )
    if run is None or not run.is_running:
        response.status_code = HttpResponseStopPolling.status_code
    return response


@require_POST
@admin_required
def credential_delete(request, pk):
    credential = get_object_or_404(Credential, pk=pk)
    try:
        credentials.remove(credential, by=request.user)
    except credentials.StillTracking as refusal:
        messages.error(request, str(refusal))
    else:
        messages.success(request, f"Removed {credential.name}.")
    return redirect("credential_list")
