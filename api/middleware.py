"""Refuse NUL in a request's path, query string, cookies and headers before any view looks a name up.

A NUL reaches Django through ``%00`` in a URL (or an octal escape in a quoted
cookie); a path such as ``/api/jobs/%00/`` would otherwise become a query that
PostgreSQL refuses, which is a 500. No name or value Sluice stores may hold one,
so the request is refused at once: with the API's JSON error body under
``/api/``, with A_A's (``{"detail": ...}``) under ``/analytics_automated/``, with
a plain 400 elsewhere. Bodies are checked by ``api.parsers``.
"""
from django.http import HttpResponseBadRequest, JsonResponse

from .errors import error_body
from .jsonstream import printable

__all__ = ["refuse_nul"]


def refuse_nul(get_response):
    def middleware(request):
        problem = nul_in(request)
        if problem is None:
            return get_response(request)
        field, message = problem
        if request.path_info.startswith("/api/"):
            return JsonResponse(error_body(message, {field: [message]}), status=400)
        if request.path_info.startswith("/analytics_automated/"):
            return JsonResponse({"detail": message}, status=400)
        return HttpResponseBadRequest(message, content_type="text/plain; charset=utf-8")

    return middleware


def nul_in(request):
    """``(field, message)`` for the first NUL in the path, a query parameter, a cookie or a header; None when there is none.

    Web servers refuse NUL in headers themselves (waitress and gunicorn answer 400); this is for
    whatever reaches Django another way.
    """
    if "\x00" in request.path_info:
        return "path", "the URL path contains NUL (%00), which no name may hold"
    headers = {name: value for name, value in request.headers.items() if name.lower() != "cookie"}
    for source, values in (("query parameter", request.GET), ("cookie", request.COOKIES), ("header", headers)):
        for name in values:
            found = [name, *(values.getlist(name) if hasattr(values, "getlist") else [values[name]])]
            if any("\x00" in text for text in found):
                field = printable(name)
                return field, f"the {source} '{field}' contains NUL (%00), which no name or value may hold"
    return None
