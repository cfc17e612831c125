"""API tokens are stored as digests: the database never holds a key that authenticates."""
import pytest
from django.core.management import call_command
from django.db import connection
from knox.models import AuthToken
from rest_framework.test import APIClient

pytestmark = pytest.mark.django_db


def listing(key):
    api = APIClient()
    api.credentials(HTTP_AUTHORIZATION=f"Token {key}")
    return api.get("/api/submissions/")


def stored_values():
    with connection.cursor() as cursor:
        cursor.execute("SELECT digest, token_key FROM knox_authtoken")
        return [value for row in cursor.fetchall() for value in row]


def test_a_token_authenticates_but_is_not_stored(owner):
    _, key = AuthToken.objects.create(user=owner)
    assert listing(key).status_code == 200
    assert key not in stored_values()
    assert not any(key in value for value in stored_values())


def test_a_wrong_or_altered_token_is_refused(owner):
    _, key = AuthToken.objects.create(user=owner)
    altered = key[:-1] + ("0" if key[-1] != "0" else "1")
    response = listing(altered)
    assert response.status_code == 401
    assert response.json()["detail"] == "Invalid token."
    assert response["WWW-Authenticate"] == "Token"


def test_createtoken_prints_a_key_that_authenticates_once_and_replace_revokes_the_old(owner, capsys):
    call_command("createtoken", "owner")
    first = capsys.readouterr().out.strip()
    assert listing(first).status_code == 200
    call_command("createtoken", "owner", "--replace")
    second = capsys.readouterr().out.strip()
    assert (listing(first).status_code, listing(second).status_code) == (401, 200)
    assert AuthToken.objects.filter(user=owner).count() == 1


def test_createtoken_names_a_missing_user():
    from django.core.management.base import CommandError

    with pytest.raises(CommandError, match="there is no user 'nobody-here'"):
        call_command("createtoken", "nobody-here")
