"""Admin pages for API tokens: made (the secret shown once, on the answer to the form), listed with what
entered through each, revoked."""

from django.contrib import messages
from django.db.models import Count, Q
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from . import tokens
from .forms import ApiTokenForm
from .models import ApiToken, Thread
from .permissions import admin_required


def with_counts(queryset):
    return queryset.annotate(
        captured_count=Count("threads", filter=Q(threads__source=Thread.Source.CAPTURE)),
        registered_count=Count("threads", filter=Q(threads__source=Thread.Source.API)),
        deleted_count=Count("threads", filter=Q(threads__status=Thread.Status.DELETED)),
    )


@never_cache  # the answer to a POST holds the new secret: no cache may keep it
@require_http_methods(["GET", "POST"])
@admin_required
def token_list(request):
    form = ApiTokenForm(request.POST or None)
    created = None
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        try:
            created = tokens.create(
                data["name"],
                scopes=data["scopes"],
                credential=data["credential"],
                owner=data["owner"],
                created_by=request.user,
                stamp_owner=data["stamp_owner"],
                requests_per_minute=data["requests_per_minute"],
            )
        except tokens.TokenError as error:
            form.add_error("name", str(error))
        else:
            form = ApiTokenForm()
    listed = with_counts(ApiToken.objects.select_related("credential", "owner"))
    status = 400 if request.method == "POST" and created is None else 200
    return render(
        request,
        "threads_app/token_list.html",
        {"form": form, "tokens": listed, "created": created},
        status=status,
    )


@require_GET
@admin_required
def token_detail(request, pk):
    token = get_object_or_404(with_counts(ApiToken.objects.select_related("credential", "owner")), pk=pk)
    threads = token.threads.order_by()
    by_kind = {kind: n for kind, n in threads.values_list("kind").annotate(n=Count("pk")).order_by()}
    context = {
        "token": token,
        "by_kind": [(label, by_kind.get(kind, 0)) for kind, label in Thread.Kind.choices],
        "recent": token.threads.select_related("credential").order_by("-added_at", "-id")[:20],
    }
    return render(request, "threads_app/token_detail.html", context)


@require_POST
@admin_required
def token_revoke(request, pk):
    token = get_object_or_404(ApiToken, pk=pk)
    if tokens.revoke(token, by=request.user):
        messages.success(request, f"Revoked {token.name}: it is refused from now on.")
    return redirect("token_detail", pk=token.pk)
