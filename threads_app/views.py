from django.shortcuts import render
from django.views.decorators.http import require_GET

from .models import Thread


def visible_threads(request):
    """The threads this user may see: the one place scoping by role will be added."""
    return Thread.objects.all()


@require_GET
def thread_list(request):
    threads = visible_threads(request).select_related("credential", "owner")[:100]
    return render(request, "threads_app/thread_list.html", {"threads": threads})
