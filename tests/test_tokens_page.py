"""The API token page: a user makes and revokes their own tokens; a key is shown once, a prefix after."""
import re

import pytest
from django.test import Client
from knox.models import AuthToken
from rest_framework.test import APIClient

pytestmark = pytest.mark.django_db


def logged_in(user):
    client = Client()
    client.force_login(user)
    return client


def listing(key):
    api = APIClient()
    api.credentials(HTTP_AUTHORIZATION=f"Token {key}")
    return api.get("/api/submissions/")


def test_the_page_needs_a_login(client):
    assert client.get("/account/tokens/")["Location"].startswith("/accounts/login/")
    assert client.post("/account/tokens/").status_code == 302 and not AuthToken.objects.exists()


def test_a_new_key_is_shown_once_and_authenticates(owner):
    client = logged_in(owner)
    made = client.post("/account/tokens/").content.decode()
    key = re.search(r'<pre id="new-token">([^<]+)</pre>', made)[1]
    assert listing(key).status_code == 200
    token = AuthToken.objects.get(user=owner)
    assert key.startswith(token.token_key)
    later = client.get("/account/tokens/").content.decode()
    assert key not in later and f"<code>{token.token_key}…</code>" in later
    assert "no-store" in client.get("/account/tokens/")["Cache-Control"]


def test_revoking_stops_the_key_working(owner):
    client = logged_in(owner)
    key = re.search(r'<pre id="new-token">([^<]+)</pre>', client.post("/account/tokens/").content.decode())[1]
    prefix = AuthToken.objects.get(user=owner).token_key
    response = client.post(f"/account/tokens/{prefix}/revoke/", follow=True)
    assert "Revoked the token" in response.content.decode()
    assert listing(key).status_code == 401 and not AuthToken.objects.exists()


def test_one_user_can_neither_see_nor_revoke_anothers_tokens(owner, other_user):
    theirs, key = AuthToken.objects.create(user=other_user)
    client = logged_in(owner)
    assert theirs.token_key not in client.get("/account/tokens/").content.decode()
    response = client.post(f"/account/tokens/{theirs.token_key}/revoke/", follow=True)
    assert "You have no such token." in response.content.decode()
    assert listing(key).status_code == 200


def test_revoking_takes_a_post_only(owner):
    token, _ = AuthToken.objects.create(user=owner)
    assert logged_in(owner).get(f"/account/tokens/{token.token_key}/revoke/").status_code == 405
    assert AuthToken.objects.filter(user=owner).count() == 1


def test_a_user_may_hold_a_limited_number_of_tokens(owner):
    from web.tokens import TOKEN_LIMIT

    for _ in range(TOKEN_LIMIT):
        AuthToken.objects.create(user=owner)
    page = logged_in(owner).post("/account/tokens/").content.decode()
    assert "revoke one first" in page and 'id="new-token"' not in page
    assert AuthToken.objects.filter(user=owner).count() == TOKEN_LIMIT


def test_the_header_links_the_page_for_logged_in_users(owner):
    assert '<a href="/account/tokens/">API tokens</a>' in logged_in(owner).get("/").content.decode()
    assert "/account/tokens/" not in Client().get("/").content.decode()
