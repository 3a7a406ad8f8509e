"""The Team page (admins: add people, set roles, deactivate) and the ownership review (admins and auditors:
who owns what; admins reassign). Decisions are `permissions`'; changes are `team`'s."""

from django.conf import settings
from django.contrib import messages
from django.contrib.auth import get_user_model
from django.db.models import Count
from django.http import StreamingHttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from . import ownership, team
from .forms import BulkReassignForm, DeactivateForm, TeamAddForm, TeamMemberForm
from .models import Thread
from .permissions import (
    access,
    overview_hidden_credentials,
    overview_owner,
    owner_choices,
    ownership_reviewer_required,
    reassigner_required,
    role_of,
    team_manager_required,
    visible_credentials,
    visible_threads,
)


def team_users():
    return get_user_model().objects.order_by("-is_active", "username").prefetch_related("groups")


# --- The team -------------------------------------------------------------------------------------------


@require_GET
@team_manager_required
def team_page(request):
    users = list(team_users())
    counts = dict(
        Thread.objects.order_by().filter(owner__isnull=False).values_list("owner_id").annotate(n=Count("pk"))
    )
    readers = set(
        get_user_model()
        .objects.filter(user_permissions__codename="view_message_content")
        .values_list("pk", flat=True)
    )
    rows = [
        {
            "user": user,
            "role": role_of(user),
            "threads": counts.get(user.pk, 0),
            "reads_content": user.is_superuser or user.pk in readers or role_of(user) == "admin",
        }
        for user in users
    ]
    return render(request, "threads_app/team.html", {"rows": rows})


@require_http_methods(["GET", "POST"])
@team_manager_required
def team_add(request):
    form = TeamAddForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        try:
            user = team.create_user(
                data["username"],
                role=data["role"],
                email=data["email"],
                password=data["password"],
                by=request.user,
            )
        except team.TeamError as error:
            form.add_error("username", str(error))
        else:
            if data["content_access"]:
                team.set_content_access(user, True, by=request.user)
            if data["password"]:
                messages.success(request, f"Added {user.get_username()} as {data['role']}.")
                return redirect("team")
            # The link is shown on this answer only: it is not stored, and a reload does not bring it back.
            context = {
                "created": user,
                "link": team.set_password_link(request, user),
                "role": data["role"],
                "valid_days": link_days(),
            }
            return render(request, "threads_app/team_link.html", context)
    return render(request, "threads_app/team_add.html", {"form": form}, status=400 if form.errors else 200)


def link_days() -> int:
    return max(1, settings.PASSWORD_RESET_TIMEOUT // 86400)


def get_team_user(pk):
    return get_object_or_404(get_user_model(), pk=pk)


@require_http_methods(["GET", "POST"])
@team_manager_required
def team_member(request, pk):
    """One person: their role and whether they may read others' messages."""
    user = get_team_user(pk)
    initial = {"role": role_of(user), "content_access": team.has_content_access(user)}
    form = TeamMemberForm(request.POST or None, initial=initial)
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        try:
            team.set_role(user, data["role"], by=request.user)
        except team.TeamError as error:
            form.add_error("role", str(error))
        else:
            if data["content_access"] != initial["content_access"]:
                team.set_content_access(user, data["content_access"], by=request.user)
            messages.success(request, f"{user.get_username()} is now {data['role']}.")
            return redirect("team")
    context = {
        "member": user,
        "form": form,
        "threads": Thread.objects.filter(owner=user).count(),
        "is_superuser": user.is_superuser,
    }
    return render(request, "threads_app/team_member.html", context, status=400 if form.errors else 200)


@require_http_methods(["GET", "POST"])
@team_manager_required
def team_deactivate(request, pk):
    """Deactivate someone, offering to hand their threads to another user first."""
    user = get_team_user(pk)
    owners = owner_choices(request.user).exclude(pk=user.pk)
    form = DeactivateForm(request.POST or None, owners=owners)
    threads = Thread.objects.filter(owner=user).count()
    if request.method == "POST" and form.is_valid():
        to = form.cleaned_data["reassign_to"]
        try:
            moved = team.deactivate(user, by=request.user, reassign_to=to)
        except team.TeamError as error:
            form.add_error(None, str(error))
        else:
            note = f" {moved:,} threads now belong to {to.get_username()}." if to else ""
            messages.success(request, f"{user.get_username()} is deactivated.{note}")
            return redirect("team")
    context = {"member": user, "form": form, "threads": threads}
    return render(request, "threads_app/team_deactivate.html", context, status=400 if form.errors else 200)


@require_POST
@team_manager_required
def team_reactivate(request, pk):
    user = get_team_user(pk)
    team.reactivate(user, by=request.user)
    messages.success(request, f"{user.get_username()} can sign in again.")
    return redirect("team")


@require_POST
@team_manager_required
def team_link(request, pk):
    """A new one-time set-password link, shown once (for someone who lost theirs, or never set one)."""
    user = get_team_user(pk)
    if not user.is_active:
        messages.error(request, f"{user.get_username()} is deactivated: reactivate them first.")
        return redirect("team")
    context = {
        "created": None,
        "member": user,
        "link": team.set_password_link(request, user),
        "valid_days": link_days(),
    }
    return render(request, "threads_app/team_link.html", context)


# --- The ownership review -------------------------------------------------------------------------------


def user_review(user) -> ownership.Review:
    return ownership.review(visible_threads(user), overview_owner(user), overview_hidden_credentials(user))


@require_GET
@ownership_reviewer_required
def ownership_page(request):
    context = {"review": user_review(request.user), "list_url": reverse("thread_list")}
    if access(request.user).acts_on_all_threads:
        context["reassign_form"] = BulkReassignForm(
            owners=owner_choices(request.user), credentials=visible_credentials(request.user)
        )
    return render(request, "threads_app/ownership.html", context)


@require_POST
@ownership_reviewer_required
@reassigner_required
def ownership_reassign(request):
    form = BulkReassignForm(
        request.POST, owners=owner_choices(request.user), credentials=visible_credentials(request.user)
    )
    if not form.is_valid():
        context = {
            "review": user_review(request.user),
            "list_url": reverse("thread_list"),
            "reassign_form": form,
        }
        return render(request, "threads_app/ownership.html", context, status=400)
    data = form.cleaned_data
    threads = visible_threads(request.user).filter(owner=data["from_owner"])
    if data["credential"]:
        threads = threads.filter(credential=data["credential"])
    try:
        moved = ownership.reassign(threads, data["to_owner"], by=request.user)
    except ownership.ReassignError as error:
        messages.error(request, str(error))
    else:
        messages.success(request, f"{moved:,} threads now belong to {data['to_owner'].get_username()}.")
    return redirect("ownership")


@require_GET
@ownership_reviewer_required
def ownership_export(request):
    """Every visible thread with its owner and credential, as CSV (`owner=` narrows it to one owner)."""
    threads = visible_threads(request.user)
    owner = request.GET.get("owner", "")
    if owner == "none":
        threads = threads.filter(owner__isnull=True)
    elif owner.isdigit() and len(owner) < 19:
        threads = threads.filter(owner_id=int(owner))
    elif owner:
        return render(
            request,
            "threads_app/ownership.html",
            {"error": "owner= takes a user's number or none.", "list_url": reverse("thread_list")},
            status=400,
        )
    response = StreamingHttpResponse(ownership.export_rows(threads), content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = 'attachment; filename="threadsite-ownership.csv"'
    return response
