"""A URL that fails, to see the 500 page (tests/test_site_pages.py)."""
from django.urls import include, path


def boom(request):
    raise RuntimeError("a deliberate failure")


urlpatterns = [path("boom/", boom), path("", include("config.urls"))]
handler500 = "api.errors.server_error"
