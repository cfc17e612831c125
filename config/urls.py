from django.contrib import admin
from django.urls import include, path

from web.accounts import PasswordResetView

urlpatterns = [
    path("admin/", admin.site.urls),
    path("api/", include("api.urls")),
    # Analytics Automated's REST API, for its clients (compat_aa; docs/migrating-from-aa.md).
    path("analytics_automated/", include("compat_aa.urls")),
    # Before Django's account URLs, so this reset (links from SLUICE_BASE_URL) is the one served.
    path("accounts/password_reset/", PasswordResetView.as_view(), name="password_reset"),
    path("accounts/", include("django.contrib.auth.urls")),
    path("", include("web.urls")),
]

handler404 = "api.errors.not_found"
handler500 = "api.errors.server_error"
