"""One JSON shape for every API error: ``{"detail": "...", "errors": {field: [messages]}}``."""
from django.conf import settings
from django.core.exceptions import RequestDataTooBig, TooManyFieldsSent
from django.http import JsonResponse
from rest_framework import exceptions, status
from rest_framework.response import Response
from rest_framework.views import exception_handler

from execution.errors import IdempotencyKeyInvalid, IdempotencyKeyReused, LoginRequired, QuotaExceeded, SubmissionInvalid, UploadTooLarge

from .parsers import BodyInvalid


def error_body(detail, errors=None):
    return {"detail": detail, "errors": errors or {}}


def handle_exception(exc, context):
    """DRF's exception handler, with Sluice's domain errors mapped to 4xx and one body shape."""
    if isinstance(exc, SubmissionInvalid):
        return Response(error_body("the request is not valid; see errors", exc.errors), status=status.HTTP_400_BAD_REQUEST)
    if isinstance(exc, LoginRequired):
        return Response(error_body(str(exc)), status=status.HTTP_401_UNAUTHORIZED, headers={"WWW-Authenticate": "Token"})
    if isinstance(exc, UploadTooLarge):
        return Response(error_body(str(exc), {"input_data": [str(exc)]}), status=status.HTTP_413_REQUEST_ENTITY_TOO_LARGE)
    if isinstance(exc, IdempotencyKeyInvalid):
        return Response(error_body(str(exc), {"Idempotency-Key": [str(exc)]}), status=status.HTTP_400_BAD_REQUEST)
    if isinstance(exc, IdempotencyKeyReused):
        return Response(error_body(str(exc), {"Idempotency-Key": [str(exc)]}), status=status.HTTP_422_UNPROCESSABLE_ENTITY)
    if isinstance(exc, QuotaExceeded):
        return Response(error_body(str(exc)), status=status.HTTP_429_TOO_MANY_REQUESTS, headers={"Retry-After": "60"})
    if isinstance(exc, RequestDataTooBig):
        return Response(error_body(f"the form's fields are more than {settings.DATA_UPLOAD_MAX_MEMORY_SIZE} bytes (SLUICE_MAX_FORM_BYTES); send a large input_data as a file upload"), status=status.HTTP_413_REQUEST_ENTITY_TOO_LARGE)
    if isinstance(exc, TooManyFieldsSent):
        return Response(error_body(f"the form has more than {settings.DATA_UPLOAD_MAX_NUMBER_FIELDS} fields"), status=status.HTTP_400_BAD_REQUEST)
    if isinstance(exc, BodyInvalid):
        return Response(error_body(str(exc.detail), exc.errors), status=status.HTTP_400_BAD_REQUEST)
    response = exception_handler(exc, context)
    if response is None:
        return None
    if isinstance(exc, exceptions.ValidationError):
        errors = exc.detail if isinstance(exc.detail, dict) else {"non_field_errors": exc.detail}
        response.data = error_body("the request is not valid; see errors", _strings(errors))
    else:
        detail = exc.detail if isinstance(exc, exceptions.APIException) else str(exc)
        response.data = error_body(str(detail))
    return response


def _strings(errors):
    return {str(field): [str(message) for message in (messages if isinstance(messages, list) else [messages])] for field, messages in errors.items()}


def not_found(request, exception=None):
    """JSON 404 for /api/ paths (Django's HTML page elsewhere)."""
    if request.path.startswith("/api/"):
        return JsonResponse(error_body(f"nothing at {request.path}; see /api/docs/ for the API"), status=404)
    from django.views.defaults import page_not_found

    return page_not_found(request, exception)


def server_error(request):
    if request.path.startswith("/api/"):
        return JsonResponse(error_body("internal error; it has been logged"), status=500)
    from django.views.defaults import server_error as html_error

    return html_error(request)
