"""Limit/offset pagination that refuses bad values instead of quietly ignoring them, and counts at most so far.

``count`` is exact up to ``SLUICE_LIST_COUNT_LIMIT`` matching submissions
(and on the last page, however far); past that it is a lower bound and
``count_exact`` is false (see ``execution.paging``). ``next`` says whether
there is more either way.
"""
from django.conf import settings
from rest_framework.exceptions import ValidationError
from rest_framework.pagination import LimitOffsetPagination
from rest_framework.response import Response
from rest_framework.utils.urls import replace_query_param

from execution import paging


# The largest limit or offset taken: past it a 400 (the databases' integers end at 2**63 - 1).
LARGEST = 10**15


class StrictLimitOffsetPagination(LimitOffsetPagination):
    max_limit = 1000

    def paginate_queryset(self, queryset, request, view=None):
        errors = {}
        for name, smallest in ((self.limit_query_param, 1), (self.offset_query_param, 0)):
            for value in request.query_params.getlist(name):
                if not (value.isascii() and value.isdigit()) or int(value) < smallest:
                    errors[name] = [f"must be a whole number, at least {smallest}; got {value!r}"]
                elif int(value) > LARGEST:  # no list is that long, and no database takes such a number
                    errors[name] = [f"must be at most {LARGEST}; got {value}"]
        if errors:
            raise ValidationError(errors)
        self.request = request
        self.limit, self.offset = self.get_limit(request), self.get_offset(request)
        self.window = paging.window(queryset, self.offset, self.limit)
        self.count = self.window.count
        self.display_page_controls = self.template is not None and (self.window.more or self.offset > 0)
        return self.window.rows

    def get_next_link(self):
        if not self.window.more:  # the count may stop short of the end: the extra row read says whether there is one
            return None
        url = replace_query_param(self.request.build_absolute_uri(), self.limit_query_param, self.limit)
        return replace_query_param(url, self.offset_query_param, self.offset + self.limit)

    def get_paginated_response(self, data):
        return Response({
            "count": self.count, "count_exact": self.window.exact,
            "next": self.get_next_link(), "previous": self.get_previous_link(), "results": data,
        })

    def get_paginated_response_schema(self, schema):
        answer = super().get_paginated_response_schema(schema)
        answer["properties"]["count"]["description"] = "How many match: exact when count_exact is true, else a lower bound (more than this many match)."
        answer["properties"] = {
            "count": answer["properties"]["count"],
            "count_exact": {"type": "boolean", "description": "Whether count is exact; false past SLUICE_LIST_COUNT_LIMIT matches (default 1000)."},
            **{key: value for key, value in answer["properties"].items() if key != "count"},
        }
        answer["required"] = ["count", "count_exact", "results"]
        return answer


class DocumentListPagination(StrictLimitOffsetPagination):
    """Pages of one list of a submission's document: as many a page as the document holds unless asked otherwise."""

    @property
    def default_limit(self):
        return settings.SLUICE_DOCUMENT_LIMIT

    @property
    def max_limit(self):
        return max(StrictLimitOffsetPagination.max_limit, settings.SLUICE_DOCUMENT_LIMIT)
