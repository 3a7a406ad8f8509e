from django.apps import AppConfig
from django.db.models.signals import post_migrate


class ThreadsAppConfig(AppConfig):
    name = "threads_app"
    verbose_name = "Threadsite"

    def ready(self):
        from . import (
            audit,  # noqa: F401 (connects the sign-in receivers)
            signin,  # noqa: F401 (connects the sign-in signal handlers)
        )
        from .permissions import sync_role_permissions

        # After every migrate: the permissions exist by then (they do not during data migrations).
        post_migrate.connect(sync_role_permissions, sender=self, dispatch_uid="threadsite-role-permissions")
