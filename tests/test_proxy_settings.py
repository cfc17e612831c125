"""Behind a proxy that ends TLS: the settings read from the environment, and a form posted over https passes CSRF."""
import json
import subprocess
import sys
from pathlib import Path

import pytest
from django.test import Client, override_settings

ROOT = Path(__file__).resolve().parents[1]


def settings_with(**environ):
    """The proxy-related settings as a fresh process reads them from ``environ``."""
    code = (
        "import django, json; django.setup(); from django.conf import settings as s; "
        "print(json.dumps([s.CSRF_TRUSTED_ORIGINS, getattr(s, 'SECURE_PROXY_SSL_HEADER', None), s.SESSION_COOKIE_SECURE, s.CSRF_COOKIE_SECURE]))"
    )
    env = {"PATH": "/usr/bin:/bin", "DJANGO_SETTINGS_MODULE": "config.settings", "SLUICE_DATA_DIR": environ.pop("data_dir"), **environ}
    answer = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)
    assert answer.returncode == 0, answer.stderr
    return json.loads(answer.stdout)


def test_by_default_nothing_is_trusted_and_cookies_go_over_http_too(tmp_path):
    assert settings_with(data_dir=str(tmp_path)) == [[], None, False, False]


def test_behind_a_tls_proxy_the_origins_and_the_forwarded_scheme_are_trusted(tmp_path):
    found = settings_with(data_dir=str(tmp_path), CSRF_TRUSTED_ORIGINS="https://sluice.example.org, https://b.example.org", SLUICE_BEHIND_TLS_PROXY="1")
    assert found == [["https://sluice.example.org", "https://b.example.org"], ["HTTP_X_FORWARDED_PROTO", "https"], True, True]


@pytest.mark.django_db
@override_settings(SECURE_PROXY_SSL_HEADER=("HTTP_X_FORWARDED_PROTO", "https"), CSRF_TRUSTED_ORIGINS=["https://sluice.example.org"], ALLOWED_HOSTS=["sluice.example.org"])
def test_a_form_posted_through_the_proxy_passes_the_csrf_check_and_a_foreign_origin_does_not():
    client = Client(enforce_csrf_checks=True)
    headers = {"HTTP_HOST": "sluice.example.org", "HTTP_X_FORWARDED_PROTO": "https"}
    page = client.get("/accounts/login/", secure=False, **headers)
    token = page.cookies["csrftoken"].value
    data = {"csrfmiddlewaretoken": token, "username": "nobody", "password": "wrong"}
    mine = client.post("/accounts/login/", data, HTTP_ORIGIN="https://sluice.example.org", HTTP_REFERER="https://sluice.example.org/accounts/login/", **headers)
    assert mine.status_code == 200  # the form again, saying the login failed: CSRF passed
    foreign = client.post("/accounts/login/", data, HTTP_ORIGIN="https://evil.example.net", **headers)
    assert foreign.status_code == 403
