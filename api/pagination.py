"""Limit/offset pagination that refuses bad values instead of quietly ignoring them."""
from django.conf import settings
from rest_framework.exceptions import ValidationError
from rest_framework.pagination import LimitOffsetPagination


class StrictLimitOffsetPagination(LimitOffsetPagination):
    max_limit = 1000

    def paginate_queryset(self, queryset, request, view=None):
        errors = {}
        for name, smallest in ((self.limit_query_param, 1), (self.offset_query_param, 0)):
            for value in request.query_params.getlist(name):
                if not (value.isascii() and value.isdigit()) or int(value) < smallest:
                    errors[name] = [f"must be a whole number, at least {smallest}; got {value!r}"]
        if errors:
            raise ValidationError(errors)
        return super().paginate_queryset(queryset, request, view)


class DocumentListPagination(StrictLimitOffsetPagination):
    """Pages of one list of a submission's document: as many a page as the document holds unless asked otherwise."""

    @property
    def default_limit(self):
        return settings.SLUICE_DOCUMENT_LIMIT

    @property
    def max_limit(self):
        return max(StrictLimitOffsetPagination.max_limit, settings.SLUICE_DOCUMENT_LIMIT)
