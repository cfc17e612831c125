"""A_A's URLs under /analytics_automated/ (A_A's project urls.py, with its format_suffix_patterns ``.json``).

A_A's UUID paths have no trailing slash and take ``.json``; its example clients
post to ``submission/.json`` and ``submission.json``. Each pattern takes those
forms, with or without a final slash.
"""
from django.urls import re_path

from . import errors, views

UUID = r"(?P<uuid>[^/]{8}-[^/]{4}-[^/]{4}-[^/]{4}-[^/]{12})"
END = r"(?:/?\.json)?/?$"

urlpatterns = [
    re_path(r"^endpoints" + END, views.Endpoints.as_view(), name="aa-endpoints"),
    re_path(r"^submission" + END, views.SubmissionCreate.as_view(), name="aa-submission"),
    re_path(r"^submission/single/" + UUID + END, views.SingleDetail.as_view(), name="aa-submission-single"),
    re_path(r"^submission/" + UUID + END, views.BatchDetail.as_view(), name="aa-batch"),
    re_path(r"^job" + END, views.JobList.as_view(), name="aa-jobs"),
    re_path(r"^job/(?P<name>[^/]+?)" + END, views.JobDetail.as_view(), name="aa-job"),
    re_path(r"^jobtimes" + END, views.JobTimes.as_view(), name="aa-jobtimes"),
    re_path(r"^submissions/" + UUID + r"/results/(?P<result_id>[0-9]{1,18})/(?P<name>[^/]*)$", views.ResultFile.as_view(),
            name="aa-result"),
    re_path(r"^.*$", errors.not_found),
]
