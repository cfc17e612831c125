"""Account pages beyond log in and log out: resetting a forgotten password by e-mail.

Django's own views do the work (``django.contrib.auth.views``); the mail goes
through ``EMAIL_BACKEND``, like the completion mails (``execution.notify``).
"""
from urllib.parse import urlsplit

from django.conf import settings
from django.contrib.auth import views as auth_views

__all__ = ["PasswordResetView"]


class PasswordResetView(auth_views.PasswordResetView):
    """Mail a reset link that points at ``SLUICE_BASE_URL``.

    Django would build the link from the request's Host header, which the
    requester chooses: where ``ALLOWED_HOSTS`` is broad (``*`` behind a
    proxy), someone asking for another user's reset could have the mailed
    link point at a server of theirs and catch the token. The configured
    address cannot be forged, and completion mails link to it too.
    """

    @property
    def extra_email_context(self):
        base = urlsplit(settings.SLUICE_BASE_URL)
        return {"protocol": base.scheme or "http", "domain": base.netloc, "site_name": "Sluice"}
