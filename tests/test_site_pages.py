"""Site-wide pages: the 404 and 500 pages, the favicon, dark mode's variables."""
import re
from pathlib import Path

import pytest
from django.conf import settings
from django.template.loader import render_to_string
from django.test import Client

pytestmark = pytest.mark.django_db

CSS = Path(settings.BASE_DIR, "web", "static", "web", "sluice.css").read_text()


def test_a_missing_page_is_the_sites_404_with_the_path_escaped(client):
    response = client.get("/no/such/<b>page</b>")
    assert response.status_code == 404
    html = response.content.decode()
    assert "<h1>Not found</h1>" in html and 'href="/submissions/">Recent in this browser' in html
    assert "<code>/no/such/" in html and "<b>" not in html
    assert 'rel="icon"' in html


def test_the_api_keeps_its_json_404(client):
    response = client.get("/api/nothing-here/")
    assert response.status_code == 404 and response["Content-Type"] == "application/json"


def test_the_500_page_renders_without_a_request():
    html = render_to_string("500.html")
    assert "Something went wrong" in html and "/static/web/sluice.css" in html


def test_a_server_error_answers_with_the_500_page(settings):
    settings.ROOT_URLCONF = "tests.urls_failing"
    response = Client(raise_request_exception=False).get("/boom/")
    assert response.status_code == 500 and "Something went wrong" in response.content.decode()


def test_the_favicon_is_linked_and_answered(client):
    assert '<link rel="icon" href="/static/web/favicon.svg" type="image/svg+xml">' in client.get("/").content.decode()
    response = client.get("/favicon.ico")
    assert response.status_code == 301 and response["Location"] == "/static/web/favicon.svg"
    assert Path(settings.BASE_DIR, "web", "static", "web", "favicon.svg").read_text().startswith("<svg")


def test_dark_mode_redefines_every_colour_variable():
    light = set(re.findall(r"(--[a-z-]+):", CSS.split("@media (prefers-color-scheme: dark)")[0]))
    dark = set(re.findall(r"(--[a-z-]+):", CSS.split("@media (prefers-color-scheme: dark)")[1]))
    assert light and light == dark
    # Outside the variables, no rule names a colour of its own, except the diagrams' light card in dark mode.
    rules = re.sub(r"--[a-z-]+: #[0-9a-f]{3,6};?", "", CSS)
    assert re.findall(r"#[0-9a-f]{6}", rules) == ["#f9fafb", "#f9fafb"]
