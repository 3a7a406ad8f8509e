from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.contrib.auth.decorators import login_not_required
from django.templatetags.static import static
from django.urls import include, path
from django.utils.functional import lazy
from django.views.generic import RedirectView

urlpatterns = [
    path("accounts/login/", auth_views.LoginView.as_view(), name="login"),
    path("accounts/logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("admin/", admin.site.urls),
    # Browsers and tools that ignore <link rel="icon"> ask for /favicon.ico; a 404 in the log for each
    # page is noise. Lazy: the hashed name of a collected static file is known only once serving.
    path(
        "favicon.ico",
        login_not_required(RedirectView.as_view(url=lazy(static, str)("threadsite/favicon.svg"))),
    ),
    path("", include("threads_app.api.urls")),
    path("", include("threads_app.urls")),
]
