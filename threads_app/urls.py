from django.urls import path

from . import credential_views, import_views, views

urlpatterns = [
    path("", views.thread_list, name="thread_list"),
    # Intake (admins): credentials, adding and importing threads.
    path("credentials/", credential_views.credential_list, name="credential_list"),
    path("credentials/add/", credential_views.credential_form, name="credential_add"),
    path("credentials/<int:pk>/", credential_views.credential_form, name="credential_edit"),
    path("credentials/<int:pk>/verify/", credential_views.credential_verify, name="credential_verify"),
    path("credentials/<int:pk>/discover/", credential_views.credential_discover, name="credential_discover"),
    path("credentials/<int:pk>/delete/", credential_views.credential_delete, name="credential_delete"),
    path("threads/add/", import_views.thread_add, name="thread_add"),
    path("threads/import/", import_views.thread_import, name="thread_import"),
]
