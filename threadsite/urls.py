from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.contrib.auth.decorators import login_not_required
from django.templatetags.static import static
from django.urls import include, path
from django.utils.functional import lazy
from django.views.generic import RedirectView

from threads_app.signin import LimitedAuthenticationForm

urlpatterns = [
    path(
        "accounts/login/",
        auth_views.LoginView.as_view(authentication_form=LimitedAuthenticationForm),
        name="login",
    ),
    path("accounts/logout/", auth_views.LogoutView.as_view(), name="logout"),
    # One-time set-password links made on the Team page (Django's password reset tokens; no email).
    path(
        "accounts/reset/<uidb64>/<token>/",
        auth_views.PasswordResetConfirmView.as_view(),
        name="password_reset_confirm",
    ),
    path(
        "accounts/reset/done/",
        auth_views.PasswordResetCompleteView.as_view(),
        name="password_reset_complete",
    ),
    path("admin/", admin.site.urls),
    # Browsers and tools that ignore <link rel="icon"> ask for /favicon.ico; a 404 in the log for each
    # page is noise. Lazy: the hashed name of a collected static file is known only once serving.
    path(
        "favicon.ico",
        login_not_required(RedirectView.as_view(url=lazy(static, str)("threadsite/favicon.svg"))),
        name="favicon",
    ),
    path("", include("threads_app.api.urls")),
    path("", include("threads_app.urls")),
]
