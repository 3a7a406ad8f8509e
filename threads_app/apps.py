from django.apps import AppConfig


class ThreadsAppConfig(AppConfig):
    name = "threads_app"
    verbose_name = "Threadsite"

    def ready(self):
        from . import audit  # noqa: F401 (connects the sign-in receivers)
