from django.urls import path

from . import proxy, views

urlpatterns = [
    path("api/v1/openapi.yaml", views.openapi, name="api_openapi"),
    path("api/v1/threads", views.threads, name="api_threads"),
    path("api/v1/threads/<str:remote_id>", views.thread, name="api_thread"),
    path("proxy/v1/<path:path>", proxy.forward, name="capture_proxy"),
]
