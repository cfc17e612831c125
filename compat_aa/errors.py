"""Errors in A_A's shapes: ``{"error": ...}`` for a refused submission, ``{"detail": ...}`` for the rest.

A_A's own refusals (its api.py, ``SubmissionDetails.post``) answer
``{"error": "<message>"}``, or ``{"error": {field: [messages]}}`` when its form
refused a field; everything else (not found, unsupported media type, method
not allowed) is Django REST framework's ``{"detail": "<message>"}``. Every
error a caller can cause is a 4xx with one of those bodies.
"""
from django.http import Http404, JsonResponse
from rest_framework import exceptions, status
from rest_framework.response import Response

from api.errors import handle_exception
from execution.errors import IdempotencyKeyInvalid, IdempotencyKeyReused, LoginRequired, QuotaExceeded, SubmissionInvalid, UploadTooLarge

__all__ = ["NOT_FOUND", "Refused", "handle", "not_found"]

NOT_FOUND = {"detail": "Not found."}  # DRF's answer for an unknown lookup, as A_A's tests expect it


class Refused(Exception):
    """A submission A_A would refuse: ``body`` is A_A's ``error`` value, ``code`` its status."""

    def __init__(self, code, body):
        super().__init__(str(body))
        self.code, self.body = code, body


def quota_message(active):
    # A_A's words (api.py, post), with its missing space after "jobs." kept: clients may match on them.
    return f"You have no authority to post jobs.Either you are not logged in you have too many, {active}, concurrent jobs running"


def handle(exc, context):
    """The exception handler of the A_A views."""
    if isinstance(exc, Refused):
        return Response({"error": exc.body}, status=exc.code)
    if isinstance(exc, SubmissionInvalid):
        body = {str(field): [str(message) for message in messages] for field, messages in exc.errors.items()}
        return Response({"error": body}, status=status.HTTP_400_BAD_REQUEST)
    if isinstance(exc, LoginRequired):
        return Response({"error": str(exc)}, status=status.HTTP_401_UNAUTHORIZED, headers={"WWW-Authenticate": "Token"})
    if isinstance(exc, QuotaExceeded):
        return Response({"error": quota_message(exc.active)}, status=status.HTTP_429_TOO_MANY_REQUESTS, headers={"Retry-After": "60"})
    if isinstance(exc, UploadTooLarge):
        return Response({"error": {"input_data": [str(exc)]}}, status=status.HTTP_413_REQUEST_ENTITY_TOO_LARGE)
    if isinstance(exc, IdempotencyKeyInvalid):
        return Response({"error": {"Idempotency-Key": [str(exc)]}}, status=status.HTTP_400_BAD_REQUEST)
    if isinstance(exc, IdempotencyKeyReused):
        return Response({"error": {"Idempotency-Key": [str(exc)]}}, status=status.HTTP_422_UNPROCESSABLE_ENTITY)
    if isinstance(exc, (Http404, exceptions.NotFound)):
        return Response(NOT_FOUND, status=status.HTTP_404_NOT_FOUND)
    response = handle_exception(exc, context)  # Sluice's: body limits, NUL in a form, DRF's own errors
    if response is not None:
        response.data = {"detail": response.data.get("detail", "") if isinstance(response.data, dict) else str(response.data)}
    return response


def not_found(request, *args, **kwargs):
    """Any other path under /analytics_automated/: a JSON 404, as the views' own."""
    return JsonResponse(NOT_FOUND, status=404)
