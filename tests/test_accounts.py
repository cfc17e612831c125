"""Accounts: a forgotten password is reset by e-mail, through EMAIL_BACKEND, with links to SLUICE_BASE_URL."""
import re

import pytest
from django.contrib.auth import get_user_model
from django.core import mail

pytestmark = pytest.mark.django_db


@pytest.fixture
def alice():
    return get_user_model().objects.create_user("alice", email="alice@example.org", password="old-pw-4711-x")


def reset_link(message):
    [link] = re.findall(r"https?://\S+", message.body)
    return link


def test_the_login_page_offers_a_reset(client):
    page = client.get("/accounts/login/")
    assert 'href="/accounts/password_reset/"' in page.content.decode()
    form = client.get("/accounts/password_reset/")
    assert form.status_code == 200
    assert "registration/password_reset_form.html" in [template.name for template in form.templates]
    assert "Mail me a link" in form.content.decode()  # the site's page, not the admin's


def test_a_reset_mails_a_link_to_the_configured_address_that_sets_a_new_password(client, alice, settings):
    settings.SLUICE_BASE_URL = "https://sluice.example.org"
    response = client.post("/accounts/password_reset/", {"email": "alice@example.org"})
    assert response.status_code == 302 and response["Location"] == "/accounts/password_reset/done/"
    [message] = mail.outbox
    assert message.to == ["alice@example.org"] and message.from_email == settings.DEFAULT_FROM_EMAIL
    assert message.subject == "Sluice: reset your password"
    link = reset_link(message)
    assert link.startswith("https://sluice.example.org/accounts/reset/")
    form = client.get(link.removeprefix("https://sluice.example.org"), follow=True)
    assert "Choose a new password" in form.content.decode()
    done = client.post(form.redirect_chain[-1][0], {"new_password1": "new-pw-0815-y", "new_password2": "new-pw-0815-y"})
    assert done.status_code == 302 and done["Location"] == "/accounts/reset/done/"
    alice.refresh_from_db()
    assert alice.check_password("new-pw-0815-y")


def test_the_link_ignores_a_forged_host_header(client, alice, settings):
    settings.ALLOWED_HOSTS = ["*"]
    settings.SLUICE_BASE_URL = "https://sluice.example.org"
    client.post("/accounts/password_reset/", {"email": "alice@example.org"}, HTTP_HOST="attacker.example")
    [message] = mail.outbox
    assert "attacker.example" not in message.body
    assert reset_link(message).startswith("https://sluice.example.org/accounts/reset/")


def test_an_unknown_address_gets_the_same_answer_and_no_mail(client, alice):
    response = client.post("/accounts/password_reset/", {"email": "nobody@example.org"})
    assert response.status_code == 302 and response["Location"] == "/accounts/password_reset/done/"
    assert mail.outbox == []


def test_a_used_link_does_not_work_twice(client, alice):
    client.post("/accounts/password_reset/", {"email": "alice@example.org"})
    path = re.sub(r"^https?://[^/]+", "", reset_link(mail.outbox[0]))
    form = client.get(path, follow=True)
    client.post(form.redirect_chain[-1][0], {"new_password1": "new-pw-0815-y", "new_password2": "new-pw-0815-y"})
    again = client.get(path, follow=True)
    assert "This link does not work" in again.content.decode()
