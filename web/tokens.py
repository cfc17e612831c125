"""The page where a logged-in user makes and revokes their own API tokens.

Tokens are django-rest-knox's, the same the API authenticates
(``Authorization: Token <key>``) and ``manage.py createtoken`` makes: only a
digest is stored, so a key is shown once, on the page its creation answers,
and afterwards only by its first characters (``token_key``).
"""
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.shortcuts import redirect, render
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_POST
from knox.models import AuthToken

__all__ = ["revoke", "token_page"]

TOKEN_LIMIT = 20  # a user's tokens at once: enough for every machine they script from


@never_cache
@login_required
def token_page(request):
    """GET: the user's tokens by prefix. POST: make one and show its key, this once."""
    key = None
    if request.method == "POST":
        if AuthToken.objects.filter(user=request.user).count() >= TOKEN_LIMIT:
            messages.error(request, f"You have {TOKEN_LIMIT} tokens, the most one user may have; revoke one first.")
        else:
            _, key = AuthToken.objects.create(user=request.user)
    tokens = AuthToken.objects.filter(user=request.user).order_by("-created")
    context = {"tokens": tokens, "key": key, "base": request.build_absolute_uri("/").rstrip("/")}
    return render(request, "web/tokens.html", context)


@require_POST
@login_required
def revoke(request, prefix):
    """Delete the user's token with this prefix; another user's prefix revokes nothing."""
    deleted, _ = AuthToken.objects.filter(user=request.user, token_key=prefix).delete()
    if deleted:
        messages.success(request, f"Revoked the token {prefix}…; programs using it are refused from now on.")
    else:
        messages.error(request, "You have no such token.")
    return redirect("web:tokens")
