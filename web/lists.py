"""The lists of submissions: "My submissions" for a logged-in user, "Recent in this browser" for anyone else.

A logged-in user's list is their own submissions. An anonymous visitor's is
the uuids this browser's session remembers from the form (``remember``), of
submissions made without an account; nobody else's ever shows. Both lists
filter (django-filter), search, page, and refresh the status of their active
rows from ``submission_status`` (web/static/web/lists.js).
"""
from uuid import UUID

import django_filters
from django.db.models import Exists, OuterRef
from django.http import JsonResponse
from django.shortcuts import render
from django.utils import dateformat, timezone

from execution import paging
from execution.models import Batch, Submission
from execution.states import SubmissionStatus
from jobs.models import Job

__all__ = ["PAGE_SIZE", "RECENT_KEY", "RECENT_LIMIT", "SubmissionFilter", "remember", "submission_list", "submission_status", "visible_list"]

RECENT_KEY = "sluice_recent"
RECENT_LIMIT = 100
PAGE_SIZE = 25
STATUS_LIMIT = 100  # uuids one status request may ask about


def remember(request, made):
    """Keep the uuid(s) of what the form just made in the session, newest first, at most ``RECENT_LIMIT``."""
    made = list(made.submissions.all()) if isinstance(made, Batch) else [made]
    kept = [str(submission.uuid) for submission in made]
    kept += [uuid for uuid in request.session.get(RECENT_KEY, []) if uuid not in kept]
    request.session[RECENT_KEY] = kept[:RECENT_LIMIT]


def visible_list(request):
    """The submissions the list may show this visitor: theirs when logged in, else this browser's anonymous ones."""
    submissions = Submission.objects.select_related("job")
    if request.user.is_authenticated:
        return submissions.filter(user=request.user)
    return submissions.filter(user__isnull=True, uuid__in=request.session.get(RECENT_KEY, []))


class SubmissionFilter(django_filters.FilterSet):
    q = django_filters.CharFilter(method="search", label="Search")
    status = django_filters.ChoiceFilter(choices=SubmissionStatus.choices, empty_label="any")
    job = django_filters.ModelChoiceFilter(queryset=Job.objects.all(), to_field_name="name", empty_label="any")
    made_from = django_filters.DateFilter(field_name="created_at", lookup_expr="date__gte", label="Made from")
    made_to = django_filters.DateFilter(field_name="created_at", lookup_expr="date__lte", label="to")

    class Meta:
        model = Submission
        fields = ["q", "status", "job", "made_from", "made_to"]

    def __init__(self, *args, jobs=None, **kwargs):
        super().__init__(*args, **kwargs)
        if jobs is not None:
            self.filters["job"].queryset = jobs
        self.form.fields["q"].help_text = "In submission, job and file names."
        for name in ("made_from", "made_to"):
            self.form.fields[name].widget.input_type = "date"

    def search(self, queryset, name, value):
        return queryset.matching(value)


def submission_list(request):
    base = visible_list(request)
    # A job is offered when the list has any of its submissions: one indexed look-up per job, not a read of the list.
    jobs = Job.objects.filter(Exists(base.filter(job=OuterRef("pk"))))
    chosen = SubmissionFilter(request.GET or None, queryset=base, jobs=jobs)
    # A filter that cannot be read (a date like "yesterday") shows its error and no rows, not everything.
    found = chosen.qs if not chosen.is_bound or chosen.form.is_valid() else base.none()
    page = Page(found, _page_number(request.GET.get("page")))
    query = request.GET.copy()
    query.pop("page", None)
    context = {
        "filter": chosen, "page": page, "query": query.urlencode(), "mine": request.user.is_authenticated,
        "filtered": any(value for key, value in request.GET.items() if key != "page"), "any": base.exists(),
    }
    return render(request, "web/submissions.html", context)


def _page_number(text):
    return int(text) if text and text.isascii() and text.isdigit() and 0 < int(text) < 10**6 else 1


class Page:
    """Page ``number`` of ``found``, ``PAGE_SIZE`` rows, counted up to SLUICE_LIST_COUNT_LIMIT (``execution.paging``).

    A number past the last page shows the last page, as Django's ``Paginator.get_page`` does (the
    first one when the count stopped short of the end: where the end is is not known).
    """

    def __init__(self, found, number):
        window = paging.window(found, (number - 1) * PAGE_SIZE, PAGE_SIZE)
        if not window.rows and number > 1:
            number = max(1, -(-window.count // PAGE_SIZE)) if window.exact else 1
            window = paging.window(found, (number - 1) * PAGE_SIZE, PAGE_SIZE)
        self.number, self.object_list, self.count, self.exact = number, window.rows, window.count, window.exact
        self.num_pages = max(1, -(-window.count // PAGE_SIZE)) if window.exact else None
        self.has_next, self.has_previous = window.more, number > 1
        self.next_page_number, self.previous_page_number = number + 1, number - 1
        self.has_other_pages = self.has_next or self.has_previous


def submission_status(request):
    """``{uuid: {"status", "finished", "active"}}`` for the asked-for submissions this visitor's list may show."""
    asked = request.GET.getlist("uuid")[:STATUS_LIMIT]
    valid = []
    for text in asked:
        try:
            valid.append(str(UUID(text)))
        except ValueError:
            return JsonResponse({"detail": f"not a submission uuid: {text!r}"}, status=400)
    found = visible_list(request).filter(uuid__in=valid)
    body = {
        str(s.uuid): {"status": s.status, "finished": dateformat.format(timezone.localtime(s.finished_at), "Y-m-d H:i") if s.finished_at else "", "active": s.is_active}
        for s in found
    }
    return JsonResponse(body)
