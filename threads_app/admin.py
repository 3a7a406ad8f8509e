"""Django's admin: the audit log, read-only; people and their roles. A role is a group (member, admin,
auditor); changing groups here or with the actions below goes through `team`, so that admins keep
Django's admin site (is_staff) and the others lose it."""

from django.contrib import admin, messages
from django.contrib.auth import get_user_model
from django.contrib.auth.admin import UserAdmin

from . import team
from .models import AuditEvent
from .permissions import ROLES, role_of

User = get_user_model()


def role_action(role: str, label: str):
    def action(modeladmin, request, queryset):
        changed = 0
        for user in queryset:
            try:
                team.set_role(user, role, by=request.user)
            except team.TeamError as error:
                modeladmin.message_user(request, f"{user.get_username()}: {error}", messages.ERROR)
            else:
                changed += 1
        modeladmin.message_user(request, f"{changed} user(s) are now {role}s.")

    action.__name__ = f"make_{role}"
    action.short_description = f"Give the selected users the {label.lower()} role"
    return action


class ThreadsiteUserAdmin(UserAdmin):
    list_display = ["username", "email", "role", "is_active", "last_login"]
    list_filter = ["groups", "is_active", "is_superuser"]
    actions = [role_action(role, label) for role, label in ROLES]

    @admin.display(description="Role")
    def role(self, user):
        return role_of(user)

    def save_related(self, request, form, formsets, change):
        super().save_related(request, form, formsets, change)
        # Groups edited by hand: keep is_staff in step with the role they now give (one role at most).
        user = form.instance
        if not user.is_superuser:
            team.set_role(user, role_of(user))


admin.site.unregister(User)
admin.site.register(User, ThreadsiteUserAdmin)


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
