from django.urls import path

from . import audit_views, credential_views, import_views, job_views, team_views, token_views, views

urlpatterns = [
    path("", views.thread_list, name="thread_list"),
    # Browsing: one thread, its live messages, editing, deleting, exporting; the overview.
    path("threads/<int:pk>/", views.thread_detail, name="thread_detail"),
    path("threads/<int:pk>/messages/", views.thread_messages, name="thread_messages"),
    path("threads/<int:pk>/facts/", views.thread_facts, name="thread_facts"),
    path("threads/<int:pk>/header/", views.thread_panel, {"name": "header"}, name="thread_header"),
    path("threads/<int:pk>/history/", views.thread_panel, {"name": "history"}, name="thread_history"),
    path(
        "threads/<int:pk>/messages-panel/",
        views.thread_panel,
        {"name": "messages-panel"},
        name="thread_messages_panel",
    ),
    path("threads/<int:pk>/refresh/", views.thread_refresh, name="thread_refresh"),
    path("threads/<int:pk>/edit/", views.thread_edit, name="thread_edit"),
    path("threads/<int:pk>/metadata/", views.thread_metadata, name="thread_metadata"),
    path("threads/<int:pk>/delete/", views.thread_delete, name="thread_delete"),
    path("threads/<int:pk>/forget/", views.thread_forget, name="thread_forget"),
    path("threads/<int:pk>/mark-missing/", views.thread_mark_missing, name="thread_mark_missing"),
    path("threads/<int:pk>/pin/", views.thread_pin, name="thread_pin"),
    path("threads/<int:pk>/rehome/", views.thread_rehome, name="thread_rehome"),
    path("threads/rehome/", job_views.rehome_new, name="rehome_new"),
    path("threads/reassign/", job_views.reassign_new, name="reassign_new"),
    path("threads/export.csv", views.thread_list_csv, name="thread_list_csv"),
    path("threads/rehome/<int:pk>/", job_views.rehome_run, name="rehome_run"),
    path("threads/<int:pk>/export.<str:fmt>", views.thread_export, name="thread_export"),
    path("overview/", views.overview_page, name="overview"),
    # Intake (admins): credentials, adding and importing threads.
    path("credentials/", credential_views.credential_list, name="credential_list"),
    path("credentials/add/", credential_views.credential_form, name="credential_add"),
    path("credentials/<int:pk>/", credential_views.credential_form, name="credential_edit"),
    path("credentials/<int:pk>/verify/", credential_views.credential_verify, name="credential_verify"),
    path("credentials/<int:pk>/discover/", credential_views.credential_discover, name="credential_discover"),
    path(
        "credentials/<int:pk>/discovery/", credential_views.credential_discovery, name="credential_discovery"
    ),
    path("credentials/<int:pk>/delete/", credential_views.credential_delete, name="credential_delete"),
    path(
        "credentials/<int:pk>/retention/", credential_views.credential_retention, name="credential_retention"
    ),
    path("tokens/", token_views.token_list, name="token_list"),
    path("tokens/<int:pk>/", token_views.token_detail, name="token_detail"),
    path("tokens/<int:pk>/revoke/", token_views.token_revoke, name="token_revoke"),
    path("threads/add/", import_views.thread_add, name="thread_add"),
    path("threads/import/", import_views.thread_import, name="thread_import"),
    path("threads/import/<int:pk>/", import_views.import_run, name="import_run"),
    # Bulk deletion (admins): a selection previewed and confirmed, then its job, receipts and archive.
    path("jobs/", job_views.job_list, name="job_list"),
    path("jobs/new/", job_views.job_new, name="job_new"),
    path("jobs/<int:pk>/", job_views.job_detail, name="job_detail"),
    path("jobs/<int:pk>/cancel/", job_views.job_cancel, name="job_cancel"),
    path("jobs/<int:pk>/retry/", job_views.job_retry, name="job_retry"),
    path("jobs/<int:pk>/confirm/", job_views.job_confirm, name="job_confirm"),
    path("jobs/<int:pk>/receipt.csv", job_views.job_download, {"fmt": "csv"}, name="job_receipt_csv"),
    path("jobs/<int:pk>/receipt.json", job_views.job_download, {"fmt": "json"}, name="job_receipt_json"),
    path("jobs/<int:pk>/archive.jsonl", job_views.job_download, {"fmt": "jsonl"}, name="job_archive"),
    # The team (admins) and the ownership review (admins and auditors).
    path("team/", team_views.team_page, name="team"),
    path("team/add/", team_views.team_add, name="team_add"),
    path("team/<int:pk>/", team_views.team_member, name="team_member"),
    path("team/<int:pk>/deactivate/", team_views.team_deactivate, name="team_deactivate"),
    path("team/<int:pk>/reactivate/", team_views.team_reactivate, name="team_reactivate"),
    path("team/<int:pk>/link/", team_views.team_link, name="team_link"),
    path("ownership/", team_views.ownership_page, name="ownership"),
    path("ownership/reassign/", team_views.ownership_reassign, name="ownership_reassign"),
    path("ownership/export.csv", team_views.ownership_export, name="ownership_export"),
    # The audit log (admins and auditors): read-only.
    path("audit/", audit_views.audit_log, name="audit_log"),
    path("audit/export.csv", audit_views.audit_export, name="audit_export"),
]
