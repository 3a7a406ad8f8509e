from django.contrib import admin

from .models import AuditEvent


@admin.register(AuditEvent)
class AuditEventAdmin(admin.ModelAdmin):
    """The audit log, read-only: no add, change or delete, for superusers included."""

    list_display = ["at", "actor_name", "action", "object_type", "remote_id", "object_pk", "address"]
    list_filter = ["action", "object_type"]
    search_fields = ["actor_name", "=remote_id"]
    date_hierarchy = None
    ordering = ["-at", "-id"]
    show_full_result_count = False  # a COUNT(*) over a million events on every page

    def get_readonly_fields(self, request, obj=None):
        return [field.name for field in self.model._meta.fields]

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False
