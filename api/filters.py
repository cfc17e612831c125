"""Filters of ``GET /api/submissions/`` (django-filter): status, job, search, ordering and creation times.

A bad value (an unknown status or ordering, a date that is not ISO 8601) is a
400 whose ``errors`` name the query parameter.
"""
import django_filters
from django import forms
from django_filters.rest_framework import DjangoFilterBackend
from django_filters.widgets import BaseCSVWidget

from execution.models import Submission
from execution.states import SubmissionStatus

ORDERINGS = ("created_at", "finished_at", "status", "job")
ISO = "an ISO 8601 date or time, e.g. 2026-11-23 or 2026-11-23T12:00:00Z"
# What each filter says of a bad value (django-filter's own messages name neither the value nor what is allowed).
MESSAGES = {
    "status": f"must be one or more of {', '.join(SubmissionStatus.values)} (repeated or comma-separated)",
    "ordering": f"must be one of {', '.join(ORDERINGS)}, each maybe with a leading '-' (repeated or comma-separated)",
    "created_after": f"must be {ISO}",
    "created_before": f"must be {ISO}",
}


class Values(forms.SelectMultiple):
    """Read a parameter given several times (``?status=a&status=b``), each maybe comma-separated (``?status=a,b``)."""

    def value_from_datadict(self, data, files, name):
        given = data.getlist(name) if hasattr(data, "getlist") else [data.get(name)]
        values = [part.strip() for value in given if isinstance(value, str) for part in value.split(",")]
        return [value for value in values if value]


class RepeatedCSV(BaseCSVWidget, forms.TextInput):
    """Comma-separated values, from every time the parameter is given (``?ordering=job&ordering=-created_at``)."""

    def value_from_datadict(self, data, files, name):
        if not hasattr(data, "getlist") or name not in data:
            return super().value_from_datadict(data, files, name)
        return [part for value in data.getlist(name) for part in value.split(",")]


class Ordering(django_filters.OrderingFilter):
    """Order by the chosen field, newest first among equals, so that pages never overlap."""

    def filter(self, qs, value):
        if not value:
            return qs
        return qs.order_by(*(self.get_ordering_value(param) for param in value), "-id")


class SubmissionFilter(django_filters.FilterSet):
    status = django_filters.MultipleChoiceFilter(
        choices=SubmissionStatus.choices, widget=Values, distinct=False,  # a column of the row itself: no join to repeat rows
        help_text="Only submissions in these statuses: repeat the parameter or separate them by commas (status=running,waiting).",
    )
    job = django_filters.CharFilter(field_name="job__name", help_text="Only submissions to the job of this name.")
    search = django_filters.CharFilter(
        method="search_text", help_text="Only submissions whose name, job name or upload's file name holds each word of this text (case-insensitive).",
    )
    created_after = django_filters.DateTimeFilter(
        field_name="created_at", lookup_expr="gte",
        help_text="Only submissions created at or after this ISO 8601 date or time (2026-11-23, 2026-11-23T12:00:00Z); a time without a zone is UTC.",
    )
    created_before = django_filters.DateTimeFilter(
        field_name="created_at", lookup_expr="lt",
        help_text="Only submissions created before this ISO 8601 date or time (a date means its midnight).",
    )
    ordering = Ordering(
        fields=(("created_at", "created_at"), ("finished_at", "finished_at"), ("status", "status"), ("job__name", "job")),
        widget=RepeatedCSV,
        help_text="Sort by created_at (default: newest first), finished_at, status or job; a leading '-' sorts descending; several (repeated or comma-separated) sort by each in turn.",
    )

    class Meta:
        model = Submission
        fields = ["status", "job", "search", "created_after", "created_before", "ordering"]

    def is_valid(self):
        """Also refuse a filter given empty (``?created_after=``), except the text ones, where empty matches everything."""
        valid = super().is_valid()
        for name in self.filters:
            if name in ("job", "search") or name not in self.data:
                continue
            given = self.data.getlist(name) if hasattr(self.data, "getlist") else [self.data.get(name)]
            if any(not str(value).strip() for value in given):
                self.form.errors[name] = self.form.error_class(["must not be empty; leave the parameter out not to filter by it"])
                valid = False
            elif name in self.form.errors:
                self.form.errors[name] = self.form.error_class([f"{MESSAGES[name]}; got {','.join(map(str, given))!r}"])
        return valid

    def search_text(self, queryset, name, value):
        return queryset.matching(value)


class FilterBackend(DjangoFilterBackend):
    """django-filter's backend without its HTML form in the browsable API (the form's template app is not installed)."""

    def to_html(self, request, queryset, view):
        return None
